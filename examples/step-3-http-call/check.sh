#!/usr/bin/env bash
# Checks the step-3 plugin (keys validated by the auth service) through a
# running proxy: every check of step 1 must still hold, with the auth service
# (keys from examples/step-3-http-call/keys.txt) deciding.
# Usage: BASE_URL=http://127.0.0.1:8080 examples/step-3-http-call/check.sh
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../step-1-auth/check.sh"

auth_checks
finish
