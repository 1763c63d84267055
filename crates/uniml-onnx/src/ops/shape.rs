//! ONNX builders for the shape family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
