//! ONNX builders for the quant family (default domain):
//! `QuantizeLinear` / `DequantizeLinear` (opsets 10–25: `axis` from 13,
//! `saturate` from 19, `block_size` and `output_dtype` from 21 (Dequantize:
//! `output_dtype` from 23), `precision` from 23), `DynamicQuantizeLinear` (11),
//! `MatMulInteger` (10), `QLinearMatMul` (10, 21), `ConvInteger` (10),
//! `QLinearConv` (10). Quantize/DequantizeLinear cover the float8 (E4M3FN,
//! E4M3FNUZ, E5M2, E5M2FNUZ), float4 (E2M1) and 4-/2-bit integer types.

use uniml_core::ops::nn::padding::{AutoPad, Window};
use uniml_core::ops::quant::conv::{ConvInteger, IntConvAttrs, QLinearConv};
use uniml_core::ops::quant::dequantize::DequantizeLinear;
use uniml_core::ops::quant::dynamic::DynamicQuantizeLinear;
use uniml_core::ops::quant::matmul::{MatMulInteger, QLinearMatMul};
use uniml_core::ops::quant::quantize::QuantizeLinear;
use uniml_core::Op;
use uniml_data::{DType, Result};

use crate::node_ctx::{Builder, NodeCtx};
use crate::tensor_proto::onnx_dtype_name;

pub const OPS: &[(&str, Builder)] = &[
    ("QuantizeLinear", quantize_linear),
    ("DequantizeLinear", dequantize_linear),
    ("DynamicQuantizeLinear", dynamic_quantize_linear),
    ("MatMulInteger", matmul_integer),
    ("QLinearMatMul", qlinear_matmul),
    ("ConvInteger", conv_integer),
    ("QLinearConv", qlinear_conv),
];

/// A dtype-valued attribute (0 or absent = none), restricted to `allowed`.
fn dtype_attr(ctx: &NodeCtx, name: &str, allowed: &[DType]) -> Result<Option<DType>> {
    let code = match ctx.int(name) {
        None | Some(0) => return Ok(None),
        Some(c) => c,
    };
    let Ok(code32) = i32::try_from(code) else {
        return Err(ctx.invalid(format!(
            "attribute {name} = {code} is not a tensor data type"
        )));
    };
    match DType::from_onnx_code(code32) {
        Some(d) if allowed.contains(&d) => Ok(Some(d)),
        Some(d) => Err(ctx.invalid(format!(
            "attribute {name} = {d} is not allowed here (expected one of {})",
            allowed
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Err(ctx.unsupported(format!(
            "{name} {} is not supported",
            onnx_dtype_name(code32)
        ))),
    }
}

fn axis(ctx: &NodeCtx) -> i64 {
    if ctx.opset >= 13 {
        ctx.int_or("axis", 1)
    } else {
        1
    }
}

fn block_size(ctx: &NodeCtx) -> Result<usize> {
    if ctx.opset < 21 {
        return Ok(0);
    }
    let b = ctx.int_or("block_size", 0);
    usize::try_from(b).map_err(|_| ctx.invalid(format!("block_size must be >= 0, got {b}")))
}

fn quantize_linear(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    // Only affects float8 outputs.
    let saturate = ctx.opset < 19 || ctx.int_or("saturate", 1) != 0;
    let output_dtype = if ctx.opset >= 21 {
        dtype_attr(
            ctx,
            "output_dtype",
            &[
                DType::U8,
                DType::I8,
                DType::U16,
                DType::I16,
                DType::U4,
                DType::I4,
                DType::U2,
                DType::I2,
                DType::F8E4M3FN,
                DType::F8E4M3FNUZ,
                DType::F8E5M2,
                DType::F8E5M2FNUZ,
                DType::F4E2M1,
            ],
        )?
    } else {
        None
    };
    let precision = if ctx.opset >= 23 {
        dtype_attr(ctx, "precision", &[DType::F32, DType::F16, DType::BF16])?
    } else {
        None
    };
    if let (Some(o), Some(z)) = (output_dtype, ctx.const_input(2)) {
        if z.dtype() != o {
            return Err(ctx.invalid(format!(
                "output_dtype {o} differs from the zero point's dtype {}",
                z.dtype()
            )));
        }
    }
    Ok(Box::new(QuantizeLinear {
        axis: axis(ctx),
        block_size: block_size(ctx)?,
        output_dtype,
        precision,
        saturate,
    }))
}

fn dequantize_linear(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let output_dtype = if ctx.opset >= 23 {
        dtype_attr(ctx, "output_dtype", &[DType::F32, DType::F16, DType::BF16])?
    } else {
        None
    };
    Ok(Box::new(DequantizeLinear {
        axis: axis(ctx),
        block_size: block_size(ctx)?,
        output_dtype,
    }))
}

fn dynamic_quantize_linear(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(DynamicQuantizeLinear))
}

fn matmul_integer(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(MatMulInteger))
}

fn qlinear_matmul(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(QLinearMatMul))
}

/// Non-negative integers of an ints attribute (empty when absent).
fn uints(ctx: &NodeCtx, name: &str) -> Result<Vec<usize>> {
    match ctx.ints(name) {
        None => Ok(vec![]),
        Some(v) => v
            .iter()
            .map(|&x| {
                usize::try_from(x).map_err(|_| {
                    ctx.invalid(format!("attribute {name} must be non-negative, got {v:?}"))
                })
            })
            .collect(),
    }
}

fn positive(ctx: &NodeCtx, name: &str) -> Result<Vec<usize>> {
    let v = uints(ctx, name)?;
    if v.contains(&0) {
        return Err(ctx.invalid(format!("attribute {name} must be positive, got {v:?}")));
    }
    Ok(v)
}

fn conv_attrs(ctx: &NodeCtx) -> Result<IntConvAttrs> {
    let group = ctx.int_or("group", 1);
    if group < 1 {
        return Err(ctx.invalid(format!("group must be >= 1, got {group}")));
    }
    let s = ctx.string_or("auto_pad", "NOTSET");
    let auto_pad = AutoPad::parse(&s).ok_or_else(|| {
        ctx.unsupported(format!(
            "auto_pad '{s}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"
        ))
    })?;
    let ks = positive(ctx, "kernel_shape")?;
    Ok(IntConvAttrs {
        kernel_shape: if ks.is_empty() { None } else { Some(ks) },
        window: Window {
            strides: positive(ctx, "strides")?,
            dilations: positive(ctx, "dilations")?,
            pads: uints(ctx, "pads")?,
            auto_pad,
            ceil_mode: false,
        },
        group: group as usize,
    })
}

fn conv_integer(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(ConvInteger(conv_attrs(ctx)?)))
}

fn qlinear_conv(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(QLinearConv(conv_attrs(ctx)?)))
}
