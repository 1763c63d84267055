//! ONNX builders for the quant family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
