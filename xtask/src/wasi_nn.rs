//! wasi-nn backed by uniml: `uniml-nn-host` (Wasmtime + wasmtime-wasi-nn, backend = uniml) runs
//! the guest `uniml-wasi-nn-guest` (wasm32-wasip2) on the bundled coffee photo.
//!
//! * `cargo xtask wasi-nn-test [--runs N]`: builds host, guest (wasm32-wasip2) and the same guest
//!   natively, then checks
//!   - the guest's WIT (`crates/uniml-wasi-nn-guest/wit/wasi-nn.wit`) is the one shipped in the
//!     pinned wasmtime-wasi-nn crate;
//!   - the guest through wasi-nn (model preloaded by name, and passed as bytes), the pure-wasm
//!     guest (uniml inside) and native uniml give the same top-5 and probabilities
//!     (max |diff| ≤ 1e-5), and `uniml classify` prints the same top-5 (when built in release);
//!   - onnxruntime agrees on the logits (when the pinned Python venv is there);
//!   - the guest cannot read outside its preopened directory (`/etc/passwd`, `..`, a symlink out);
//!   - bad models and inputs come back to the guest as wasi-nn errors, and it keeps working;
//!   and prints the latency table (median of N runs, efficientnet_lite0); `--write-docs` writes
//!   it into `docs/edge.md`.
//! * `cargo xtask wasi-nn-bench [--runs N]`: the same, plus the pure-wasm guest built with
//!   simd128, and writes the table into `docs/edge.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::{python, root, run, rustup_targets, step, target_dir};

const GUEST_TARGET: &str = "wasm32-wasip2";
const MODEL: &str = "models/efficientnet_lite0.onnx";
const LABELS: &str = "models/imagenet_labels.txt";
const IMAGE: &str = "testdata/coffee.png";
const GUEST_WIT: &str = "crates/uniml-wasi-nn-guest/wit/wasi-nn.wit";
const DOC: &str = "docs/edge.md";
const BEGIN: &str = "<!-- wasi-nn-bench:begin -->";
const END: &str = "<!-- wasi-nn-bench:end -->";

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs a command, returns its stdout (stderr passes through); fails on a non-zero exit.
fn output(cmd: &mut Command) -> Result<String, String> {
    cmd.current_dir(root());
    eprintln!("$ {:?}", cmd);
    let out = cmd.stderr(std::process::Stdio::inherit()).output().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("{:?} failed with {}:\n{stdout}", cmd.get_program(), out.status));
    }
    Ok(stdout)
}

fn json_line(s: &str) -> Result<Value, String> {
    let line = s.lines().rev().find(|l| l.trim_start().starts_with('{')).ok_or_else(|| format!("no JSON in output:\n{s}"))?;
    serde_json::from_str(line).map_err(|e| format!("bad JSON ({e}): {line}"))
}

/// The wasi-nn WIT the guest binds to must be the one wasmtime-wasi-nn (pinned) implements.
fn check_wit() -> Result<(), String> {
    let meta = output(cargo().args(["metadata", "--format-version", "1", "--locked"]))?;
    let meta: Value = serde_json::from_str(&meta).map_err(|e| e.to_string())?;
    let pkg = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "wasmtime-wasi-nn"))
        .ok_or("wasmtime-wasi-nn is not in the workspace's dependency graph")?;
    let manifest = PathBuf::from(pkg["manifest_path"].as_str().ok_or("no manifest_path")?);
    let upstream = manifest.parent().ok_or("bad manifest path")?.join("wit/wasi-nn.wit");
    let a = std::fs::read(&upstream).map_err(|e| format!("{}: {e}", upstream.display()))?;
    let b = std::fs::read(root().join(GUEST_WIT)).map_err(|e| format!("{GUEST_WIT}: {e}"))?;
    if a != b {
        return Err(format!("{GUEST_WIT} differs from {} (wasmtime-wasi-nn {}): copy it again", upstream.display(), pkg["version"]));
    }
    println!("{GUEST_WIT} == wasmtime-wasi-nn {} wit/wasi-nn.wit", pkg["version"].as_str().unwrap_or("?"));
    Ok(())
}

struct Built {
    host: PathBuf,
    guest: PathBuf,
    guest_simd: Option<PathBuf>,
    native: PathBuf,
    cli: PathBuf,
}

