//! ONNX builders for the rnn family: `LSTM`, `GRU`, `RNN` (opsets 7–22;
//! `layout` exists from opset 14, before it is always 0).

use uniml_core::ops::rnn::{Activation, Direction, Gru, Lstm, Rnn, RnnCommon};
use uniml_core::Op;
use uniml_data::Result;

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[("LSTM", lstm), ("GRU", gru), ("RNN", rnn)];

/// Reads the attributes shared by the three ops. `defaults` are the
/// activations of one direction when the attribute is absent.
fn common(ctx: &NodeCtx, defaults: &[&str]) -> Result<RnnCommon> {
    let dir_s = ctx.string_or("direction", "forward");
    let direction = Direction::parse(&dir_s).ok_or_else(|| {
        ctx.invalid(format!(
            "direction must be forward, reverse or bidirectional, got '{dir_s}'"
        ))
    })?;
    let hidden_size = match ctx.int("hidden_size") {
        Some(h) if h > 0 => h as usize,
        Some(h) => return Err(ctx.invalid(format!("hidden_size must be positive, got {h}"))),
        None => match ctx.const_input(2) {
            Some(r) if r.rank() == 3 => r.shape()[2],
            _ => {
                return Err(
                    ctx.unsupported("hidden_size attribute is missing and R is not a constant")
                )
            }
        },
    };
    let layout = if ctx.opset >= 14 {
        ctx.int_or("layout", 0)
    } else {
        0
    };
    if layout != 0 && layout != 1 {
        return Err(ctx.invalid(format!("layout must be 0 or 1, got {layout}")));
    }
    let clip = match ctx.float("clip") {
        Some(c) if c > 0.0 => Some(c),
        Some(c) => return Err(ctx.invalid(format!("clip must be positive, got {c}"))),
        None => None,
    };
    let per_dir = defaults.len();
    let dirs = direction.num_directions();
    let mut names = ctx
        .strings("activations")
        .unwrap_or_else(|| defaults.iter().map(|s| s.to_string()).collect());
    if names.len() == per_dir && dirs == 2 {
        names.extend_from_within(..);
    }
    if names.len() != per_dir * dirs {
        return Err(ctx.invalid(format!(
            "activations must list {} functions ({per_dir} per direction), got {names:?}",
            per_dir * dirs
        )));
    }
    let alpha = ctx.floats("activation_alpha").unwrap_or_default();
    let beta = ctx.floats("activation_beta").unwrap_or_default();
    let (mut ai, mut bi) = (alpha.into_iter(), beta.into_iter());
    let mut activations = Vec::with_capacity(names.len());
    for n in &names {
        let a = Activation::parse(n, &mut ai, &mut bi)
            .ok_or_else(|| ctx.unsupported(format!("activation function '{n}'")))?;
        activations.push(a);
    }
    Ok(RnnCommon {
        hidden_size,
        direction,
        layout,
        clip,
        activations,
        recurrent_t: Default::default(),
    })
}

fn lstm(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 7 && ctx.int_or("output_sequence", 0) != 0 {
        return Err(ctx.unsupported("output_sequence (LSTM-1) is not supported"));
    }
    let common = common(ctx, &["Sigmoid", "Tanh", "Tanh"])?;
    let input_forget = ctx.int_or("input_forget", 0) != 0;
    Ok(Box::new(Lstm {
        common,
        input_forget,
    }))
}

fn gru(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 7 && ctx.int_or("output_sequence", 0) != 0 {
        return Err(ctx.unsupported("output_sequence (GRU-1) is not supported"));
    }
    let common = common(ctx, &["Sigmoid", "Tanh"])?;
    let linear_before_reset = ctx.int_or("linear_before_reset", 0) != 0;
    Ok(Box::new(Gru {
        common,
        linear_before_reset,
    }))
}

fn rnn(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 7 && ctx.int_or("output_sequence", 0) != 0 {
        return Err(ctx.unsupported("output_sequence (RNN-1) is not supported"));
    }
    let common = common(ctx, &["Tanh"])?;
    Ok(Box::new(Rnn { common }))
}
