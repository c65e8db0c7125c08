package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// authConfig is the checked configuration: the same JSON as the Rust step 1,
// {"header_name": "X-API-Key", "valid_keys": ["key-abc123", ...]}.
type authConfig struct {
	// Lower-cased: proxies compare header names case-insensitively.
	headerName string
	// A set: looking a key up costs the same with 3 keys or 100,000.
	validKeys map[string]struct{}
}

type rawConfig struct {
	HeaderName *string   `json:"header_name"`
	ValidKeys  *[]string `json:"valid_keys"`
}

// parseConfig refuses what the Rust version refuses. Its messages never
// contain a key: encoding/json's type errors name the field, not the value.
func parseConfig(data []byte) (*authConfig, error) {
	if len(data) == 0 {
		return nil, errors.New("no plugin configuration was provided")
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	var raw rawConfig
	if err := decoder.Decode(&raw); err != nil {
		return nil, fmt.Errorf("configuration is not valid: %w", err)
	}
	if raw.HeaderName == nil {
		return nil, errors.New("missing field `header_name`")
	}
	if raw.ValidKeys == nil {
		return nil, errors.New("missing field `valid_keys`")
	}
	headerName := strings.ToLower(strings.TrimSpace(*raw.HeaderName))
	if headerName == "" {
		return nil, errors.New("`header_name` must not be empty")
	}
	for _, c := range headerName {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.", c)) {
			return nil, errors.New("`header_name` may only contain letters, digits and -_.")
		}
	}
	if len(*raw.ValidKeys) == 0 {
		return nil, errors.New("`valid_keys` must list at least one key")
	}
	keys := make(map[string]struct{}, len(*raw.ValidKeys))
	for _, key := range *raw.ValidKeys {
		if key == "" {
			return nil, errors.New("`valid_keys` must not contain an empty key")
		}
		keys[key] = struct{}{}
	}
	return &authConfig{headerName: headerName, validKeys: keys}, nil
}
