//! Ops, one module per op (or per tight family), each with its shape rules
//! (`output_facts`) beside its CPU kernel (`eval`). Shared machinery for
//! broadcasting and dtype dispatch lives in [`util`].

pub mod constant;
pub mod elementwise;
pub mod nn;
pub mod reduce;
pub mod shape;
pub mod util;

/// Graph rewrites contributed by op families, run after constant folding
/// (e.g. BatchNormalization folded into Conv, activation fusion).
pub const PASSES: &[crate::passes::Pass] = &[];
