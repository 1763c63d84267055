#!/usr/bin/env bash
# GPU benchmark on the lent machine in two calls on the same warm machine (the whole table incl.
# MiniLM, whose 69 MB file is over the 64 MiB that one call carries). Extends
# `scripts/device_bench.sh gpu` with f16-storage rows and PyTorch eager in f16 (`--half`).
#
# Here (git-ignored folders, listed in .git/info/exclude):
#   .devbin8a/: uniml-gpu.xz and gemm_bench.xz (stripped release builds, xz-compressed),
#               this script, minilm.part1 (the first 31,000,000 bytes of the MiniLM ONNX file)
#   .devbin2/:  this script, minilm.part2 (the rest)
# Call 1: `RUNS=30 bash .devbin8a/device_bench_split.sh a`, carry [.gl, .devbin8a]
#   f32 and f16-storage rows for efficientnet_lite0 / MobileNetV2 at batch 1 and 32, GEMM,
#   PyTorch eager f32 and f16; stashes the binaries and part 1 in /tmp/u8.
# Call 2, within the machine's 30 s warm window: `RUNS=30 bash .devbin2/device_bench_split.sh b`,
#   carry [.devbin2] only: MiniLM-L3 1x128 (halves joined, sha256 printed), uniml f32/f16, PyTorch f32/f16.
set -uo pipefail
cd "$(dirname "$0")/.."
phase="${1:-a}"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
out="${OUT:-/tmp/out}"; mkdir -p "$out" /tmp/u8
runs="${RUNS:-30}"
if [ "$phase" = a ]; then
    for b in uniml-gpu gemm_bench; do xz -dc ".devbin8a/$b.xz" > /tmp/u8/$b; chmod +x /tmp/u8/$b; done
    cp .devbin8a/minilm.part1 /tmp/u8/ && echo "stashed part1 $(stat -c %s /tmp/u8/minilm.part1)"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
    python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" | tee -a "$out/gpu.txt"
    python3 scripts/gen_models.py mobilenetv2 --out .cache/models >/dev/null
    python3 scripts/gen_gemm.py 4096 .cache/models/gemm4096.onnx
    {
        for prec in f32 f16; do
            for batch in 1 32; do
                /tmp/u8/uniml-gpu bench models/efficientnet_lite0.onnx --backend gpu --gpu-precision $prec --json --runs "$runs" --dim N=$batch
                /tmp/u8/uniml-gpu bench .cache/models/mobilenetv2.onnx --backend gpu --gpu-precision $prec --json --runs "$runs" --dim batch_size=$batch
            done
        done
        /tmp/u8/uniml-gpu bench .cache/models/gemm4096.onnx --backend gpu --json --runs 20
        /tmp/u8/gemm_bench 4096 9 10
        python3 scripts/bench_torch.py --runs "$runs" --only efficientnet_lite0,mobilenetv2,gemm
        python3 scripts/bench_torch.py --runs "$runs" --only efficientnet_lite0,mobilenetv2 --half
    } 2>&1 | tee "$out/gpu_bench_a.jsonl"
else
    m=.cache/models/paraphrase-MiniLM-L3-v2.onnx
    mkdir -p .cache/models
    cat /tmp/u8/minilm.part1 .devbin2/minilm.part2 > $m
    sha256sum $m | tee "$out/minilm.sha"
    {
        for prec in f32 f16; do
            /tmp/u8/uniml-gpu bench $m --backend gpu --gpu-precision $prec --json --runs "$runs" --dim batch_size=1 --dim sequence_length=128
        done
        python3 scripts/bench_torch.py --runs "$runs" --only paraphrase-MiniLM-L3-v2 --batches 1
        python3 scripts/bench_torch.py --runs "$runs" --only paraphrase-MiniLM-L3-v2 --batches 1 --half
    } 2>&1 | tee "$out/gpu_bench_b.jsonl"
    /tmp/u8/uniml-gpu inspect $m --backend gpu --dim batch_size=1 --dim sequence_length=128 > "$out/placement_minilm.txt" 2>&1 || true
fi
