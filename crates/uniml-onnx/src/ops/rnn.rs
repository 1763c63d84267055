//! ONNX builders for the rnn family.

use crate::node_ctx::Builder;

pub const OPS: &[(&str, Builder)] = &[];
