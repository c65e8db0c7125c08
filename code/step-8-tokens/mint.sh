#!/usr/bin/env bash
# Mints a JWT with this folder's test keys (keys/: never use them for
# anything real), for check.sh and for trying the plugin by hand:
#
#   bash mint.sh ALG KID CLAIMS_JSON
#
# ALG is RS256 (keys/rsa.pem), ES256 (keys/ec.pem), HS256 (an HMAC keyed
# with the RSA *public* key: what an algorithm-confusion attack sends) or
# none (no signature). Needs openssl.
set -euo pipefail
cd "$(dirname "$0")"
alg="$1" kid="$2" claims="$3"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

header=$(printf '{"alg":"%s","typ":"JWT","kid":"%s"}' "$alg" "$kid" | b64url)
payload=$(printf '%s' "$claims" | b64url)
input="$header.$payload"

case "$alg" in
  RS256)
    signature=$(printf '%s' "$input" | openssl dgst -sha256 -sign keys/rsa.pem -binary | b64url) ;;
  ES256)
    # openssl writes an ECDSA signature in DER (a SEQUENCE of two INTEGERs);
    # a JWT carries r and s as 32 bytes each (RFC 7518, section 3.4).
    hex=$(printf '%s' "$input" | openssl dgst -sha256 -sign keys/ec.pem -binary \
      | openssl asn1parse -inform DER | awk -F: '/INTEGER/ {print $NF}')
    rs=""
    for integer in $hex; do
      integer=${integer#00}
      rs+=$(printf '%064s' "$integer" | tr ' ' 0)
    done
    signature=$(printf '%s' "$rs" | sed 's/../\\x&/g' | xargs -0 printf '%b' | b64url) ;;
  HS256)
    signature=$(printf '%s' "$input" \
      | openssl dgst -sha256 -mac HMAC -macopt "key:$(cat keys/rsa.pub.pem)" -binary | b64url) ;;
  none)
    signature="" ;;
  *)
    echo "mint.sh: unknown algorithm $alg" >&2; exit 2 ;;
esac
printf '%s.%s\n' "$input" "$signature"
