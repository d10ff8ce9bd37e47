#!/usr/bin/env bash
# System packages the course needs besides Python, installed with apt-get when
# missing and this runs as root on Debian/Ubuntu; otherwise it says what to install.
#   bubblewrap  the sandbox for student code while grading (always needed)
#   chromium    the browser of the browser tests (with --tests: make test, make test-fast)
#   graphviz    dot, which draws the manual's diagrams (with --docs, and with --tests: the suite builds the manual)
#   postgresql  a server for the shared-gradebook test (only under CI=true)
#   slurmctld, slurmd, slurm-client, munge
#               a one-node Slurm cluster for the test of deploy/grade.slurm (only under CI=true)
#   python3-venv the distribution's own Python's venv: the tests' TA account's install (with --tests, and under CI=true)
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if { [ "${1:-}" = "--tests" ] || [ "${1:-}" = "--docs" ]; } && ! command -v dot >/dev/null 2>&1; then
  missing+=(graphviz)
fi
if [ "${CI:-}" = "true" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ "${CI:-}" = "true" ]; then
  for program in slurmctld slurmd sbatch munged; do
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$program" >/dev/null 2>&1; then
      missing+=(slurmctld slurmd slurm-client munge)
      break
    fi
  done
fi
if { [ "${CI:-}" = "true" ] || [ "${1:-}" = "--tests" ]; } && [ -x /usr/bin/python3 ] \
    && ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)  # the tests' TA account has the course installed with the distribution's Python
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${missing[*]} with apt-get ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "warning: missing system packages: ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})." >&2
  echo "         Without bubblewrap, grading refuses to run student code unsandboxed." >&2
fi
