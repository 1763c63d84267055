//! ONNX op builders: one table per op family, mapping an op type to the
//! function that reads its attributes (resolving opset differences) and
//! builds the core op.

use crate::node_ctx::Builder;

mod constant;
mod control;
mod elementwise;
mod nn;
mod quant;
mod random;
mod reduce;
mod rnn;
mod shape;
mod signal;
mod text;
mod transformer;
mod vision;

/// The builder for `op_type` in `domain` ("" is the default ONNX domain).
pub fn lookup(domain: &str, op_type: &str) -> Option<Builder> {
    if !domain.is_empty() {
        return None;
    }
    FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .find(|(name, _)| *name == op_type)
        .map(|(_, b)| *b)
}

/// Every op type with a builder, for `uniml check` and docs.
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = FAMILIES.iter().flat_map(|f| f.iter()).map(|(n, _)| *n).collect();
    v.sort_unstable();
    v
}

const FAMILIES: &[&[(&str, Builder)]] = &[
    constant::OPS,
    control::OPS,
    elementwise::OPS,
    nn::OPS,
    quant::OPS,
    random::OPS,
    reduce::OPS,
    rnn::OPS,
    shape::OPS,
    signal::OPS,
    text::OPS,
    transformer::OPS,
    vision::OPS,
];
