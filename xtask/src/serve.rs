//! `cargo xtask serve-test` and `cargo xtask serve-bench` for `uniml serve`.
//!
//! serve-test: the server crate's Rust tests, then `scripts/test_server_triton.py`
//! (NVIDIA's tritonclient against `uniml serve` (dev profile), onnxruntime as the
//! oracle in the same script).
//!
//! serve-bench: a bounded closed-loop load generator (this file; keep-alive
//! HTTP/1.1 over loopback, one thread per simulated client) posts the same OIP
//! JSON request for EfficientNet-Lite0 at concurrency 1, 2, 4, 8 and 32 for a few
//! seconds each, first to `uniml serve`, then to `scripts/ort_server.py`
//! (stdlib http.server + onnxruntime) in the same run. Reports throughput,
//! p50/p99 latency of successful requests, the server's peak RSS (VmHWM from
//! /proc) and failures; 503s (load shedding) are counted apart. Writes the
//! table as the "server" section of docs/benchmarks.md (`bench::write_section`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
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

/// One keep-alive request/response; returns the status and whether the server closes.
fn exchange(stream: &mut BufReader<TcpStream>, req: &[u8]) -> std::io::Result<(u16, bool)> {
    stream.get_mut().write_all(req)?;
    let mut status = 0u16;
    let mut len = 0usize;
    let mut close = false;
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("http/1.") {
            status = l.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        } else if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        }
    }
    let mut sink = vec![0u8; len];
    stream.read_exact(&mut sink)?;
    Ok((status, close))
}

/// `concurrency` clients each sending `req` back to back for `dur` (closed loop).
fn load(addr: &str, req: &[u8], concurrency: usize, dur: Duration, pid: u32) -> Level {
    let start = Instant::now();
    let deadline = start + dur;
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (addr, req) = (addr.to_string(), req.to_vec());
            std::thread::spawn(move || {
                let (mut lat, mut shed, mut kinds) = (Vec::new(), 0usize, std::collections::BTreeMap::<String, usize>::new());
                let mut conn: Option<BufReader<TcpStream>> = None;
                while Instant::now() < deadline {
                    if conn.is_none() {
                        match TcpStream::connect(&addr) {
                            Ok(s) => {
                                let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                                let _ = s.set_nodelay(true);
                                conn = Some(BufReader::new(s));
                            }
                            Err(e) => {
                                *kinds.entry(format!("connect: {:?}", e.kind())).or_default() += 1;
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        }
                    }
                    let t0 = Instant::now();
                    let r = exchange(conn.as_mut().expect("connected"), &req);
                    match r {
                        Ok((200, close)) => {
                            lat.push(t0.elapsed().as_secs_f64() * 1e3);
                            if close {
                                conn = None;
                            }
                        }
                        Ok((503, close)) => {
                            shed += 1;
                            if close {
                                conn = None;
                            }
                            // A polite client backs off a little before retrying.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Ok((status, _)) => {
                            *kinds.entry(format!("status {status}")).or_default() += 1;
                            conn = None;
                        }
                        Err(e) => {
                            *kinds.entry(format!("io: {:?}", e.kind())).or_default() += 1;
                            conn = None;
                        }
                    }
                }
                (lat, shed, kinds)
            })
        })
        .collect();
    let (mut lat, mut shed, mut kinds) = (Vec::new(), 0, std::collections::BTreeMap::<String, usize>::new());
    for h in handles {
        if let Ok((l, s, k)) = h.join() {
            lat.extend(l);
            shed += s;
            for (kind, n) in k {
                *kinds.entry(kind).or_default() += n;
            }
        }
    }
    let failed = kinds.values().sum();
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1] };
    Level { concurrency, ok: lat.len(), shed, failed, secs, p50_ms: pct(0.5), p99_ms: pct(0.99), rss_mb: peak_rss_mb(pid), kinds }
}

/// The OIP JSON request: a deterministic EfficientNet-Lite0 input (1×3×224×224).
fn request_bytes(addr_host: &str) -> Vec<u8> {
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
    let body = format!("{{\"id\":\"bench\",\"inputs\":[{{\"name\":\"input\",\"shape\":[1,3,224,224],\"datatype\":\"FP32\",\"data\":[{data}]}}]}}");
    let mut req = format!(
        "POST /v2/models/efficientnet_lite0/infer HTTP/1.1\r\nHost: {addr_host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    req
}

const LEVELS: [usize; 5] = [1, 2, 4, 8, 32];

fn run_levels(name: &str, child: Child, addr: &str, secs: f64) -> Vec<(String, Level)> {
    let req = request_bytes(addr);
    let pid = child.id();
    // Warm-up: a few requests so buffer pools and caches are in place.
    let _ = load(addr, &req, 1, Duration::from_millis(500), pid);
    let mut rows = Vec::new();
    for c in LEVELS {
        let l = load(addr, &req, c, Duration::from_secs_f64(secs), pid);
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
    let secs: f64 = args.iter().position(|a| a == "--secs").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(5.0);
    let py = crate::python()?;
    let bin = release_uniml()?;
    let model = "models/efficientnet_lite0.onnx";
    let (conc, queue) = (2usize, 16usize);
    step(&format!("uniml serve {model} --threads 1 --max-concurrency {conc} --max-queue {queue}"));
    let (child, addr) = start(Command::new(&bin).args(["serve", model, "--port", "0", "--threads", "1", "--max-concurrency", &conc.to_string(), "--max-queue", &queue.to_string()]))?;
    let mut rows = run_levels("uniml serve", child, &addr, secs);
    step("scripts/ort_server.py (stdlib http.server + onnxruntime, 1 intra-op thread per request thread)");
    let (child, addr) = start(Command::new(&py).args(["scripts/ort_server.py", model, "--port", "0", "--threads", "1"]))?;
    rows.extend(run_levels("python onnxruntime", child, &addr, secs));

    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())).unwrap_or_default();
    let mut md = format!(
        "Generated by `cargo xtask serve-bench`: EfficientNet-Lite0, one OIP JSON request (1×3×224×224 FP32, {:.1} MB) posted \
         back to back by N keep-alive clients over loopback for {secs:.0} s per level, first to `uniml serve --threads 1 --max-concurrency {conc} \
         --max-queue {queue}`, then to `scripts/ort_server.py` (stdlib `http.server` + onnxruntime 1.32, one intra-op thread, one thread per \
         connection) in the same run. Latencies are of successful requests, client-side; shed = clean `503` + `Retry-After` (load shedding, \
         by design above {} clients); failed = anything else (must be 0). Peak RSS is the server's VmHWM. Machine: {cpu}, {} logical cores \
         (shared with the load generator).\n\n\
         | server | clients | req/s | p50 ms | p99 ms | ok | shed 503 | failed | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|\n",
        request_bytes("x").len() as f64 / 1e6,
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
    crate::bench::write_section("server", "Server", &md)?;
    eprintln!("wrote the Server section of docs/benchmarks.md");
    let bad: usize = rows.iter().map(|(_, l)| l.failed).sum();
    if rows.iter().filter(|(n, _)| n == "uniml serve").any(|(_, l)| l.failed > 0) {
        return Err(format!("uniml serve had failed requests ({bad} in all)"));
    }
    Ok(())
}
