//! `uniml`: inspect, check, run and benchmark ONNX models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use uniml::{Backend, Error, ModelInfo, Session, SessionOptions};

mod bench;
mod classify;
mod io;
#[cfg(feature = "serve")]
mod serve;

#[derive(Parser)]
#[command(name = "uniml", version, about = "Run ONNX models on any device: inspect, check, run, bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
pub struct EngineArgs {
    /// Kernel threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Backend: cpu, gpu or auto.
    #[arg(long, default_value = "cpu")]
    pub backend: Backend,
    /// How the GPU backend stores weights and activations: f32, or f16 (half the memory; f32 arithmetic).
    #[arg(long, default_value = "f32")]
    pub gpu_precision: uniml::GpuPrecision,
    /// Value of a symbolic dimension, e.g. --dim batch_size=4 (repeatable).
    #[arg(long = "dim", value_parser = parse_dim)]
    pub dims: Vec<(String, usize)>,
    /// Memory limit for any tensor and the buffer pool, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_limit_mib: u64,
}

impl EngineArgs {
    pub fn options(&self) -> SessionOptions {
        let mut o = SessionOptions::default().with_threads(self.threads).with_memory_limit(self.memory_limit_mib << 20);
        o.backend = self.backend;
        o.gpu_precision = self.gpu_precision;
        o.dims = self.dims.iter().cloned().collect();
        o
    }
}

fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got '{s}'"))?;
    Ok((k.to_string(), v.parse().map_err(|_| format!("'{v}' is not a dimension size"))?))
}

#[derive(Subcommand)]
enum Cmd {
    /// Inputs, outputs, opsets, op histogram, parameter count and bytes.
    Inspect {
        model: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also load the model on this backend (cpu, gpu or auto) and print where each node runs.
        #[arg(long)]
        backend: Option<Backend>,
    },
    /// Lists every unsupported op, dtype or attribute at once (exit code 1 if any).
    Check { model: PathBuf },
    /// Runs a model on tensors from files (.npy or ONNX TensorProto .pb).
    Run {
        model: PathBuf,
        /// NAME=FILE (repeatable).
        #[arg(long = "input")]
        inputs: Vec<String>,
        /// Directory with input_0.pb, input_1.pb, … (graph-input order) or NAME.npy files.
        #[arg(long)]
        inputs_dir: Option<PathBuf>,
        /// Where outputs are written (output_N.pb and NAME.npy).
        #[arg(long)]
        outputs_dir: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Latency (min/median/p90) and peak memory on random inputs.
    Bench {
        model: PathBuf,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// After timing, profile the runs per op type and per node.
        #[arg(long)]
        profile: bool,
        /// With --profile: how many of the slowest nodes to list (0 = all).
        #[arg(long, default_value_t = 12)]
        profile_nodes: usize,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Classifies an image with an ImageNet model and prints the top-5 with timings.
    Classify {
        model: PathBuf,
        image: PathBuf,
        /// One class name per line, in output order.
        #[arg(long)]
        labels: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Serves models over HTTP: Open Inference Protocol v2 (KServe/Triton), metrics, static files.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Inspect { model, json, backend } => inspect(&model, json, backend),
        Cmd::Check { model } => check(&model),
        Cmd::Run { model, inputs, inputs_dir, outputs_dir, engine } => io::run(&model, &inputs, inputs_dir.as_deref(), &outputs_dir, &engine),
        Cmd::Bench { model, runs, warmup, json, profile, profile_nodes, engine } => {
            bench::bench(&model, runs, warmup, json, profile.then_some(profile_nodes), &engine)
        }
        Cmd::Classify { model, image, labels, top, engine } => classify::classify(&model, &image, labels.as_deref(), top, &engine),
        #[cfg(feature = "serve")]
        Cmd::Serve(args) => serve::serve(&args),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))
}

/// Loads a session, with a spinner on a terminal for big models.
pub fn load(model: &Path, options: SessionOptions) -> Result<(Session, f64), Error> {
    let size = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
    let spinner = (size > 16 << 20 && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(format!("loading {} ({:.1} MB)", model.display(), size as f64 / 1e6));
        pb.enable_steady_tick(std::time::Duration::from_millis(100));
        pb
    });
    let t0 = Instant::now();
    let s = Session::from_file(model, options);
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    Ok((s?, ms))
}