fn build(simd: bool) -> Result<Built, String> {
    rustup_targets(&[GUEST_TARGET])?;
    step("building uniml-nn-host, the native guest and uniml (release), the guest for wasm32-wasip2");
    let t0 = Instant::now();
    // Two invocations, not one: built together, feature unification would give the shared crates
    // (uniml, serde, ...) other features than either build alone, and rebuild Wasmtime.
    run(cargo().args(["build", "--release", "-p", "uniml-wasi-nn-host"]))?;
    // The host's backend unit tests, on the release artifacts just built.
    run(cargo().args(["test", "--release", "-p", "uniml-wasi-nn-host"]))?;
    run(cargo().args(["build", "--release", "-p", "uniml-wasi-nn-guest"]))?;
    run(cargo().args(["build", "-p", "uniml-wasi-nn-guest", "--target", GUEST_TARGET, "--profile", "component"]))?;
    let guest_simd = if simd {
        // Own target dir: a RUSTFLAGS change must not rebuild the scalar artifacts.
        let tdir = target_dir().join("wasi-nn-simd");
        let mut c = cargo();
        c.args(["build", "-p", "uniml-wasi-nn-guest", "--target", GUEST_TARGET, "--profile", "component", "--target-dir"])
            .arg(&tdir)
            .env("RUSTFLAGS", "-C target-feature=+simd128");
        run(&mut c)?;
        Some(tdir.join(GUEST_TARGET).join("component/uniml-wasi-nn-guest.wasm"))
    } else {
        None
    };
    eprintln!("built in {:.1} s", t0.elapsed().as_secs_f64());
    let rel = target_dir().join("release");
    Ok(Built {
        host: rel.join("uniml-nn-host"),
        guest: target_dir().join(GUEST_TARGET).join("component/uniml-wasi-nn-guest.wasm"),
        guest_simd,
        native: rel.join("uniml-wasi-nn-guest"),
        cli: rel.join("uniml"),
    })
}

struct Work {
    dir: PathBuf,
    /// Preopened in the guest as `/data`: photo, labels, model (for `load` from bytes), outputs.
    data: PathBuf,
}

fn prepare() -> Result<Work, String> {
    let dir = root().join(".cache/wasi-nn");
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    for d in [data.join("out"), dir.join("in"), dir.join("ref"), dir.join("native")] {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // Preopen the real folder: WASI never follows a path out of a preopen.
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;
    let data = dir.join("data");
    for (from, to) in [(IMAGE, "coffee.png"), (LABELS, "imagenet_labels.txt"), (MODEL, "efficientnet_lite0.onnx")] {
        std::fs::copy(root().join(from), data.join(to)).map_err(|e| format!("{from}: {e}"))?;
    }
    // A link pointing out of the preopen: following it must fail inside the guest.
    #[cfg(unix)]
    std::os::unix::fs::symlink(root().join("Cargo.toml"), data.join("escape")).map_err(|e| e.to_string())?;
    Ok(Work { dir, data })
}

fn host_cmd(b: &Built, w: &Work, guest: &Path, threads: usize) -> Command {
    let mut c = Command::new(&b.host);
    c.arg(guest)
        .arg("--dir")
        .arg(format!("{}::/data", w.data.display()))
        .arg("--model")
        .arg(format!("efficientnet_lite0={}", root().join(MODEL).display()))
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--cache-dir")
        .arg(target_dir().join("wasi-nn-cwasm"))
        .arg("--");
    c
}

const GUEST_IMAGE: [&str; 4] = ["--image", "/data/coffee.png", "--labels", "/data/imagenet_labels.txt"];

fn probs(j: &Value) -> Result<Vec<f64>, String> {
    j["probabilities"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).ok_or_else(|| format!("no probabilities in {j}"))
}

fn top5(j: &Value) -> Vec<u64> {
    j["top"].as_array().map(|a| a.iter().filter_map(|t| t["index"].as_u64()).collect()).unwrap_or_default()
}

fn compare(name: &str, got: &Value, native: &Value) -> Result<f64, String> {
    let (a, b) = (probs(got)?, probs(native)?);
    if a.len() != b.len() || a.is_empty() {
        return Err(format!("{name}: {} probabilities vs {} native", a.len(), b.len()));
    }
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    println!("{name:>34}: top-5 {:?}, max |diff| of probabilities vs native {diff:.2e}", top5(got));
    if top5(got) != top5(native) {
        return Err(format!("{name}: top-5 {:?} != native {:?}", top5(got), top5(native)));
    }
    if diff > 1e-5 {
        return Err(format!("{name}: probabilities differ from native by {diff:e} > 1e-5"));
    }
    Ok(diff)
}

/// `uniml classify` prints `  IDX  PP.PP%  label` lines: same classes, same percentages.
fn compare_cli(cli_out: &str, native: &Value) -> Result<(), String> {
    let rows: Vec<(u64, f64)> = cli_out
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let i = it.next()?.parse().ok()?;
            let p = it.next()?.strip_suffix('%')?.parse().ok()?;
            Some((i, p))
        })
        .collect();
    let want = native["top"].as_array().ok_or("no top")?;
    if rows.len() != want.len() {
        return Err(format!("uniml classify printed {} rows, expected {}:\n{cli_out}", rows.len(), want.len()));
    }
    for ((i, p), w) in rows.iter().zip(want) {
        let wp = 100.0 * w["probability"].as_f64().unwrap_or(f64::NAN);
        if Some(*i) != w["index"].as_u64() || (p - wp).abs() > 0.006 {
            return Err(format!("uniml classify: {i} {p}% vs guest {} {wp:.4}%", w["index"]));
        }
    }
    println!("{:>34}: top-5 {:?} (same classes and percentages)", "uniml classify (native CLI)", rows.iter().map(|r| r.0).collect::<Vec<_>>());
    Ok(())
}

