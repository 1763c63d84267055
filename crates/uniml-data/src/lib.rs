//! The data layer of uniml: element types, tensors (owned and borrowed), symbolic
//! shapes and the single typed [`Error`] enum every crate returns.
//!
//! Invariant: nothing here knows about ONNX, graphs or backends.

mod dtype;
mod error;
pub mod lowp;
mod shape;
mod tensor;

pub use dtype::{DType, Element, ALL_DTYPES};
pub use error::{error_unsupported, Error, Result, Unsupported};
pub use shape::{broadcast_shapes, Dim, Shape, SymbolicShape};
pub use tensor::{Tensor, TensorView};

pub use half::{bf16, f16};
