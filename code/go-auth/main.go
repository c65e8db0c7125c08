// Step 1 (API-key authentication) written with the Go SDK for Proxy-Wasm.
// Same configuration, same answers, same rules as code/step-1-auth.
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

// ANCHOR: entry
// main is required by the Go toolchain but never runs: built with
// -buildmode=c-shared, the module is a WASI reactor, and the host calls its
// exported functions after init has registered the plugin.
func main() {}

func init() {
	proxywasm.SetPluginContext(func(contextID uint32) types.PluginContext {
		return &authPlugin{}
	})
}

// ANCHOR_END: entry

// ANCHOR: plugin
// authPlugin is the root context: one per plugin in each VM.
type authPlugin struct {
	types.DefaultPluginContext
	// Shared by every request of this VM; filters hold a pointer, not a copy.
	config *authConfig
}

func (p *authPlugin) OnPluginStart(pluginConfigurationSize int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		proxywasm.LogErrorf("rejected plugin configuration: cannot read it: %v", err)
		return types.OnPluginStartStatusFailed
	}
	config, err := parseConfig(data)
	if err != nil {
		proxywasm.LogErrorf("rejected plugin configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	proxywasm.LogInfof("configured, header `%s`, %d valid keys", config.headerName, len(config.validKeys))
	p.config = config
	return types.OnPluginStartStatusOK
}

func (p *authPlugin) NewHttpContext(contextID uint32) types.HttpContext {
	return &authFilter{config: p.config, verdict: "Pending"}
}

// ANCHOR_END: plugin

// ANCHOR: filter
const authStatusHeader = "x-auth-status"

// authFilter is the HTTP context: one per request.
type authFilter struct {
	types.DefaultHttpContext
	config  *authConfig
	verdict string
}

func (f *authFilter) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	if f.config == nil {
		return f.reject("NotConfigured", 503, `{"error":"auth plugin is not configured"}`)
	}
	// Every value of the header: GetHttpRequestHeader returns only the
	// first, and the upstream might read another one.
	headers, err := proxywasm.GetHttpRequestHeaders()
	if err != nil {
		proxywasm.LogErrorf("could not read the request headers: %v", err)
		return f.reject("Failed", 503, `{"error":"auth plugin failed"}`)
	}
	var values []string
	for _, header := range headers {
		if header[0] == f.config.headerName {
			values = append(values, header[1])
		}
	}
	if len(values) > 1 {
		proxywasm.LogWarnf("request with `%s` more than once", f.config.headerName)
		return f.reject("RepeatedKey", 400, `{"error":"API key sent more than once"}`)
	}
	// A Go string holds any bytes: a non-UTF-8 value is simply not in the map.
	if len(values) == 0 || values[0] == "" {
		proxywasm.LogWarnf("request without `%s` header", f.config.headerName)
		return f.reject("MissingKey", 401, `{"error":"missing API key"}`)
	}
	if _, ok := f.config.validKeys[values[0]]; !ok {
		// Never log the key itself, not even an invalid one.
		proxywasm.LogWarn("request with an unknown API key")
		return f.reject("UnknownKey", 403, `{"error":"invalid API key"}`)
	}
	// Replacing drops every copy a client sent; rejected requests never
	// reach the upstream, so upstreams can trust the header.
	if err := proxywasm.ReplaceHttpRequestHeader(authStatusHeader, "valid"); err != nil {
		proxywasm.LogErrorf("could not add %s: %v", authStatusHeader, err)
		return f.reject("Failed", 503, `{"error":"auth plugin failed"}`)
	}
	f.verdict = "Allowed"
	return types.ActionContinue
}

// reject answers the client directly; the request never reaches the upstream.
func (f *authFilter) reject(verdict string, status uint32, body string) types.Action {
	f.verdict = verdict
	headers := [][2]string{{"content-type", "application/json"}}
	if err := proxywasm.SendHttpResponse(status, headers, []byte(body), -1); err != nil {
		proxywasm.LogErrorf("could not send the %d response: %v", status, err)
	}
	return types.ActionPause
}

func (f *authFilter) OnHttpStreamDone() {
	proxywasm.LogInfof("request completed, verdict %s", f.verdict)
}

// ANCHOR_END: filter
