//! ONNX builders for the reduce family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
