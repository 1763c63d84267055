//! Runs ONNX backend test cases (`model.onnx` + `test_data_set_N/{input,output}_K.pb`)
//! through uniml and compares with the expected outputs, the way the ONNX
//! backend test runner does (`|got - want| <= atol + rtol * |want|`, NaN == NaN).
//! The few tests whose expected values the spec leaves to a random generator are
//! checked for dtype, shape and the spec's relations instead (`unspecified.rs`).
//!
//! usage: uniml-conformance SUITE_DIR... [--filter REGEX] [--json FILE] [--verbose] [--backend cpu|gpu]
//!
//! `--backend gpu` (build with feature `gpu`) runs every case on the GPU backend:
//! nodes without a GPU kernel (or of non-f32 dtypes) are placed on the CPU by
//! design; each result records how many nodes ran on the GPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use uniml::onnx::{decode_optional, decode_sequence, decode_tensor, tensor_from_proto, NoExternalData};
use uniml::{Error, Session, SessionOptions, Tensor, Value};

mod compare;
mod unspecified;

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Pass,
    Fail(String),
    Unsupported(String),
    Error(String),
}

struct CaseResult {
    suite: String,
    name: String,
    ops: Vec<String>,
    outcome: Outcome,
    /// Nodes placed on the GPU (0 on the CPU backend).
    gpu_nodes: usize,
}

thread_local! {
    /// The backend every case's session uses (`--backend`).
    static BACKEND: std::cell::Cell<uniml::Backend> = const { std::cell::Cell::new(uniml::Backend::Cpu) };
    /// GPU nodes of the case that ran last on this thread.
    static GPU_NODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn main() -> ExitCode {
    let mut dirs = Vec::new();
    let mut filter = None;
    let mut json = None;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--filter" => filter = args.next(),
            "--json" => json = args.next(),
            "--verbose" | "-v" => verbose = true,
            "--backend" => match args.next().as_deref().map(str::parse::<uniml::Backend>) {
                Some(Ok(b)) => BACKEND.with(|c| c.set(b)),
                Some(Err(e)) => {
                    eprintln!("bad --backend: {e}");
                    return ExitCode::from(2);
                }
                None => {
                    eprintln!("--backend needs a value (cpu, gpu)");
                    return ExitCode::from(2);
                }
            },
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    let filter = match filter.map(|f| regex::Regex::new(&f)) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            eprintln!("bad --filter: {e}");
            return ExitCode::from(2);
        }
        None => None,
    };
    let mut results = Vec::new();
    for dir in &dirs {
        let suite = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut cases: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir() && (p.join("model.onnx").exists() || has_onnx(p) || p.with_extension("onnx").exists())).collect(),
            Err(e) => {
                eprintln!("cannot read {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        };
        cases.sort();
        for case in cases {
            let name = case.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if filter.as_ref().is_some_and(|f| !f.is_match(&name)) {
                continue;
            }
            GPU_NODES.with(|c| c.set(0));
            let (ops, outcome) = match std::panic::catch_unwind(|| run_case(&case)) {
                Ok(r) => r,
                Err(p) => {
                    let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    (vec![], Outcome::Error(format!("PANIC: {msg}")))
                }
            };
            if verbose || !matches!(outcome, Outcome::Pass) && filter.is_some() {
                println!("{:<60} {}", name, describe(&outcome));
            }
            results.push(CaseResult { suite: suite.clone(), name, ops, outcome, gpu_nodes: GPU_NODES.with(|c| c.get()) });
        }
    }
    let passed = results.iter().filter(|r| r.outcome == Outcome::Pass).count();
    let failed = results.len() - passed;
    for dir in &dirs {
        let suite = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let n = results.iter().filter(|r| r.suite == suite).count();
        let p = results.iter().filter(|r| r.suite == suite && r.outcome == Outcome::Pass).count();
        let on_gpu = results.iter().filter(|r| r.suite == suite && r.gpu_nodes > 0).count();
        if BACKEND.with(|c| c.get()) == uniml::Backend::Gpu {
            eprintln!("{suite}: {p}/{n} passed ({on_gpu} with >= 1 node on the GPU)");
        } else {
            eprintln!("{suite}: {p}/{n} passed");
        }
    }
    if let Some(path) = json {
        let list: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                let (status, reason) = match &r.outcome {
                    Outcome::Pass => ("pass", String::new()),
                    Outcome::Fail(m) => ("fail", m.clone()),
                    Outcome::Unsupported(m) => ("unsupported", m.clone()),
                    Outcome::Error(m) => ("error", m.clone()),
                };
                serde_json::json!({"suite": r.suite, "name": r.name, "ops": r.ops, "status": status, "reason": reason, "gpu_nodes": r.gpu_nodes})
            })
            .collect();
        if let Err(e) = std::fs::write(&path, serde_json::to_string_pretty(&list).unwrap_or_default()) {
            eprintln!("cannot write {path}: {e}");
        }
    }
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &results {
        *by_status
            .entry(match r.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail(_) => "fail",
                Outcome::Unsupported(_) => "unsupported",
                Outcome::Error(_) => "error",
            })
            .or_default() += 1;
    }
    eprintln!("{by_status:?}");
    println!("conformance: {passed} passed, {failed} failed");
    ExitCode::SUCCESS
}

