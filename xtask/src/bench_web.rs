//! `cargo xtask bench --browser`: the `uniml` npm package (wasm) beside onnxruntime-web
//! (wasm EP, the exact version pinned in `web/package.json`) on the native bench's models,
//! in headless Chromium (a COOP/COEP page, both engines in one module Worker, so both may
//! use threads) and in Node, at 1 and 2 threads. Writes the `browser` section of
//! `docs/benchmarks.md` (other sections stay as they are).
//!
//! Options:
//! - `--runs K` timed runs per measurement (default 20, after 3 warm-up runs);
//! - `--envs LIST` any of `node`, `chromium`, `webgpu` (default all three; `webgpu`: Chromium
//!   on SwiftShader's WebGPU, uniml `backend: 'webgpu'` vs onnxruntime-web's WebGPU EP, 1 row per model);
//! - `--models LIST` only these models (names as in the table, comma-separated);
//! - `--smoke` one small model, 3 runs, prints the table without writing the docs
//!   (a quick check that both runners work);
//! - `--no-build` uses the package already in `dist/web`; `--no-fetch` the models in `.cache/models`;
//! - `--label TEXT` names the machine; `--section NAME` (default `browser`);
//! - `--from-rows FILE` writes the section from a saved run (`.cache/bench-browser/rows.json`)
//!   instead of measuring (use with `--no-build --no-fetch`).
//!
//! onnxruntime-web fixes its thread count per process, so every (environment, threads) pair
//! is its own Node process or Chromium page; both engines run in it one after the other.

use std::process::{Command, Stdio};

use crate::bench::{arg_value, machine_label, write_section, MODELS};
use crate::{root, step, web};

const SMOKE_MODEL: &str = "digits8x8_cnn";

fn dims_json(dims: &[&str]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for d in dims {
        if let Some((k, v)) = d.split_once('=') {
            m.insert(k.to_string(), serde_json::json!(v.parse::<u64>().unwrap_or(1)));
        }
    }
    serde_json::Value::Object(m)
}

fn tool_version(cmd: &str, arg: &str) -> String {
    Command::new(cmd).arg(arg).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_else(|| "?".into())
}

fn cell(v: &serde_json::Value, digits: usize) -> String {
    v.as_f64().map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "—".into())
}

fn markdown_row(r: &serde_json::Value) -> String {
    let (u, o) = (&r["uniml"], &r["ort"]);
    let ratio = match (u["median_ms"].as_f64(), o["median_ms"].as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => format!("**{:.2}**", a / b),
        _ => "—".into(),
    };
    let agree = match (r["agreement"]["diff"].as_f64(), r["agreement"]["scale"].as_f64()) {
        (Some(d), Some(s)) => format!("{:.1e}", d / s.max(1.0)),
        _ => "—".into(),
    };
    let mut notes = Vec::new();
    for (who, j) in [("uniml", u), ("onnxruntime-web", o)] {
        if let Some(e) = j["error"].as_str() {
            notes.push(format!("{who}: {}", e.lines().next().unwrap_or(e).replace('|', "/")));
        }
    }
    if let Some(e) = r["error"].as_str() {
        notes.push(e.replace('|', "/"));
    }
    if u["backend"].as_str() == Some("webgpu") {
        notes.push(format!("uniml: {}/{} nodes on the GPU", u["gpuNodes"], u["nodes"]));
    } else if let Some(reason) = u["threadsReason"].as_str().filter(|s| !s.is_empty()) {
        notes.push(format!("uniml on 1 thread: {reason}"));
    }
    format!(
        "| {} | {} | {} | {} | {} | {ratio} | {} | {} | {} | {agree} | {} |",
        r["env"].as_str().unwrap_or("?"),
        r["model"].as_str().unwrap_or("?"),
        r["threads"],
        cell(&u["median_ms"], 2),
        cell(&o["median_ms"], 2),
        u["threads"].as_u64().map(|t| t.to_string()).unwrap_or_else(|| "—".into()),
        cell(&u["create_ms"], 0),
        cell(&o["create_ms"], 0),
        notes.join("; ")
    )
}

