//! `uniml bench`: latency statistics on random inputs, and peak memory.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use uniml::{DType, Dim, Error, Result, Tensor};

use crate::EngineArgs;

/// Deterministic pseudo-random numbers (xorshift) so runs are repeatable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A random tensor for an input: floats in [0,1), ints in [0,10), bools.
fn random_input(dtype: DType, shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    Ok(match dtype {
        DType::F32 => Tensor::from_vec(shape, (0..n).map(|_| rng.unit()).collect())?,
        DType::F64 => Tensor::from_vec(shape, (0..n).map(|_| rng.unit() as f64).collect())?,
        DType::F16 => Tensor::from_vec(shape, (0..n).map(|_| uniml::f16::from_f32(rng.unit())).collect())?,
        DType::I64 => Tensor::from_vec(shape, (0..n).map(|_| (rng.next() % 10) as i64).collect())?,
        DType::I32 => Tensor::from_vec(shape, (0..n).map(|_| (rng.next() % 10) as i32).collect())?,
        DType::U8 => Tensor::from_vec(shape, (0..n).map(|_| (rng.next() % 10) as u8).collect())?,
        DType::I8 => Tensor::from_vec(shape, (0..n).map(|_| (rng.next() % 10) as i8).collect())?,
        DType::Bool => Tensor::from_bools(shape, &(0..n).map(|_| rng.next() % 2 == 0).collect::<Vec<_>>())?,
        other => return Err(Error::Other(format!("bench cannot make random {other} inputs"))),
    })
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

pub fn bench(model: &Path, runs: usize, warmup: usize, json: bool, profile: Option<usize>, engine: &EngineArgs) -> Result<ExitCode> {
    let (session, create_ms) = crate::load(model, engine.options())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut inputs = Vec::new();
    for info in session.inputs() {
        let dtype = info.dtype.unwrap_or(DType::F32);
        let shape: Vec<usize> = match &info.shape {
            Some(s) => s
                .0
                .iter()
                .map(|d| match d {
                    Dim::Known(k) => *k,
                    Dim::Sym(name) => engine.dims.iter().find(|(n, _)| n == name).map(|(_, v)| *v).unwrap_or(1),
                    Dim::Unknown => 1,
                })
                .collect(),
            None => vec![],
        };
        inputs.push((info.name.clone(), random_input(dtype, &shape, &mut rng)?));
    }
    let views: Vec<(&str, uniml::TensorView)> = inputs.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let runs = runs.max(1);
    let bar = (!json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let pb = indicatif::ProgressBar::new((warmup + runs) as u64);
        pb.set_style(indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
        pb.set_message("bench");
        pb
    });
    for _ in 0..warmup {
        session.run(&views)?;
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        session.run(&views)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let (min, median, p90) = (times[0], pct(0.5), pct(0.9));
    let rss = peak_rss_bytes();
    let threads = if engine.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { engine.threads };
    if json {
        let j = serde_json::json!({
            "model": model.display().to_string(), "threads": threads, "runs": runs,
            "min_ms": min, "median_ms": median, "p90_ms": p90, "mean_ms": times.iter().sum::<f64>() / times.len() as f64,
            "peak_rss_bytes": rss, "session_create_ms": create_ms, "weight_bytes": session.weight_bytes(),
            "pool_peak_bytes": session.pool_peak_bytes(), "backend": if session.on_gpu() { "gpu" } else { "cpu" },
            "gpu_nodes": session.placement().gpu_nodes(), "nodes": session.placement().nodes.len(),
            "adapter": session.placement().adapter,
            "gpu_precision": if session.on_gpu() { format!("{:?}", engine.gpu_precision) } else { String::new() },
        });
        println!("{j}");
    } else {
        println!("{}: {} runs, {threads} thread(s)", model.display(), runs);
        if session.on_gpu() {
            println!("  placement {}", session.placement().summary());
        }
        println!("  latency   min {min:.3} ms   median {median:.3} ms   p90 {p90:.3} ms");
        println!("  session creation {create_ms:.1} ms   peak RSS {:.1} MB   weights {:.1} MB", rss as f64 / 1e6, session.weight_bytes() as f64 / 1e6);
    }
    if let Some(top) = profile {
        print_profile(&session, &views, runs, top)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Wall time per node, summed over runs (the observer holds the clock: the
/// engine core has none).
struct NodeTimer {
    started: std::sync::Mutex<Option<Instant>>,
    total: std::sync::Mutex<Vec<f64>>,
}

impl uniml::StepObserver for NodeTimer {
    fn before(&self, _node: usize) {
        if let Ok(mut s) = self.started.lock() {
            *s = Some(Instant::now());
        }
    }
    fn after(&self, node: usize) {
        if let (Some(t0), Ok(mut total)) = (self.started.lock().ok().and_then(|mut s| s.take()), self.total.lock()) {
            if node >= total.len() {
                total.resize(node + 1, 0.0);
            }
            total[node] += t0.elapsed().as_secs_f64() * 1e3;
        }
    }
}

fn print_profile(session: &uniml::Session, views: &[(&str, uniml::TensorView)], runs: usize, top: usize) -> Result<()> {
    let timer = NodeTimer { started: Default::default(), total: Default::default() };
    let vals: Vec<(&str, uniml::ValueRef)> = views.iter().map(|(n, t)| (*n, uniml::ValueRef::Tensor(t.clone()))).collect();
    for _ in 0..runs {
        session.run_observed(&vals, Some(&timer))?;
    }
    let nodes = session.nodes();
    let total = timer.total.into_inner().unwrap_or_default();
    let per_run = |ms: f64| ms / runs as f64;
    let all: f64 = total.iter().sum();
    let mut by_op: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
    for (i, ms) in total.iter().enumerate() {
        if let Some((_, op)) = nodes.get(i) {
            let e = by_op.entry(op).or_default();
            e.0 += 1;
            e.1 += ms;
        }
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    println!("\nprofile ({runs} runs, per-run ms):\n  {:<28} {:>6} {:>10} {:>7}", "op", "nodes", "ms", "%");
    for (op, (count, ms)) in ops {
        println!("  {op:<28} {count:>6} {:>10.3} {:>6.1}%", per_run(ms), 100.0 * ms / all.max(1e-12));
    }
    let mut slowest: Vec<(usize, f64)> = total.iter().copied().enumerate().collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("\n  slowest nodes:");
    let top = if top == 0 { slowest.len() } else { top };
    for (i, ms) in slowest.into_iter().take(top) {
        if let Some((name, op)) = nodes.get(i) {
            println!("  {:>10.3} ms  {op:<20} {name}", per_run(ms));
        }
    }
    Ok(())
}