fn inspect(model: &Path, json: bool, backend: Option<Backend>) -> Result<ExitCode, Error> {
    let info = ModelInfo::from_bytes(&read_file(model)?)?;
    let placement = match backend {
        Some(b) => {
            let mut o = SessionOptions::default().with_threads(1);
            o.backend = b;
            Some(Session::from_file(model, o)?.placement().clone())
        }
        None => None,
    };
    if json {
        let io = |v: &[uniml::IoInfo]| -> Vec<serde_json::Value> {
            v.iter()
                .map(|i| {
                    serde_json::json!({"name": i.name, "dtype": i.dtype.map(|d| d.name()),
                    "shape": i.shape.as_ref().map(|s| s.0.iter().map(|d| d.to_string()).collect::<Vec<_>>()), "sequence": i.is_sequence})
                })
                .collect()
        };
        let j = serde_json::json!({
            "ir_version": info.ir_version, "producer": info.producer, "opsets": info.opsets,
            "inputs": io(&info.inputs), "outputs": io(&info.outputs), "ops": info.op_histogram,
            "nodes": info.nodes, "initializers": info.initializers, "parameters": info.parameters,
            "parameter_bytes": info.parameter_bytes, "metadata": info.metadata,
            "placement": placement.as_ref().map(|p| serde_json::json!({
                "adapter": p.adapter, "gpu_nodes": p.gpu_nodes(), "cpu_nodes": p.cpu_nodes(), "fallback": p.fallback,
                "nodes": p.nodes.iter().map(|n| serde_json::json!({"node": n.node, "op": n.op,
                    "device": if n.device == uniml::Device::Gpu { "gpu" } else { "cpu" }, "reason": n.reason})).collect::<Vec<_>>(),
            })),
        });
        println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    println!("model:      {}", model.display());
    println!("ir_version: {}   producer: {}", info.ir_version, if info.producer.is_empty() { "-" } else { &info.producer });
    println!("opsets:     {}", info.opsets.iter().map(|(d, v)| format!("{d} {v}")).collect::<Vec<_>>().join(", "));
    println!("inputs:");
    for i in &info.inputs {
        println!("  {i}");
    }
    println!("outputs:");
    for o in &info.outputs {
        println!("  {o}");
    }
    println!("parameters: {} in {} initializers ({:.2} MB)", info.parameters, info.initializers, info.parameter_bytes as f64 / 1e6);
    println!("nodes:      {}", info.nodes);
    let mut ops: Vec<_> = info.op_histogram.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, n) in ops {
        println!("  {n:>5}  {op}");
    }
    for (k, v) in &info.metadata {
        println!("metadata:   {k} = {v}");
    }
    if let Some(p) = placement {
        println!("placement:  {}", p.summary());
        print!("{}", p.table());
    }
    Ok(ExitCode::SUCCESS)
}

fn check(model: &Path) -> Result<ExitCode, Error> {
    match Session::from_file(model, SessionOptions::default().with_threads(1)) {
        Ok(s) => {
            for w in s.ignored_attributes() {
                println!("warning: {w}");
            }
            println!("ok: every op of {} is supported ({} nodes after optimisation)", model.display(), s.node_count());
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Unsupported(list)) => {
            // One line per distinct problem, with the nodes where it occurs.
            let mut groups: std::collections::BTreeMap<(String, String, i64, String), Vec<String>> = Default::default();
            for u in &list {
                let domain = if u.domain.is_empty() { "ai.onnx".to_string() } else { u.domain.clone() };
                groups.entry((domain, u.op.clone(), u.opset, u.reason.clone())).or_default().push(u.node.clone());
            }
            println!("{} unsupported construct(s) in {} ({} distinct):", list.len(), model.display(), groups.len());
            for ((domain, op, opset, reason), nodes) in &groups {
                let shown: Vec<&str> = nodes.iter().take(5).map(String::as_str).collect();
                let more = if nodes.len() > 5 { format!(", … {} more", nodes.len() - 5) } else { String::new() };
                println!("  {domain}::{op} (opset {opset}): {reason} — {} node(s): {}{more}", nodes.len(), shown.join(", "));
            }
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            println!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
