//! # uniml-web
//!
//! The low-level WebAssembly API of the `uniml` npm package, a thin face over
//! the `uniml` facade. The hand-written JS glue in `web/src/` (the public API:
//! `Session.create`, `Tensor`, worker mode) is the only caller; see `docs/web.md`.
//!
//! * every failure is a JS `Error` carrying the engine's full message;
//! * a panic (a bug, never expected on any input) is recorded by a panic hook so the
//!   glue can turn the resulting trap into a readable `Error` ([`take_panic_message`]);
//! * [`WasmSession::release`] really frees: it drops the session (weights, plan, pools),
//!   and a counting allocator makes that visible ([`heap_bytes`]).

mod alloc;
mod convert;
mod pool;
mod reader;
#[cfg(feature = "webgpu")]
mod webgpu;

use js_sys::{Array, Object, Reflect, Uint8Array};
use uniml::{Session, SessionOptions};
use wasm_bindgen::prelude::*;

pub use alloc::{heap_bytes, heap_peak_bytes};

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Installs the panic hook (idempotent). Called by the glue right after instantiation.
#[wasm_bindgen]
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info.payload().downcast_ref::<String>().cloned().unwrap_or_else(|| "unknown panic".into()),
            };
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            pool::mark_panicked();
            if let Ok(mut slot) = PANIC.lock() {
                *slot = Some(format!("{msg}{at}"));
            }
            if let Ok(mut slot) = PANIC_STACK.lock() {
                *slot = js_stack();
            }
        }));
    });
}

static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

static PANIC_STACK: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The JS stack at this point, wasm frames included (up to 100 frames): in the debug build
/// (`dist/web/debug/`, which keeps the name section) they carry the Rust function names.
fn js_stack() -> Option<String> {
    let ctor = Reflect::get(&js_sys::global(), &"Error".into()).ok()?;
    let limit = Reflect::get(&ctor, &"stackTraceLimit".into()).ok();
    let _ = Reflect::set(&ctor, &"stackTraceLimit".into(), &100.into());
    let stack = Reflect::get(&js_sys::Error::new("panic"), &"stack".into()).ok().and_then(|s| s.as_string());
    if let Some(l) = limit {
        let _ = Reflect::set(&ctor, &"stackTraceLimit".into(), &l);
    }
    stack
}

/// The JS stack (wasm frames included) where the last panic happened (then cleared), or
/// `undefined`; the glue appends it to the internal-error `Error`'s `stack`.
#[wasm_bindgen(js_name = takePanicStack)]
pub fn take_panic_stack() -> Option<String> {
    PANIC_STACK.lock().ok().and_then(|mut p| p.take())
}

/// The message of the last panic (then cleared), or `undefined`. After a panic the
/// wasm instance traps; the glue reports this message and starts a fresh instance.
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    PANIC.lock().ok().and_then(|mut p| p.take())
}

/// Panics on purpose: lets the tests check that a panic reaches JS as a readable `Error`.
/// Not part of the API.
#[doc(hidden)]
#[wasm_bindgen(js_name = debugPanic)]
pub fn debug_panic(message: &str) {
    panic!("{message}");
}

/// Bytes of the wasm linear memory (it grows, never shrinks).
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        if let Ok(mem) = wasm_bindgen::memory().dyn_into::<js_sys::WebAssembly::Memory>() {
            if let Ok(buf) = mem.buffer().dyn_into::<js_sys::ArrayBuffer>() {
                return buf.byte_length() as f64;
            }
        }
    }
    0.0
}

/// The engine version (the crate version).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Whether this build was compiled with wasm SIMD (simd128).
#[wasm_bindgen(js_name = builtWithSimd)]
pub fn built_with_simd() -> bool {
    cfg!(target_feature = "simd128")
}

