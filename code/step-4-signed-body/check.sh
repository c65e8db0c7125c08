#!/usr/bin/env bash
# Checks the step-4 plugin (HMAC-signed bodies) through a running Envoy: one PASS or FAIL line
# per case, and a non-zero exit status if any fails.
# Usage: bash check.sh   (or BASE_URL=http://127.0.0.1:8080 bash check.sh)
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

# ---- signing, as a webhook sender does ----------------------------------------
if ! command -v openssl > /dev/null; then
  echo "check.sh signs its requests with openssl: install it (Debian/Ubuntu: apt install openssl)"
  exit 1
fi
# The secrets configured in envoy.yaml: the current one and, during a
# rotation, the previous one.
SECRET='whsec-2026-11-current-7d1f0c9a2b4e'
PREVIOUS_SECRET='whsec-2026-05-previous-93ab51e07c2d'
work_dir="$(mktemp -d)"
trap 'rm -f "$body_file" "$header_file"; rm -rf "$work_dir"' EXIT

# signature FILE TIMESTAMP [SECRET]: prints `sha256=<hex>`, the HMAC-SHA256
# of "<timestamp>.<body>" under the secret.
signature() {
  local file="$1" timestamp="$2" secret="${3:-$SECRET}"
  printf 'sha256=%s' "$( { printf '%s.' "$timestamp"; cat "$file"; } |
    openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= //')"
}

# body NAME SIZE: a file of SIZE bytes of JSON-ish text, path printed.
body() {
  local file="$work_dir/$1"
  head -c "$2" /dev/zero | tr '\0' 'a' | sed 's/^/{"event":"push","pad":"/; s/$/"}/' | head -c "$2" > "$file"
  printf '%s' "$file"
}

# ---- the checks ---------------------------------------------------------------
URL="$BASE_URL/webhooks/github"
now="$(date +%s)"
printf '{"event":"push","ref":"refs/heads/main"}' > "$work_dir/event.json"
event="$work_dir/event.json"
good="$(signature "$event" "$now")"

expect "signed body -> 200, passed on unchanged" 200 '"body":"{\u0022event\u0022:\u0022push\u0022,\u0022ref\u0022:\u0022refs/heads/main\u0022}"' -- \
  -H "X-Signature-256: $good" -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"
expect "signed with the previous secret -> 200" 200 '"path":"/webhooks/github"' -- \
  -H "X-Signature-256: $(signature "$event" "$now" "$PREVIOUS_SECRET")" \
  -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"
expect "... sent chunked -> 200" 200 '"path":"/webhooks/github"' -- \
  -H "X-Signature-256: $good" -H "X-Signature-Timestamp: $now" -H 'Transfer-Encoding: chunked' \
  --data-binary "@$event" "$URL"
expect "... over HTTP/2 -> 200" 200 '"path":"/webhooks/github"' -- --http2-prior-knowledge \
  -H "X-Signature-256: $good" -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"
: > "$work_dir/empty"
expect "empty body, signed -> 200" 200 '"body":""' -- -X POST \
  -H "X-Signature-256: $(signature "$work_dir/empty" "$now")" -H "X-Signature-Timestamp: $now" "$URL"

printf '{"event":"push","ref":"refs/heads/evil"}' > "$work_dir/tampered.json"
expect "body changed after signing -> 401" 401 '"invalid signature"' -- \
  -H "X-Signature-256: $good" -H "X-Signature-Timestamp: $now" --data-binary "@$work_dir/tampered.json" "$URL"
expect "signed with an unknown secret -> 401" 401 '"invalid signature"' -- \
  -H "X-Signature-256: $(signature "$event" "$now" 'not-the-secret-not-the-secret-xx')" \
  -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"
expect "no signature -> 401" 401 '"missing signature"' -- \
  -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"
expect "malformed signature -> 401" 401 '"malformed signature"' -- \
  -H "X-Signature-256: sha1=${good#sha256=}" -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"

# A signed timestamp makes a captured request useless later: replaying it
# means an old timestamp, and a new one breaks the signature.
old=$((now - 600))
expect "timestamp 10 minutes old, signed -> 400" 400 '"stale timestamp"' -- \
  -H "X-Signature-256: $(signature "$event" "$old")" -H "X-Signature-Timestamp: $old" \
  --data-binary "@$event" "$URL"
expect "... replayed with a fresh timestamp -> 401" 401 '"invalid signature"' -- \
  -H "X-Signature-256: $(signature "$event" "$old")" -H "X-Signature-Timestamp: $now" \
  --data-binary "@$event" "$URL"
expect "no timestamp -> 400" 400 '"missing timestamp"' -- \
  -H "X-Signature-256: $good" --data-binary "@$event" "$URL"
expect "timestamp sent twice -> 400" 400 '"timestamp sent more than once"' -- \
  -H "X-Signature-256: $good" -H "X-Signature-Timestamp: $now" -H "X-Signature-Timestamp: $old" \
  --data-binary "@$event" "$URL"
expect "malformed timestamp -> 400" 400 '"malformed timestamp"' -- \
  -H "X-Signature-256: $good" -H "X-Signature-Timestamp: ${now}.0" --data-binary "@$event" "$URL"

# One signature, read one way.
expect "signature sent twice -> 400" 400 '"signature sent more than once"' -- \
  -H "X-Signature-256: $good" -H "X-Signature-256: sha256=$(printf '0%.0s' {1..64})" \
  -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"
expect "... or as X_Signature_256 beside it -> 400" 400 '' -- \
  -H "X-Signature-256: $good" -H "X_Signature_256: sha256=$(printf '0%.0s' {1..64})" \
  -H "X-Signature-Timestamp: $now" --data-binary "@$event" "$URL"

# The limit is 65536 bytes (max_body_bytes in envoy.yaml).
at_limit="$(body at-limit 65536)"
over_limit="$(body over-limit 65537)"
expect "body of exactly the limit, signed -> 200" 200 '"path":"/webhooks/github"' -- \
  -H "X-Signature-256: $(signature "$at_limit" "$now")" -H "X-Signature-Timestamp: $now" \
  --data-binary "@$at_limit" "$URL"
expect "one byte over, with Content-Length -> 413" 413 '"body too large"' -- \
  -H "X-Signature-256: $(signature "$over_limit" "$now")" -H "X-Signature-Timestamp: $now" \
  --data-binary "@$over_limit" "$URL"
expect "one byte over, chunked -> 413" 413 '"body too large"' -- \
  -H "X-Signature-256: $(signature "$over_limit" "$now")" -H "X-Signature-Timestamp: $now" \
  -H 'Transfer-Encoding: chunked' --data-binary "@$over_limit" "$URL"

expect "public route, no signature -> 200" 200 '"path":"/public/info"' -- \
  "$BASE_URL/public/info"

finish
