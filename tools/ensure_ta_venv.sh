#!/usr/bin/env bash
# A second install of the course for an ordinary account (a TA's), with the
# distribution's own Python: root's .venv links to pyenv's Python under /root,
# which no other account may read, so a TA account needs an environment of its
# own (docs/tas/formgrader.md). The tests start formgrader as such an account
# from this one. Made only when running as root with /usr/bin/python3; re-made
# when the requirements change (tools/ensure_venv.sh's stamp). Its path is
# COURSEKIT_TA_VENV, /opt/coursekit-ta-venv by default; readable by everyone.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] && [ -x /usr/bin/python3 ] || exit 0
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || exit 0  # no python3-venv: the test says it is missing
venv=${COURSEKIT_TA_VENV:-/opt/coursekit-ta-venv}
PYTHON=/usr/bin/python3 VENV="$venv" tools/ensure_venv.sh
chmod -R a+rX "$venv"