fn has_onnx(p: &Path) -> bool {
    std::fs::read_dir(p).map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x == "onnx"))).unwrap_or(false)
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Pass => "PASS".into(),
        Outcome::Fail(m) => format!("FAIL {m}"),
        Outcome::Unsupported(m) => format!("UNSUPPORTED {m}"),
        Outcome::Error(m) => format!("ERROR {m}"),
    }
}

fn model_file(case: &Path) -> Option<PathBuf> {
    let m = case.join("model.onnx");
    if m.exists() {
        return Some(m);
    }
    // The onnx wheel's `light` suite keeps `light_x.onnx` beside the `light_x/` data folder.
    let sibling = case.with_extension("onnx");
    if sibling.exists() {
        return Some(sibling);
    }
    std::fs::read_dir(case).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "onnx"))
}

fn run_case(case: &Path) -> (Vec<String>, Outcome) {
    let Some(model_path) = model_file(case) else { return (vec![], Outcome::Error("no model".into())) };
    let bytes = match std::fs::read(&model_path) {
        Ok(b) => b,
        Err(e) => return (vec![], Outcome::Error(e.to_string())),
    };
    let info = uniml::ModelInfo::from_bytes(&bytes);
    let ops: Vec<String> = info.as_ref().map(|i| i.op_histogram.keys().cloned().collect()).unwrap_or_default();
    let (rtol, atol) = std::fs::read_to_string(case.join("tolerance.txt"))
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<f64>());
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((1e-3, 1e-7));
    let model = match uniml::onnx::decode_model(&bytes) {
        Ok(m) => m,
        Err(e) => return (ops, Outcome::Error(format!("decode: {e}"))),
    };
    let in_kinds = kinds(&model, false);
    let out_kinds = kinds(&model, true);
    let backend = BACKEND.with(|c| c.get());
    let session = match Session::from_file(&model_path, SessionOptions::default().with_threads(1).with_backend(backend)) {
        Ok(s) => {
            GPU_NODES.with(|c| c.set(s.placement().gpu_nodes()));
            s
        }
        Err(Error::Unsupported(list)) => {
            return (ops, Outcome::Unsupported(list.iter().map(|u| format!("{}: {}", u.op, u.reason)).collect::<Vec<_>>().join("; ")))
        }
        Err(e) => return (ops, Outcome::Error(format!("load: {e}"))),
    };
    let mut sets: Vec<PathBuf> = std::fs::read_dir(case)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set"))).collect())
        .unwrap_or_default();
    sets.sort();
    if sets.is_empty() {
        return (ops, Outcome::Error("no test data sets".into()));
    }
    for set in sets {
        let mut inputs = Vec::new();
        for (k, info) in session.inputs().iter().enumerate() {
            let _ = info;
            let p = set.join(format!("input_{k}.pb"));
            if !p.exists() {
                break;
            }
            match read_value(&p, in_kinds.get(k).copied().unwrap_or(Kind::Tensor)) {
                Ok(v) => inputs.push((info.name.clone(), v)),
                Err(e) => return (ops, Outcome::Error(format!("reading {}: {e}", p.display()))),
            }
        }
        let refs: Vec<(&str, uniml::ValueRef)> = inputs.iter().map(|(n, v)| (n.as_str(), v.as_ref())).collect();
        let outs = match session.run_values(&refs) {
            Ok(o) => o,
            Err(e) => return (ops, Outcome::Error(format!("run: {e}"))),
        };
        let name = case.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if let Some(rel) = unspecified::relation(&name) {
            let mut want = Vec::new();
            for k in 0..outs.len() {
                let p = set.join(format!("output_{k}.pb"));
                want.push(if p.exists() { read_value(&p, out_kinds.get(k).copied().unwrap_or(Kind::Tensor)).ok() } else { None });
            }
            let ins: Vec<Value> = inputs.iter().map(|(_, v)| v.clone()).collect();
            let got: Vec<Value> = outs.iter().map(|(_, v)| v.clone()).collect();
            if let Err(m) = unspecified::check(rel, &ins, &got, &want) {
                return (ops, Outcome::Fail(format!("(values unspecified, relation checked) {m}")));
            }
            continue;
        }
        for (k, (name, got)) in outs.iter().enumerate() {
            let p = set.join(format!("output_{k}.pb"));
            if !p.exists() {
                continue;
            }
            let want = match read_value(&p, out_kinds.get(k).copied().unwrap_or(Kind::Tensor)) {
                Ok(v) => v,
                Err(e) => return (ops, Outcome::Error(format!("reading {}: {e}", p.display()))),
            };
            if let Err(m) = compare::values(got, &want, rtol, atol) {
                return (ops, Outcome::Fail(format!("output '{name}': {m}")));
            }
        }
    }
    (ops, Outcome::Pass)
}


