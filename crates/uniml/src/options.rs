use std::collections::HashMap;
use std::sync::Arc;

use uniml_core::Parallelism;

/// Where a session's kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Cpu,
    /// The GPU backend (wgpu, feature `gpu`): an error when no adapter exists
    /// or the build lacks the feature.
    Gpu,
    /// GPU when available, else CPU (logged on stderr and recorded in
    /// [`crate::Session::placement`]).
    Auto,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            "auto" => Ok(Backend::Auto),
            other => Err(format!("unknown backend '{other}' (expected cpu, gpu or auto)")),
        }
    }
}

/// How the GPU backend stores weights and intermediate activations
/// (`docs/gpu.md`, "f32 / f16"). Ignored on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GpuPrecision {
    /// f32 storage and arithmetic: GPU results match the CPU within rounding.
    #[default]
    F32,
    /// Weights and activations stored as f16 on the device (half the memory
    /// and bandwidth), every computation and accumulation in f32. Works on
    /// adapters without `shader-f16` (halves packed in `u32` words). Stored
    /// values saturate at ±65504 instead of overflowing to inf. f16 models'
    /// weights are used as they are; f32 ones are rounded once at upload.
    F16Storage,
}

impl std::str::FromStr for GpuPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(GpuPrecision::F32),
            "f16" => Ok(GpuPrecision::F16Storage),
            other => Err(format!("unknown GPU precision '{other}' (expected f32 or f16)")),
        }
    }
}

/// A [`Parallelism`] supplied by the caller (shared between sessions), used
/// instead of the facade's own choice; e.g. the Web Worker pool of the threaded
/// wasm build (`uniml-web`), where the facade cannot start threads itself.
#[derive(Clone)]
pub struct SharedParallelism(pub Arc<dyn Parallelism>);

impl std::fmt::Debug for SharedParallelism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedParallelism({} threads)", self.0.threads())
    }
}

impl Parallelism for SharedParallelism {
    fn threads(&self) -> usize {
        self.0.threads()
    }
    fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        self.0.for_each(tasks, f)
    }
    fn run_inside(&self, f: &mut (dyn FnMut() + Send)) {
        self.0.run_inside(f)
    }
}

/// Options for [`crate::Session`] creation.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Worker threads for kernels; 0 = all cores, 1 = run on the caller's thread.
    /// Ignored when [`SessionOptions::parallelism`] is set.
    pub threads: usize,
    /// Runs kernels on this [`Parallelism`] instead of one chosen from `threads`
    /// (natively: a rayon pool with feature `threads`, else serial).
    pub parallelism: Option<SharedParallelism>,
    pub backend: Backend,
    /// Storage precision on the GPU backend (default f32).
    pub gpu_precision: GpuPrecision,
    /// Upper bound for any single tensor (weights or intermediates) and for the
    /// run-time buffer pool. Requests beyond it fail with `Error::MemoryLimit`.
    pub memory_limit_bytes: u64,
    /// Run graph optimisations (constant folding, BN folding, fusion).
    pub optimize: bool,
    /// External-data files by location (as named in the model). Natively,
    /// `Session::from_file` fills this from files beside the model.
    pub external_data: HashMap<String, Vec<u8>>,
    /// Values for symbolic dims known ahead of time (others are taken from the inputs at run time).
    pub dims: HashMap<String, usize>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: 0,
            parallelism: None,
            backend: Backend::Cpu,
            gpu_precision: GpuPrecision::F32,
            memory_limit_bytes: 4 << 30,
            optimize: true,
            external_data: HashMap::new(),
            dims: HashMap::new(),
        }
    }
}

impl SessionOptions {
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Runs kernels on `par` (see [`SessionOptions::parallelism`]).
    pub fn with_parallelism(mut self, par: Arc<dyn Parallelism>) -> Self {
        self.parallelism = Some(SharedParallelism(par));
        self
    }
    /// Where the session runs (see [`Backend`]).
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// How the GPU backend stores tensors (see [`GpuPrecision`]).
    pub fn with_gpu_precision(mut self, precision: GpuPrecision) -> Self {
        self.gpu_precision = precision;
        self
    }
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit_bytes = bytes;
        self
    }
}
