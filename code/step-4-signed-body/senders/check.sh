#!/usr/bin/env bash
# Checks step 4 configured for real senders (senders/envoy.yaml) through a
# running Envoy: GitHub's, Slack's and the Standard Webhooks libraries' published
# examples, and requests signed here with openssl as each sender signs them. One PASS
# or FAIL line per case, and a non-zero exit status if any fails.
# Usage: bash senders/check.sh   (or BASE_URL=http://127.0.0.1:8080 bash senders/check.sh)
set -u

# ---- helpers: one PASS/FAIL line per case ----------------------------------
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
failures=0
work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# expect NAME STATUS BODY_TEXT -- CURL_ARGS...: passes when the status
# matches and the body contains BODY_TEXT ('' accepts any body).
expect() {
  local name="$1" want_status="$2" want_body="$3"
  shift 3
  [ "$1" = "--" ] && shift
  local got
  got="$(curl -s -o "$work_dir/answer" -w '%{http_code}' "$@")" || got="curl-error-$?"
  if [ "$got" != "$want_status" ]; then
    printf 'FAIL  %-62s expected %s, got %s\n' "$name" "$want_status" "$got"
    failures=$((failures + 1))
  elif [ -n "$want_body" ] && ! grep -qF -- "$want_body" "$work_dir/answer"; then
    printf 'FAIL  %-62s expected a body with %s, got %s\n' "$name" "$want_body" "$(head -c 300 "$work_dir/answer")"
    failures=$((failures + 1))
  else
    printf 'PASS  %-62s expected %s, got %s\n' "$name" "$want_status" "$got"
  fi
}

if ! command -v openssl > /dev/null; then
  echo "senders/check.sh signs its requests with openssl: install it (Debian/Ubuntu: apt install openssl)"
  exit 1
fi

# hex_hmac SECRET: HMAC-SHA256 of standard input under SECRET (its bytes as
# written), in hex.
hex_hmac() {
  openssl dgst -sha256 -hmac "$1" | sed 's/^.*= //'
}

