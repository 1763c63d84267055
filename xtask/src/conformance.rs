//! `cargo xtask conformance`: generate the ONNX backend suites from the pinned
//! onnx wheel, run them through uniml, write `docs/conformance.md`, and hold
//! the committed baselines (`conformance/passing.txt` for the CPU backend,
//! `conformance/passing-gpu.txt` for `--backend gpu`): every test listed there
//! must keep passing, so the pass counts only go up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::{python, run, step, target_dir};

const SUITES: &[&str] = &["onnx-node", "onnx-simple", "onnx-pytorch-converted", "onnx-pytorch-operator", "onnx-light"];

/// Which backend the suites run on.
#[derive(Clone, Copy, PartialEq)]
pub enum Backend {
    Cpu,
    Gpu,
}

impl Backend {
    fn json(self) -> &'static str {
        match self {
            Backend::Cpu => ".cache/conformance.json",
            Backend::Gpu => ".cache/conformance-gpu.json",
        }
    }
    fn baseline(self) -> &'static str {
        match self {
            Backend::Cpu => "conformance/passing.txt",
            Backend::Gpu => "conformance/passing-gpu.txt",
        }
    }
}

/// The suites `cargo xtask test` runs on the GPU backend: all but the model zoo (`onnx-light`:
/// AlexNet, VGG19, ResNet50, … take 3.5 of the full run's 4 minutes on lavapipe on a 2-core
/// machine, cold shader cache); `cargo xtask conformance --backend gpu` runs everything.
pub const GPU_CI_SUITES: &[&str] = &["onnx-node", "onnx-simple", "onnx-pytorch-converted", "onnx-pytorch-operator"];

