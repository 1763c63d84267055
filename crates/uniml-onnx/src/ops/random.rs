//! ONNX builders for the random family: `RandomNormal`, `RandomUniform`,
//! `RandomNormalLike`, `RandomUniformLike` (1), `Multinomial` (7),
//! `Bernoulli` (15), and `BitCast` (26).

use uniml_core::ops::random::bitcast::BitCast;
use uniml_core::ops::random::generate::{Distribution, RandomGen};
use uniml_core::ops::random::sample::{Bernoulli, Multinomial};
use uniml_core::ops::random::SeedSource;
use uniml_core::Op;
use uniml_data::{DType, Result};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("RandomNormal", random_normal),
    ("RandomUniform", random_uniform),
    ("RandomNormalLike", random_normal_like),
    ("RandomUniformLike", random_uniform_like),
    ("Bernoulli", bernoulli),
    ("Multinomial", multinomial),
    ("BitCast", bitcast),
];

/// The `dtype` attribute as a dtype (`None` when absent).
fn dtype_attr(ctx: &NodeCtx, name: &str) -> Result<Option<DType>> {
    match ctx.int(name) {
        None => Ok(None),
        Some(code) => DType::from_onnx_code(code as i32)
            .map(Some)
            .ok_or_else(|| ctx.unsupported(format!("{name} {code} is not a supported dtype"))),
    }
}

fn float_dtype(ctx: &NodeCtx) -> Result<Option<DType>> {
    match dtype_attr(ctx, "dtype")? {
        Some(d) if !d.is_float() => {
            Err(ctx.invalid(format!("dtype must be a float type, got {d}")))
        }
        d => Ok(d),
    }
}

fn seeds(ctx: &NodeCtx) -> SeedSource {
    SeedSource::new(ctx.float("seed"))
}

fn shape(ctx: &NodeCtx) -> Result<Vec<usize>> {
    let s = ctx
        .ints("shape")
        .ok_or_else(|| ctx.invalid("attribute shape is required"))?;
    s.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| ctx.invalid(format!("shape must be non-negative, got {s:?}")))
        })
        .collect()
}

fn normal(ctx: &NodeCtx) -> Distribution {
    Distribution::Normal {
        mean: ctx.float_or("mean", 0.0),
        scale: ctx.float_or("scale", 1.0),
    }
}

fn uniform(ctx: &NodeCtx) -> Distribution {
    Distribution::Uniform {
        low: ctx.float_or("low", 0.0),
        high: ctx.float_or("high", 1.0),
    }
}

fn random_normal(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let dtype = Some(float_dtype(ctx)?.unwrap_or(DType::F32));
    Ok(Box::new(RandomGen {
        dist: normal(ctx),
        dtype,
        shape: Some(shape(ctx)?),
        seeds: seeds(ctx),
    }))
}

fn random_uniform(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let dtype = Some(float_dtype(ctx)?.unwrap_or(DType::F32));
    Ok(Box::new(RandomGen {
        dist: uniform(ctx),
        dtype,
        shape: Some(shape(ctx)?),
        seeds: seeds(ctx),
    }))
}

fn random_normal_like(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(RandomGen {
        dist: normal(ctx),
        dtype: float_dtype(ctx)?,
        shape: None,
        seeds: seeds(ctx),
    }))
}

fn random_uniform_like(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(RandomGen {
        dist: uniform(ctx),
        dtype: float_dtype(ctx)?,
        shape: None,
        seeds: seeds(ctx),
    }))
}

fn bernoulli(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let dtype = match dtype_attr(ctx, "dtype")? {
        Some(DType::String) => return Err(ctx.invalid("Bernoulli dtype cannot be string")),
        d => d,
    };
    Ok(Box::new(Bernoulli {
        dtype,
        seeds: seeds(ctx),
    }))
}

fn multinomial(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let dtype = dtype_attr(ctx, "dtype")?.unwrap_or(DType::I32);
    if !matches!(dtype, DType::I32 | DType::I64) {
        return Err(ctx.invalid(format!(
            "Multinomial dtype must be int32 or int64, got {dtype}"
        )));
    }
    let n = ctx.int_or("sample_size", 1);
    let sample_size = usize::try_from(n)
        .map_err(|_| ctx.invalid(format!("sample_size must be non-negative, got {n}")))?;
    Ok(Box::new(Multinomial {
        dtype,
        sample_size,
        seeds: seeds(ctx),
    }))
}

fn bitcast(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let to = dtype_attr(ctx, "to")?.ok_or_else(|| ctx.invalid("attribute to is required"))?;
    if to == DType::String {
        return Err(ctx.invalid("BitCast to string is not allowed"));
    }
    Ok(Box::new(BitCast { to }))
}
