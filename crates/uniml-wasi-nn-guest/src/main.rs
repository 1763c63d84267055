//! ImageNet classification of a photo, three ways from one program:
//!
//! * `--engine wasi-nn` (wasm32-wasip2 only): the guest decodes and preprocesses the photo and
//!   hands the tensor to the host through wasi-nn (`wasi:nn@0.2.0-rc-2024-10-28`); the model runs
//!   in the host (`uniml-nn-host`: uniml natively). The model comes from the host by name
//!   (`--model NAME`, `load-by-name`) or as bytes read by the guest (`--model-file PATH`, `load`).
//! * `--engine uniml`: uniml compiled into the program. Built for wasm32-wasip2 this is the
//!   pure-wasm guest (single thread); built natively it is the native reference.
//!
//! Preprocessing is `uniml::imagenet::preprocess` in every case (the one `uniml classify` uses).
//! Prints one JSON object: top-5 `{index, label, probability, logit}`, all probabilities with
//! `--all`, and timings (`--runs N`: median of N runs after a first run). Other modes:
//! `--try-read PATH` (prints whether the sandbox lets the guest read PATH) and `--check-errors`
//! (wasi-nn only: bad models and inputs must come back as wasi-nn errors, then a good run).

use std::process::ExitCode;
use std::time::Instant;

use serde_json::{json, Value};

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod nn;

/// The model's input tensor: one 224×224 RGB image, NCHW, f32.
pub const DIMS: [u32; 4] = [1, 3, 224, 224];

