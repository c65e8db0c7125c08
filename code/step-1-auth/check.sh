#!/usr/bin/env bash
# Checks the API-key plugin through a running Envoy: one PASS or FAIL line
# per case, and exit status 1 if any fails. BASE_URL=... to test elsewhere.
set -u
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
failures=0
body="$(mktemp)"
trap 'rm -f "$body"' EXIT

# expect NAME STATUS TEXT CURL_ARGS...: sends the request; passes when the
# status matches and the body contains TEXT ('' accepts any body).
expect() {
  local name="$1" status="$2" text="$3" got
  shift 3
  got="$(curl -s -o "$body" -w '%{http_code}' "$@")" || got="curl error $?"
  if [ "$got" != "$status" ]; then
    printf 'FAIL  %-44s expected %s, got %s\n' "$name" "$status" "$got"
    failures=$((failures + 1))
  elif [ -n "$text" ] && ! grep -qF -- "$text" "$body"; then
    printf 'FAIL  %-44s expected %s in %s\n' "$name" "$text" "$(head -c 200 "$body")"
    failures=$((failures + 1))
  else
    printf 'PASS  %-44s %s\n' "$name" "$got"
  fi
}

# absent NAME TEXT: passes when the last body does not contain TEXT.
absent() {
  if grep -qF -- "$2" "$body"; then
    printf 'FAIL  %-44s found %s\n' "$1" "$2"
    failures=$((failures + 1))
  else
    printf 'PASS  %-44s\n' "$1"
  fi
}

api="$BASE_URL/api/users"
# ANCHOR: first_checks
expect "no key -> 401" 401 '"missing API key"' "$api"
expect "empty key -> 401" 401 '"missing API key"' -H 'X-API-Key;' "$api"
expect "unknown key -> 403" 403 '"invalid API key"' -H 'X-API-Key: invalid' "$api"
expect "valid key -> 200 with X-Auth-Status" 200 '"x-auth-status":["valid"]' -H 'X-API-Key: key-abc123' "$api"
expect "public route, no key -> 200" 200 '"path":"/public/info"' "$BASE_URL/public/info"
# ANCHOR_END: first_checks

# A client must not vouch for itself.
expect "forged X-Auth-Status is replaced" 200 '"x-auth-status":["valid"]' \
  -H 'X-API-Key: key-def456' -H 'X-Auth-Status: one' -H 'X-Auth-Status: two' "$api"
expect "forged X-Auth-Status on /public/" 200 '"path":"/public/info"' \
  -H 'X-Auth-Status: valid' "$BASE_URL/public/info"
absent "... is removed before the backend" '"x-auth-status"'

# One credential, read one way.
expect "key sent twice -> 400" 400 '"API key sent more than once"' \
  -H 'X-API-Key: key-abc123' -H 'X-API-Key: attacker' "$api"
expect "... in either order" 400 '"API key sent more than once"' \
  -H 'X-API-Key: attacker' -H 'X-API-Key: key-abc123' "$api"
expect "... or as X_API_Key beside it -> 400" 400 '' \
  -H 'X-API-Key: key-abc123' -H 'X_API_Key: attacker' "$api"
expect "header name that is not ASCII -> 400" 400 '' \
  -H 'X-API-Key: key-abc123' -H $'X-\xff\xfe: 1' "$api"

# Bytes that are not UTF-8: an answer, not a crash.
expect "non-UTF-8 key -> 403" 403 '"invalid API key"' -H $'X-API-Key: \xff\xfe' "$api"
expect "a valid key still works afterwards" 200 '"x-auth-status":["valid"]' \
  -H 'X-API-Key: key-ghi789' "$api"

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
