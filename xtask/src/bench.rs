//! `cargo xtask bench`: uniml (`uniml bench --json`, release build) beside
//! onnxruntime (`scripts/bench_ort.py`, pinned PyPI build) on the same models,
//! threads and input shapes, in one run. Writes its section of
//! `docs/benchmarks.md` and a ratio chart `docs/bench-cpu.svg`.
//!
//! Options:
//! - `--runs K` timed runs per measurement (default 30);
//! - `--cpus LIST` pins both engines to these CPUs with `taskset -c LIST`
//!   (e.g. `0,1` to measure a 2-core budget on a bigger host);
//! - `--uniml PATH` uses a prebuilt `uniml` binary (no cargo build);
//! - `--no-fetch` uses the models already in `.cache/models`;
//! - `--label TEXT` names the machine in the report (default: /proc/cpuinfo);
//! - `--section NAME` writes the section under this name (default `cpu-native`);
//! - `--browser`: the wasm package vs onnxruntime-web in Chromium and Node instead
//!   (`bench_web.rs`, its own options and section);
//! - `--gpu`: = `cargo xtask gpu-bench` (uniml on the GPU backend; the PyTorch peer runs on the
//!   GPU machine: `scripts/device_bench.sh gpu`, docs/gpu.md).
//!
//! `UNIML_PYTHON` overrides the pinned venv's Python (a host without PyPI).

use std::path::PathBuf;
use std::process::Command;

use crate::{python, root, run, step, target_dir};

pub(crate) struct Model {
    pub(crate) name: &'static str,
    pub(crate) path: &'static str,
    pub(crate) dims: &'static [&'static str],
}

/// The benchmark's models, shared with `cargo xtask bench --browser` (`bench_web.rs`).
pub(crate) const MODELS: &[Model] = &[
    Model { name: "MobileNetV2 1.0 224 (generated)", path: ".cache/models/mobilenetv2.onnx", dims: &["batch_size=1"] },
    Model { name: "EfficientNet-Lite0", path: "models/efficientnet_lite0.onnx", dims: &["N=1"] },
    Model { name: "selfie_segmentation", path: "models/selfie_segmentation.onnx", dims: &[] },
    Model { name: "paraphrase-MiniLM-L3 1×128", path: ".cache/models/paraphrase-MiniLM-L3-v2.onnx", dims: &["batch_size=1", "sequence_length=128"] },
    Model { name: "ResNet-50 (generated)", path: ".cache/models/resnet50.onnx", dims: &["batch_size=1"] },
    Model { name: "digits8x8_cnn", path: "models/digits8x8_cnn.onnx", dims: &["N=1"] },
    Model { name: "silero_vad_16k_sequence (16 frames)", path: ".cache/models/silero_vad_16k_sequence.onnx", dims: &["sequence_length=16"] },
    Model { name: "PP-OCRv4 det 1×3×640×640", path: ".cache/models/ppocrv4_det.onnx", dims: &["p2o.DynamicDimension.0=1", "p2o.DynamicDimension.1=640", "p2o.DynamicDimension.2=640"] },
    Model { name: "light_squeezenet", path: ".cache/models/light/light_squeezenet.onnx", dims: &[] },
    Model { name: "light_shufflenet", path: ".cache/models/light/light_shufflenet.onnx", dims: &[] },
    Model { name: "light_resnet50", path: ".cache/models/light/light_resnet50.onnx", dims: &[] },
    Model { name: "light_densenet121", path: ".cache/models/light/light_densenet121.onnx", dims: &[] },
];

fn json_of(out: &std::process::Output, what: &str) -> Result<serde_json::Value, String> {
    if !out.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).ok_or_else(|| format!("{what}: no JSON in output"))?;
    serde_json::from_str(line).map_err(|e| format!("{what}: {e}"))
}

