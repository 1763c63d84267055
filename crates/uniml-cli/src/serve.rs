//! `uniml serve`: the Open Inference Protocol v2 server (crate `uniml-server`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use uniml::{Error, Result};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Model files; each is served under its file stem (models/efficientnet_lite0.onnx → efficientnet_lite0).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 picks a free port (printed on stdout).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Kernel threads per inference (0 = all cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Inferences that run at once [default: number of cores].
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Requests that may wait for a slot; past it: 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Largest request body in bytes (413 beyond it).
    #[arg(long, default_value_t = 64 << 20)]
    pub max_body_bytes: usize,
    /// Per-request deadline in milliseconds (body, queue and inference).
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Serve a web app from this directory (COOP/COEP headers, .br/.gz siblings).
    #[arg(long = "static")]
    pub static_dir: Option<PathBuf>,
    /// Value of a symbolic dimension, e.g. --dim N=1 (repeatable).
    #[arg(long = "dim", value_parser = crate::parse_dim)]
    pub dims: Vec<(String, usize)>,
    /// Memory limit for any tensor and the buffer pool, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_limit_mib: u64,
}

pub fn serve(a: &ServeArgs) -> Result<ExitCode> {
    let mut opts = uniml::SessionOptions::default().with_threads(a.threads).with_memory_limit(a.memory_limit_mib << 20);
    opts.dims = a.dims.iter().cloned().collect();
    let defaults = uniml_server::Config::default();
    let cfg = uniml_server::Config {
        host: a.host.clone(),
        port: a.port,
        max_concurrency: a.max_concurrency.unwrap_or(defaults.max_concurrency),
        max_queue: a.max_queue,
        max_body_bytes: a.max_body_bytes,
        timeout: Duration::from_millis(a.timeout_ms.max(1)),
        static_dir: a.static_dir.clone(),
        ..defaults
    };
    uniml_server::serve_blocking(&a.models, cfg, opts).map_err(Error::Other)?;
    Ok(ExitCode::SUCCESS)
}
