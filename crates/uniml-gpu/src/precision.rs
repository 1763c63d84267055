//! What device tensors are stored as: f32, or f16 halves (computing in f32).

use uniml_core::{DType, Tensor};
use uniml_data::{Error, Result};

use crate::context::backend_err;
use crate::kernels::storage::{f16_bytes_to_f32, f32_to_f16_bytes, Storage};

/// Storage precision of a GPU session's weights and intermediates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuPrecision {
    /// f32 storage and f32 arithmetic: results match the CPU within rounding.
    #[default]
    F32,
    /// Weights and activations stored as f16 (half the memory and bandwidth),
    /// loaded into f32 for every computation and accumulation. Works on every
    /// adapter: halves are packed in pairs into `u32` words (WGSL's core
    /// `pack2x16float`/`unpack2x16float`), no `shader-f16` feature needed.
    /// Stores saturate to ±65504: a finite value never becomes inf. Graph
    /// inputs are converted on upload, outputs back to their dtype on download.
    F16Storage,
}

/// Device bytes of a host float tensor (`dtype` f32 or f16, `raw` its bytes) in `st`'s format.
pub(crate) fn to_device(dtype: DType, raw: &[u8], st: &Storage) -> Result<Vec<u8>> {
    let mut out = match (dtype, st.f16) {
        (DType::F32, false) => raw.to_vec(),
        (DType::F32, true) => f32_to_f16_bytes(&bytemuck::pod_collect_to_vec::<u8, f32>(raw)),
        (DType::F16, true) => raw.to_vec(),
        (DType::F16, false) => {
            let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(raw);
            bytemuck::cast_slice(&h.iter().map(|v| v.to_f32()).collect::<Vec<f32>>()).to_vec()
        }
        (d, _) => return Err(backend_err(format!("internal: a {d} tensor cannot feed a GPU kernel"))),
    };
    while !out.len().is_multiple_of(4) || out.is_empty() {
        out.push(0);
    }
    Ok(out)
}

/// A host tensor of `dtype` from device bytes in `st`'s format.
pub(crate) fn from_device(dtype: DType, shape: &[usize], bytes: &[u8], st: &Storage) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    match (dtype, st.f16) {
        (DType::F32, false) => Tensor::from_vec(shape, bytemuck::pod_collect_to_vec::<u8, f32>(&bytes[..(n * 4).min(bytes.len())])),
        (DType::F32, true) => Tensor::from_vec(shape, f16_bytes_to_f32(bytes, n)),
        (DType::F16, true) => Tensor::from_vec(shape, bytemuck::pod_collect_to_vec::<u8, half::f16>(&bytes[..(n * 2).min(bytes.len())])),
        (DType::F16, false) => {
            let f: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[..(n * 4).min(bytes.len())]);
            Tensor::from_vec(shape, f.into_iter().map(half::f16::from_f32).collect::<Vec<_>>())
        }
        (d, _) => Err(Error::DType { expected: DType::F32, got: d }),
    }
}
