//! GPU buffers: a pool keyed by size (buffers freed by the plan are reused by
//! later nodes and later runs) and tensors that are views of pooled buffers.

use std::collections::HashMap;
use std::sync::Arc;

use uniml_data::Result;

use crate::context::{backend_err, GpuContext};

/// One device buffer with a stable id (bind groups are cached by ids).
#[derive(Debug)]
pub(crate) struct GBuf {
    pub buf: wgpu::Buffer,
    pub bytes: u64,
    pub id: u64,
}

/// A float tensor on the device: a (shared) buffer, a shape and its logical
/// dtype (f32 or f16; the buffer holds the session's storage format, see
/// `kernels/storage.rs`). Reshape-like ops make new `GTensor`s over the same
/// buffer (zero-copy views).
#[derive(Debug, Clone)]
pub(crate) struct GTensor {
    pub buf: Arc<GBuf>,
    pub shape: Vec<usize>,
    pub dtype: uniml_data::DType,
}

impl GTensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Buffers by size class (bytes rounded up to 256).
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: HashMap<u64, Vec<GBuf>>,
    next_id: u64,
    pub live_bytes: u64,
    pub peak_bytes: u64,
    pub fresh: u64,
}

pub(crate) const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

impl BufPool {
    fn class(bytes: u64) -> u64 {
        bytes.max(16).div_ceil(256) * 256
    }

    pub fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A storage buffer of at least `bytes` bytes (contents undefined). Tensors
    /// above the binding size limit are bound as several ranges of one buffer;
    /// only the buffer size limit is a hard one.
    pub fn take(&mut self, ctx: &GpuContext, bytes: u64) -> Result<GBuf> {
        let class = Self::class(bytes);
        let max = ctx.limits.max_buffer_size;
        if class > max {
            return Err(backend_err(format!("a {bytes}-byte tensor exceeds this adapter's buffer size limit of {max} bytes")));
        }
        self.live_bytes += class;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        if let Some(b) = self.free.get_mut(&class).and_then(|v| v.pop()) {
            return Ok(b);
        }
        self.fresh += 1;
        let id = self.new_id();
        let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("uniml tensor"), size: class, usage: STORAGE, mapped_at_creation: false });
        Ok(GBuf { buf, bytes: class, id })
    }

    pub fn give(&mut self, b: GBuf) {
        self.live_bytes = self.live_bytes.saturating_sub(b.bytes);
        self.free.entry(b.bytes).or_default().push(b);
    }

    /// Returns a tensor's buffer to the pool if this was its last holder.
    pub fn release(&mut self, t: GTensor) {
        if let Ok(b) = Arc::try_unwrap(t.buf) {
            self.give(b);
        }
    }
}
