#!/usr/bin/env bash
# Checks the token plugin through a running Envoy: one PASS or FAIL line per
# case, and exit status 1 if any fails. The tokens are minted here with the
# folder's test keys (mint.sh, openssl). BASE_URL=... to test elsewhere;
# HTTP2=1 to send every request over HTTP/2 (cleartext, prior knowledge).
set -u
cd "$(dirname "$0")"
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
version=()
[ -n "${HTTP2:-}" ] && version=(--http2-prior-knowledge)
failures=0
body="$(mktemp)"
trap 'rm -f "$body"' EXIT

# expect NAME STATUS TEXT CURL_ARGS...: sends the request; passes when the
# status matches and the answer, headers included, contains TEXT ('' accepts
# any).
expect() {
  local name="$1" status="$2" text="$3" got
  shift 3
  got="$(curl -s -i "${version[@]}" -o "$body" -w '%{http_code}' "$@")" || got="curl error $?"
  if [ "$got" != "$status" ]; then
    printf 'FAIL  %-46s expected %s, got %s\n' "$name" "$status" "$got"
    failures=$((failures + 1))
  elif [ -n "$text" ] && ! grep -qiF -- "$text" "$body"; then
    printf 'FAIL  %-46s expected %s in %s\n' "$name" "$text" "$(head -c 300 "$body")"
    failures=$((failures + 1))
  else
    printf 'PASS  %-46s %s\n' "$name" "$got"
  fi
}

now=$(date +%s)
# claims [FIELD=JSON ...]: the claims of a good token for tenant a, with
# each FIELD set to JSON (or removed with FIELD=).
claims() {
  local fields=("\"sub\":\"ada\"" "\"iss\":\"https://issuer.example\"" "\"aud\":\"api\""
    "\"exp\":$((now + 300))" "\"tenant\":\"a\"") change name out=()
  for change in "$@"; do
    name="${change%%=*}"
    fields=("${fields[@]/#\"$name\":*/}")
    [ -n "${change#*=}" ] && fields+=("\"$name\":${change#*=}")
  done
  for change in "${fields[@]}"; do [ -n "$change" ] && out+=("$change"); done
  (IFS=,; printf '{%s}' "${out[*]}")
}
bearer() { printf 'Authorization: Bearer %s' "$1"; }
api="$BASE_URL/api/users"
good=$(bash mint.sh RS256 rsa-1 "$(claims)")

# Until the first refresh, every request is refused (503): wait for it.
for _ in $(seq 1 50); do
  loaded="$(curl -s "${version[@]}" -o /dev/null -w '%{http_code}' -H "$(bearer "$good")" "$api")"
  [ "$loaded" = 200 ] && break
  sleep 0.2
done
expect "RS256 token, tenant a -> backend a" 200 '"path":"/tenant-a/users"' -H "$(bearer "$good")" "$api"
expect "ES256 token, tenant b -> backend b" 200 '"path":"/tenant-b/users"' \
  -H "$(bearer "$(bash mint.sh ES256 ec-1 "$(claims tenant='"b"')")")" "$api"
expect "no token -> 401 with the realm" 401 'www-authenticate: Bearer realm="api"' "$api"
expect "Basic credentials -> 401" 401 'Bearer realm="api"' -H 'Authorization: Basic YWRhOnB3' "$api"
expect "two Authorization headers -> 400" 400 'error="invalid_request"' \
  -H "$(bearer "$good")" -H "$(bearer "$good")" "$api"
expect "token in the query string -> 400" 400 'error="invalid_request"' "$api?access_token=$good"

# Tokens that must not pass, whoever made them.
expect "alg none -> 401" 401 'error="invalid_token"' \
  -H "$(bearer "$(bash mint.sh none rsa-1 "$(claims)")")" "$api"
expect "HS256 keyed with the RSA public key -> 401" 401 'error="invalid_token"' \
  -H "$(bearer "$(bash mint.sh HS256 rsa-1 "$(claims)")")" "$api"
expect "unknown kid -> 401" 401 'names an unknown key' \
  -H "$(bearer "$(bash mint.sh RS256 rsa-9 "$(claims)")")" "$api"
expect "ES256 token naming the RSA key -> 401" 401 "is not its key's" \
  -H "$(bearer "$(bash mint.sh ES256 rsa-1 "$(claims)")")" "$api"
expect "expired -> 401" 401 'has expired' \
  -H "$(bearer "$(bash mint.sh RS256 rsa-1 "$(claims exp=$((now - 60)))")")" "$api"
expect "not yet valid -> 401" 401 'not valid yet' \
  -H "$(bearer "$(bash mint.sh RS256 rsa-1 "$(claims nbf=$((now + 120)))")")" "$api"
expect "wrong audience -> 401" 401 'not for this audience' \
  -H "$(bearer "$(bash mint.sh RS256 rsa-1 "$(claims aud='"other"')")")" "$api"
expect "wrong issuer -> 401" 401 'issuer is not accepted' \
  -H "$(bearer "$(bash mint.sh RS256 rsa-1 "$(claims iss='"https://evil.example"')")")" "$api"
expect "oversized token -> 401" 401 'too long' \
  -H "$(bearer "$(bash mint.sh RS256 rsa-1 "$(claims pad="\"$(head -c 5000 /dev/zero | tr '\0' x)\"")")")" "$api"
# The signature's tenth character changed: whole bytes of it, not the
# padding bits its last character carries.
signature="${good##*.}"
[ "${signature:9:1}" = A ] && letter=B || letter=A
flipped="${good%.*}.${signature:0:9}$letter${signature:10}"
expect "signature with a bit changed -> 401" 401 'signature is not valid' \
  -H "$(bearer "$flipped")" "$api"

# The route is the token's, never the client's.
expect "forged X-Tenant is replaced" 200 '"path":"/tenant-a/users"' \
  -H "$(bearer "$good")" -H 'X-Tenant: b' "$api"
expect "forged X-Tenant without a token -> 401" 401 '' -H 'X-Tenant: b' "$api"
expect "token without a tenant -> 401" 401 'claims are not valid' \
  -H "$(bearer "$(bash mint.sh RS256 rsa-1 "$(claims tenant=)")")" "$api"
expect "public route, no token -> 200" 200 '"path":"/public/info"' "$BASE_URL/public/info"

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
