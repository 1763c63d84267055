//! `cargo xtask conformance`: generate the ONNX backend suites from the pinned
//! onnx wheel, run them through uniml, write `docs/conformance.md`, and hold
//! the committed baseline (`conformance/passing.txt`): every test listed there
//! must keep passing, so the pass count only goes up.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::{python, run, step, target_dir};

const SUITES: &[&str] = &["onnx-node", "onnx-simple", "onnx-pytorch-converted", "onnx-pytorch-operator", "onnx-light"];

pub fn run_all(enforce: bool) -> Result<(), String> {
    let root = super::root();
    let py = python()?;
    step("generating the ONNX backend test suites (onnx wheel)");
    run(Command::new(&py).args(["scripts/gen_node_tests.py", ".cache/onnx-node"]))?;
    run(Command::new(&py).args(["scripts/fetch_models.py", "light"]))?;
    step("running the suites through uniml");
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(["build", "-q", "-p", "uniml-conformance"]))?;
    let json = root.join(".cache/conformance.json");
    let mut cmd = Command::new(target_dir().join("debug/uniml-conformance"));
    for s in SUITES {
        let dir = if *s == "onnx-light" { root.join(".cache/models/light") } else { root.join(".cache").join(s) };
        if dir.is_dir() {
            cmd.arg(dir);
        }
    }
    run(cmd.arg("--json").arg(&json))?;
    let text = std::fs::read_to_string(&json).map_err(|e| format!("reading {}: {e}", json.display()))?;
    let results: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let passing: BTreeSet<String> = results
        .iter()
        .filter(|r| r["status"] == "pass")
        .map(|r| format!("{}/{}", r["suite"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or("")))
        .collect();
    write_report(&root.join("docs/conformance.md"), &results)?;
    let baseline_path = root.join("conformance/passing.txt");
    let baseline: BTreeSet<String> = std::fs::read_to_string(&baseline_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let regressed: Vec<&String> = baseline.difference(&passing).collect();
    let new: Vec<&String> = passing.difference(&baseline).collect();
    eprintln!("conformance: {} passing, baseline {}, {} newly passing, {} regressed", passing.len(), baseline.len(), new.len(), regressed.len());
    if enforce {
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
        let mut body = String::from("# ONNX backend tests that pass; CI fails if any stops passing. Regenerate: cargo xtask conformance\n");
        for t in all {
            body.push_str(t);
            body.push('\n');
        }
        std::fs::create_dir_all(root.join("conformance")).map_err(|e| e.to_string())?;
        std::fs::write(&baseline_path, body).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn write_report(path: &std::path::Path, results: &[serde_json::Value]) -> Result<(), String> {
    #[derive(Default)]
    struct Row {
        tests: usize,
        passed: usize,
        reasons: BTreeMap<String, usize>,
    }
    // Every op type seen in any test model: a test is attributed to the longest
    // op name its test name starts with (so `_expanded` variants count for their op).
    let all_ops: BTreeSet<String> = results
        .iter()
        .flat_map(|r| r["ops"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut per_suite: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut per_op: BTreeMap<String, Row> = BTreeMap::new();
    for r in results {
        let suite = r["suite"].as_str().unwrap_or("").to_string();
        let pass = r["status"] == "pass";
        let e = per_suite.entry(suite.clone()).or_default();
        e.0 += 1;
        e.1 += pass as usize;
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
        if !pass {
            let reason = r["reason"].as_str().unwrap_or("");
            let short: String = reason.chars().take(90).collect();
            *row.reasons.entry(format!("{}: {}", r["status"].as_str().unwrap_or(""), short)).or_default() += 1;
        }
    }
    let mut md = String::from("# ONNX conformance\n\nGenerated by `cargo xtask conformance` from the pinned onnx wheel (1.23.2). Tolerances: the suite's own (rtol 1e-3, atol 1e-7 unless a case says otherwise); float8/float4 outputs compare by value, 4-/2-bit integers exactly. Node tests whose expected values the spec does not define (the explicit list is `UNSPECIFIED_VALUES` in `crates/uniml-conformance/src/unspecified.rs`) are checked for dtype, shape and what the spec does define: Bernoulli and training-mode Dropout (numpy's random generator: Bernoulli outputs 0/1; Dropout output = mask ? x / (1 - ratio) : 0), and float to (u)int4/(u)int2 Casts (out-of-range elements are undefined, and ml_dtypes' values there change between generator runs: only in-range elements are compared). onnxruntime on the same generated suites: [conformance-onnxruntime.md](conformance-onnxruntime.md) (`scripts/conformance_ort.py`).\n\n| suite | tests | passed |\n|---|---|---|\n");
    for (s, (n, p)) in &per_suite {
        md.push_str(&format!("| {s} | {n} | {p} |\n"));
    }
    md.push_str("\n## Node tests per op\n\n| op | tests | passed | why failing (count) |\n|---|---|---|---|\n");
    for (op, row) in &per_op {
        let why: Vec<String> = row.reasons.iter().take(3).map(|(r, n)| format!("{} ({n})", r.replace('|', "/"))).collect();
        md.push_str(&format!("| {op} | {} | {} | {} |\n", row.tests, row.passed, why.join("<br>")));
    }
    std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new("."))).map_err(|e| e.to_string())?;
    std::fs::write(path, md).map_err(|e| e.to_string())
}
