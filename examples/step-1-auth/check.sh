#!/usr/bin/env bash
# Checks the step-1 plugin through a running proxy.
# Usage: BASE_URL=http://127.0.0.1:8080 examples/step-1-auth/check.sh
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/checks.sh"

# ANCHOR: auth_checks
auth_checks() {
  expect "no key -> 401" 401 '"missing API key"' -- \
    "$BASE_URL/api/users"
  expect "unknown key -> 403" 403 '"invalid API key"' -- \
    -H 'X-API-Key: invalid' "$BASE_URL/api/users"
  expect "valid key -> 200, proxied with X-Auth-Status" 200 '"x-auth-status":["valid"]' -- \
    -H 'X-API-Key: key-abc123' "$BASE_URL/api/users"
  expect "public route, no key -> 200" 200 '"path":"/public/info"' -- \
    "$BASE_URL/public/info"

  # A client must not be able to vouch for itself.
  expect "forged X-Auth-Status on /api/ is replaced" 200 '"x-auth-status":["valid"]' -- \
    -H 'X-API-Key: key-def456' -H 'X-Auth-Status: forged' "$BASE_URL/api/users"
  expect "... also when sent twice" 200 '"x-auth-status":["valid"]' -- \
    -H 'X-API-Key: key-def456' -H 'X-Auth-Status: one' -H 'X-Auth-Status: two' "$BASE_URL/api/users"
  expect "forged X-Auth-Status on /public/ ..." 200 '"path":"/public/info"' -- \
    -H 'X-Auth-Status: valid' "$BASE_URL/public/info"
  expect_absent "... does not reach the backend" '"x-auth-status"'

  # Bytes 0xFF 0xFE are not UTF-8: the plugin must answer, not crash.
  expect "non-UTF-8 key -> 403" 403 '"invalid API key"' -- \
    -H $'X-API-Key: \xff\xfe' "$BASE_URL/api/users"
  expect "valid key still works afterwards" 200 '"x-auth-status":["valid"]' -- \
    -H 'X-API-Key: key-ghi789' "$BASE_URL/api/users"
}
# ANCHOR_END: auth_checks

# Run the checks only when executed, not when another script sources this one.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  auth_checks
  finish
fi
