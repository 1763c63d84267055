//! ONNX builders for the control family: `If`, `Loop`, `Scan` (opset 8 with a
//! batch axis and `sequence_lens`, opset 9+ with per-input/-output axes and
//! directions), the sequence ops, `SequenceMap` and the optional ops.
//!
//! Bodies are imported through [`NodeCtx::graph`]; the values they capture
//! from enclosing scopes become extra node inputs after the formal ones, so
//! each op records its formal input count (`n_formal`).

use uniml_core::ops::control::{
    common::n_body_formal, ConcatFromSequence, If, Loop, OptionalGetElement, OptionalHasElement,
    OptionalOp, Scan, SequenceAt, SequenceConstruct, SequenceEmpty, SequenceErase, SequenceInsert,
    SequenceLength, SequenceMap, SplitToSequence,
};
use uniml_core::{Op, Subgraph};
use uniml_data::{DType, Result};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("If", if_op),
    ("Loop", loop_op),
    ("Scan", scan),
    ("SequenceEmpty", sequence_empty),
    ("SequenceConstruct", |_| Ok(Box::new(SequenceConstruct))),
    ("SequenceAt", |_| Ok(Box::new(SequenceAt))),
    ("SequenceInsert", |_| Ok(Box::new(SequenceInsert))),
    ("SequenceErase", |_| Ok(Box::new(SequenceErase))),
    ("SequenceLength", |_| Ok(Box::new(SequenceLength))),
    ("SplitToSequence", split_to_sequence),
    ("ConcatFromSequence", concat_from_sequence),
    ("SequenceMap", sequence_map),
    ("Optional", optional),
    ("OptionalHasElement", |_| Ok(Box::new(OptionalHasElement))),
    ("OptionalGetElement", |_| Ok(Box::new(OptionalGetElement))),
];

/// A required body attribute.
fn body(ctx: &NodeCtx, name: &str) -> Result<Subgraph> {
    ctx.graph(name)?
        .ok_or_else(|| ctx.invalid(format!("the '{name}' graph attribute is missing")))
}

fn if_op(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let then_branch = body(ctx, "then_branch")?;
    let else_branch = body(ctx, "else_branch")?;
    for (name, b) in [("then_branch", &then_branch), ("else_branch", &else_branch)] {
        if b.graph.outputs.len() < ctx.n_outputs() {
            return Err(ctx.invalid(format!(
                "{name} has {} outputs, the node has {}",
                b.graph.outputs.len(),
                ctx.n_outputs()
            )));
        }
    }
    Ok(Box::new(If {
        then_branch,
        else_branch,
        n_formal: ctx.n_inputs(),
    }))
}

fn loop_op(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let body = body(ctx, "body")?;
    let n_formal = ctx.n_inputs();
    if n_formal < 2 {
        return Err(ctx.invalid(format!(
            "Loop needs inputs M and cond (possibly empty names), got {n_formal} inputs"
        )));
    }
    let n = n_formal - 2;
    let formal = n_body_formal(&body);
    if formal != 2 + n {
        return Err(ctx.invalid(format!(
            "the body has {formal} inputs, expected {} (iteration number, condition and {n} loop-carried values)",
            2 + n
        )));
    }
    let outs = body.graph.outputs.len();
    if outs < 1 + n {
        return Err(ctx.invalid(format!("the body has {outs} outputs, expected at least {} (condition and {n} loop-carried values)", 1 + n)));
    }
    if ctx.n_outputs() > outs - 1 {
        return Err(ctx.invalid(format!(
            "the node has {} outputs, the body provides {}",
            ctx.n_outputs(),
            outs - 1
        )));
    }
    Ok(Box::new(Loop { body, n_formal }))
}

/// Reads a list of 0/1 direction flags.
fn directions(ctx: &NodeCtx, name: &str) -> Result<Vec<bool>> {
    let v = ctx.ints(name).unwrap_or_default();
    v.iter()
        .map(|&d| match d {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(ctx.invalid(format!(
                "{name} entries must be 0 (forward) or 1 (reverse), got {other}"
            ))),
        })
        .collect()
}

