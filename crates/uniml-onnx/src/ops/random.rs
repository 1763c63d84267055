//! ONNX builders for the random family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