# base64_hmac WHSEC_SECRET: the same under a Standard Webhooks secret (the
# key is the base64 after `whsec_`), in base64.
base64_hmac() {
  local key_hex
  key_hex="$(printf '%s' "${1#whsec_}" | openssl base64 -d -A | od -An -tx1 | tr -d ' \n')"
  openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | openssl base64 -A
}

now="$(date +%s)"
old=$((now - 600))
event='{"event":"push","ref":"refs/heads/main"}'
printf '%s' "$event" > "$work_dir/event.json"
body=(--data-binary "@$work_dir/event.json")
chunked=(-H 'Transfer-Encoding: chunked')
http2=(--http2-prior-knowledge)

# ---- GitHub: X-Hub-Signature-256: sha256=<hex> over the body alone ----------
# GitHub's documented example: secret "It's a Secret to Everybody" (the one
# in senders/envoy.yaml), body "Hello, World!".
URL="$BASE_URL/webhooks/github"
example='sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
printf 'Hello, World!' > "$work_dir/hello"
expect "github: GitHub's documented example -> 200" 200 '"body":"Hello, World!"' -- \
  -H "X-Hub-Signature-256: $example" --data-binary "@$work_dir/hello" "$URL"
expect "github: ... one digit changed -> 401" 401 '"invalid signature"' -- \
  -H "X-Hub-Signature-256: ${example%7}8" --data-binary "@$work_dir/hello" "$URL"
expect "github: ... body changed -> 401" 401 '"invalid signature"' -- \
  -H "X-Hub-Signature-256: $example" --data-binary 'Hello, World?' "$URL"
expect "github: ... sent chunked -> 200" 200 '"body":"Hello, World!"' -- "${chunked[@]}" \
  -H "X-Hub-Signature-256: $example" --data-binary "@$work_dir/hello" "$URL"
expect "github: ... over HTTP/2 -> 200" 200 '"body":"Hello, World!"' -- "${http2[@]}" \
  -H "X-Hub-Signature-256: $example" --data-binary "@$work_dir/hello" "$URL"
expect "github: only the old SHA-1 X-Hub-Signature -> 401" 401 '"missing signature"' -- \
  -H "X-Hub-Signature: sha1=$(openssl dgst -sha1 -hmac "It's a Secret to Everybody" < "$work_dir/hello" | sed 's/^.*= //')" \
  --data-binary "@$work_dir/hello" "$URL"
expect "github: signature sent twice -> 400" 400 '"signature sent more than once"' -- \
  -H "X-Hub-Signature-256: $example" -H "X-Hub-Signature-256: sha256=$(printf '0%.0s' {1..64})" \
  --data-binary "@$work_dir/hello" "$URL"

# ---- Stripe: Stripe-Signature: t=<unix>,v1=<hex>... over "<t>.<body>" -------
URL="$BASE_URL/webhooks/stripe"
STRIPE_SECRET='whsec_7Hq2Lm9Xc4Rt8Vb1Nz6Kp3Wd5Gf0Sj2A'
STRIPE_PREVIOUS='whsec_0Pn4Ys7Eu2Ia9Oh6Tk3Lb8Mc1Qv5Rw7D'
stripe_sig() { { printf '%s.' "$1"; printf '%s' "$event"; } | hex_hmac "$2"; }
current="$(stripe_sig "$now" "$STRIPE_SECRET")"
expect "stripe: signed now -> 200" 200 '"path":"/webhooks/stripe"' -- \
  -H "Stripe-Signature: t=$now,v1=$current" "${body[@]}" "$URL"
expect "stripe: ... with v1 for both secrets (a roll) -> 200" 200 '"path":"/webhooks/stripe"' -- \
  -H "Stripe-Signature: t=$now,v1=$(stripe_sig "$now" "$STRIPE_PREVIOUS"),v1=$current" "${body[@]}" "$URL"
expect "stripe: ... and a v0 test-mode signature -> 200" 200 '"path":"/webhooks/stripe"' -- \
  -H "Stripe-Signature: t=$now,v1=$current,v0=$(printf '0%.0s' {1..64})" "${body[@]}" "$URL"
expect "stripe: ... sent chunked -> 200" 200 '"path":"/webhooks/stripe"' -- "${chunked[@]}" \
  -H "Stripe-Signature: t=$now,v1=$current" "${body[@]}" "$URL"
expect "stripe: ... over HTTP/2 -> 200" 200 '"path":"/webhooks/stripe"' -- "${http2[@]}" \
  -H "Stripe-Signature: t=$now,v1=$current" "${body[@]}" "$URL"
expect "stripe: signed with an unknown secret -> 401" 401 '"invalid signature"' -- \
  -H "Stripe-Signature: t=$now,v1=$(stripe_sig "$now" 'whsec_not-the-endpoint-secret-0000')" "${body[@]}" "$URL"
expect "stripe: t 10 minutes old, signed -> 400" 400 '"stale timestamp"' -- \
  -H "Stripe-Signature: t=$old,v1=$(stripe_sig "$old" "$STRIPE_SECRET")" "${body[@]}" "$URL"
expect "stripe: ... replayed with a fresh t -> 401" 401 '"invalid signature"' -- \
  -H "Stripe-Signature: t=$now,v1=$(stripe_sig "$old" "$STRIPE_SECRET")" "${body[@]}" "$URL"
expect "stripe: two t in one header -> 400" 400 '"timestamp sent more than once"' -- \
  -H "Stripe-Signature: t=$old,t=$now,v1=$current" "${body[@]}" "$URL"
expect "stripe: only a v0 signature -> 401" 401 '"malformed signature"' -- \
  -H "Stripe-Signature: t=$now,v0=$current" "${body[@]}" "$URL"

# ---- Slack: X-Slack-Signature: v0=<hex> over "v0:<timestamp>:<body>" --------
# Slack's worked example: signing secret 8f742231b10e8888abcd99yyyzzz85a5 (the
# one in senders/envoy.yaml), timestamp 1531420618: five minutes at most, so
# sent today it is a replay.
URL="$BASE_URL/webhooks/slack"
SLACK_SECRET='8f742231b10e8888abcd99yyyzzz85a5'
slack_body='token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c'
printf '%s' "$slack_body" > "$work_dir/slack"
expect "slack: Slack's worked example, sent today -> 400" 400 '"stale timestamp"' -- \
  -H 'X-Slack-Signature: v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503' \
  -H 'X-Slack-Request-Timestamp: 1531420618' --data-binary "@$work_dir/slack" "$URL"
slack_now="v0=$({ printf 'v0:%s:' "$now"; cat "$work_dir/slack"; } | hex_hmac "$SLACK_SECRET")"
expect "slack: the same body signed now -> 200" 200 '"path":"/webhooks/slack"' -- \
  -H "X-Slack-Signature: $slack_now" -H "X-Slack-Request-Timestamp: $now" --data-binary "@$work_dir/slack" "$URL"
expect "slack: ... sent chunked -> 200" 200 '"path":"/webhooks/slack"' -- "${chunked[@]}" \
  -H "X-Slack-Signature: $slack_now" -H "X-Slack-Request-Timestamp: $now" --data-binary "@$work_dir/slack" "$URL"
expect "slack: ... over HTTP/2 -> 200" 200 '"path":"/webhooks/slack"' -- "${http2[@]}" \
  -H "X-Slack-Signature: $slack_now" -H "X-Slack-Request-Timestamp: $now" --data-binary "@$work_dir/slack" "$URL"
expect "slack: ... body changed -> 401" 401 '"invalid signature"' -- \
  -H "X-Slack-Signature: $slack_now" -H "X-Slack-Request-Timestamp: $now" --data-binary "text=rm" "$URL"
expect "slack: ... no timestamp -> 400" 400 '"missing timestamp"' -- \
  -H "X-Slack-Signature: $slack_now" --data-binary "@$work_dir/slack" "$URL"

# ---- Standard Webhooks: webhook-signature: v1,<base64> over
# "<webhook-id>.<webhook-timestamp>.<body>" ------------------------------------
# The example of the Standard Webhooks reference libraries' tests (secret
# whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, the one in senders/envoy.yaml) carries
# a timestamp from 2021: sent today, a replay.
URL="$BASE_URL/webhooks/standard"
SW_SECRET='whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
expect "standard-webhooks: the libraries' example, sent today -> 400" 400 '"stale timestamp"' -- \
  -H 'webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek' -H 'webhook-timestamp: 1614265330' \
  -H 'webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' --data-binary '{"test": 2432232314}' "$URL"
id='msg_2KWPBgLlAfxdpx2AI54pPJ85f4W'
sw_sig="v1,$({ printf '%s.%s.' "$id" "$now"; printf '%s' "$event"; } | base64_hmac "$SW_SECRET")"
sw=(-H "webhook-id: $id" -H "webhook-timestamp: $now")
expect "standard-webhooks: signed now -> 200" 200 '"path":"/webhooks/standard"' -- \
  "${sw[@]}" -H "webhook-signature: $sw_sig" "${body[@]}" "$URL"
expect "standard-webhooks: ... after an unknown v1 and a v1a -> 200" 200 '"path":"/webhooks/standard"' -- \
  "${sw[@]}" -H "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1a,AAAA $sw_sig" "${body[@]}" "$URL"
expect "standard-webhooks: ... sent chunked -> 200" 200 '"path":"/webhooks/standard"' -- "${chunked[@]}" \
  "${sw[@]}" -H "webhook-signature: $sw_sig" "${body[@]}" "$URL"
expect "standard-webhooks: ... over HTTP/2 -> 200" 200 '"path":"/webhooks/standard"' -- "${http2[@]}" \
  "${sw[@]}" -H "webhook-signature: $sw_sig" "${body[@]}" "$URL"
expect "standard-webhooks: ... another webhook-id -> 401" 401 '"invalid signature"' -- \
  -H "webhook-id: msg_other" -H "webhook-timestamp: $now" -H "webhook-signature: $sw_sig" "${body[@]}" "$URL"
expect "standard-webhooks: only a v1a signature -> 401" 401 '"malformed signature"' -- \
  "${sw[@]}" -H "webhook-signature: v1a,${sw_sig#v1,}" "${body[@]}" "$URL"
expect "standard-webhooks: a webhook-id with a dot -> 400" 400 '"malformed webhook-id"' -- \
  -H "webhook-id: msg.1" -H "webhook-timestamp: $now" -H "webhook-signature: $sw_sig" "${body[@]}" "$URL"

# ---- any other path: no instance of the plugin, so no backend either ---------
expect "a path no sender is configured for -> 404" 404 '' -- "${body[@]}" "$BASE_URL/webhooks/gitlab"

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
