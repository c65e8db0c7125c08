#!/usr/bin/env bash
# Starts Envoy's rate limit service (github.com/envoyproxy/ratelimit) in the
# foreground, for this step: gRPC on 127.0.0.1:8081 (what Envoy calls),
# health check on http://127.0.0.1:8082/healthcheck, and the loaded limits on
# http://127.0.0.1:6070/rlconfig. It reads its limits from
# ratelimit/config/*.yaml in this folder and counts in Redis on
# 127.0.0.1:6379, which must be running first. Ctrl-C stops it.
#
# The service is the `service_cmd` that `go install` builds (see README.md);
# set RATELIMIT=/path/to/service_cmd if it is not on your PATH. Every
# setting below can be overridden from the environment.
set -euo pipefail
cd "$(dirname "$0")"

# Where the limits are: $RUNTIME_ROOT/$RUNTIME_SUBDIRECTORY/config/*.yaml.
export RUNTIME_ROOT="${RUNTIME_ROOT:-$PWD}"
export RUNTIME_SUBDIRECTORY="${RUNTIME_SUBDIRECTORY:-ratelimit}"
# Watch that folder itself for changed limits (true would watch
# RUNTIME_ROOT for a symlink swap, the service's production layout).
export RUNTIME_WATCH_ROOT="${RUNTIME_WATCH_ROOT:-false}"
export REDIS_SOCKET_TYPE=tcp
export REDIS_URL="${REDIS_URL:-127.0.0.1:6379}"
# Loopback only; the service's defaults listen on every interface.
export GRPC_HOST=127.0.0.1 GRPC_PORT="${GRPC_PORT:-8081}"
export HOST=127.0.0.1 PORT="${PORT:-8082}"
export DEBUG_HOST=127.0.0.1 DEBUG_PORT="${DEBUG_PORT:-6070}"
# No statsd daemon here: keep the service's statistics off (with
# USE_STATSD=false alone it logs them every 10 s instead).
export USE_STATSD=false DISABLE_STATS=true
export LOG_LEVEL="${LOG_LEVEL:-warn}"

exec "${RATELIMIT:-service_cmd}"