/// Whether this build was compiled with relaxed SIMD (the relaxed flavours: fused multiply-add
/// in the GEMM microkernel).
#[wasm_bindgen(js_name = builtWithRelaxedSimd)]
pub fn built_with_relaxed_simd() -> bool {
    cfg!(target_feature = "relaxed-simd")
}

/// Whether this build was compiled with wasm threads (atomics, shared memory):
/// the threaded build, whose sessions can run kernels on a pool of workers.
#[wasm_bindgen(js_name = builtWithThreads)]
pub fn built_with_threads() -> bool {
    cfg!(target_feature = "atomics")
}

/// This instance's `WebAssembly.Memory` (shared in the threaded build), for starting pool workers.
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// The body of a pool worker in the threaded build: called once by each worker started
/// by the JS glue (`threads.js`) after it instantiated the module on the shared memory.
/// Never returns. An error in builds without threads.
#[wasm_bindgen(js_name = workerLoop)]
pub fn worker_loop() -> Result<(), JsError> {
    if !built_with_threads() {
        return Err(JsError::new("this build of uniml has no threads; workerLoop needs the threaded build"));
    }
    pool::worker_loop();
    Ok(())
}

/// Pool workers started so far (threaded build; 0 otherwise).
#[wasm_bindgen(js_name = poolWorkers)]
pub fn pool_workers() -> u32 {
    pool::workers() as u32
}

/// Kernel tasks run by pool workers so far (threaded build; 0 otherwise).
#[wasm_bindgen(js_name = poolWorkerTasks)]
pub fn pool_worker_tasks() -> f64 {
    pool::worker_tasks() as f64
}

/// A loaded model. Created from ONNX bytes; `release()` frees everything it holds.
#[wasm_bindgen]
pub struct WasmSession {
    inner: Option<Session>,
}

#[wasm_bindgen]
impl WasmSession {
    /// Parses, optimises and plans a model. `memory_limit` in bytes (0 = default).
    /// `threads` > 1 runs kernels on the worker pool (threaded build only; the glue
    /// starts `threads - 1` workers first); otherwise on the calling thread.
    #[wasm_bindgen(constructor)]
    /// `bytes` stay in JS: they are read in windows while the protobuf is decoded (no whole copy in wasm).
    /// `backend`: "cpu" (default) or, in the WebGPU build after `openGpu()`, "gpu".
    pub fn new(bytes: &Uint8Array, threads: u32, memory_limit: f64, backend: Option<String>) -> Result<WasmSession, JsError> {
        let mut opts = SessionOptions::default().with_threads(1);
        match backend.as_deref() {
            None | Some("cpu") => {}
            Some("gpu") if cfg!(feature = "webgpu") => opts = opts.with_backend(uniml::Backend::Gpu),
            Some(other) => return Err(JsError::new(&format!("backend '{other}' is not in this build of the engine (it has: cpu{})", if cfg!(feature = "webgpu") { ", gpu" } else { "" }))),
        }
        if built_with_threads() && threads > 1 {
            opts = opts.with_parallelism(std::sync::Arc::new(pool::WebPool::new(threads as usize)));
        }
        if memory_limit > 0.0 {
            opts = opts.with_memory_limit(memory_limit as u64);
        }
        let session = Session::from_reader(reader::JsBytes::new(bytes), opts).map_err(js_err)?;
        Ok(WasmSession { inner: Some(session) })
    }

    fn session(&self) -> Result<&Session, JsError> {
        self.inner.as_ref().ok_or_else(|| JsError::new("this session was released; create a new Session to run again"))
    }

    /// Input metadata: an array of `{name, dtype, dims}`; dims are numbers,
    /// strings (symbolic) or null (unknown); `dims` is null when the rank is unknown.
    pub fn inputs(&self) -> Result<Array, JsError> {
        Ok(self.session()?.inputs().iter().map(convert::io_info).collect())
    }

    /// Output metadata, as `inputs()`.
    pub fn outputs(&self) -> Result<Array, JsError> {
        Ok(self.session()?.outputs().iter().map(convert::io_info).collect())
    }