#[derive(Default)]
struct Args {
    image: Option<String>,
    labels: Option<String>,
    engine: String,
    model_name: Option<String>,
    model_file: Option<String>,
    input: String,
    runs: usize,
    threads: usize,
    all: bool,
    save_input: Option<String>,
    save_output: Option<String>,
    try_read: Vec<String>,
    check_errors: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        engine: if cfg!(target_arch = "wasm32") { "wasi-nn".into() } else { "uniml".into() },
        input: "input".into(),
        runs: 1,
        threads: 1,
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--image" => a.image = Some(val()?),
            "--labels" => a.labels = Some(val()?),
            "--engine" => a.engine = val()?,
            "--model" => a.model_name = Some(val()?),
            "--model-file" => a.model_file = Some(val()?),
            "--input" => a.input = val()?,
            "--runs" => a.runs = val()?.parse().map_err(|_| "--runs: not a number")?,
            "--threads" => a.threads = val()?.parse().map_err(|_| "--threads: not a number")?,
            "--save-input" => a.save_input = Some(val()?),
            "--save-output" => a.save_output = Some(val()?),
            "--try-read" => a.try_read.push(val()?),
            "--all" => a.all = true,
            "--check-errors" => a.check_errors = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// An inference engine: f32 NCHW image in, logits out.
pub trait Engine {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, String>;
}

struct Embedded {
    session: uniml::Session,
    input: String,
}

impl Engine for Embedded {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, String> {
        let dims: Vec<usize> = DIMS.iter().map(|&d| d as usize).collect();
        let view = uniml::TensorView::from_slice(&dims, input).map_err(|e| e.to_string())?;
        let outs = self.session.run(&[(self.input.as_str(), view)]).map_err(|e| e.to_string())?;
        let (_, t) = outs.into_iter().next().ok_or("the model has no outputs")?;
        t.to_vec::<f32>().map_err(|e| e.to_string())
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn model_bytes(a: &Args) -> Result<Vec<u8>, String> {
    read(a.model_file.as_deref().ok_or("--model-file PATH is needed")?)
}

fn engine(a: &Args) -> Result<Box<dyn Engine>, String> {
    match a.engine.as_str() {
        "uniml" => {
            let opts = uniml::SessionOptions::default().with_threads(a.threads).with_memory_limit(1 << 30);
            let session = uniml::Session::from_bytes(&model_bytes(a)?, opts).map_err(|e| e.to_string())?;
            Ok(Box::new(Embedded { session, input: a.input.clone() }))
        }
        #[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
        "wasi-nn" => {
            let graph = match &a.model_name {
                Some(name) => nn::load_by_name(name)?,
                None => nn::load(&model_bytes(a)?)?,
            };
            Ok(Box::new(nn::NnEngine::new(graph, a.input.clone())?))
        }
        other => Err(format!("engine {other} is not available in this build (uniml{})", if cfg!(target_os = "wasi") { ", wasi-nn" } else { "" })),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn save_npy(path: &str, dims: &[usize], data: &[f32]) -> Result<(), String> {
    let t = uniml::Tensor::from_slice(dims, data).map_err(|e| e.to_string())?;
    let bytes = uniml::npy::write(&t).map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {path}: {e}"))
}

fn classify(a: &Args) -> Result<Value, String> {
    let image_path = a.image.as_deref().ok_or("--image PATH is needed")?;
    let t0 = Instant::now();
    let img = image::load_from_memory(&read(image_path)?).map_err(|e| format!("cannot decode {image_path}: {e}"))?.to_rgb8();
    let pixels = uniml::imagenet::preprocess(&img);
    let pre_ms = t0.elapsed().as_secs_f64() * 1e3;
    if let Some(p) = &a.save_input {
        save_npy(p, &[1, 3, 224, 224], &pixels)?;
    }
    let labels: Vec<String> = match &a.labels {
        Some(p) => String::from_utf8_lossy(&read(p)?).lines().map(str::to_string).collect(),
        None => Vec::new(),
    };
    let t1 = Instant::now();
    let mut eng = engine(a)?;
    let load_ms = t1.elapsed().as_secs_f64() * 1e3;
    let t2 = Instant::now();
    let logits = eng.infer(&pixels)?;
    let first_ms = t2.elapsed().as_secs_f64() * 1e3;
    let mut runs = Vec::with_capacity(a.runs);
    for _ in 0..a.runs {
        let t = Instant::now();
        let again = eng.infer(&pixels)?;
        runs.push(t.elapsed().as_secs_f64() * 1e3);
        if again != logits {
            return Err("two runs on the same input gave different logits".into());
        }
    }
    if let Some(p) = &a.save_output {
        save_npy(p, &[1, logits.len()], &logits)?;
    }
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let probs: Vec<f32> = exps.iter().map(|e| e / sum).collect();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]));
    let top: Vec<Value> = idx
        .iter()
        .take(5)
        .map(|&i| json!({"index": i, "label": labels.get(i).map(String::as_str).unwrap_or(""), "probability": probs[i], "logit": logits[i]}))
        .collect();
    let mut j = json!({
        "engine": a.engine,
        "target": if cfg!(target_arch = "wasm32") { "wasm32-wasip2" } else { "native" },
        "image": {"path": image_path, "width": img.width(), "height": img.height()},
        "top": top,
        "timings_ms": {"preprocess": pre_ms, "load": load_ms, "first_run": first_ms, "median_run": median(&mut runs.clone()), "runs": runs},
    });
    if a.all {
        j["probabilities"] = json!(probs);
    }
    Ok(j)
}

fn try_read(paths: &[String]) -> Value {
    let results: Vec<Value> = paths
        .iter()
        .map(|p| match std::fs::read(p) {
            Ok(b) => json!({"path": p, "ok": true, "bytes": b.len()}),
            Err(e) => json!({"path": p, "ok": false, "error": e.to_string()}),
        })
        .collect();
    json!({ "try_read": results })
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|a| {
        if !a.try_read.is_empty() {
            return Ok(try_read(&a.try_read));
        }
        if a.check_errors {
            #[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
            return nn::check_errors(&model_bytes(&a)?, &a.input);
            #[cfg(not(all(target_arch = "wasm32", target_os = "wasi")))]
            return Err("--check-errors needs the wasm32-wasip2 build (wasi-nn)".into());
        }
        classify(&a)
    });
    match result {
        Ok(j) => {
            println!("{j}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", json!({ "error": e }));
            eprintln!("uniml-wasi-nn-guest: {e}");
            ExitCode::FAILURE
        }
    }
}
