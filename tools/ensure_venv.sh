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

echo "Installing the course environment into $venv from requirements.txt (about 20 s with uv, a minute with pip) ..."
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# --no-deps: requirements.txt is the whole environment (make lock), a few packages deliberately left out.
# uv, pinned in the lock, installs it in about 17 s where pip takes about a minute; bytecode is
# compiled at install time, since a sandboxed grading kernel cannot write __pycache__ into .venv.
# uv does not read pip's configuration: an index set there (or in PIP_INDEX_URL) is handed on, and
# where uv cannot install (no uv for this platform, an index it cannot reach), pip does it all.
install_with_uv() {
  local pin index
  pin=$(grep -E '^uv==' requirements.txt) || return 1
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$pin" || return 1
  index=${PIP_INDEX_URL:-$("$venv/bin/python" -m pip config get global.index-url 2>/dev/null || true)}
  if [ -n "$index" ]; then export UV_DEFAULT_INDEX="$index"; fi
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --compile-bytecode --no-deps -r requirements.txt -e .
}
if ! install_with_uv; then
  echo "uv could not install the environment; installing with pip (about a minute) ..." >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.txt
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
fi
# What the lock no longer lists goes (an environment made before it left a package out keeps it otherwise).
pins() { grep -v -E '^(#|-e|$)' | cut -d= -f1 | tr 'A-Z_.' 'a-z--' | sort -u; }
extra=$(comm -23 <("$venv/bin/python" -m pip freeze --exclude-editable | pins) <(pins < requirements.txt) | grep -v -x -E 'pip|setuptools|wheel' || true)
[ -z "$extra" ] || "$venv/bin/python" -m pip uninstall --quiet --yes $extra
"$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null || {
  "$venv/bin/python" -m pip check --disable-pip-version-check >&2
  echo "error: requirements.txt misses a package the others need; run make lock" >&2; exit 1; }
# The course's Jupyter server extensions (formgrader's Content-Security-Policy and its one order), on for every server of the environment.
mkdir -p "$venv/etc/jupyter/jupyter_server_config.d"
cp jupyter-config/*.json "$venv/etc/jupyter/jupyter_server_config.d/"
echo "$want" > "$stamp"
echo "Environment ready: $venv"