/// The 1-minute load average (Linux), or "?".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(str::to_string)).unwrap_or_else(|| "?".into())
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let smoke = args.iter().any(|a| a == "--smoke");
    let runs: usize = arg_value(args, "--runs").and_then(|v| v.parse().ok()).unwrap_or(if smoke { 3 } else { 20 });
    let envs: Vec<String> = arg_value(args, "--envs").unwrap_or("node,chromium,webgpu").split(',').map(str::to_string).collect();
    if let Some(bad) = envs.iter().find(|e| !["node", "chromium", "webgpu"].contains(&e.as_str())) {
        return Err(format!("--envs: unknown environment '{bad}' (expected node, chromium and/or webgpu)"));
    }
    let section = arg_value(args, "--section").unwrap_or("browser").to_string();
    if !smoke && !args.iter().any(|a| a == "--no-fetch") {
        crate::models()?;
    }
    if !args.iter().any(|a| a == "--no-build") {
        web::build()?;
    }
    step("browser tools (Chromium, npm packages incl. onnxruntime-web)");
    web::setup(envs.iter().any(|e| e != "node"))?;
    web::link_package()?;
    let ort_version = std::fs::read_to_string(root().join("web/node_modules/onnxruntime-web/package.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .ok_or("onnxruntime-web is not installed in web/node_modules (scripts/setup-web.sh runs npm ci)")?;

    let only: Option<Vec<String>> = arg_value(args, "--models").map(|v| v.split(',').map(str::to_string).collect());
    let models: Vec<serde_json::Value> = MODELS
        .iter()
        .filter(|m| !smoke || m.name == SMOKE_MODEL)
        .filter(|m| only.as_ref().is_none_or(|o| o.iter().any(|n| n == m.name)))
        .filter(|m| {
            let ok = root().join(m.path).exists();
            if !ok {
                eprintln!("skipping {} ({} missing)", m.name, m.path);
            }
            ok
        })
        .map(|m| serde_json::json!({ "name": m.name, "path": m.path, "dims": dims_json(m.dims) }))
        .collect();
    if models.is_empty() {
        return Err("no benchmark model found (run `cargo xtask models`)".into());
    }
    // Inside the repository: the Chromium runner serves the repository root.
    let work = root().join(".cache/bench-browser");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let spec = work.join("spec.json");
    std::fs::write(&spec, serde_json::to_string_pretty(&models).unwrap_or_default()).map_err(|e| e.to_string())?;

    let mut load_start = load_average();
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut saved_load_end = None;
    let mut runs = runs;
    let mut ort_version = ort_version;
    // `--from-rows`: re-render the section from a saved run (.cache/bench-browser/rows.json).
    let from = arg_value(args, "--from-rows").map(|p| -> Result<serde_json::Value, String> {
        serde_json::from_str(&std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?).map_err(|e| format!("{p}: {e}"))
    });
    let envs_run: Vec<String> = if from.is_some() { Vec::new() } else { envs.clone() };
    if let Some(saved) = from {
        let saved = saved?;
        rows = saved["rows"].as_array().cloned().unwrap_or_default();
        runs = saved["runs"].as_u64().unwrap_or(0) as usize;
        load_start = saved["load_start"].as_str().unwrap_or("?").to_string();
        saved_load_end = saved["load_end"].as_str().map(str::to_string);
        ort_version = saved["ort_version"].as_str().unwrap_or(&ort_version).to_string();
    }
    for env in &envs_run {
        // webgpu: Chromium on SwiftShader's WebGPU, uniml's WebGPU backend vs onnxruntime-web's WebGPU EP.
        let thread_counts: &[&str] = if env == "webgpu" { &["webgpu"] } else { &["1", "2"] };
        for &threads in thread_counts {
            step(&format!("{env}: {} model(s) at {threads} thread(s), {runs} runs each (uniml, then onnxruntime-web)", models.len()));
            let script = if env == "node" { "web/bench/node.mjs" } else { "web/bench/browser.mjs" };
            let out = Command::new("node")
                .arg(root().join(script))
                .arg(&spec)
                .arg(threads)
                .arg(runs.to_string())
                .current_dir(root())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot start node: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut got = 0;
            for line in text.lines() {
                if let Some(j) = line.strip_prefix("ROW ") {
                    let row: serde_json::Value = serde_json::from_str(j).map_err(|e| format!("{script}: bad row: {e}"))?;
                    eprintln!("{}", markdown_row(&row));
                    rows.push(row);
                    got += 1;
                }
            }
            if !out.status.success() || got == 0 {
                eprintln!("{script} at {threads} thread(s) failed ({}); its rows are missing from the table", out.status);
                if smoke {
                    return Err(format!("{script} failed at {threads} thread(s)"));
                }
            }
        }
    }
    // Rows grouped by environment, then model, then threads.
    let order = |r: &serde_json::Value| {
        let env_name = |e: &str| match e {
            "webgpu" => "chromium-webgpu",
            "chromium" => "chromium",
            _ => "node",
        };
        let env = envs.iter().position(|e| r["env"].as_str() == Some(env_name(e))).unwrap_or(0);
        let model = MODELS.iter().position(|m| r["model"].as_str() == Some(m.name)).unwrap_or(0);
        (env, model, r["threads"].as_u64().unwrap_or(0))
    };
    rows.sort_by_key(order);
    let load_end = saved_load_end.unwrap_or_else(load_average);
    let label = arg_value(args, "--label").map(str::to_string).unwrap_or_else(machine_label);
    let chromium = tool_version("chromium", "--version");
    let node = tool_version("node", "--version");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let busy = match (load_start.parse::<f64>(), load_end.parse::<f64>()) {
        (Ok(a), Ok(b)) if a.min(b) > cores => format!(
            "\n**The machine was oversubscribed** (load above its {cores} cores throughout): the 2-thread timings of both engines say more \
             about how each thread pool copes with CPUs taken by other work than about scaling."
        ),
        _ => String::new(),
    };
    let webgpu_only = envs.iter().all(|e| e == "webgpu");
    let mut md = if webgpu_only {
        format!(
            "Generated by `cargo xtask bench --browser --envs webgpu` ({runs} runs after 3 warm-up runs, median latency; same model bytes and inputs \
             for both engines). Machine: {label}; load average (1 min) {load_start} at the start, {load_end} at the end (a shared machine: \
             compare the two engines within a row, not rows across runs). Chromium: {chromium}, headless, with `--enable-unsafe-webgpu \
             --use-webgpu-adapter=swiftshader` (WebGPU on SwiftShader, a software Vulkan on the CPU: it shows the work each engine gives the GPU \
             and its per-run overheads, not real GPU speed); both engines in one module Worker of a COOP/COEP page. uniml: `backend: 'webgpu'` \
             (the `uniml_webgpu_bg.wasm` build; \"notes\" give the nodes on the GPU). Peer: onnxruntime-web {ort_version}'s WebGPU execution \
             provider (`ort.webgpu.min.mjs`). \"rel. diff\" = max |uniml − ort| ÷ max(1, max |ort|) over the first output (random inputs).\n\
             Ratio = uniml median ÷ onnxruntime-web median (lower is better; < 1 means uniml is faster).\n\n\
             | env | model | threads | uniml ms | ort-web ms | ratio | uniml threads | uniml create ms | ort create ms | rel. diff | notes |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n"
        )
    } else {
        format!(
        "Generated by `cargo xtask bench --browser` ({runs} runs after 3 warm-up runs, median latency; same model bytes and inputs for both engines).\n\
         Machine: {label}; load average (1 min) {load_start} at the start, {load_end} at the end (a shared machine: \
         compare the two engines within a row, not rows across runs). Peer: onnxruntime-web {ort_version} (npm, exact version in `web/package-lock.json`), wasm execution provider, \
         `env.wasm.numThreads` = threads. Chromium: {chromium}, headless, page served with COOP/COEP (cross-origin isolated), both engines \
         in one module Worker. Node: {node}, both engines on the main thread.\n\
         uniml: the `uniml` npm package (`dist/web`): threads 1 → SIMD build; threads 2 → threaded+SIMD build (a Web Worker / worker_threads pool); \
         each in its relaxed-SIMD variant where the JS engine has relaxed SIMD (Chromium; not Node 20; onnxruntime-web's shipped wasm uses baseline SIMD only: it validates in Node 20). \
         \"uniml threads\" is the thread count the engine reports for the session; \"rel. diff\" = max |uniml − ort| ÷ max(1, max |ort|) over the first output \
         (random inputs, as the native bench). Create times include each engine's wasm instantiation for the first model of a run.\n\
         `chromium-webgpu` rows: Chromium with `--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader` (WebGPU on SwiftShader, a software \
         Vulkan on the CPU: it shows the work each engine gives the GPU and its overheads, not real GPU speed), uniml `backend: 'webgpu'` \
         (the WebGPU build; \"notes\" give the nodes on the GPU) vs onnxruntime-web's WebGPU execution provider (`ort.webgpu.min.mjs`).\n\
         Ratio = uniml median ÷ onnxruntime-web median (lower is better; < 1 means uniml is faster).{busy}\n\n\
         | env | model | threads | uniml ms | ort-web ms | ratio | uniml threads | uniml create ms | ort create ms | rel. diff | notes |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n"
        )
    };
    for r in &rows {
        md.push_str(&markdown_row(r));
        md.push('\n');
    }
    let saved = serde_json::json!({ "runs": runs, "load_start": load_start, "load_end": load_end, "ort_version": ort_version, "rows": rows });
    std::fs::write(work.join("rows.json"), serde_json::to_string_pretty(&saved).unwrap_or_default()).map_err(|e| e.to_string())?;
    if smoke {
        eprintln!("\n{md}\nsmoke run: docs/benchmarks.md left as it is");
        let bad: Vec<String> = rows.iter().filter(|r| r["uniml"]["median_ms"].is_null() || r["ort"]["median_ms"].is_null()).map(markdown_row).collect();
        let expected: usize = envs.iter().map(|e| if e == "webgpu" { 1 } else { 2 }).sum();
        if !bad.is_empty() || rows.len() != expected {
            return Err(format!("smoke run incomplete ({} rows): {}", rows.len(), bad.join(" / ")));
        }
        return Ok(());
    }
    let title = if envs.iter().all(|e| e == "webgpu") {
        "Browser WebGPU: uniml vs onnxruntime-web's WebGPU EP (Chromium on SwiftShader)"
    } else {
        "Browser and Node: uniml (wasm) vs onnxruntime-web"
    };
    write_section(&section, title, &md)?;
    eprintln!("wrote docs/benchmarks.md (section {section}); rows in {}", work.join("rows.json").display());
    Ok(())
}
