//! `Constant` (opset 1–23): exactly one of `value`, `value_float(s)`,
//! `value_int(s)`, `value_string(s)`; `sparse_value` is not supported.

use std::sync::Arc;

use uniml_core::ops::constant::Const;
use uniml_core::Op;
use uniml_data::{Result, Tensor};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[("Constant", constant)];

fn constant(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let t = if let Some(t) = ctx.tensor("value")? {
        t
    } else if let Some(v) = ctx.float("value_float") {
        Tensor::scalar(v)
    } else if let Some(v) = ctx.floats("value_floats") {
        Tensor::from_slice(&[v.len()], &v)?
    } else if let Some(v) = ctx.int("value_int") {
        Tensor::scalar(v)
    } else if let Some(v) = ctx.ints("value_ints") {
        Tensor::from_slice(&[v.len()], &v)?
    } else if let Some(v) = ctx.string("value_string") {
        Tensor::from_strings(&[], vec![v])?
    } else if let Some(v) = ctx.strings("value_strings") {
        Tensor::from_strings(&[v.len()], v)?
    } else if ctx.has_attr("sparse_value") {
        return Err(ctx.unsupported("sparse_value constants are not supported"));
    } else {
        return Err(ctx.invalid("Constant has no value attribute"));
    };
    Ok(Box::new(Const(Arc::new(t))))
}
