#!/usr/bin/env bash
# Everything the tests need, on a fresh machine: the system packages
# (tools/ensure_system_packages.sh --tests, with apt-get as root) and the
# course's environment (tools/ensure_venv.sh) at the same time, since apt-get
# waits mostly on downloads and dpkg and uv on its own downloads and bytecode
# compiling; then the TA account's install (tools/ensure_ta_venv.sh), which
# needs the distribution's python3-venv from the first. What apt-get printed is
# shown once it is done; either failing stops here with its message.
set -euo pipefail
cd "$(dirname "$0")/.."

packages_log=$(mktemp)
trap 'rm -f "$packages_log"' EXIT
tools/ensure_system_packages.sh --tests >"$packages_log" 2>&1 &
packages=$!
venv_status=0
tools/ensure_venv.sh || venv_status=$?
packages_status=0
wait "$packages" || packages_status=$?
cat "$packages_log"
if [ "$packages_status" -ne 0 ]; then
  echo "error: installing the system packages failed (tools/ensure_system_packages.sh --tests, above)" >&2
  exit "$packages_status"
fi
[ "$venv_status" -eq 0 ] || exit "$venv_status"
tools/ensure_ta_venv.sh
