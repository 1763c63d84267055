#!/usr/bin/env bash
# Runs the ONNX backend node tests whose names match REGEX through uniml and
# prints one line per failing test plus a summary. Developer shortcut; the full
# pipeline with report and baseline is `cargo xtask conformance`.
# usage: scripts/conformance.sh [REGEX] [-v]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="$(bash scripts/setup-python.sh)"
[ -d .cache/onnx-node ] || "$py" scripts/gen_node_tests.py .cache/onnx-node
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/uniml-target}"
cargo build -q -p uniml-conformance
filter="${1:-.}"
shift || true
"$CARGO_TARGET_DIR/debug/uniml-conformance" .cache/onnx-node --filter "$filter" -v "$@"
