//! ONNX builders for the shape family. Opset differences (attributes that
//! became inputs, new attributes) are resolved here: a moved parameter is
//! taken from the attribute on old opsets, from the input when it is constant
//! at import, and otherwise left for the kernel to read at run time.

use std::sync::Arc;

use uniml_core::ops::shape::{
    col2im::Col2Im,
    concat::Concat,
    expand::{Expand, Tile},
    gather::{Gather, GatherElements, GatherND},
    generate::{ConstantOfShape, EyeLike, Range},
    nonzero::{Compress, NonZero},
    onehot::OneHot,
    pad::{CenterCropPad, Pad, PadMode},
    reshape::{Flatten, Reshape, Squeeze, Unsqueeze},
    reverse_sequence::ReverseSequence,
    scatter::{Reduction, ScatterElements, ScatterND},
    shape_of::{Shape, Size},
    slice::Slice,
    split::Split,
    tensor_scatter::TensorScatter,
    topk::TopK,
    transpose::Transpose,
    trilu::Trilu,
    unique::Unique,
};
use uniml_core::ops::util::read_i64s;
use uniml_core::Op;
use uniml_data::{DType, Result};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("Reshape", reshape),
    ("Flatten", flatten),
    ("Squeeze", squeeze),
    ("Unsqueeze", unsqueeze),
    ("Transpose", transpose),
    ("Concat", concat),
    ("Split", split),
    ("Slice", slice),
    ("Gather", gather),
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
    ("ScatterElements", scatter_elements),
    ("Scatter", scatter),
    ("ScatterND", scatter_nd),
    ("Shape", shape),
    ("Size", size),
    ("Expand", expand),
    ("Tile", tile),
    ("Pad", pad),
    ("CenterCropPad", center_crop_pad),
    ("ConstantOfShape", constant_of_shape),
    ("Range", range),
    ("EyeLike", eye_like),
    ("NonZero", non_zero),
    ("Compress", compress),
    ("TopK", top_k),
    ("OneHot", one_hot),
    ("Trilu", trilu),
    ("TensorScatter", tensor_scatter),
    ("Unique", unique),
    ("ReverseSequence", reverse_sequence),
    ("Col2Im", col2im),
];

/// Integer values of input `i` when it is constant at import time.
fn const_ints(ctx: &NodeCtx, i: usize) -> Result<Option<Vec<i64>>> {
    match ctx.const_input(i) {
        Some(t) if ctx.has_input(i) => read_i64s(&t.view())
            .map(Some)
            .map_err(|e| ctx.invalid(format!("input {i}: {e}"))),
        _ => Ok(None),
    }
}

/// A parameter that is attribute `name` before `opset`, input `i` from it.
fn moved_ints(ctx: &NodeCtx, name: &str, since: i64, i: usize) -> Result<Option<Vec<i64>>> {
    if ctx.opset < since {
        Ok(ctx.ints(name))
    } else {
        const_ints(ctx, i)
    }
}

fn reshape(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Reshape {
        allowzero: ctx.int_or("allowzero", 0) != 0,
    }))
}

fn flatten(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Flatten {
        axis: ctx.int_or("axis", 1),
    }))
}

fn squeeze(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Squeeze {
        axes: moved_ints(ctx, "axes", 13, 1)?,
    }))
}

fn unsqueeze(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let axes = moved_ints(ctx, "axes", 13, 1)?;
    if axes.is_none() && (ctx.opset < 13 || !ctx.has_input(1)) {
        return Err(ctx.invalid("Unsqueeze needs axes"));
    }
    Ok(Box::new(Unsqueeze { axes }))
}

fn transpose(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let perm = match ctx.ints("perm") {
        Some(p) if p.iter().any(|&a| a < 0) => {
            return Err(ctx.invalid(format!("perm {p:?} has negative entries")))
        }
        Some(p) => Some(p.into_iter().map(|a| a as usize).collect()),
        None => None,
    };
    Ok(Box::new(Transpose { perm }))
}

fn concat(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let axis = ctx
        .int("axis")
        .ok_or_else(|| ctx.invalid("Concat needs an axis attribute"))?;
    Ok(Box::new(Concat { axis }))
}

fn split(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let num_outputs = if ctx.opset >= 18 {
        ctx.int("num_outputs")
    } else {
        None
    };
    if let Some(n) = num_outputs {
        if n < 1 || n as usize != ctx.n_outputs() {
            return Err(ctx.invalid(format!(
                "num_outputs {n} does not match the {} outputs",
                ctx.n_outputs()
            )));
        }
    }
    Ok(Box::new(Split {
        axis: ctx.int_or("axis", 0),
        split: moved_ints(ctx, "split", 13, 1)?.filter(|s| !s.is_empty()),
        num_outputs: num_outputs.map(|n| n as usize),
        n_outputs: ctx.n_outputs(),
    }))
}

fn slice(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 10 {
        let (Some(starts), Some(ends)) = (ctx.ints("starts"), ctx.ints("ends")) else {
            return Err(ctx.invalid("Slice needs starts and ends attributes"));
        };
        return Ok(Box::new(Slice {
            starts: Some(starts),
            ends: Some(ends),
            axes: ctx.ints("axes"),
            steps: None,
        }));
    }
    Ok(Box::new(Slice {
        starts: const_ints(ctx, 1)?,
        ends: const_ints(ctx, 2)?,
        axes: const_ints(ctx, 3)?,
        steps: const_ints(ctx, 4)?,
    }))
}

