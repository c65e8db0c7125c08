#!/usr/bin/env bash
# Serves the built module on 127.0.0.1:8000 and starts Envoy with
# remote/envoy.yaml, its SHA-256 filled in. Run from the step folder after
# `cargo build --target wasm32-wasip1 --release`; Ctrl-C stops both.
set -euo pipefail
module=target/wasm32-wasip1/release/step_1_auth.wasm
[ -f "$module" ] || { echo "build the module first: $module is missing" >&2; exit 1; }
sha256=$(sha256sum "$module" | cut -c1-64)
config=$(mktemp --suffix .yaml)
python3 -m http.server 8000 --bind 127.0.0.1 --directory "$(dirname "$module")" \
  >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -f "$config"' EXIT
trap 'exit 130' INT TERM
sed "s/SHA256_OF_THE_MODULE/$sha256/" remote/envoy.yaml > "$config"
echo "serving $module (sha256 $sha256) on http://127.0.0.1:8000/"
envoy -c "$config" "$@"
