//! `cargo xtask serve-test` and `cargo xtask serve-bench` for `uniml serve`.
//!
//! serve-test: the server crate's Rust tests, then `scripts/test_server_triton.py`
//! (NVIDIA's tritonclient against `uniml serve` (dev profile), onnxruntime as the
//! oracle in the same script).
//!
//! serve-bench: `wrk` (Debian's, keep-alive HTTP/1.1 over loopback; a Lua script
//! posts the body and counts 503s apart from other statuses) sends the same OIP
//! JSON request for EfficientNet-Lite0 at 1, 2, 4, 8 and 32 connections for a few
//! seconds each, first to `uniml serve`, then to `scripts/ort_server.py`
//! (stdlib http.server + onnxruntime) in the same run. Reports throughput,
//! p50/p99 latency, the server's peak RSS (VmHWM from /proc) and failures; 503s
//! (load shedding) are counted apart. Writes the table as the "server" section of
//! docs/benchmarks.md (`bench::write_section`); `--check` (in `cargo xtask test`)
//! only asserts: no failures, no 503 below the server's capacity.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{root, run, step, target_dir};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The venv's python with tritonclient (scripts/setup-server.sh, idempotent).
fn server_python() -> Result<std::path::PathBuf, String> {
    let out = Command::new("bash").arg(root().join("scripts/setup-server.sh")).current_dir(root()).stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("scripts/setup-server.sh failed".into());
    }
    let p = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string();
    Ok(root().join(p))
}

fn release_uniml() -> Result<std::path::PathBuf, String> {
    step("building uniml with `serve` (release)");
    run(cargo().args(["build", "--release", "-q", "-p", "uniml-cli", "--bin", "uniml"]))?;
    Ok(target_dir().join("release/uniml"))
}

/// `cargo xtask serve-test`: Rust tests of uniml-server + the tritonclient script.
pub fn test() -> Result<(), String> {
    step("uniml-server tests (in-process server, raw HTTP client)");
    run(cargo().args(["test", "-p", "uniml-server"]))?;
    triton()
}

/// NVIDIA's tritonclient against the release `uniml serve`, onnxruntime as the
/// oracle (for `cargo xtask test`, whose workspace tests already ran uniml-server's).
pub fn triton() -> Result<(), String> {
    step("python tools for the server (tritonclient[http], pinned)");
    let py = server_python()?;
    // The dev profile (dependencies at opt-level 2) shares its build with `cargo test`:
    // cheap in CI, fast enough for a correctness run.
    step("building uniml with `serve` (dev profile)");
    run(cargo().args(["build", "-q", "-p", "uniml-cli", "--bin", "uniml"]))?;
    let bin = target_dir().join("debug/uniml");
    step("tritonclient[http] against `uniml serve`, onnxruntime as the oracle");
    run(Command::new(py).arg(root().join("scripts/test_server_triton.py")).arg("--uniml").arg(bin))
}

