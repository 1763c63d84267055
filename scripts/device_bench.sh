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
#   bash scripts/device_bench.sh gpu    # there: uniml (wgpu/Vulkan) vs PyTorch CUDA eager
#
# The GPU mode needs the Vulkan loader, which that image lacks: the caller
# downloads the loader packages into `.gl/` here (docs/gpu.md: libvulkan1 and the
# glvnd packages libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2) and carries them.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-cpu}"
case "$mode" in
prep)
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/uniml-target}"
    cargo build --release -q --bin uniml
    cargo build -q -p xtask
    mkdir -p .devbin
    cp "$CARGO_TARGET_DIR/release/uniml" "$CARGO_TARGET_DIR/debug/xtask" .devbin/
    cargo build --release -q -p uniml-cli --features gpu
    cp "$CARGO_TARGET_DIR/release/uniml" .devbin/uniml-gpu
    cargo build --release -q -p uniml-gpu --example gemm_bench
    cp "$CARGO_TARGET_DIR/release/examples/gemm_bench" .devbin/
    cargo build --release -q --bin uniml # leave the default (CPU) binary in place
    strip .devbin/uniml .devbin/uniml-gpu .devbin/xtask .devbin/gemm_bench # the carried tree is limited to 64 MiB
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
gpu)
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    out="${OUT:-/tmp/out}"
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
    python3 scripts/gen_models.py mobilenetv2 --out .cache/models
    python3 scripts/gen_gemm.py 4096 .cache/models/gemm4096.onnx
    runs="${RUNS:-50}"
    {
        for batch in 1 32; do
            .devbin/uniml-gpu bench models/efficientnet_lite0.onnx --backend gpu --json --runs "$runs" --dim N=$batch
            .devbin/uniml-gpu bench .cache/models/mobilenetv2.onnx --backend gpu --json --runs "$runs" --dim batch_size=$batch
        done
        .devbin/uniml-gpu bench .cache/models/gemm4096.onnx --backend gpu --json --runs 20
        # The kernel's own rate: a chain of 9 products vs a chain of 1 (same transfers).
        [ -x .devbin/gemm_bench ] && .devbin/gemm_bench 4096 9 10
        python3 scripts/bench_torch.py --runs "$runs"
    } 2>&1 | tee "$out/gpu_bench.jsonl"
    .devbin/uniml-gpu inspect models/efficientnet_lite0.onnx --backend gpu > "$out/placement.txt" 2>&1 || true
    ;;
*)
    echo "usage: $0 prep|cpu|gpu" >&2
    exit 2
    ;;
esac
