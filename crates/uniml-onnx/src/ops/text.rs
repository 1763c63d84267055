//! ONNX builders for the text family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
