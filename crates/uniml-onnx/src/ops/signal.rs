//! ONNX builders for the signal family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