/// The kind of value a graph input/output holds, from its declared type.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Tensor,
    Sequence,
    Optional,
}

fn kinds(model: &uniml::onnx::proto::ModelProto, outputs: bool) -> Vec<Kind> {
    use uniml::onnx::proto::type_proto::Value as V;
    let Some(g) = &model.graph else { return vec![] };
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let list: Vec<&uniml::onnx::proto::ValueInfoProto> =
        if outputs { g.output.iter().collect() } else { g.input.iter().filter(|v| !inits.contains(v.name.as_str())).collect() };
    list.iter()
        .map(|v| match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(V::SequenceType(_)) => Kind::Sequence,
            Some(V::OptionalType(_)) => Kind::Optional,
            _ => Kind::Tensor,
        })
        .collect()
}

fn tensors(list: &[uniml::onnx::proto::TensorProto]) -> Result<Vec<Tensor>, Error> {
    list.iter().map(|t| tensor_from_proto(t, &NoExternalData, 1 << 32)).collect()
}

/// Reads a `.pb` holding a TensorProto, SequenceProto or OptionalProto.
fn read_value(path: &Path, kind: Kind) -> Result<Value, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Other(e.to_string()))?;
    match kind {
        Kind::Tensor => Ok(Value::Tensor(tensor_from_proto(&decode_tensor(&bytes)?, &NoExternalData, 1 << 32)?)),
        Kind::Sequence => Ok(Value::Sequence(tensors(&decode_sequence(&bytes)?.tensor_values)?)),
        Kind::Optional => {
            let opt = decode_optional(&bytes)?;
            if let Some(t) = &opt.tensor_value {
                Ok(Value::Tensor(tensor_from_proto(t, &NoExternalData, 1 << 32)?))
            } else if let Some(s) = &opt.sequence_value {
                Ok(Value::Sequence(tensors(&s.tensor_values)?))
            } else {
                Ok(Value::None)
            }
        }
    }
}