struct Level {
    concurrency: usize,
    ok: usize,
    shed: usize,
    failed: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
    /// Failure kinds (connect error, reset, status …) and their counts.
    kinds: std::collections::BTreeMap<String, usize>,
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Starts a server command that prints `listening on http://ADDR` on stdout.
fn start(cmd: &mut Command) -> Result<(Child, String), String> {
    cmd.current_dir(root()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(i) = line.find("http://") {
            let addr = line[i + 7..].trim().trim_end_matches('/').to_string();
            // Keep draining stdout so the server never blocks on it.
            std::thread::spawn(move || for _ in lines {});
            return Ok((child, addr));
        }
    }
    let _ = child.kill();
    Err(format!("{cmd:?} exited without printing its URL"))
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// wrk's Lua script: POSTs the JSON body (file in `UNIML_BODY`) and counts 503s (load shedding)
/// and other non-200 statuses per thread; `done` prints one `UNIML {json}` line with the totals.
const WRK_SCRIPT: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  shed = 0; bad = 0
  local f = assert(io.open(os.getenv("UNIML_BODY"), "rb"))
  wrk.method = "POST"; wrk.body = f:read("*a"); f:close()
  wrk.headers["Content-Type"] = "application/json"
end
function response(status, headers, body)
  if status == 503 then shed = shed + 1 elseif status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local s, b = 0, 0
  for _, t in ipairs(threads) do s = s + t:get("shed"); b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format('UNIML {"requests":%d,"shed":%d,"bad":%d,"socket":%d,"timeout":%d,"p50_us":%f,"p99_us":%f,"duration_us":%d}\n',
    summary.requests, s, b, e.connect + e.read + e.write, e.timeout, latency:percentile(50), latency:percentile(99), summary.duration))
end
"#;

/// `concurrency` keep-alive connections posting the request back to back for `secs`, driven by
/// `wrk` (Debian's, installed by scripts/setup-server.sh).
fn load(addr: &str, files: &WrkFiles, concurrency: usize, secs: u64, pid: u32) -> Level {
    let url = format!("http://{addr}/v2/models/efficientnet_lite0/infer");
    let out = Command::new("wrk")
        .args(["-t", &concurrency.min(2).to_string(), "-c", &concurrency.to_string(), "-d", &format!("{secs}s"), "--timeout", "60s", "-s"])
        .arg(&files.script)
        .arg(&url)
        .env("UNIML_BODY", &files.body)
        .output();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    let summary = match &out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("UNIML ").map(str::to_string)),
        Err(e) => {
            kinds.insert(format!("wrk did not start: {e}"), 1);
            None
        }
    };
    let v: serde_json::Value = summary.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_else(|| {
        if let Ok(o) = &out {
            kinds.insert(format!("wrk printed no summary: {}", String::from_utf8_lossy(&o.stderr).trim()), 1);
        }
        serde_json::Value::Null
    });
    let n = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let (requests, shed, bad, socket, timeout) = (n("requests") as usize, n("shed") as usize, n("bad") as usize, n("socket") as usize, n("timeout") as usize);
    for (k, c) in [("non-200/503 status", bad), ("socket error", socket), ("timeout", timeout)] {
        if c > 0 {
            kinds.insert(k.to_string(), c);
        }
    }
    Level {
        concurrency,
        ok: requests.saturating_sub(shed + bad),
        shed,
        failed: kinds.values().sum(),
        secs: (n("duration_us") / 1e6).max(1e-9),
        p50_ms: n("p50_us") / 1e3,
        p99_ms: n("p99_us") / 1e3,
        rss_mb: peak_rss_mb(pid),
        kinds,
    }
}

/// The request body file and wrk script, written once per bench into the cache.
struct WrkFiles {
    body: std::path::PathBuf,
    script: std::path::PathBuf,
}

impl WrkFiles {
    fn write() -> Result<WrkFiles, String> {
        let dir = root().join(".cache/serve-bench");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let files = WrkFiles { body: dir.join("request.json"), script: dir.join("post.lua") };
        std::fs::write(&files.body, request_body()).map_err(|e| e.to_string())?;
        std::fs::write(&files.script, WRK_SCRIPT).map_err(|e| e.to_string())?;
        Ok(files)
    }
}

