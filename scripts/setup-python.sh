#!/usr/bin/env bash
# Create the project's Python environment (.venv at the repo root) for the
# onnxruntime oracle and the model/input scripts in scripts/.
#
#   bash scripts/setup-python.sh        # from any directory
#
# Idempotent: when .venv already imports the pinned versions it does nothing
# but print the interpreter path (on stdout; progress goes to stderr).
# Needs python3 (3.11 is what the project uses) and access to PyPI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

ORT=1.32.0
ONNX=1.23.2
NUMPY=2.4.6
PILLOW=13.0.0
WASMTIME=50.0.1

log() { echo "setup-python: $*" >&2; }

CHECK="import onnxruntime, onnx, numpy, PIL, wasmtime, sys; from importlib.metadata import version; sys.exit(0 if (onnxruntime.__version__, onnx.__version__, numpy.__version__, PIL.__version__, version('wasmtime')) == ('$ORT', '$ONNX', '$NUMPY', '$PILLOW', '$WASMTIME') else 1)"

if [ -x "$PY" ] && ! "$PY" -c 'pass' 2>/dev/null; then
    log "$VENV is broken (interpreter does not start); recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$PY" ]; then
    log "creating $VENV with $(command -v python3) ($(python3 --version 2>&1))"
    python3 -m venv "$VENV"
fi

if "$PY" -c "$CHECK" 2>/dev/null; then
    log "pinned packages already present"
else
    log "installing onnxruntime==$ORT onnx==$ONNX numpy==$NUMPY pillow==$PILLOW wasmtime==$WASMTIME"
    "$PY" -m pip install --disable-pip-version-check -q \
        "onnxruntime==$ORT" "onnx==$ONNX" "numpy==$NUMPY" "pillow==$PILLOW" "wasmtime==$WASMTIME" >&2
    "$PY" -c "$CHECK" || { log "version check still fails after install"; exit 1; }
    log "done"
fi

echo "$PY"
