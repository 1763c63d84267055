//! Shared helpers for the facade's integration tests: the project's Python
//! (onnxruntime oracle) and paths.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    // Run-time path first: a test binary reused from a shared target dir may
    // have been compiled in another checkout.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../..").canonicalize().expect("repo root")
}

/// The pinned venv's python; created by `scripts/setup-python.sh` (run by `cargo xtask test`).
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(p.exists(), "no Python reference environment: run `bash scripts/setup-python.sh` (cargo xtask test does)");
    p
}

/// A model bundled in `models/` or fetched/generated into `.cache/models/`.
pub fn model(name: &str) -> PathBuf {
    for dir in ["models", ".cache/models"] {
        let p = root().join(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("model {name} not found in models/ or .cache/models/: run `cargo xtask models`");
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("uniml-test-{}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

pub fn py(args: &[&str]) {
    let out = Command::new(python()).args(args).current_dir(root()).output().expect("start python");
    assert!(out.status.success(), "python {:?} failed:\n{}{}", args, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

pub fn sanitize(name: &str) -> String {
    name.replace(['/', ':'], "_")
}

pub fn read_npy(path: &Path) -> uniml::Tensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    uniml::npy::read(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}
