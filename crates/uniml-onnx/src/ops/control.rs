//! ONNX builders for the control family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