pub(crate) fn arg_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// A command, pinned to `cpus` with taskset when asked.
fn pinned(program: &std::path::Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// One measured pair.
struct Row {
    model: &'static str,
    threads: usize,
    ours: serde_json::Value,
    peer: serde_json::Value,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.ours["median_ms"].as_f64(), self.peer["median_ms"].as_f64()) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    fn markdown(&self) -> String {
        let cell = |j: &serde_json::Value, k: &str, scale: f64, digits: usize| j[k].as_f64().map(|v| format!("{:.*}", digits, v / scale)).unwrap_or_else(|| "—".into());
        let ratio = self.ratio().map(|r| format!("{r:.2}")).unwrap_or_else(|| "—".into());
        format!(
            "| {} | {} | {} | {} | **{ratio}** | {} | {} | {} | {} |",
            self.model,
            self.threads,
            cell(&self.ours, "median_ms", 1.0, 2),
            cell(&self.peer, "median_ms", 1.0, 2),
            cell(&self.ours, "peak_rss_bytes", 1e6, 0),
            cell(&self.peer, "peak_rss_bytes", 1e6, 0),
            cell(&self.ours, "session_create_ms", 1.0, 0),
            cell(&self.peer, "session_create_ms", 1.0, 0),
        )
    }
}

pub fn bench(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--browser") {
        return crate::bench_web::bench(args);
    }
    if args.iter().any(|a| a == "--gpu") {
        return crate::gpu::gpu_bench(args);
    }
    let runs: usize = arg_value(args, "--runs").and_then(|v| v.parse().ok()).unwrap_or(30);
    // On a shared machine a burst of outside load can land on one engine's
    // measurement only: the engines take turns for `rounds` rounds and each
    // keeps its round with the lowest median.
    let rounds: usize = arg_value(args, "--rounds").and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let cpus = arg_value(args, "--cpus");
    let section = arg_value(args, "--section").unwrap_or("cpu-native").to_string();
    let py = match std::env::var_os("UNIML_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => python()?,
    };
    if !args.iter().any(|a| a == "--no-fetch") {
        crate::models()?;
    }
    let uniml = match arg_value(args, "--uniml") {
        Some(p) => PathBuf::from(p),
        None => {
            step("building uniml (release)");
            run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(["build", "--release", "-q", "--bin", "uniml"]))?;
            target_dir().join("release/uniml")
        }
    };
    let mut rows = Vec::new();
    let mut ort_version = String::from("?");
    for m in MODELS {
        let path = root().join(m.path);
        if !path.exists() {
            eprintln!("skipping {} ({} missing)", m.name, m.path);
            continue;
        }
        for threads in [1usize, 2] {
            step(&format!("{} — {threads} thread(s)", m.name));
            let mut ours = pinned(&uniml, cpus);
            ours.arg("bench").arg(&path).args(["--json", "--runs", &runs.to_string(), "--threads", &threads.to_string()]);
            let mut peer = pinned(&py, cpus);
            peer.arg(root().join("scripts/bench_ort.py")).arg(&path).args(["--runs", &runs.to_string(), "--threads", &threads.to_string()]);
            for d in m.dims {
                ours.args(["--dim", d]);
                peer.args(["--dim", d]);
            }
            // A failure on one side is reported in the table, not fatal: the
            // rest of the run still measures.
            let measure = |cmd: &mut Command, what: &str| match cmd.output().map_err(|e| format!("{what}: {e}")).and_then(|o| json_of(&o, what)) {
                Ok(j) => j,
                Err(e) => {
                    eprintln!("{e}");
                    serde_json::json!({ "error": e })
                }
            };
            let median = |j: &serde_json::Value| j["median_ms"].as_f64().unwrap_or(f64::INFINITY);
            let keep_best = |best: &mut Option<serde_json::Value>, j: serde_json::Value| {
                if best.as_ref().is_none_or(|b| median(&j) < median(b)) {
                    *best = Some(j);
                }
            };
            let (mut best_ours, mut best_peer) = (None, None);
            for _ in 0..rounds {
                keep_best(&mut best_ours, measure(&mut ours, "uniml bench"));
                keep_best(&mut best_peer, measure(&mut peer, "onnxruntime bench"));
            }
            let row = Row { model: m.name, threads, ours: best_ours.unwrap_or_default(), peer: best_peer.unwrap_or_default() };
            if let Some(v) = row.peer["onnxruntime"].as_str() {
                ort_version = v.to_string();
            }
            eprintln!("{}", row.markdown());
            rows.push(row);
        }
    }
    let label = arg_value(args, "--label").map(str::to_string).unwrap_or_else(machine_label);
    let pin = cpus.map(|c| format!(", both pinned to CPUs {c} (taskset)")).unwrap_or_default();
    let chart = format!("bench-{section}.svg");
    let mut md = format!(
        "Generated by `cargo xtask bench` ({runs} runs after warm-up, median latency; random inputs; same model files; \
the two engines take turns for {rounds} rounds and each keeps its round with the lowest median, so that a burst of outside load on a shared machine does not land on one side only).\n\
         Machine: {label}{pin}. Peer: onnxruntime {ort_version} (PyPI, CPU EP) in the same run.\n\
         Ratio = uniml median ÷ onnxruntime median (lower is better; < 1 means uniml is faster).\n\n\
         | model | threads | uniml ms | onnxruntime ms | ratio | uniml peak RSS MB | ort peak RSS MB | uniml create ms | ort create ms |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in &rows {
        md.push_str(&r.markdown());
        md.push('\n');
    }
    md.push_str(&format!("\n![uniml ÷ onnxruntime, {section}]({chart})\n"));
    let docs = root().join("docs");
    std::fs::create_dir_all(&docs).map_err(|e| e.to_string())?;
    std::fs::write(docs.join(&chart), ratio_chart(&rows)).map_err(|e| e.to_string())?;
    write_section(&section, &format!("CPU: uniml vs onnxruntime ({section})"), &md)?;
    eprintln!("wrote docs/benchmarks.md (section {section}) and docs/{chart}");
    Ok(())
}

