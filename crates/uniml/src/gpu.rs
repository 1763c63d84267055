//! The GPU backend seam (feature `gpu`): one device per process, shared by sessions.

use std::sync::{Arc, Mutex};

use uniml_core::{Graph, Plan};
use uniml_data::Result;
use uniml_gpu::{GpuContext, GpuSession};

use crate::placement::Placement;

static CONTEXT: Mutex<Option<Arc<GpuContext>>> = Mutex::new(None);

fn poisoned() -> uniml_data::Error {
    uniml_data::Error::Backend { backend: "gpu".into(), message: "GPU context lock poisoned".into() }
}

/// The process-wide GPU context (opened on first use natively; a failure is retried next time).
#[cfg(not(target_arch = "wasm32"))]
fn context() -> Result<Arc<GpuContext>> {
    let mut slot = CONTEXT.lock().map_err(|_| poisoned())?;
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let c = GpuContext::new()?;
    *slot = Some(c.clone());
    Ok(c)
}

/// The context [`open_gpu`] opened: WebGPU cannot be opened synchronously.
#[cfg(target_arch = "wasm32")]
fn context() -> Result<Arc<GpuContext>> {
    CONTEXT.lock().map_err(|_| poisoned())?.clone().ok_or_else(|| uniml_data::Error::Backend {
        backend: "gpu".into(),
        message: "the WebGPU device is not open: await uniml::open_gpu() before creating a GPU session".into(),
    })
}

/// Opens the process-wide GPU device without blocking (the one way under
/// WebGPU, where the adapter and device come from promises) and returns the
/// adapter's description. Sessions with [`crate::Backend::Gpu`] or
/// [`crate::Backend::Auto`] created afterwards use it. Idempotent.
pub async fn open_gpu() -> Result<String> {
    if let Some(c) = CONTEXT.lock().map_err(|_| poisoned())?.as_ref() {
        return Ok(c.describe());
    }
    let c = GpuContext::new_async().await?;
    let mut slot = CONTEXT.lock().map_err(|_| poisoned())?;
    let c = slot.get_or_insert(c);
    Ok(c.describe())
}

pub(crate) fn session(graph: &Graph, plan: &Plan, memory_limit: u64, precision: crate::GpuPrecision) -> Result<GpuSession> {
    let precision = match precision {
        crate::GpuPrecision::F32 => uniml_gpu::GpuPrecision::F32,
        crate::GpuPrecision::F16Storage => uniml_gpu::GpuPrecision::F16Storage,
    };
    GpuSession::with_precision(context()?, graph, plan, memory_limit, precision)
}

pub(crate) fn placement(g: &GpuSession) -> Placement {
    g.placement().clone()
}
