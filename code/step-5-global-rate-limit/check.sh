#!/usr/bin/env bash
# Checks the step-5 plugin (API keys, 5 requests per minute per key, counted
# by the rate limit service) through a running Envoy: one PASS or FAIL line
# per case, and a non-zero exit status if any fails.
# Usage: bash check.sh   (or BASE_URL=http://127.0.0.1:8080 bash check.sh)
# It uses up key-jkl012's quota, which lives in Redis, not in Envoy: run it
# again after a minute (restarting Envoy does not reset it; restarting Redis does).
set -u

# ---- helpers: one PASS/FAIL line per case ----------------------------------
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
failures=0
# The body and the headers of the last response, for the checks that look
# at what the backend received.
body_file="$(mktemp)"
header_file="$(mktemp)"
trap 'rm -f "$body_file" "$header_file"' EXIT

# expect NAME STATUS BODY_TEXT -- CURL_ARGS...
# Sends the request; passes when the status matches and the body contains
# BODY_TEXT (a fixed string; '' accepts any body).
expect() {
  local name="$1" want_status="$2" want_body="$3"
  shift 3
  [ "$1" = "--" ] && shift
  local got
  got="$(curl -s -o "$body_file" -D "$header_file" -w '%{http_code}' "$@")" || got="curl-error-$?"
  if [ "$got" != "$want_status" ]; then
    fail "$name" "status $want_status" "status $got"
  elif [ -n "$want_body" ] && ! grep -qF -- "$want_body" "$body_file"; then
    fail "$name" "body with $want_body" "$(head -c 300 "$body_file")"
  else
    printf 'PASS  %-46s expected %s, got %s\n' "$name" "$want_status" "$got"
  fi
}

# expect_absent NAME TEXT: the body of the last response does not contain TEXT.
expect_absent() {
  local name="$1" text="$2"
  if grep -qF -- "$text" "$body_file"; then
    fail "$name" "no $text" "$(head -c 300 "$body_file")"
  else
    printf 'PASS  %-46s expected no %s, got none\n' "$name" "$text"
  fi
}

# expect_header NAME HEADER TEXT: a header of the last response contains TEXT.
expect_header() {
  local name="$1" header="$2" text="$3" value
  value="$(header_value "$header")"
  if [[ "$value" == *"$text"* ]]; then
    printf 'PASS  %-46s expected %s: %s, got it\n' "$name" "$header" "$text"
  else
    fail "$name" "$header: $text" "${value:-no $header}"
  fi
}

# expect_header_number NAME HEADER MIN MAX: a header of the last response is
# a whole number from MIN to MAX.
expect_header_number() {
  local name="$1" header="$2" min="$3" max="$4" value
  value="$(header_value "$header")"
  if [[ "$value" =~ ^[0-9]+$ ]] && [ "$value" -ge "$min" ] && [ "$value" -le "$max" ]; then
    printf 'PASS  %-46s expected %s in %s..%s, got it\n' "$name" "$header" "$min" "$max"
  else
    fail "$name" "$header in $min..$max" "${value:-no $header}"
  fi
}

header_value() {
  grep -i "^$1:" "$header_file" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}

fail() {
  printf 'FAIL  %-46s expected %s, got %s\n' "$1" "$2" "$3"
  failures=$((failures + 1))
}

finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
  fi
  echo "all checks passed"
}

# ---- the checks ---------------------------------------------------------------
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

# One credential, read one way: a key sent twice is refused, even with a
# valid one among them, because the upstream might read the other one.
expect "key sent twice -> 400" 400 '"API key sent more than once"' -- \
  -H 'X-API-Key: key-abc123' -H 'X-API-Key: attacker' "$BASE_URL/api/users"
expect "... in either order" 400 '"API key sent more than once"' -- \
  -H 'X-API-Key: attacker' -H 'X-API-Key: key-abc123' "$BASE_URL/api/users"
expect "... or as X_API_Key beside it -> 400" 400 '' -- \
  -H 'X-API-Key: key-abc123' -H 'X_API_Key: attacker' "$BASE_URL/api/users"
# The plugin reads every header to find repeated keys; a header name that is
# not ASCII never gets that far: Envoy refuses the request.
expect "header name that is not ASCII -> 400" 400 '' -- \
  -H 'X-API-Key: key-abc123' -H $'X-\xff\xfe: 1' "$BASE_URL/api/users"

# Bytes 0xFF 0xFE are not UTF-8: the plugin must answer, not crash.
expect "non-UTF-8 key -> 403" 403 '"invalid API key"' -- \
  -H $'X-API-Key: \xff\xfe' "$BASE_URL/api/users"
expect "valid key still works afterwards" 200 '"x-auth-status":["valid"]' -- \
  -H 'X-API-Key: key-ghi789' "$BASE_URL/api/users"

# ---- the rate limit ---------------------------------------------------------
# ANCHOR: rate_limit_checks
# The service's windows start on whole minutes. Near the end of one, wait
# for the next, so the six requests below all land in the same window.
while [ $(( $(date +%s) % 60 )) -ge 55 ]; do sleep 1; done

for n in 1 2 3 4 5; do
  expect "key-jkl012 request $n -> 200" 200 '"x-auth-status":["valid"]' -- \
    -H 'X-API-Key: key-jkl012' "$BASE_URL/api/users"
  expect_header "... RateLimit shows $((5 - n)) left" ratelimit "\"per-key\";r=$((5 - n));"
done
expect_header "... RateLimit-Policy is 5 per 60 s" ratelimit-policy '"per-key";q=5;w=60'

expect "key-jkl012 request 6 -> 429" 429 '"rate limit exceeded"' -- \
  -H 'X-API-Key: key-jkl012' "$BASE_URL/api/users"
expect_header_number "... Retry-After: seconds to the next window" retry-after 1 60
expect_header "... the 429 carries RateLimit too" ratelimit '"per-key";r=0;'

expect "another key is not affected -> 200" 200 '"x-auth-status":["valid"]' -- \
  -H 'X-API-Key: key-abc123' "$BASE_URL/api/users"
# ANCHOR_END: rate_limit_checks

finish
