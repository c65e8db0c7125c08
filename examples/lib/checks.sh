# Helpers for the check.sh scripts: one PASS/FAIL line per case.
# Source it; then call `expect`, and `finish` at the end.

BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
failures=0
# The body of the last response, for checks on what the backend received.
body_file="$(mktemp)"
# ... and its headers.
header_file="$(mktemp)"
trap 'rm -f "$body_file" "$header_file"' EXIT

# expect NAME STATUS [BODY_PATTERN] -- CURL_ARGS...
# Sends the request; passes when the status matches and, if given,
# the body contains BODY_PATTERN (a fixed string; '' for any body).
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

# expect_absent NAME TEXT: the body of the last response must not contain TEXT.
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
