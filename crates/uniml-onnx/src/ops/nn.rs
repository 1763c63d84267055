//! ONNX builders for the nn family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