fn gather(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Gather {
        axis: ctx.int_or("axis", 0),
    }))
}

fn gather_elements(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(GatherElements {
        axis: ctx.int_or("axis", 0),
    }))
}

fn gather_nd(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let b = ctx.int_or("batch_dims", 0);
    if b < 0 {
        return Err(ctx.invalid(format!("batch_dims {b} must be >= 0")));
    }
    Ok(Box::new(GatherND {
        batch_dims: b as usize,
    }))
}

fn reduction(ctx: &NodeCtx) -> Result<Reduction> {
    let r = ctx.string_or("reduction", "none");
    Reduction::parse(&r).ok_or_else(|| ctx.unsupported(format!("reduction '{r}' is not supported")))
}

fn scatter_elements(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(ScatterElements {
        axis: ctx.int_or("axis", 0),
        reduction: reduction(ctx)?,
    }))
}

fn scatter(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(ScatterElements {
        axis: ctx.int_or("axis", 0),
        reduction: Reduction::None,
    }))
}

fn scatter_nd(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(ScatterND {
        reduction: reduction(ctx)?,
    }))
}

fn shape(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 15 {
        return Ok(Box::new(Shape::default()));
    }
    Ok(Box::new(Shape {
        start: ctx.int_or("start", 0),
        end: ctx.int("end"),
    }))
}

fn size(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Size))
}

fn expand(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Expand))
}

fn tile(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Tile))
}

fn pad(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let m = ctx.string_or("mode", "constant");
    let mode = PadMode::parse(&m)
        .ok_or_else(|| ctx.unsupported(format!("pad mode '{m}' is not supported")))?;
    if mode == PadMode::Wrap && ctx.opset < 19 {
        return Err(ctx.invalid("pad mode 'wrap' needs opset 19"));
    }
    if ctx.opset < 11 {
        let pads = ctx
            .ints("pads")
            .ok_or_else(|| ctx.invalid("Pad needs a pads attribute"))?;
        return Ok(Box::new(Pad {
            mode,
            pads: Some(pads),
            value: Some(ctx.float_or("value", 0.0) as f64),
            axes: None,
        }));
    }
    let axes = if ctx.opset >= 18 {
        const_ints(ctx, 3)?
    } else {
        None
    };
    Ok(Box::new(Pad {
        mode,
        pads: const_ints(ctx, 1)?,
        value: None,
        axes,
    }))
}

fn center_crop_pad(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(CenterCropPad {
        axes: ctx.ints("axes"),
    }))
}

fn constant_of_shape(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let op = match ctx.tensor("value")? {
        Some(t) => {
            if t.len() != 1 {
                return Err(ctx.invalid(format!(
                    "value must have one element, got shape {:?}",
                    t.shape()
                )));
            }
            ConstantOfShape { value: Arc::new(t) }
        }
        None => ConstantOfShape::default(),
    };
    Ok(Box::new(op))
}

fn range(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Range))
}

fn eye_like(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let dtype = match ctx.int("dtype") {
        Some(code) => match DType::from_onnx_code(code as i32) {
            Some(DType::String) | None => {
                return Err(ctx.unsupported(format!("dtype {code} is not supported")))
            }
            Some(d) => Some(d),
        },
        None => None,
    };
    Ok(Box::new(EyeLike {
        dtype,
        k: ctx.int_or("k", 0),
    }))
}

fn non_zero(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(NonZero))
}

fn compress(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Compress {
        axis: ctx.int("axis"),
    }))
}

fn top_k(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let k = if ctx.opset < 10 {
        Some(
            ctx.int("k")
                .ok_or_else(|| ctx.invalid("TopK needs a k attribute"))?,
        )
    } else {
        const_ints(ctx, 1)?.and_then(|v| v.first().copied())
    };
    let (largest, sorted) = if ctx.opset >= 11 {
        (ctx.int_or("largest", 1) != 0, ctx.int_or("sorted", 1) != 0)
    } else {
        (true, true)
    };
    Ok(Box::new(TopK {
        axis: ctx.int_or("axis", -1),
        largest,
        sorted,
        k,
    }))
}

fn one_hot(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(OneHot {
        axis: ctx.int_or("axis", -1),
    }))
}

fn trilu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Trilu {
        upper: ctx.int_or("upper", 1) != 0,
    }))
}

fn tensor_scatter(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let circular = match ctx.string_or("mode", "linear").as_str() {
        "linear" => false,
        "circular" => true,
        other => return Err(ctx.invalid(format!("TensorScatter mode must be linear or circular, got {other:?}"))),
    };
    Ok(Box::new(TensorScatter { axis: ctx.int_or("axis", -2), circular }))
}

fn unique(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Unique {
        axis: ctx.int("axis"),
        sorted: ctx.int_or("sorted", 1) != 0,
    }))
}

fn reverse_sequence(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let (b, t) = (ctx.int_or("batch_axis", 1), ctx.int_or("time_axis", 0));
    if !matches!((b, t), (0, 1) | (1, 0)) {
        return Err(ctx.invalid(format!("batch_axis {b} and time_axis {t} must be 0 and 1")));
    }
    Ok(Box::new(ReverseSequence {
        batch_axis: b as usize,
        time_axis: t as usize,
    }))
}

fn col2im(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Col2Im {
        dilations: ctx.ints("dilations"),
        pads: ctx.ints("pads"),
        strides: ctx.ints("strides"),
    }))
}