struct Row {
    what: String,
    model_runs_in: String,
    j: Value,
}

fn timing(j: &Value, k: &str) -> f64 {
    j["timings_ms"][k].as_f64().unwrap_or(f64::NAN)
}

fn table(rows: &[Row], runs: usize) -> String {
    let native = rows.first().map(|r| timing(&r.j, "median_run")).unwrap_or(f64::NAN);
    let mut s = format!(
        "| guest / engine | model runs in | median run (ms, of {runs}) | × native | first run (ms) | load (ms) |\n|---|---|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let m = timing(&r.j, "median_run");
        s += &format!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.1} |\n",
            r.what,
            r.model_runs_in,
            m,
            m / native,
            timing(&r.j, "first_run"),
            timing(&r.j, "load")
        );
    }
    s
}

fn onnxruntime(w: &Work, outputs: &[&str]) -> Result<(), String> {
    let py = match python() {
        Ok(p) => p,
        Err(e) => {
            println!("onnxruntime comparison skipped: no Python venv ({e})");
            return Ok(());
        }
    };
    let d = |s: &str| w.dir.join(s).display().to_string();
    let r = json_line(&output(Command::new(&py).args(["scripts/reference.py", MODEL, "--inputs-dir", &d("in"), "--outputs-dir", &d("ref")]))?)?;
    let file = r["outputs"][0]["file"].as_str().ok_or("reference.py: no output file")?;
    let file = Path::new(file).file_name().ok_or("bad file")?.to_owned();
    for name in outputs {
        let src = w.dir.join(format!("{name}.npy"));
        let dst_dir = w.dir.join(format!("cmp-{name}"));
        std::fs::create_dir_all(&dst_dir).map_err(|e| e.to_string())?;
        let _ = std::fs::copy(&src, dst_dir.join(&file)).map_err(|e| format!("{}: {e}", src.display()))?;
        run(Command::new(&py).args(["scripts/compare_npy.py", &dst_dir.display().to_string(), &d("ref"), "1e-4", &format!("{name} logits vs onnxruntime")]))?;
    }
    Ok(())
}

