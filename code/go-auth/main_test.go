package main

import (
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

const goodConfig = `{"header_name": "X-API-Key", "valid_keys": ["key-abc123", "key-def456"]}`

func TestConfigRules(t *testing.T) {
	bad := map[string]string{
		`{not json`:             "configuration is not valid",
		`{"valid_keys": ["a"]}`: "missing field `header_name`",
		`{"header_name": "", "valid_keys": ["a"]}`:                      "`header_name` must not be empty",
		`{"header_name": "x y", "valid_keys": ["a"]}`:                   "`header_name` may only contain",
		`{"header_name": "x", "valid_keys": []}`:                        "`valid_keys` must list at least one key",
		`{"header_name": "x", "valid_keys": ["a", ""]}`:                 "`valid_keys` must not contain an empty key",
		`{"header_name": "x", "valid_keys": "secret-k"}`:                "configuration is not valid",
		`{"header_name": "x", "valid_keys": ["a"], "valid_key": ["a"]}`: "unknown field",
	}
	for json, want := range bad {
		_, err := parseConfig([]byte(json))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error with %q", json, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-k") {
			t.Errorf("%s: the error quotes a key: %v", json, err)
		}
	}
	config, err := parseConfig([]byte(goodConfig))
	if err != nil || config.headerName != "x-api-key" || len(config.validKeys) != 2 {
		t.Fatalf("good config: %+v, %v", config, err)
	}
}

func TestRequests(t *testing.T) {
	opt := proxytest.NewEmulatorOption().
		WithPluginContext(func(uint32) types.PluginContext { return &authPlugin{} }).
		WithPluginConfiguration([]byte(goodConfig))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	if status := host.StartPlugin(); status != types.OnPluginStartStatusOK {
		t.Fatalf("plugin refused a good configuration")
	}
	cases := []struct {
		name    string
		headers [][2]string
		status  uint32 // 0: the request continues
	}{
		{"no key", nil, 401},
		{"unknown key", [][2]string{{"x-api-key", "nope"}}, 403},
		{"non-UTF-8 key", [][2]string{{"x-api-key", "\xff\xfe"}}, 403},
		{"valid key", [][2]string{{"x-api-key", "key-abc123"}, {"x-auth-status", "forged"}}, 0},
		{"key sent twice", [][2]string{{"x-api-key", "key-abc123"}, {"x-api-key", "nope"}}, 400},
	}
	for _, c := range cases {
		id := host.InitializeHttpContext()
		action := host.CallOnRequestHeaders(id, c.headers, true)
		response := host.GetSentLocalResponse(id)
		switch {
		case c.status == 0 && (action != types.ActionContinue || response != nil):
			t.Errorf("%s: expected the request to continue", c.name)
		case c.status != 0 && (response == nil || response.StatusCode != c.status):
			t.Errorf("%s: expected a %d response, got %+v", c.name, c.status, response)
		}
		if c.status == 0 {
			var statuses []string
			for _, h := range host.GetCurrentRequestHeaders(id) {
				if h[0] == "x-auth-status" {
					statuses = append(statuses, h[1])
				}
			}
			if len(statuses) != 1 || statuses[0] != "valid" {
				t.Errorf("%s: x-auth-status upstream = %v, want [valid]", c.name, statuses)
			}
		}
	}
	for _, line := range append(host.GetWarnLogs(), host.GetInfoLogs()...) {
		if strings.Contains(line, "key-abc123") || strings.Contains(line, "nope") {
			t.Errorf("a key was logged: %s", line)
		}
	}
}
