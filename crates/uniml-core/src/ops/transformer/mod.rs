//! Transformer-era ops: `Attention`, `RotaryEmbedding`, `Einsum`, the loss
//! ops (`NegativeLogLikelihoodLoss`, `SoftmaxCrossEntropyLoss`),
//! `LpNormalization`, `CumProd`, and the opset-27 `LinearAttention` and
//! `CausalConvWithState`.
//!
//! Float kernels compute in f32 (f16/bf16 converted on the way in and
//! rounded once on the way out).

pub mod attention;
pub mod causal_conv;
pub mod cumprod;
pub mod einsum;
pub mod linear_attention;
pub mod loss;
pub mod lp_norm;
pub mod rotary;

pub use attention::Attention;
pub use causal_conv::CausalConvWithState;
pub use cumprod::CumProd;
pub use einsum::{Einsum, Equation};
pub use linear_attention::{LinearAttention, UpdateRule};
pub use loss::{NllLoss, Reduction, SoftmaxCrossEntropyLoss};
pub use lp_norm::LpNormalization;
pub use rotary::RotaryEmbedding;

use uniml_data::{bf16, f16, DType};

/// Rounds f32 values to the precision of `dt` (f16/bf16; a no-op otherwise),
/// where the reference casts an intermediate result back to the input type.
pub(crate) fn round_to(dt: DType, xs: &mut [f32]) {
    match dt {
        DType::F16 => xs.iter_mut().for_each(|x| *x = f16::from_f32(*x).to_f32()),
        DType::BF16 => xs.iter_mut().for_each(|x| *x = bf16::from_f32(*x).to_f32()),
        _ => {}
    }
}
