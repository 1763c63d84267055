//! The GPU backend seam (feature `gpu`): one device per process, shared by sessions.

use std::sync::{Arc, Mutex};

use uniml_core::{Graph, Plan};
use uniml_data::Result;
use uniml_gpu::{GpuContext, GpuSession};

use crate::placement::Placement;

static CONTEXT: Mutex<Option<Arc<GpuContext>>> = Mutex::new(None);

/// The process-wide GPU context (opened on first use; a failure is retried next time).
fn context() -> Result<Arc<GpuContext>> {
    let mut slot = CONTEXT.lock().map_err(|_| uniml_data::Error::Backend { backend: "gpu".into(), message: "GPU context lock poisoned".into() })?;
    if let Some(c) = slot.as_ref() {
        return Ok(c.clone());
    }
    let c = GpuContext::new()?;
    *slot = Some(c.clone());
    Ok(c)
}

pub(crate) fn session(graph: &Graph, plan: &Plan, memory_limit: u64) -> Result<GpuSession> {
    GpuSession::new(context()?, graph, plan, memory_limit)
}

pub(crate) fn placement(g: &GpuSession) -> Placement {
    g.placement().clone()
}
