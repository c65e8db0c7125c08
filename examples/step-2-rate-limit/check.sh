#!/usr/bin/env bash
# Checks the step-2 plugin (API keys + 5 requests per 60 s per key) through a
# running proxy. It uses up key-jkl012's quota: run it again after a minute,
# or restart the proxy.
# Usage: BASE_URL=http://127.0.0.1:8080 examples/step-2-rate-limit/check.sh
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../step-1-auth/check.sh"

# ANCHOR: rate_limit_checks
rate_limit_checks() {
  # Windows start on whole minutes. Near the end of one, wait for the next,
  # so the six requests below all land in the same window.
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

  expect "another key is not affected -> 200" 200 '"x-auth-status":["valid"]' -- \
    -H 'X-API-Key: key-abc123' "$BASE_URL/api/users"
}
# ANCHOR_END: rate_limit_checks

auth_checks
rate_limit_checks
finish
