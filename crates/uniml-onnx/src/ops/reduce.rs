//! ONNX builders for the reduce family (default domain, opsets 7–23).
//! `axes` is an attribute before opset 13 (`ReduceSum`) / 18 (the others) and
//! an optional input from then on; a constant `axes` input is folded into the
//! op here, otherwise the kernel reads it at run time.
//! `noop_with_empty_axes` exists only with the input form.

use uniml_core::ops::reduce::{ArgReduce, CumSum, Reduce, ReduceKind};
use uniml_core::ops::util::read_i64s;
use uniml_core::Op;
use uniml_data::Result;

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("ReduceSum", reduce_sum),
    ("ReduceMean", reduce_mean),
    ("ReduceMax", reduce_max),
    ("ReduceMin", reduce_min),
    ("ReduceProd", reduce_prod),
    ("ReduceL1", reduce_l1),
    ("ReduceL2", reduce_l2),
    ("ReduceLogSum", reduce_log_sum),
    ("ReduceLogSumExp", reduce_log_sum_exp),
    ("ReduceSumSquare", reduce_sum_square),
    ("ArgMax", arg_max),
    ("ArgMin", arg_min),
    ("CumSum", cum_sum),
];

fn reduce(ctx: &NodeCtx, kind: ReduceKind) -> Result<Box<dyn Op>> {
    let axes_as_input = ctx.opset >= if kind == ReduceKind::Sum { 13 } else { 18 };
    let keepdims = ctx.int_or("keepdims", 1) != 0;
    let (axes, noop) = if axes_as_input {
        let noop = ctx.int_or("noop_with_empty_axes", 0) != 0;
        let axes = if ctx.has_input(1) {
            match ctx.const_input(1) {
                Some(t) => {
                    Some(read_i64s(&t.view()).map_err(|e| ctx.invalid(format!("axes: {e}")))?)
                }
                None => None,
            }
        } else {
            Some(vec![])
        };
        (axes, noop)
    } else {
        (Some(ctx.ints("axes").unwrap_or_default()), false)
    };
    Ok(Box::new(Reduce::new(kind, axes, keepdims, noop)))
}

macro_rules! reducers {
    ($($f:ident => $k:ident),* $(,)?) => {$(
        fn $f(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
            reduce(ctx, ReduceKind::$k)
        }
    )*};
}

reducers!(
    reduce_sum => Sum,
    reduce_mean => Mean,
    reduce_max => Max,
    reduce_min => Min,
    reduce_prod => Prod,
    reduce_l1 => L1,
    reduce_l2 => L2,
    reduce_log_sum => LogSum,
    reduce_log_sum_exp => LogSumExp,
    reduce_sum_square => SumSquare,
);

fn arg(ctx: &NodeCtx, max: bool) -> Result<Box<dyn Op>> {
    Ok(Box::new(ArgReduce {
        max,
        axis: ctx.int_or("axis", 0),
        keepdims: ctx.int_or("keepdims", 1) != 0,
        select_last_index: ctx.int_or("select_last_index", 0) != 0,
    }))
}

fn arg_max(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    arg(ctx, true)
}

fn arg_min(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    arg(ctx, false)
}

fn cum_sum(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(CumSum {
        exclusive: ctx.int_or("exclusive", 0) != 0,
        reverse: ctx.int_or("reverse", 0) != 0,
    }))
}
