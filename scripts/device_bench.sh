#!/usr/bin/env bash
# Benchmarks on the lent GPU machine (see docs/benchmarks.md and docs/gpu.md).
#
# That machine has no Rust toolchain and no registry access, so the binaries are
# built here and travel in `.devbin/` (git-ignored; `scripts/device_bench.sh prep`
# fills it), the generated models are made there with its own python3 (onnx,
# numpy, onnxruntime and PyTorch are in its image), and what comes back is the
# report under $OUT.
#
#   bash scripts/device_bench.sh prep   # here: release uniml + xtask into .devbin/
#   bash scripts/device_bench.sh cpu    # there: CPU bench pinned to 2 cores vs onnxruntime
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-cpu}"
case "$mode" in
prep)
    : "${CARGO_TARGET_DIR:=$HOME/.cache/uniml-target}"
    cargo build --release -q --bin uniml
    cargo build -q -p xtask
    mkdir -p .devbin
    cp "$CARGO_TARGET_DIR/release/uniml" "$CARGO_TARGET_DIR/debug/xtask" .devbin/
    ls -la .devbin
    ;;
cpu)
    python3 scripts/gen_models.py all --out .cache/models
    export UNIML_PYTHON="$(command -v python3)" CARGO_MANIFEST_DIR="$PWD/xtask"
    label="$(lscpu | sed -n 's/^Model name: *//p' | head -1) (GPU host, $(nproc) cores)"
    .devbin/xtask bench --no-fetch --uniml .devbin/uniml --cpus 0,1 --section cpu-gpuhost-2cores --label "$label" --runs "${RUNS:-30}"
    mkdir -p "${OUT:-/tmp/out}"
    cp docs/benchmarks.md docs/bench-cpu-gpuhost-2cores.svg "${OUT:-/tmp/out}/"
    ;;
*)
    echo "usage: $0 prep|cpu" >&2
    exit 2
    ;;
esac
