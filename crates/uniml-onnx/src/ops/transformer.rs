//! ONNX builders for the transformer family: `Attention` (23–25),
//! `RotaryEmbedding` (23), `Einsum` (12+), `NegativeLogLikelihoodLoss` and
//! `SoftmaxCrossEntropyLoss` (12–22), `LpNormalization` (1–22), `CumProd`
//! (26), `LinearAttention` and `CausalConvWithState` (27).

use uniml_core::ops::transformer::{
    Attention, CausalConvWithState, CumProd, Einsum, Equation, LinearAttention, LpNormalization,
    NllLoss, Reduction, RotaryEmbedding, SoftmaxCrossEntropyLoss, UpdateRule,
};
use uniml_core::Op;
use uniml_data::{DType, Result};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("Attention", attention),
    ("RotaryEmbedding", rotary_embedding),
    ("Einsum", einsum),
    ("NegativeLogLikelihoodLoss", nll_loss),
    ("SoftmaxCrossEntropyLoss", sce_loss),
    ("LpNormalization", lp_normalization),
    ("CumProd", cumprod),
    ("LinearAttention", linear_attention),
    ("CausalConvWithState", causal_conv_with_state),
];

/// A positive integer attribute, if present.
fn positive(ctx: &NodeCtx, name: &str) -> Result<Option<usize>> {
    match ctx.int(name) {
        Some(v) if v > 0 => Ok(Some(v as usize)),
        Some(v) => Err(ctx.invalid(format!("attribute {name} must be positive, got {v}"))),
        None => Ok(None),
    }
}

fn attention(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let mode = ctx.int_or("qk_matmul_output_mode", 0);
    if !(0..=3).contains(&mode) {
        return Err(ctx.invalid(format!("qk_matmul_output_mode must be 0..3, got {mode}")));
    }
    // f32/f64 softmax runs in f32; f16/bf16 precision is emulated.
    let softmax_dtype = match ctx.int("softmax_precision") {
        None => None,
        Some(code) => match DType::from_onnx_code(code as i32) {
            Some(d @ (DType::F32 | DType::F64 | DType::F16 | DType::BF16)) => Some(d),
            _ => {
                return Err(ctx.invalid(format!(
                    "softmax_precision must be 1, 10, 11 or 16, got {code}"
                )))
            }
        },
    };
    let (left, right) = if ctx.opset >= 25 {
        (
            ctx.int_or("left_window_size", -1),
            ctx.int_or("right_window_size", -1),
        )
    } else {
        (-1, -1)
    };
    if left < -1 || right < -1 {
        return Err(ctx.invalid(format!(
            "window sizes must be -1 or non-negative, got {left}/{right}"
        )));
    }
    Ok(Box::new(Attention {
        is_causal: ctx.int_or("is_causal", 0) != 0,
        q_num_heads: positive(ctx, "q_num_heads")?,
        kv_num_heads: positive(ctx, "kv_num_heads")?,
        scale: ctx.float("scale"),
        softcap: ctx.float_or("softcap", 0.0),
        qk_matmul_output_mode: mode,
        left_window: left,
        right_window: right,
        softmax_dtype,
        qk_output: ctx.node.output.get(3).is_some_and(|n| !n.is_empty()),
    }))
}

fn rotary_embedding(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let dim = ctx.int_or("rotary_embedding_dim", 0);
    if dim < 0 {
        return Err(ctx.invalid(format!(
            "rotary_embedding_dim must be non-negative, got {dim}"
        )));
    }
    Ok(Box::new(RotaryEmbedding {
        interleaved: ctx.int_or("interleaved", 0) != 0,
        rotary_embedding_dim: dim as usize,
        num_heads: positive(ctx, "num_heads")?,
    }))
}

fn einsum(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let eq = ctx
        .string("equation")
        .ok_or_else(|| ctx.invalid("Einsum needs the equation attribute"))?;
    let equation =
        Equation::parse(&eq).map_err(|e| ctx.invalid(format!("equation '{eq}': {e}")))?;
    if equation.inputs.len() != ctx.n_inputs() {
        return Err(ctx.invalid(format!(
            "equation '{eq}' has {} operands, node has {} inputs",
            equation.inputs.len(),
            ctx.n_inputs()
        )));
    }
    Ok(Box::new(Einsum { equation }))
}

fn reduction(ctx: &NodeCtx) -> Result<Reduction> {
    let r = ctx.string_or("reduction", "mean");
    Reduction::parse(&r)
        .ok_or_else(|| ctx.invalid(format!("reduction must be none, sum or mean, got '{r}'")))
}

fn nll_loss(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(NllLoss {
        reduction: reduction(ctx)?,
        ignore_index: ctx.int("ignore_index"),
    }))
}

fn sce_loss(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(SoftmaxCrossEntropyLoss {
        reduction: reduction(ctx)?,
        ignore_index: ctx.int("ignore_index"),
    }))
}

fn lp_normalization(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let p = ctx.int_or("p", 2);
    if p != 1 && p != 2 {
        return Err(ctx.unsupported(format!("p = {p} (only 1 and 2 are defined)")));
    }
    Ok(Box::new(LpNormalization {
        axis: ctx.int_or("axis", -1),
        p,
    }))
}

fn cumprod(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(CumProd {
        exclusive: ctx.int_or("exclusive", 0) != 0,
        reverse: ctx.int_or("reverse", 0) != 0,
    }))
}

fn linear_attention(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let q_num_heads =
        positive(ctx, "q_num_heads")?.ok_or_else(|| ctx.invalid("q_num_heads is required"))?;
    let kv_num_heads =
        positive(ctx, "kv_num_heads")?.ok_or_else(|| ctx.invalid("kv_num_heads is required"))?;
    if q_num_heads % kv_num_heads != 0 {
        return Err(ctx.invalid(format!(
            "q_num_heads ({q_num_heads}) must be a multiple of kv_num_heads ({kv_num_heads})"
        )));
    }
    let rule = ctx.string_or("update_rule", "gated_delta");
    let update_rule = UpdateRule::parse(&rule).ok_or_else(|| {
        ctx.invalid(format!(
            "update_rule must be linear, gated, delta or gated_delta, got '{rule}'"
        ))
    })?;
    // chunk_size is a tuning hint for chunked kernels; the result does not depend on it.
    let _ = ctx.int("chunk_size");
    Ok(Box::new(LinearAttention {
        q_num_heads,
        kv_num_heads,
        scale: ctx.float_or("scale", 0.0),
        update_rule,
    }))
}

fn causal_conv_with_state(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let act = ctx.string_or("activation", "none");
    let silu = match act.as_str() {
        "none" => false,
        "silu" | "swish" => true,
        other => {
            return Err(ctx.unsupported(format!(
                "activation '{other}' (expected none, silu or swish)"
            )))
        }
    };
    Ok(Box::new(CausalConvWithState { silu }))
}
