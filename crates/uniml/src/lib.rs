//! # uniml
//!
//! Run ONNX models with one engine on servers, in browsers and at the edge.
//!
//! ```no_run
//! use uniml::{Session, SessionOptions, Tensor, TensorView};
//! let bytes = std::fs::read("model.onnx").unwrap();
//! let session = Session::from_bytes(&bytes, SessionOptions::default())?;
//! let data = vec![0f32; 1 * 3 * 224 * 224];
//! let outputs = session.run(&[("input", TensorView::from_slice(&[1, 3, 224, 224], &data)?)])?;
//! let logits: &[f32] = outputs[0].1.as_slice()?;
//! # Ok::<(), uniml::Error>(())
//! ```
//!
//! This crate is the only stable Rust API; the `uniml-*` crates behind it are
//! implementation layers.

#[cfg(feature = "image")]
pub mod imagenet;
mod info;
/// Reading and writing NumPy `.npy` tensors (from and to bytes).
pub mod npy;
mod options;
mod placement;
mod session;

pub use info::{IoInfo, ModelInfo};
pub use options::{Backend, GpuPrecision, SessionOptions, SharedParallelism};
pub use placement::{Device, NodePlacement, Placement};
pub use session::Session;
pub use uniml_core::op::ValueRef;
pub use uniml_core::exec::StepObserver;
pub use uniml_core::{Parallelism, Serial, Value};
pub use uniml_data::{bf16, f16, DType, Dim, Error, Result, SymbolicShape, Tensor, TensorView, Unsupported};

/// ONNX tensor-proto helpers (reading/writing `.pb` tensors of the ONNX test-data layout).
pub mod onnx {
    pub use uniml_onnx::proto;
    pub use uniml_onnx::proto::{decode_map, decode_model, decode_optional, decode_sequence, decode_tensor, encode_sequence, encode_tensor};
    pub use uniml_onnx::tensor_proto::{tensor_from_proto, tensor_to_proto, ExternalData, ExternalDataMap, NoExternalData};
    pub use uniml_onnx::ops::supported_ops;
}

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::open_gpu;
#[cfg(feature = "gpu")]
pub use uniml_gpu::GpuRunStats;
#[cfg(feature = "threads")]
mod threads;
#[cfg(feature = "threads")]
pub use threads::RayonPool;
#[cfg(feature = "threads")]
mod spin_pool;
#[cfg(feature = "threads")]
pub use spin_pool::SpinPool;
