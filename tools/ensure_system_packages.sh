#!/usr/bin/env bash
# System packages the course needs besides Python: bubblewrap (bwrap), which
# sandboxes student code while grading. Installed with apt-get when missing and
# this runs as root on Debian/Ubuntu; otherwise it says what to install.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing bubblewrap (the grading sandbox) with apt-get ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
else
  echo "warning: bubblewrap (bwrap) is not installed; grading will refuse to run student code" >&2
  echo "         unsandboxed. Install it (Debian/Ubuntu: sudo apt-get install bubblewrap)." >&2
fi