/// The OIP JSON request body: a deterministic EfficientNet-Lite0 input (1×3×224×224).
fn request_body() -> String {
    let n = 3 * 224 * 224;
    let mut data = String::with_capacity(n * 8);
    let mut x: u32 = 12345;
    for i in 0..n {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        if i > 0 {
            data.push(',');
        }
        data.push_str(&format!("{:.4}", (x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0));
    }
    format!("{{\"id\":\"bench\",\"inputs\":[{{\"name\":\"input\",\"shape\":[1,3,224,224],\"datatype\":\"FP32\",\"data\":[{data}]}}]}}")
}

const LEVELS: [usize; 5] = [1, 2, 4, 8, 32];

fn run_levels(name: &str, child: Child, addr: &str, files: &WrkFiles, secs: u64) -> Vec<(String, Level)> {
    let pid = child.id();
    // Warm-up: a few requests so buffer pools and caches are in place.
    let _ = load(addr, files, 1, 1, pid);
    let mut rows = Vec::new();
    for c in LEVELS {
        let l = load(addr, files, c, secs, pid);
        eprintln!(
            "{name} c={c}: {} ok, {} shed (503), {} failed {:?} in {:.1} s; p50 {:.1} ms p99 {:.1} ms; peak RSS {:.0} MB",
            l.ok, l.shed, l.failed, l.kinds, l.secs, l.p50_ms, l.p99_ms, l.rss_mb
        );
        rows.push((name.to_string(), l));
    }
    stop(child);
    rows
}

/// `cargo xtask serve-bench [--secs S]`.
pub fn bench(args: &[String]) -> Result<(), String> {
    let secs: u64 = args.iter().position(|a| a == "--secs").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    // --check (cargo xtask test): short levels, assertions, docs left alone.
    let check = args.iter().any(|a| a == "--check");
    let py = server_python()?;
    let files = WrkFiles::write()?;
    let bin = release_uniml()?;
    let model = "models/efficientnet_lite0.onnx";
    let (conc, queue) = (2usize, 16usize);
    step(&format!("uniml serve {model} --threads 1 --max-concurrency {conc} --max-queue {queue}"));
    let (child, addr) = start(Command::new(&bin).args(["serve", model, "--port", "0", "--threads", "1", "--max-concurrency", &conc.to_string(), "--max-queue", &queue.to_string()]))?;
    let mut rows = run_levels("uniml serve", child, &addr, &files, secs);
    step("scripts/ort_server.py (stdlib http.server + onnxruntime, 1 intra-op thread per request thread)");
    let (child, addr) = start(Command::new(&py).args(["scripts/ort_server.py", model, "--port", "0", "--threads", "1"]))?;
    rows.extend(run_levels("python onnxruntime", child, &addr, &files, secs));

    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())).unwrap_or_default();
    let mut md = format!(
        "Generated by `cargo xtask serve-bench`: EfficientNet-Lite0, one OIP JSON request (1×3×224×224 FP32, {:.1} MB) posted \
         back to back by N keep-alive connections of `wrk` (Debian's 4.1) over loopback for {secs} s per level, first to `uniml serve --threads 1 --max-concurrency {conc} \
         --max-queue {queue}`, then to `scripts/ort_server.py` (stdlib `http.server` + onnxruntime 1.32, one intra-op thread, one thread per \
         connection) in the same run. Latencies are wrk's, client-side, over all responses (503s included); shed = clean `503` + `Retry-After` (load shedding, \
         by design above {} clients); failed = anything else (must be 0). Peak RSS is the server's VmHWM. Machine: {cpu}, {} logical cores \
         (shared with the load generator).\n\n\
         | server | clients | req/s | p50 ms | p99 ms | ok | shed 503 | failed | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|\n",
        std::fs::metadata(&files.body).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        conc + queue,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    for (name, l) in &rows {
        md.push_str(&format!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.0} |\n",
            l.concurrency,
            l.ok as f64 / l.secs,
            l.p50_ms,
            l.p99_ms,
            l.ok,
            l.shed,
            l.failed,
            l.rss_mb
        ));
    }
    let notes: Vec<String> = rows
        .iter()
        .filter(|(_, l)| l.failed > 0)
        .map(|(n, l)| format!("{n} at {} clients: {}", l.concurrency, l.kinds.iter().map(|(k, v)| format!("{v}× {k}")).collect::<Vec<_>>().join(", ")))
        .collect();
    if !notes.is_empty() {
        md.push_str(&format!("\nFailures: {}.\n", notes.join("; ")));
    }
    println!("## Server\n\n{md}");
    let ours: Vec<&Level> = rows.iter().filter(|(n, _)| n == "uniml serve").map(|(_, l)| l).collect();
    if ours.iter().any(|l| l.failed > 0) {
        return Err(format!("uniml serve had failed requests: {}", notes.join("; ")));
    }
    // Below saturation (concurrency + queue) every request is served; above it, clean 503s only.
    if let Some(l) = ours.iter().find(|l| l.concurrency <= conc + queue && l.shed > 0) {
        return Err(format!("uniml serve shed {} requests at {} clients, below its capacity of {}", l.shed, l.concurrency, conc + queue));
    }
    if ours.iter().any(|l| l.ok == 0) {
        return Err("uniml serve answered no request at some level".into());
    }
    if !check {
        crate::bench::write_section("server", "Server", &md)?;
        eprintln!("wrote the Server section of docs/benchmarks.md");
    }
    Ok(())
}
