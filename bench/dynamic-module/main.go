// Step 1's key check as an Envoy dynamic module, written with Envoy's Go
// SDK: the benchmark's native-code twin of the Wasm plugin (same JSON
// configuration, same answers: 401 no key, 400 a repeated key, 403 an
// unknown key, `x-auth-status: valid` on a request that passes).
//
// Built by `cargo xtask bench` with -buildmode=c-shared into
// libbook_key_check.so; Envoy loads it in its own process, with no sandbox.
package main

import (
	"encoding/json"
	"errors"
	"strings"

	_ "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/abi"
	sdk "github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go"
	"github.com/envoyproxy/envoy/source/extensions/dynamic_modules/sdk/go/shared"
)

// main never runs: Envoy calls the exported functions of the shared library.
func main() {}

func init() {
	sdk.RegisterHttpFilterConfigFactories(map[string]shared.HttpFilterConfigFactory{
		"key-check": &configFactory{},
	})
}

type keyConfig struct {
	headerName string
	validKeys  map[string]struct{}
}

type configFactory struct {
	shared.EmptyHttpFilterConfigFactory
}

// Create parses {"header_name": "x-api-key", "valid_keys": [...]}.
func (f *configFactory) Create(handle shared.HttpFilterConfigHandle, unparsed []byte) (shared.HttpFilterFactory, error) {
	var raw struct {
		HeaderName string   `json:"header_name"`
		ValidKeys  []string `json:"valid_keys"`
	}
	if err := json.Unmarshal(unparsed, &raw); err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSpace(raw.HeaderName))
	if name == "" || len(raw.ValidKeys) == 0 {
		return nil, errors.New("`header_name` and at least one of `valid_keys` are required")
	}
	keys := make(map[string]struct{}, len(raw.ValidKeys))
	for _, key := range raw.ValidKeys {
		keys[key] = struct{}{}
	}
	return &filterFactory{config: &keyConfig{headerName: name, validKeys: keys}}, nil
}

type filterFactory struct {
	shared.EmptyHttpFilterFactory
	config *keyConfig
}

func (f *filterFactory) Create(handle shared.HttpFilterHandle) shared.HttpFilter {
	return &keyCheck{handle: handle, config: f.config}
}

type keyCheck struct {
	shared.EmptyHttpFilter
	handle shared.HttpFilterHandle
	config *keyConfig
}

func (k *keyCheck) OnRequestHeaders(headers shared.HeaderMap, endOfStream bool) shared.HeadersStatus {
	// Every value of the header: the upstream might read another one.
	values := headers.Get(k.config.headerName)
	if len(values) > 1 {
		return k.refuse(400, `{"error":"API key sent more than once"}`)
	}
	if len(values) == 0 || values[0].Len == 0 {
		return k.refuse(401, `{"error":"missing API key"}`)
	}
	// Envoy's memory, read without a copy: the map lookup does not keep it.
	if _, ok := k.config.validKeys[values[0].ToUnsafeString()]; !ok {
		return k.refuse(403, `{"error":"invalid API key"}`)
	}
	headers.Set("x-auth-status", "valid")
	return shared.HeadersStatusContinue
}

func (k *keyCheck) refuse(status uint32, body string) shared.HeadersStatus {
	k.handle.SendLocalResponse(status, [][2]string{{"content-type", "application/json"}}, []byte(body), "key_check")
	return shared.HeadersStatusStop
}