fn scan(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let body = body(ctx, "body")?;
    let n_formal = ctx.n_inputs();
    let batched = ctx.opset < 9;
    let num_scan_inputs = ctx
        .int("num_scan_inputs")
        .ok_or_else(|| ctx.invalid("num_scan_inputs is missing"))?;
    let first = usize::from(batched);
    if num_scan_inputs < 1 || num_scan_inputs as u64 > n_formal.saturating_sub(first) as u64 {
        return Err(ctx.invalid(format!(
            "num_scan_inputs is {num_scan_inputs}, the node has {} state and scan inputs",
            n_formal.saturating_sub(first)
        )));
    }
    let k = num_scan_inputs as usize;
    let n_states = n_formal - first - k;
    let formal = n_body_formal(&body);
    if formal != n_states + k {
        return Err(ctx.invalid(format!(
            "the body has {formal} inputs, expected {n_states} states + {k} scan inputs"
        )));
    }
    if body.graph.outputs.len() < n_states {
        return Err(ctx.invalid(format!(
            "the body has {} outputs, expected at least {n_states} states",
            body.graph.outputs.len()
        )));
    }
    let n_scan_out = body.graph.outputs.len() - n_states;
    let (input_axes, input_reverse, output_axes, output_reverse) = if batched {
        (
            vec![0; k],
            directions(ctx, "directions")?,
            Vec::new(),
            Vec::new(),
        )
    } else {
        let ia = ctx.ints("scan_input_axes").unwrap_or_else(|| vec![0; k]);
        let ir = directions(ctx, "scan_input_directions")?;
        let oa = ctx.ints("scan_output_axes").unwrap_or_default();
        let or = directions(ctx, "scan_output_directions")?;
        if ia.len() != k || (!ir.is_empty() && ir.len() != k) {
            return Err(ctx.invalid(format!(
                "scan_input_axes/scan_input_directions must have {k} entries, got {}/{}",
                ia.len(),
                ir.len()
            )));
        }
        if (!oa.is_empty() && oa.len() != n_scan_out) || (!or.is_empty() && or.len() != n_scan_out)
        {
            return Err(ctx.invalid(format!(
                "scan_output_axes/scan_output_directions must have {n_scan_out} entries, got {}/{}",
                oa.len(),
                or.len()
            )));
        }
        (ia, ir, oa, or)
    };
    if batched && !input_reverse.is_empty() && input_reverse.len() != k {
        return Err(ctx.invalid(format!(
            "directions must have {k} entries, got {}",
            input_reverse.len()
        )));
    }
    Ok(Box::new(Scan {
        body,
        n_formal,
        num_scan_inputs: k,
        batched,
        input_axes,
        input_reverse,
        output_axes,
        output_reverse,
    }))
}

fn sequence_empty(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let code = ctx.int_or("dtype", 1);
    let dtype = i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx_code)
        .ok_or_else(|| ctx.unsupported(format!("element type code {code} is not supported")))?;
    Ok(Box::new(SequenceEmpty { dtype }))
}

fn split_to_sequence(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(SplitToSequence {
        axis: ctx.int_or("axis", 0),
        keepdims: ctx.int_or("keepdims", 1) != 0,
    }))
}

fn concat_from_sequence(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let axis = ctx
        .int("axis")
        .ok_or_else(|| ctx.invalid("the 'axis' attribute is required"))?;
    Ok(Box::new(ConcatFromSequence {
        axis,
        new_axis: ctx.int_or("new_axis", 0) != 0,
    }))
}

fn sequence_map(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let body = body(ctx, "body")?;
    let n_formal = ctx.n_inputs();
    let formal = n_body_formal(&body);
    if formal != n_formal || n_formal == 0 {
        return Err(ctx.invalid(format!(
            "the body has {formal} inputs, the node has {n_formal} (they must match)"
        )));
    }
    if body.graph.outputs.len() < ctx.n_outputs() {
        return Err(ctx.invalid(format!(
            "the body has {} outputs, the node has {}",
            body.graph.outputs.len(),
            ctx.n_outputs()
        )));
    }
    Ok(Box::new(SequenceMap { body, n_formal }))
}

fn optional(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    // `type` only declares the element type of an empty optional; values carry their own.
    let _ = ctx.has_attr("type");
    Ok(Box::new(OptionalOp))
}
