//! `uniml classify`: the native image-classification job of the demo.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use uniml::{Error, Result, TensorView};

use crate::EngineArgs;

use uniml::imagenet::preprocess;

pub fn classify(model: &Path, image_path: &Path, labels: Option<&Path>, top: usize, engine: &EngineArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    let img = image::open(image_path).map_err(|e| Error::Other(format!("cannot read image {}: {e}", image_path.display())))?.to_rgb8();
    let pixels = preprocess(&img);
    let pre_ms = t0.elapsed().as_secs_f64() * 1e3;
    let (session, load_ms) = crate::load(model, engine.options())?;
    let input = session.inputs().first().ok_or_else(|| Error::Other("model has no inputs".into()))?.name.clone();
    let view = TensorView::from_slice(&[1, 3, 224, 224], &pixels)?;
    let t1 = Instant::now();
    let outs = session.run(&[(&input, view.clone())])?;
    let first_ms = t1.elapsed().as_secs_f64() * 1e3;
    let t2 = Instant::now();
    let runs = 10;
    for _ in 0..runs {
        session.run(&[(&input, view.clone())])?;
    }
    let steady_ms = t2.elapsed().as_secs_f64() * 1e3 / runs as f64;
    let logits = outs[0].1.as_slice::<f32>()?;
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let names: Vec<String> = match labels {
        Some(p) => std::fs::read_to_string(p).map_err(|e| Error::Other(format!("cannot read {}: {e}", p.display())))?.lines().map(str::to_string).collect(),
        None => vec![],
    };
    println!("{} → top-{top} ({})", image_path.display(), model.display());
    for &i in idx.iter().take(top) {
        let name = names.get(i).map(String::as_str).unwrap_or("");
        println!("  {i:>4}  {:>6.2}%  {name}", 100.0 * exps[i] / sum);
    }
    println!(
        "timings: preprocess {pre_ms:.1} ms, session creation {load_ms:.1} ms, first run {first_ms:.2} ms, steady run {steady_ms:.2} ms (mean of {runs}), {} thread(s)",
        if engine.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { engine.threads }
    );
    Ok(ExitCode::SUCCESS)
}