    /// Runs the model. `feeds` is an array of `[name, dtype, dims, data]`, with
    /// `data` a `Uint8Array` over the tensor's bytes (little-endian), or an array
    /// of strings for dtype `string`. Returns an array of `[name, dtype, dims, data]`
    /// in model order, `data` a fresh `Uint8Array` (or an array of strings).
    pub fn run(&self, feeds: Array) -> Result<Array, JsError> {
        let session = self.session()?;
        let owned = convert::feeds_to_tensors(&feeds)?;
        let views: Vec<(&str, uniml::TensorView)> = owned.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
        let outputs = session.run(&views).map_err(js_err)?;
        drop(views);
        drop(owned);
        convert::outputs_to_js(outputs)
    }

    /// `run` for sessions on the GPU (WebGPU build): resolves when the results are read back.
    /// A CPU session runs as `run` does. One run at a time per session.
    #[wasm_bindgen(js_name = runAsync)]
    pub async fn run_async(&self, feeds: Array) -> Result<Array, JsError> {
        let session = self.session()?;
        let owned = convert::feeds_to_tensors(&feeds)?;
        let views: Vec<(&str, uniml::TensorView)> = owned.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
        let outputs = session.run_async(&views).await.map_err(js_err)?;
        drop(views);
        drop(owned);
        convert::outputs_to_js(outputs)
    }

    /// Whether this session runs on the GPU.
    #[wasm_bindgen(js_name = onGpu)]
    pub fn on_gpu(&self) -> bool {
        self.inner.as_ref().map(|s| s.on_gpu()).unwrap_or(false)
    }

    /// Where each node runs: an array of `{node, op, device, reason}` (reason: why not on the GPU).
    pub fn placement(&self) -> Result<Array, JsError> {
        Ok(self.session()?.placement().nodes.iter().map(convert::node_placement).collect())
    }

    /// Frees cached run-time buffers (re-created by the next run).
    #[wasm_bindgen(js_name = trimMemory)]
    pub fn trim_memory(&self) {
        if let Some(s) = &self.inner {
            s.trim_memory();
        }
    }

    /// Peak bytes held by this session's run-time buffer pool.
    #[wasm_bindgen(js_name = poolPeakBytes)]
    pub fn pool_peak_bytes(&self) -> f64 {
        self.inner.as_ref().map(|s| s.pool_peak_bytes() as f64).unwrap_or(0.0)
    }

    /// Bytes of weights held by the session.
    #[wasm_bindgen(js_name = weightBytes)]
    pub fn weight_bytes(&self) -> f64 {
        self.inner.as_ref().map(|s| s.weight_bytes() as f64).unwrap_or(0.0)
    }

    /// Model metadata properties as an object.
    pub fn metadata(&self) -> Result<Object, JsError> {
        let o = Object::new();
        for (k, v) in self.session()?.metadata() {
            Reflect::set(&o, &k.into(), &v.into()).map_err(|_| JsError::new("cannot build metadata object"))?;
        }
        Ok(o)
    }

    /// Drops the model (weights, plan, buffer pools). Later calls fail with a clear error.
    pub fn release(&mut self) {
        if let Some(s) = self.inner.take() {
            s.trim_memory();
        }
    }

    /// Threads this session's kernels run on (1 = the calling thread only).
    pub fn threads(&self) -> u32 {
        self.inner.as_ref().map(|s| s.threads() as u32).unwrap_or(1)
    }

    #[wasm_bindgen(getter)]
    pub fn released(&self) -> bool {
        self.inner.is_none()
    }
}

/// `Uint8Array` copy of a byte slice (a fresh JS buffer, offset 0).
pub(crate) fn bytes_to_js(b: &[u8]) -> Uint8Array {
    let a = Uint8Array::new_with_length(b.len() as u32);
    a.copy_from(b);
    a
}
