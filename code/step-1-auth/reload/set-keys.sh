#!/usr/bin/env bash
# Replaces the plugin's key list in reload/auth-filter.yaml; a running Envoy
# started with reload/envoy.yaml applies it within a second, no restart.
# Usage: bash reload/set-keys.sh KEY [KEY...]
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: bash reload/set-keys.sh KEY [KEY...]" >&2
  exit 2
fi
here="$(dirname "$0")"
keys=""
for key in "$@"; do
  # Only characters that need no escaping in JSON or in YAML's quotes.
  if ! [[ "$key" =~ ^[A-Za-z0-9._~-]+$ ]]; then
    echo "set-keys.sh: a key may only contain letters, digits and . _ ~ -" >&2
    exit 2
  fi
  keys="${keys:+$keys, }\"$key\""
done
# ANCHOR: rename
# Write the new file beside the old one, then rename it over: a rename is
# atomic, so Envoy reads either the old file or the new one, never half.
sed "s/\"valid_keys\": \[[^]]*\]/\"valid_keys\": [$keys]/" \
  "$here/auth-filter.yaml" > "$here/auth-filter.yaml.new"
mv "$here/auth-filter.yaml.new" "$here/auth-filter.yaml"
# ANCHOR_END: rename
echo "valid_keys: [$keys]"