pub fn test(args: &[String], write_docs: bool, simd: bool) -> Result<(), String> {
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).and_then(|s| s.parse().ok()).ok_or("--runs N")?,
        None => 10,
    };
    step("the guest's wasi-nn WIT is the one of the pinned wasmtime-wasi-nn");
    check_wit()?;
    let b = build(simd)?;
    let w = prepare()?;
    let model_abs = root().join(MODEL).display().to_string();
    let data = |s: &str| format!("/data/{s}");

    step("native: the same program with uniml linked in (1 thread), and `uniml classify`");
    let native = json_line(&output(
        Command::new(&b.native)
            .args(["--engine", "uniml", "--model-file", &model_abs, "--image"])
            .arg(root().join(IMAGE))
            .arg("--labels")
            .arg(root().join(LABELS))
            .args(["--all", "--threads", "1", "--runs", &runs.to_string(), "--save-input"])
            .arg(w.dir.join("in/input.npy"))
            .arg("--save-output")
            .arg(w.dir.join("native.npy")),
    )?)?;
    let native2 = json_line(&output(
        Command::new(&b.native)
            .args(["--engine", "uniml", "--model-file", &model_abs, "--image"])
            .arg(root().join(IMAGE))
            .args(["--all", "--threads", "2", "--runs", &runs.to_string()]),
    )?)?;
    // `uniml classify` (release) when it is built already; the native guest above is the same
    // preprocessing and the same Session API, so the check does not build the CLI's server stack.
    let cli = if b.cli.exists() {
        let out = output(Command::new(&b.cli).args(["classify", MODEL, IMAGE, "--labels", LABELS, "--threads", "1"]))?;
        print!("{out}");
        Some(out)
    } else {
        println!("`uniml classify` comparison skipped: {} not built (cargo build --release --bin uniml)", b.cli.display());
        None
    };

    step("guest (wasm32-wasip2) through wasi-nn: model preloaded by the host, load-by-name");
    let mut c = host_cmd(&b, &w, &b.guest, 1);
    c.args(["--engine", "wasi-nn", "--model", "efficientnet_lite0"]).args(GUEST_IMAGE).args(["--all", "--runs", &runs.to_string(), "--save-output", &data("out/nn.npy")]);
    let nn = json_line(&output(&mut c)?)?;
    let mut c = host_cmd(&b, &w, &b.guest, 2);
    c.args(["--engine", "wasi-nn", "--model", "efficientnet_lite0"]).args(GUEST_IMAGE).args(["--all", "--runs", &runs.to_string()]);
    let nn2 = json_line(&output(&mut c)?)?;

    step("guest through wasi-nn: model bytes read by the guest from its preopen, load");
    let mut c = host_cmd(&b, &w, &b.guest, 1);
    c.args(["--engine", "wasi-nn", "--model-file", &data("efficientnet_lite0.onnx")]).args(GUEST_IMAGE).args(["--all"]);
    let nn_bytes = json_line(&output(&mut c)?)?;

    step("pure-wasm guest: uniml compiled into the guest (no wasi-nn), same host");
    let wasm_runs = runs.min(5).max(1);
    let mut c = host_cmd(&b, &w, &b.guest, 1);
    c.args(["--engine", "uniml", "--model-file", &data("efficientnet_lite0.onnx")]).args(GUEST_IMAGE).args(["--all", "--runs", &wasm_runs.to_string(), "--save-output", &data("out/wasm.npy")]);
    let wasm = json_line(&output(&mut c)?)?;
    let wasm_simd = match &b.guest_simd {
        Some(g) => {
            let mut c = host_cmd(&b, &w, g, 1);
            c.args(["--engine", "uniml", "--model-file", &data("efficientnet_lite0.onnx")]).args(GUEST_IMAGE).args(["--all", "--runs", &wasm_runs.to_string()]);
            Some(json_line(&output(&mut c)?)?)
        }
        None => None,
    };

    step("same answers: top-5 and probabilities (max |diff| ≤ 1e-5) against native uniml");
    if let Some(cli) = &cli {
        compare_cli(cli, &native)?;
    }
    compare("native, 2 threads", &native2, &native)?;
    compare("wasi-nn guest (load-by-name)", &nn, &native)?;
    compare("wasi-nn guest, host 2 threads", &nn2, &native)?;
    compare("wasi-nn guest (load from bytes)", &nn_bytes, &native)?;
    compare("pure-wasm guest", &wasm, &native)?;
    if let Some(j) = &wasm_simd {
        compare("pure-wasm guest (simd128)", j, &native)?;
    }
    for name in ["nn", "wasm"] {
        let src = w.data.join(format!("out/{name}.npy"));
        std::fs::copy(&src, w.dir.join(format!("{name}.npy"))).map_err(|e| format!("{}: {e}", src.display()))?;
    }
    step("onnxruntime (pinned venv) on the same preprocessed tensor");
    onnxruntime(&w, &["native", "nn", "wasm"])?;

    step("sandbox: the guest reads only inside its preopen");
    let mut c = host_cmd(&b, &w, &b.guest, 1);
    c.args(["--try-read", "/data/coffee.png", "--try-read", "/etc/passwd", "--try-read", "/data/../../../Cargo.toml", "--try-read", "../Cargo.toml", "--try-read", "/data/escape", "--try-read", "Cargo.toml"]);
    let sandbox = json_line(&output(&mut c)?)?;
    let reads = sandbox["try_read"].as_array().ok_or("no try_read")?;
    for r in reads {
        let (path, ok) = (r["path"].as_str().unwrap_or(""), r["ok"].as_bool().unwrap_or(true));
        let want = path == "/data/coffee.png";
        println!("  read {path:<28} → {}", if ok { format!("allowed ({} bytes)", r["bytes"]) } else { format!("denied: {}", r["error"].as_str().unwrap_or("")) });
        if ok != want {
            return Err(format!("sandbox: reading {path} {} but should {}", if ok { "worked" } else { "failed" }, if want { "work" } else { "fail" }));
        }
    }

    step("bad models and inputs: wasi-nn errors in the guest, never a trap; the graph still works after");
    let mut c = host_cmd(&b, &w, &b.guest, 1);
    c.args(["--check-errors", "--model-file", &data("efficientnet_lite0.onnx")]);
    let errs = json_line(&output(&mut c)?)?;
    for e in errs["errors"].as_array().ok_or("no errors list")? {
        println!("  {:<34} {:<22} {}", e["case"].as_str().unwrap_or(""), e["code"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""));
    }
    if errs["after_errors"]["ok"] != true {
        return Err(format!("graph unusable after errors: {errs}"));
    }

    step(&format!("latency, efficientnet_lite0 on coffee.png (median of {runs} runs; pure-wasm guest: {wasm_runs})"));
    let mut rows = vec![
        Row { what: "native (`uniml-wasi-nn-guest` built for the host), 1 thread".into(), model_runs_in: "native uniml".into(), j: native },
        Row { what: "wasm32-wasip2 guest → wasi-nn, host 1 thread".into(), model_runs_in: "host's native uniml".into(), j: nn },
        Row { what: "pure-wasm guest (uniml inside, scalar)".into(), model_runs_in: "uniml in wasm, Wasmtime/Cranelift".into(), j: wasm },
    ];
    if let Some(j) = wasm_simd {
        rows.push(Row { what: "pure-wasm guest (uniml inside, simd128)".into(), model_runs_in: "uniml in wasm, Wasmtime/Cranelift".into(), j });
    }
    rows.push(Row { what: "native, 2 threads".into(), model_runs_in: "native uniml".into(), j: native2 });
    rows.push(Row { what: "wasm32-wasip2 guest → wasi-nn, host 2 threads".into(), model_runs_in: "host's native uniml".into(), j: nn2 });
    let t = table(&rows, runs);
    print!("{t}");
    println!("(guest-side timings: a wasi-nn run is tensor creation + compute + reading the output, as the guest sees it; load = session creation or load/load-by-name + init-execution-context)");
    if write_docs {
        write_table(&t, runs, wasm_runs)?;
    }
    Ok(())
}

fn write_table(t: &str, runs: usize, wasm_runs: usize) -> Result<(), String> {
    let path = root().join(DOC);
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("{DOC}: {e}"))?;
    let (a, rest) = doc.split_once(BEGIN).ok_or_else(|| format!("{DOC} has no {BEGIN} marker"))?;
    let (_, b) = rest.split_once(END).ok_or_else(|| format!("{DOC} has no {END} marker"))?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let new = format!(
        "{a}{BEGIN}\n<!-- written by `cargo xtask wasi-nn-bench`; do not edit by hand -->\n{cpu}, {cores} cores visible; median of {runs} runs ({wasm_runs} for the pure-wasm guests), after one untimed run.\n\n{t}{END}{b}"
    );
    std::fs::write(&path, new).map_err(|e| format!("{DOC}: {e}"))?;
    println!("wrote the table into {DOC}");
    Ok(())
}