pub(crate) fn machine_label() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    format!("{cpu}, {} logical cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Replaces (or appends) the section `name` of `docs/benchmarks.md`, leaving
/// the other sections (server, browser, GPU) as they are.
pub fn write_section(name: &str, title: &str, body: &str) -> Result<(), String> {
    let path = root().join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n\nEach section is written by the command it names; the others are left as they are.\n".into());
    let (begin, end) = (format!("<!-- section:{name} -->"), format!("<!-- /section:{name} -->"));
    let block = format!("{begin}\n## {title}\n\n{body}\n{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    std::fs::write(&path, new).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// A horizontal bar chart of the ratios (SVG), with the 1.0 line marked.
fn ratio_chart(rows: &[Row]) -> String {
    let (bar_h, left, width) = (18.0, 300.0, 360.0);
    let max = rows.iter().filter_map(Row::ratio).fold(1.5f64, f64::max).min(5.0);
    let height = 40.0 + bar_h * rows.len() as f64 + 30.0;
    let x = |r: f64| left + width * (r / max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <text x=\"10\" y=\"20\" font-weight=\"bold\">uniml median ÷ onnxruntime median (lower is better)</text>\n",
        w = left + width + 60.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 34.0 + bar_h * i as f64;
        svg.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} · {}t</text>\n", left - 6.0, y + 12.0, xml_escape(r.model), r.threads));
        if let Some(ratio) = r.ratio() {
            let colour = if ratio <= 1.0 { "#2e7d32" } else { "#c62828" };
            svg.push_str(&format!(
                "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{}\">{ratio:.2}</text>\n",
                (x(ratio.min(max)) - left).max(1.0),
                bar_h - 4.0,
                x(ratio.min(max)) + 4.0,
                y + 12.0
            ));
        }
    }
    let one = x(1.0);
    svg.push_str(&format!(
        "<line x1=\"{one:.1}\" y1=\"28\" x2=\"{one:.1}\" y2=\"{:.1}\" stroke=\"black\" stroke-dasharray=\"4 3\"/><text x=\"{one:.1}\" y=\"{:.1}\" text-anchor=\"middle\">1.0</text>\n</svg>\n",
        height - 24.0,
        height - 10.0
    ));
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
