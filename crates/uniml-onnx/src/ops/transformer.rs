//! ONNX builders for the transformer family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
