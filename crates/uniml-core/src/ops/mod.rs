//! Ops, one module per op (or per tight family), each with its shape rules
//! (`output_facts`) beside its CPU kernel (`eval`). Shared machinery for
//! broadcasting and dtype dispatch lives in [`util`].

pub mod constant;
pub mod control;
pub mod elementwise;
pub mod nn;
pub mod quant;
pub mod random;
pub mod reduce;
pub mod rnn;
pub mod shape;
pub mod signal;
pub mod text;
pub mod transformer;
pub mod vision;
pub mod util;
pub(crate) mod wide;

/// Graph rewrites contributed by op families, run after constant folding
/// (e.g. BatchNormalization folded into Conv, activation fusion).
pub const PASSES: &[crate::passes::Pass] = &[crate::passes::fold_batchnorm_into_conv, crate::passes::fuse_conv_activation];
/// Fusions for graphs that run on the CPU backend only (the GPU backend's
/// kernels do not take their forms, or were measured with the unfused
/// graph): per-channel Mul/Add folded into the Conv or BatchNormalization
/// before them, a residual `Add` (or two-input `Sum`) into the Conv before
/// it, then the activations after those; HardSwish's and GELU's
/// elementwise spellings into one node each (HardSwish's first, so that a
/// Conv before it takes it), and a scalar affine after a Conv's HardSwish
/// into its epilogue; a MatMul's bias `Add` and activation into its epilogue; and a
/// batch-1 channel `Concat` of convolutions into one node in which each
/// convolution writes its channels of the output.
pub const CPU_PASSES: &[crate::passes::Pass] = &[
    crate::passes::fuse_hardswish,
    crate::passes::sum_pairs_to_add,
    crate::passes::fuse_erf_gelu,
    crate::passes::fuse_matmul_bias,
    crate::passes::fuse_matmul_activation,
    crate::passes::fuse_attention_softmax,
    crate::passes::fold_channel_affine,
    crate::passes::fuse_conv_residual,
    crate::passes::fuse_conv_activation,
    crate::passes::fuse_activation_affine,
    crate::passes::fuse_batchnorm_activation,
    crate::passes::fuse_concat_convs,
];
