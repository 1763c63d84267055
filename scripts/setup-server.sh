#!/usr/bin/env bash
# Tools for testing and load-testing `uniml serve`, on top of the project's
# Python environment (scripts/setup-python.sh): tritonclient[http], pinned in
# scripts/requirements-server.txt, installed into .venv.
#
#   bash scripts/setup-server.sh        # prints the venv's python on stdout
#
# Idempotent: does nothing but print the interpreter path when all is present.
set -euo pipefail

cd "$(dirname "$0")/.."
log() { echo "setup-server: $*" >&2; }

PY=$(bash scripts/setup-python.sh)
TRITON=$(sed -n 's/^tritonclient\[http\]==\(.*\)$/\1/p' scripts/requirements-server.txt)
CHECK="import sys, tritonclient.http; from importlib.metadata import version; sys.exit(0 if version('tritonclient') == '$TRITON' else 1)"
if "$PY" -c "$CHECK" 2>/dev/null; then
    log "tritonclient $TRITON already present"
else
    log "installing scripts/requirements-server.txt (tritonclient[http]==$TRITON)"
    "$PY" -m pip install --disable-pip-version-check -q -r scripts/requirements-server.txt >&2
    "$PY" -c "$CHECK" || { log "tritonclient check still fails after install"; exit 1; }
fi

# wrk (Debian) drives the load test (cargo xtask serve-bench).
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (apt)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get install -y -q wrk >&2 || { $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q wrk >&2; }
fi

echo "$PY"
