#!/usr/bin/env bash
# Create .venv from requirements.txt when it is missing, and re-install when
# requirements.txt or pyproject.toml has changed since the last install
# (compared by sha256, since git checkouts do not keep file times). The course
# package itself (coursekit) is installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${VENV:-.venv}
python=${PYTHON:-python3}
stamp="$venv/.requirements.sha256"
want=$(cat requirements.txt pyproject.toml jupyter-config/*.json | sha256sum | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
  echo "error: $python not found; install Python 3.11 (or set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:3] < (3, 11, 2))'; then
  echo "error: $python is $("$python" -V 2>&1); the pinned requirements need Python 3.11.2 or newer" \
       "(Debian 12's own python3 is 3.11.2; set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

echo "Installing the course environment into $venv from requirements.txt (a minute or two on a fresh machine) ..."
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
# The course's Jupyter server extensions (formgrader's Content-Security-Policy and its one order), on for every server of the environment.
mkdir -p "$venv/etc/jupyter/jupyter_server_config.d"
cp jupyter-config/*.json "$venv/etc/jupyter/jupyter_server_config.d/"
echo "$want" > "$stamp"
echo "Environment ready: $venv"
