//! ONNX builders for the vision family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