/// Runs the suites on `backend`. `only` runs a subset of the suites: then
/// only the baseline tests of those suites are checked, and neither the
/// report nor the baseline is rewritten.
pub fn run_all(enforce: bool, backend: Backend, only: Option<&[&str]>) -> Result<(), String> {
    let root = super::root();
    let py = python()?;
    step("generating the ONNX backend test suites (onnx wheel)");
    run(Command::new(&py).args(["scripts/gen_node_tests.py", ".cache/onnx-node"]))?;
    run(Command::new(&py).args(["scripts/fetch_models.py", "light"]))?;
    let cargo = || Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    match backend {
        Backend::Cpu => {
            step("running the suites through uniml");
            run(cargo().args(["build", "-q", "-p", "uniml-conformance"]))?;
        }
        Backend::Gpu => {
            step("running the suites through uniml's GPU backend (Mesa lavapipe where there is no GPU)");
            run(Command::new("bash").arg("scripts/setup-gpu.sh"))?;
            run(cargo().args(["build", "-q", "-p", "uniml-conformance", "--features", "gpu"]))?;
        }
    }
    // A subset run keeps its own results: the report reads the full runs'.
    let json = if only.is_some() { root.join(backend.json().replace(".json", "-subset.json")) } else { root.join(backend.json()) };
    let mut cmd = Command::new(target_dir().join("debug/uniml-conformance"));
    for s in SUITES.iter().filter(|s| only.is_none_or(|o| o.contains(s))) {
        let dir = if *s == "onnx-light" { root.join(".cache/models/light") } else { root.join(".cache").join(s) };
        if dir.is_dir() {
            cmd.arg(dir);
        }
    }
    if backend == Backend::Gpu {
        cmd.args(["--backend", "gpu"]);
    }
    let t0 = std::time::Instant::now();
    run(cmd.arg("--json").arg(&json))?;
    eprintln!("conformance: suites ran in {:.0} s", t0.elapsed().as_secs_f64());
    let results = read_results(&json)?.ok_or_else(|| format!("{} was not written", json.display()))?;
    let passing: BTreeSet<String> = results
        .iter()
        .filter(|r| r["status"] == "pass")
        .map(|r| format!("{}/{}", r["suite"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or("")))
        .collect();
    let ran_suites: BTreeSet<&str> = results.iter().filter_map(|r| r["suite"].as_str()).collect();
    if only.is_none() {
        // The report shows both backends: the other one's last results, when there are any.
        let (cpu, gpu) = match backend {
            Backend::Cpu => (results.clone(), read_results(&root.join(Backend::Gpu.json()))?),
            Backend::Gpu => match read_results(&root.join(Backend::Cpu.json()))? {
                Some(cpu) => (cpu, Some(results.clone())),
                None => return Err("run `cargo xtask conformance` (CPU) first: docs/conformance.md shows both backends".into()),
            },
        };
        write_report(&root.join("docs/conformance.md"), &cpu, gpu.as_deref())?;
    }
    let baseline_path = root.join(backend.baseline());
    let baseline: BTreeSet<String> = std::fs::read_to_string(&baseline_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    // With a subset of the suites only their baseline tests are checked.
    let checked: BTreeSet<String> = if only.is_some() {
        baseline.iter().filter(|t| t.split('/').next().is_some_and(|s| ran_suites.contains(s))).cloned().collect()
    } else {
        baseline.clone()
    };
    let regressed: Vec<&String> = checked.difference(&passing).collect();
    let new: Vec<&String> = passing.difference(&baseline).collect();
    let on_gpu = results.iter().filter(|r| r["gpu_nodes"].as_u64().unwrap_or(0) > 0).count();
    eprintln!(
        "conformance: {} passing of {} run{}, baseline {} ({} checked), {} newly passing, {} regressed",
        passing.len(),
        results.len(),
        if backend == Backend::Gpu { format!(" ({on_gpu} with >= 1 node on the GPU)") } else { String::new() },
        baseline.len(),
        checked.len(),
        new.len(),
        regressed.len()
    );
    if enforce || only.is_some() {
        if !regressed.is_empty() {
            return Err(format!(
                "{} test(s) of the baseline no longer pass:\n  {}",
                regressed.len(),
                regressed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
            ));
        }
    } else {
        // Grow the allow-list: it only ever gains tests.
        let all: BTreeSet<&String> = baseline.iter().chain(passing.iter()).collect();
        let mut body = match backend {
            Backend::Cpu => String::from("# ONNX backend tests that pass; CI fails if any stops passing. Regenerate: cargo xtask conformance\n"),
            Backend::Gpu => String::from("# ONNX backend tests that pass on the GPU backend (Backend::Gpu; nodes without GPU kernels on the CPU); CI fails if any stops passing. Regenerate: cargo xtask conformance --backend gpu\n"),
        };
        for t in all {
            body.push_str(t);
            body.push('\n');
        }
        std::fs::create_dir_all(root.join("conformance")).map_err(|e| e.to_string())?;
        std::fs::write(&baseline_path, body).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn read_results(path: &Path) -> Result<Option<Vec<serde_json::Value>>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_report(path: &std::path::Path, results: &[serde_json::Value], gpu: Option<&[serde_json::Value]>) -> Result<(), String> {
    #[derive(Default)]
    struct Row {
        tests: usize,
        passed: usize,
        gpu_passed: usize,
        on_gpu: usize,
        reasons: BTreeMap<String, usize>,
    }
    let key = |r: &serde_json::Value| format!("{}/{}", r["suite"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""));
    // GPU outcome per test: (passed, nodes on the GPU).
    let gpu_of: BTreeMap<String, (bool, u64)> =
        gpu.unwrap_or_default().iter().map(|r| (key(r), (r["status"] == "pass", r["gpu_nodes"].as_u64().unwrap_or(0)))).collect();
    // Every op type seen in any test model: a test is attributed to the longest
    // op name its test name starts with (so `_expanded` variants count for their op).
    let all_ops: BTreeSet<String> = results
        .iter()
        .flat_map(|r| r["ops"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    // suite -> (tests, CPU passed, GPU passed, tests with >= 1 GPU node)
    let mut per_suite: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    let mut per_op: BTreeMap<String, Row> = BTreeMap::new();
    for r in results {
        let suite = r["suite"].as_str().unwrap_or("").to_string();
        let pass = r["status"] == "pass";
        let (gpass, gnodes) = gpu_of.get(&key(r)).copied().unwrap_or((false, 0));
        let e = per_suite.entry(suite.clone()).or_default();
        e.0 += 1;
        e.1 += pass as usize;
        e.2 += gpass as usize;
        e.3 += (gnodes > 0) as usize;
        if suite != "onnx-node" {
            continue;
        }
        let name = r["name"].as_str().unwrap_or("");
        // A node test is attributed to the op its name starts with when one of its ops matches, else its first op.
        let ops: Vec<&str> = r["ops"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        let lname = name.trim_start_matches("test_").replace('_', "").to_lowercase();
        let op = all_ops
            .iter()
            .filter(|o| lname.starts_with(&o.to_lowercase()))
            .max_by_key(|o| o.len())
            .cloned()
            .or(ops.first().map(|s| s.to_string()))
            .unwrap_or_else(|| "?".into());
        let row = per_op.entry(op).or_default();
        row.tests += 1;
        row.passed += pass as usize;
        row.gpu_passed += gpass as usize;
        row.on_gpu += (gnodes > 0) as usize;
        if !pass {
            let reason = r["reason"].as_str().unwrap_or("");
            let short: String = reason.chars().take(90).collect();
            *row.reasons.entry(format!("{}: {}", r["status"].as_str().unwrap_or(""), short)).or_default() += 1;
        }
    }
    let mut md = String::from("# ONNX conformance\n\nGenerated by `cargo xtask conformance` from the pinned onnx wheel (1.23.2). Tolerances: the suite's own (rtol 1e-3, atol 1e-7 unless a case says otherwise); float8/float4 outputs compare by value, 4-/2-bit integers exactly. Node tests whose expected values the spec does not define (the explicit list is `UNSPECIFIED_VALUES` in `crates/uniml-conformance/src/unspecified.rs`) are checked for dtype, shape and what the spec does define: Bernoulli and training-mode Dropout (numpy's random generator: Bernoulli outputs 0/1; Dropout output = mask ? x / (1 - ratio) : 0), and float to (u)int4/(u)int2 Casts (out-of-range elements are undefined, and ml_dtypes' values there change between generator runs: only in-range elements are compared). onnxruntime on the same generated suites: [conformance-onnxruntime.md](conformance-onnxruntime.md) (`scripts/conformance_ort.py`).\n\n");
    if gpu.is_some() {
        md.push_str("**GPU columns**: the same suites through `Backend::Gpu` (`cargo xtask conformance --backend gpu`, wgpu on Mesa's lavapipe here; allow-list `conformance/passing-gpu.txt`, enforced like the CPU one). Nodes without a GPU kernel, and every node whose inputs are not f32 or f16 (shape arithmetic, integers, bools), run on the CPU by design (see `docs/gpu.md`, Placement), so a GPU pass checks placement, transfers and the kernels that did run; *on GPU* counts the tests with at least one node on the GPU. `cargo xtask test` checks the GPU allow-list on every suite but the `onnx-light` model zoo (about 1 minute on lavapipe on a 2-core machine; the zoo's AlexNet, VGG19, ResNet50, … take 3.5 of the full run's 4 minutes), `cargo xtask conformance --backend gpu [--check]` runs them all.\n\n| suite | tests | passed (CPU) | passed (GPU) | on GPU |\n|---|---|---|---|---|\n");
        for (s, (n, p, gp, og)) in &per_suite {
            md.push_str(&format!("| {s} | {n} | {p} | {gp} | {og} |\n"));
        }
        let t = per_suite.values().fold((0, 0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3));
        md.push_str(&format!("| **total** | {} | {} | {} | {} |\n", t.0, t.1, t.2, t.3));
        md.push_str("\n## Node tests per op\n\n| op | tests | passed | GPU passed | on GPU | why failing on CPU (count) |\n|---|---|---|---|---|---|\n");
    } else {
        md.push_str("| suite | tests | passed |\n|---|---|---|\n");
        for (s, (n, p, _, _)) in &per_suite {
            md.push_str(&format!("| {s} | {n} | {p} |\n"));
        }
        md.push_str("\n## Node tests per op\n\n| op | tests | passed | why failing (count) |\n|---|---|---|---|\n");
    }
    for (op, row) in &per_op {
        let why: Vec<String> = row.reasons.iter().take(3).map(|(r, n)| format!("{} ({n})", r.replace('|', "/"))).collect();
        if gpu.is_some() {
            md.push_str(&format!("| {op} | {} | {} | {} | {} | {} |\n", row.tests, row.passed, row.gpu_passed, row.on_gpu, why.join("<br>")));
        } else {
            md.push_str(&format!("| {op} | {} | {} | {} |\n", row.tests, row.passed, why.join("<br>")));
        }
    }
    if let Some(gpu) = gpu {
        // Tests that pass on the CPU but not on the GPU backend, with the GPU's reason.
        let cpu_pass: BTreeSet<String> = results.iter().filter(|r| r["status"] == "pass").map(key).collect();
        let worse: Vec<&serde_json::Value> = gpu.iter().filter(|r| r["status"] != "pass" && cpu_pass.contains(&key(r))).collect();
        md.push_str(&format!("\n## Passing on the CPU, not on the GPU backend ({})\n\n", worse.len()));
        if worse.is_empty() {
            md.push_str("None.\n");
        } else {
            md.push_str("| test | GPU nodes | why |\n|---|---|---|\n");
            for r in worse {
                let short: String = r["reason"].as_str().unwrap_or("").chars().take(140).collect();
                md.push_str(&format!("| {} | {} | {}: {} |\n", key(r), r["gpu_nodes"], r["status"].as_str().unwrap_or(""), short.replace('|', "/").replace('\n', " ")));
            }
        }
    }
    std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new("."))).map_err(|e| e.to_string())?;
    std::fs::write(path, md).map_err(|e| e.to_string())
}
