//! Golden tests inside WebAssembly: the `run_npy` example built for
//! wasm32-wasip1 runs under Wasmtime (PyPI `wasmtime`) and must give
//! onnxruntime's answers and the native build's answers.

use std::process::Command;

use crate::{python, root, run, step, target_dir};

const CASES: &[(&str, &str, &[&str])] = &[
    ("digits", "models/digits8x8_cnn.onnx", &["digits-synthetic"]),
    ("efficientnet-coffee", "models/efficientnet_lite0.onnx", &["image", "efficientnet", "testdata/coffee.png"]),
];

pub fn golden() -> Result<(), String> {
    let py = python()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    step("building run_npy natively and for wasm32-wasip1");
    run(Command::new(&cargo).args(["build", "-q", "-p", "uniml", "--example", "run_npy"]))?;
    run(Command::new(&cargo).args(["build", "-q", "-p", "uniml", "--no-default-features", "--example", "run_npy", "--target", "wasm32-wasip1"]))?;
    let native = target_dir().join("debug/examples/run_npy");
    let wasm = target_dir().join("wasm32-wasip1/debug/examples/run_npy.wasm");
    let work = root().join(".cache/wasm-golden");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    // WASI resolves paths inside preopened directories only, without following
    // links out of them: preopen the real (canonical) folders.
    let work = work.canonicalize().map_err(|e| e.to_string())?;
    for (name, model, make) in CASES {
        step(&format!("wasm golden: {name}"));
        let dir = work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let d = |s: &str| dir.join(s).display().to_string();
        let mut mk = vec!["scripts/make_inputs.py".to_string()];
        mk.extend(make.iter().map(|s| s.to_string()));
        mk.push(d("in"));
        run(Command::new(&py).args(&mk))?;
        run(Command::new(&py).args(["scripts/reference.py", model, "--inputs-dir", &d("in"), "--outputs-dir", &d("ref")]))?;
        run(Command::new(&native).args([model.to_string(), d("in"), d("native")]))?;
        let root_s = root().display().to_string();
        let model_abs = root().join(model).display().to_string();
        let work_s = work.display().to_string();
        run(Command::new(&py).args(["scripts/run_wasi.py", &wasm.display().to_string(), "--dir", &root_s, "--dir", &work_s, "--", &model_abs, &d("in"), &d("wasm")]))?;
        run(Command::new(&py).args(["scripts/compare_npy.py", &d("native"), &d("ref"), "1e-4", &format!("{name} native vs onnxruntime")]))?;
        run(Command::new(&py).args(["scripts/compare_npy.py", &d("wasm"), &d("ref"), "1e-4", &format!("{name} wasm vs onnxruntime")]))?;
        run(Command::new(&py).args(["scripts/compare_npy.py", &d("wasm"), &d("native"), "1e-5", &format!("{name} wasm vs native")]))?;
    }
    Ok(())
}

/// The GEMM kernels' own tests (uniml-linalg: every kernel and epilogue against a reference, the
/// proptests) compiled for wasm32-wasip1 and run under Wasmtime, once with `simd128` (the browser
/// package's SIMD builds) and once with `simd128` + `relaxed-simd` (its relaxed builds, whose
/// microkernel multiplies-adds with `f32x4.relaxed_madd`). Natively these tests only reach the x86
/// kernels; here the wasm ones. Each build has its own target subdir, so that it never
/// invalidates another.
pub fn kernel_tests() -> Result<(), String> {
    let py = python()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (name, features) in [("simd128", "+simd128"), ("simd128 + relaxed-simd", "+simd128,+relaxed-simd")] {
        step(&format!("uniml-linalg's tests in wasm32-wasip1 ({name}) under Wasmtime"));
        let tdir = target_dir().join(format!("wasip1-{}", features.replace(['+', ','], "")));
        let flags = format!("-C target-feature={features}");
        let mut build = Command::new(&cargo);
        build
            .args(["test", "--release", "-p", "uniml-linalg", "--lib", "--no-run", "--target", "wasm32-wasip1", "--message-format=json"])
            .env("CARGO_TARGET_DIR", &tdir)
            .env("RUSTFLAGS", &flags)
            .current_dir(root())
            .stderr(std::process::Stdio::inherit());
        eprintln!("$ CARGO_TARGET_DIR={} RUSTFLAGS=\"{flags}\" {build:?}", tdir.display());
        let out = build.output().map_err(|e| format!("cannot start cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!("building uniml-linalg's tests for wasm32-wasip1 ({name}) failed (see above)"));
        }
        // The test binary: the `executable` of the uniml-linalg lib-test artifact.
        let exe = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "uniml_linalg")
            .find_map(|v| v["executable"].as_str().map(str::to_string))
            .ok_or("cargo did not report uniml-linalg's wasm test binary")?;
        run(Command::new(&py).args(["scripts/run_wasi.py", &exe, "--"]))?;
    }
    Ok(())
}
