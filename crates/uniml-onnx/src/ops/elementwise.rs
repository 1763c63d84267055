//! ONNX builders for the elementwise family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
