//! GPU pipelines: `cargo xtask gpu-test` (driver setup, kernel property
//! tests, golden models on the GPU backend; a missing adapter is a failure)
//! and `cargo xtask gpu-bench` (uniml GPU vs CPU timings and a 4096³ f32 GEMM, as JSON lines).

use std::process::Command;

use crate::{root, run, step, target_dir};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Installs the Vulkan driver if needed, then runs every GPU test with
/// `UNIML_REQUIRE_GPU=1` (tests fail instead of skipping without an adapter).
/// `cargo xtask test` calls this.
pub fn gpu_test() -> Result<(), String> {
    step("GPU driver: Vulkan loader + Mesa lavapipe where there is no GPU");
    run(Command::new("bash").arg("scripts/setup-gpu.sh"))?;
    step("python reference environment and models");
    crate::python()?;
    crate::models()?;
    step("GPU kernels vs CPU kernels (proptest)");
    run(cargo().env("UNIML_REQUIRE_GPU", "1").args(["test", "-p", "uniml-gpu"]))?;
    step("golden models on the GPU backend vs onnxruntime");
    run(cargo().env("UNIML_REQUIRE_GPU", "1").args(["test", "-p", "uniml", "--features", "gpu", "--test", "gpu_golden", "--", "--nocapture", "--test-threads=1"]))?;
    step("golden models with the binding limit lowered to 4 MiB (MiniLM's 47 MB embedding table bound as 12 ranges)");
    run(cargo().env("UNIML_REQUIRE_GPU", "1").env("UNIML_GPU_MAX_BINDING", "4194304").args([
        "test", "-p", "uniml", "--features", "gpu", "--test", "gpu_golden", "--", "--nocapture", "--test-threads=1", "minilm", "efficientnet_lite0",
    ]))?;
    Ok(())
}

/// `uniml bench --backend gpu --json` (and cpu for reference) on the benchmark models.
pub fn gpu_bench(args: &[String]) -> Result<(), String> {
    let runs = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| "20".into());
    run(Command::new("bash").arg("scripts/setup-gpu.sh"))?;
    step("building uniml with the GPU backend (release)");
    run(cargo().args(["build", "--release", "-p", "uniml-cli", "--features", "gpu"]))?;
    let bin = target_dir().join("release/uniml");
    let cases: &[(&str, &[&str])] = &[
        ("models/efficientnet_lite0.onnx", &["--dim", "N=1"]),
        (".cache/models/mobilenetv2.onnx", &["--dim", "batch_size=1"]),
        (".cache/models/mobilenetv2.onnx", &["--dim", "batch_size=32"]),
        (".cache/models/paraphrase-MiniLM-L3-v2.onnx", &["--dim", "batch_size=1", "--dim", "sequence_length=128"]),
    ];
    for (model, dims) in cases {
        if !root().join(model).exists() {
            eprintln!("skipping {model}: not found (run `cargo xtask models`)");
            continue;
        }
        for (backend, precision) in [("gpu", "f32"), ("gpu", "f16"), ("cpu", "f32")] {
            step(&format!("{model} {} on {backend} ({precision} storage)", dims.join(" ")));
            run(Command::new(&bin).args(["bench", model, "--backend", backend, "--gpu-precision", precision, "--json", "--runs", &runs]).args(*dims))?;
        }
    }
    step("f32 GEMM 4096³ × 8 chained (weights resident; transfers included)");
    run(cargo().args(["run", "--release", "-p", "uniml-gpu", "--example", "gemm_bench", "--", "4096", "8", &runs]))?;
    Ok(())
}
