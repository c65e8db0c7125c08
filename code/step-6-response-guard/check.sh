#!/usr/bin/env bash
# Checks the step-6 plugin (JSON responses rewritten on their way out)
# through a running Envoy: one PASS or FAIL line per case, and a non-zero
# exit status if any fails.
# Usage: bash check.sh   (or BASE_URL=http://127.0.0.1:8080 bash check.sh)
set -u

# ---- helpers: one PASS/FAIL line per case ----------------------------------
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
failures=0
work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# expect NAME STATUS -- CURL_ARGS...: sends the request; passes when the
# status matches. The answer's headers and body are kept for `has`/`lacks`.
expect() {
  local name="$1" want_status="$2"
  shift 2
  [ "$1" = "--" ] && shift
  local got
  got="$(curl -s -o "$work_dir/body" -D "$work_dir/headers" -w '%{http_code}' "$@")" || got="curl-error-$?"
  if [ "$got" = "$want_status" ]; then
    printf 'PASS  %-52s expected %s, got %s\n' "$name" "$want_status" "$got"
  else
    fail "$name" "status $want_status" "status $got"
  fi
}

# has NAME TEXT / lacks NAME TEXT: the last answer (headers and body)
# contains TEXT, or does not (case-insensitive for headers).
has() {
  if grep -qiF -- "$2" "$work_dir/headers" "$work_dir/body"; then
    printf 'PASS  %-52s expected %s, found it\n' "$1" "$2"
  else
    fail "$1" "$2" "$(head -c 300 "$work_dir/body")"
  fi
}
lacks() {
  if grep -qiF -- "$2" "$work_dir/headers" "$work_dir/body"; then
    fail "$1" "no $2" "$(grep -iF -- "$2" "$work_dir/headers" "$work_dir/body" | head -c 300)"
  else
    printf 'PASS  %-52s expected no %s, found none\n' "$1" "$2"
  fi
}

fail() {
  printf 'FAIL  %-52s expected %s, got %s\n' "$1" "$2" "$3"
  failures=$((failures + 1))
}

# ---- the checks ---------------------------------------------------------------
expect "a user -> 200" 200 -- "$BASE_URL/users/7"
has "... keeps the fields it may show" '"name":"Ada"'
lacks "... without password_hash" 'password_hash'
lacks "... without the nested ssn" 'ssn'
lacks "... or internal_notes inside an array" 'internal_notes'
has "... with content-length for the new body" 'content-length: 82'
lacks "... without the upstream's x-powered-by" 'x-powered-by'
has "... with x-content-type-options set" 'x-content-type-options: nosniff'
expect "... over HTTP/2 -> 200" 200 -- --http2-prior-knowledge "$BASE_URL/users/7"
lacks "... over HTTP/2, without password_hash" 'password_hash'
expect "HEAD of a user -> 200" 200 -- -I "$BASE_URL/users/7"
lacks "... without the unredacted body's length" 'content-length'
expect "an image -> 200, untouched" 200 -- "$BASE_URL/users/7/avatar.png"
has "... its own content-length" 'content-length: 8'
expect "no content -> 204" 204 -- "$BASE_URL/users/7/no-content"
expect "a compressed JSON response -> 502" 502 -- "$BASE_URL/users/7/gzip"
has "... saying it is compressed" '"response is compressed"'
expect "a truncated JSON response -> 502" 502 -- "$BASE_URL/users/7/broken"
lacks "... and none of it" 'password_hash'
expect "JSON that is not UTF-8 -> 502" 502 -- "$BASE_URL/users/7/not-utf8"
# The limit is 65536 bytes (max_body_bytes in envoy.yaml).
expect "a JSON response of exactly the limit -> 200" 200 -- "$BASE_URL/sized/65536"
lacks "... without its ssn" 'ssn'
expect "one byte over -> 502" 502 -- "$BASE_URL/sized/65537"
has "... saying it is too large" '"response too large"'
expect "one byte over, over HTTP/2 -> 502" 502 -- --http2-prior-knowledge "$BASE_URL/sized/65537"
expect "an error from the upstream -> 404, still JSON" 404 -- "$BASE_URL/nope"
has "... its body" '"no such user"'
# What the upstream can be made to send instead of one JSON document.
expect "a Range for the ssn's bytes -> 200, the whole user" 200 -- -H 'Range: bytes=92-104' "$BASE_URL/users/7"
lacks "... rewritten, its ssn removed" '078-05-1120'
expect "a Range of two parts -> 200, the whole user" 200 -- -H 'Range: bytes=0-9,40-200' "$BASE_URL/users/7"
lacks "... rewritten, its ssn removed too" '078-05-1120'
expect "a part the upstream sends anyway -> 502" 502 -- "$BASE_URL/users/7/part"
has "... saying it is partial" '"partial response"'
expect "parts the upstream sends anyway -> 502" 502 -- "$BASE_URL/users/7/parts"
lacks "... and none of the parts" '078-05-1120'
expect "JSON labelled text/json -> 200" 200 -- "$BASE_URL/users/7/as-text-json"
lacks "... rewritten like any JSON" '078-05-1120'
expect "no content-type -> 502" 502 -- "$BASE_URL/users/7/untyped"
has "... saying the type is not allowed" '"response type not allowed"'
expect "content-type sent twice -> 502" 502 -- "$BASE_URL/users/7/two-types"
expect "newline-delimited JSON -> 502" 502 -- "$BASE_URL/users/7/events"
lacks "... and none of the events" '078-05-1120'

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
