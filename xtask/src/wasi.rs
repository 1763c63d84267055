//! The engine as WebAssembly components (wasm32-wasip2), tested under hosts we did not write.
//!
//! * `cargo xtask wasi`: builds `uniml-wasi` (WIT world `uniml:inference/inference`, `wit/`) and
//!   `uniml-wasi-http` (a `wasi:http/incoming-handler` with efficientnet_lite0 built in) for
//!   wasm32-wasip2, and `uniml-wasi-http` again for wasm32-unknown-unknown (the engine module of
//!   the Cloudflare Worker, `edge/cloudflare`); prints their sizes (raw and gzip).
//! * `cargo xtask wasi-test`: the pinned Python venv and `npm ci` of `tests/wasi-js` and
//!   `edge/cloudflare` (skipped when already in place), the build, then
//!   - `scripts/test_wasi_component.py`: the component under Wasmtime's Python component API;
//!   - `tests/wasi-js/component.test.js`: `jco transpile` + Node;
//!   - `tests/wasi-js/http.test.js`: the handler under `jco serve`;
//!   - `edge/cloudflare/test/`: the Worker under `workerd`.
//!
//! Each test compares with onnxruntime computed at test time (or checks the top-1 class) and
//! checks the typed errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{python, root, run, rustup_targets, step, target_dir};

const TARGET: &str = "wasm32-wasip2";
/// Cargo profile of the components: release without debug info (root Cargo.toml).
const PROFILE: &str = "component";

pub struct Components {
    pub inference: PathBuf,
    pub http: PathBuf,
    /// wasm32-unknown-unknown core module for the Cloudflare Worker.
    pub worker: PathBuf,
}

fn gzip_len(path: &Path) -> Option<u64> {
    let out = Command::new("gzip").args(["-9", "-c"]).arg(path).output().ok()?;
    out.status.success().then_some(out.stdout.len() as u64)
}

fn mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / (1 << 20) as f64)
}

/// Builds both components and prints their sizes.
pub fn build() -> Result<Components, String> {
    rustup_targets(&[TARGET, "wasm32-unknown-unknown"])?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    step("building the uniml components for wasm32-wasip2 (rustc emits components directly)");
    let t0 = Instant::now();
    run(Command::new(&cargo).args(["build", "-p", "uniml-wasi", "-p", "uniml-wasi-http", "--target", TARGET, "--profile", PROFILE]))?;
    step("building the Cloudflare Worker's engine module (uniml-wasi-http for wasm32-unknown-unknown)");
    run(Command::new(&cargo).args(["build", "-p", "uniml-wasi-http", "--target", "wasm32-unknown-unknown", "--profile", PROFILE]))?;
    eprintln!("built in {:.1} s", t0.elapsed().as_secs_f64());
    let dir = target_dir().join(TARGET).join(PROFILE);
    let c = Components {
        inference: dir.join("uniml_wasi.wasm"),
        http: dir.join("uniml_wasi_http.wasm"),
        worker: target_dir().join("wasm32-unknown-unknown").join(PROFILE).join("uniml_wasi_http.wasm"),
    };
    for (what, p) in [
        ("uniml:inference component", &c.inference),
        ("wasi:http handler (efficientnet_lite0 + labels built in)", &c.http),
        ("Cloudflare Worker engine module (model from a binding)", &c.worker),
    ] {
        let raw = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?.len();
        let gz = gzip_len(p).map(mib).unwrap_or_else(|| "n/a (no gzip)".into());
        println!("{what}: {} — {} raw, {gz} gzip", p.display(), mib(raw));
    }
    Ok(c)
}

/// `npm ci` in tests/wasi-js unless node_modules already matches the lockfile.
fn npm_ci(dir: &Path) -> Result<(), String> {
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::metadata(&lock).and_then(|m| m.modified()), std::fs::metadata(&installed).and_then(|m| m.modified())) {
        (Ok(l), Ok(i)) => i >= l,
        _ => false,
    };
    if fresh {
        eprintln!("{}: node_modules up to date with package-lock.json", dir.display());
        return Ok(());
    }
    // `run` works in the repo root: point npm at the package folder.
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--prefix"]).arg(dir))
}

/// Everything: setup, build, and the three host tests.
pub fn test() -> Result<(), String> {
    let mut times: Vec<(String, f64)> = Vec::new();
    let mut timed = |what: &str, f: &mut dyn FnMut() -> Result<(), String>| -> Result<(), String> {
        let t0 = Instant::now();
        let r = f();
        times.push((what.to_string(), t0.elapsed().as_secs_f64()));
        r
    };
    step("python reference environment (onnxruntime, wasmtime; pinned)");
    let mut py = PathBuf::new();
    timed("python venv", &mut || python().map(|p| py = p))?;
    let js = root().join("tests/wasi-js");
    let cf = root().join("edge/cloudflare");
    step("npm ci (tests/wasi-js: jco, preview2-shim; edge/cloudflare: workerd; pinned by package-lock.json)");
    timed("npm ci", &mut || npm_ci(&js).and_then(|_| npm_ci(&cf)))?;
    let mut comps = None;
    timed("cargo build (3 artifacts)", &mut || build().map(|c| comps = Some(c)))?;
    let c = comps.ok_or("build produced nothing")?;
    step("the component under Wasmtime (Python component-model API) vs onnxruntime");
    timed("python host test", &mut || run(Command::new(&py).arg("scripts/test_wasi_component.py").arg(&c.inference)))?;
    step("the component under jco transpile + Node vs onnxruntime");
    timed("jco/node host test", &mut || {
        run(Command::new("node").args(["--test", "tests/wasi-js/component.test.js"]).env("UNIML_COMPONENT", &c.inference).env("UNIML_PYTHON", &py))
    })?;
    step("the wasi:http handler under jco serve");
    timed("jco serve test", &mut || {
        run(Command::new("node").args(["--test", "tests/wasi-js/http.test.js"]).env("UNIML_HTTP_COMPONENT", &c.http).env("UNIML_PYTHON", &py))
    })?;
    step("the Cloudflare Worker under workerd");
    timed("workerd test", &mut || run(Command::new("node").args(["--test", "edge/cloudflare/test/"]).env("UNIML_WORKER_WASM", &c.worker)))?;
    step("wasi-test timings");
    for (what, s) in &times {
        println!("{what:>28}: {s:7.1} s");
    }
    Ok(())
}
