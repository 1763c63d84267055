//! `uniml-nn-host`: runs a wasm32-wasip2 command component under Wasmtime with WASI 0.2 and
//! wasi-nn (`wasi:nn@0.2.0-rc-2024-10-28`, the WIT shipped by wasmtime-wasi-nn), whose only
//! graph backend is the uniml engine (encoding `onnx`, target `cpu`).
//!
//! ```sh
//! uniml-nn-host guest.wasm --dir testdata::/data --model efficientnet=models/efficientnet_lite0.onnx -- --image /data/coffee.png
//! ```
//!
//! The guest sees only the directories given with `--dir` (WASI preopens), stdio, clocks and
//! random; no network. Its linear memory is capped (`--max-memory-mib`).

mod backend;

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use uniml::SessionOptions;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{DirPerms, FilePerms, I32Exit, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_nn::wit::{ExecutionTarget, WasiNnCtx, WasiNnView};
use wasmtime_wasi_nn::{Backend, Registry};

use backend::{Limits, NamedGraphs, UnimlBackend};

#[derive(Parser)]
#[command(name = "uniml-nn-host", about = "Run a wasm32-wasip2 component with wasi-nn backed by the uniml engine")]
struct Cli {
    /// The guest: a WebAssembly component exporting wasi:cli/run (what rustc emits for wasm32-wasip2).
    guest: PathBuf,
    /// Preopen a host directory in the guest, `HOST::GUEST` (or `DIR` for the same path); repeatable.
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Preload an ONNX model for the guest's `load-by-name`, `NAME=PATH`; repeatable.
    #[arg(long = "model", value_name = "NAME=PATH")]
    models: Vec<String>,
    /// Read-only preopens (files and directories) instead of read-write.
    #[arg(long)]
    read_only: bool,
    /// Kernel threads of every uniml session (0 = all cores).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// uniml memory limit per tensor and per session buffer pool, MiB.
    #[arg(long, default_value_t = 2048)]
    memory_limit_mib: u64,
    /// Largest model a guest may pass to `load`, MiB.
    #[arg(long, default_value_t = 1024)]
    max_model_mib: usize,
    /// Most graphs (sessions) alive at once.
    #[arg(long, default_value_t = 16)]
    max_graphs: usize,
    /// Cap on the guest's linear memory, MiB.
    #[arg(long, default_value_t = 2048)]
    max_memory_mib: usize,
    /// Keep compiled guests here (Wasmtime's serialized form, keyed by guest bytes and engine
    /// settings) so later runs skip Cranelift.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Environment variables for the guest, `KEY=VALUE`; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    envs: Vec<String>,
    /// Do not echo wasi-nn errors on stderr (the guest gets them either way).
    #[arg(long)]
    quiet: bool,
    /// Arguments for the guest (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

struct Host {
    wasi: WasiCtx,
    nn: WasiNnCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

fn split_pair<'a>(s: &'a str, sep: &str, what: &str) -> Result<(&'a str, &'a str)> {
    s.split_once(sep).ok_or_else(|| anyhow!("{what}: expected `A{sep}B`, got `{s}`"))
}

/// Reads a model file for preloading, refusing oversized ones before reading.
fn read_model(path: &Path, max: usize) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if len > max as u64 {
        bail!("{} is {len} bytes, over --max-model-mib", path.display());
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn load_component(engine: &Engine, guest: &Path, cache: Option<&Path>) -> Result<Component> {
    let bytes = std::fs::read(guest).with_context(|| format!("cannot read {}", guest.display()))?;
    let Some(dir) = cache else {
        return Component::new(engine, &bytes).with_context(|| format!("cannot compile {}", guest.display()));
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    bytes.hash(&mut h);
    let file = dir.join(format!("{:016x}.cwasm", h.finish()));
    if file.exists() {
        // SAFETY: the file was written by `Component::serialize` below from the same bytes and
        // engine settings (the key covers both), in a directory only the host writes.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &file) } {
            return Ok(c);
        }
    }
    let c = Component::new(engine, &bytes).with_context(|| format!("cannot compile {}", guest.display()))?;
    std::fs::create_dir_all(dir).ok();
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, c.serialize()?).is_ok() {
        let _ = std::fs::rename(&tmp, &file);
    }
    Ok(c)
}

fn run(cli: Cli) -> Result<u8> {
    let mut options = SessionOptions::default().with_threads(cli.threads).with_memory_limit(cli.memory_limit_mib << 20);
    options.optimize = true;
    let limits = Limits { max_model_bytes: cli.max_model_mib << 20, max_live_graphs: cli.max_graphs };
    let mut uniml_backend = UnimlBackend::new(options, limits);
    uniml_backend.log_errors = !cli.quiet;

    let mut registry = NamedGraphs::default();
    for m in &cli.models {
        let (name, path) = split_pair(m, "=", "--model")?;
        let bytes = read_model(Path::new(path), cli.max_model_mib << 20)?;
        let graph = uniml_backend
            .load_graph(&[&bytes], ExecutionTarget::Cpu)
            .map_err(|e| anyhow!("--model {name}={path}: {e:#}"))?;
        registry.insert(name.to_string(), graph);
    }

    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config)?;
    let component = load_component(&engine, &cli.guest, cli.cache_dir.as_deref())?;

    let mut linker: Linker<Host> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_nn::wit::add_to_linker(&mut linker, |h: &mut Host| WasiNnView::new(&mut h.table, &mut h.nn))?;

    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio();
    let argv0 = cli.guest.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "guest".into());
    wasi.arg(argv0);
    wasi.args(&cli.args);
    for e in &cli.envs {
        let (k, v) = split_pair(e, "=", "--env")?;
        wasi.env(k, v);
    }
    let (dperms, fperms) = if cli.read_only { (DirPerms::READ, FilePerms::READ) } else { (DirPerms::all(), FilePerms::all()) };
    for d in &cli.dirs {
        let (host, guest) = d.split_once("::").unwrap_or((d.as_str(), d.as_str()));
        wasi.preopened_dir(host, guest, dperms, fperms).with_context(|| format!("--dir {d}: cannot open {host}"))?;
    }

    let backends: Vec<Backend> = vec![Backend::from(uniml_backend)];
    let host = Host {
        wasi: wasi.build(),
        nn: WasiNnCtx::new(backends, Registry::from(registry)),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new().memory_size(cli.max_memory_mib << 20).instances(64).build(),
    };
    let mut store = Store::new(&engine, host);
    store.limiter(|h| &mut h.limits);

    let command = Command::instantiate(&mut store, &component, &linker).context("cannot instantiate the guest")?;
    match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(code)) => Ok((*code).clamp(0, 255) as u8),
            None => Err(e.context("the guest trapped")),
        },
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("uniml-nn-host: {e:#}");
            ExitCode::from(70)
        }
    }
}
