//! ONNX builders for the elementwise family (default domain, opsets 7–23):
//! unary math and activations, binary ops with broadcasting, `Pow`, `Clip`,
//! variadic `Max`/`Min`/`Sum`/`Mean`, `Where`, `Cast`/`CastLike`, and the
//! pass-throughs `Identity`/`Dropout`. Opset differences resolved here:
//! `Clip` bounds are attributes before opset 11 and inputs from 11;
//! `Dropout` takes `ratio` as an attribute before 12 and as an input from 12.

use uniml_core::ops::elementwise::{
    BinOp, Binary, Cast, CastLike, CastMode, Clip, Dropout, Identity, Pow, SwiGlu, Unary, UnaryOp, Variadic,
    VariadicOp, Where,
};
use uniml_core::ops::random::SeedSource;
use uniml_core::Op;
use uniml_data::lowp::RoundMode;
use uniml_data::{DType, Result};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("Abs", abs),
    ("Neg", neg),
    ("Sign", sign),
    ("Relu", relu),
    ("Sqrt", sqrt),
    ("Reciprocal", reciprocal),
    ("Exp", exp),
    ("Log", log),
    ("Ceil", ceil),
    ("Floor", floor),
    ("Round", round),
    ("Sin", sin),
    ("Cos", cos),
    ("Tan", tan),
    ("Asin", asin),
    ("Acos", acos),
    ("Atan", atan),
    ("Sinh", sinh),
    ("Cosh", cosh),
    ("Asinh", asinh),
    ("Acosh", acosh),
    ("Atanh", atanh),
    ("Erf", erf),
    ("Tanh", tanh),
    ("Sigmoid", sigmoid),
    ("HardSwish", hard_swish),
    ("Swish", swish),
    ("SwiGLU", swiglu),
    ("Softplus", softplus),
    ("Softsign", softsign),
    ("Mish", mish),
    ("IsNaN", is_nan),
    ("Not", not),
    ("BitwiseNot", bitwise_not),
    ("LeakyRelu", leaky_relu),
    ("Elu", elu),
    ("Selu", selu),
    ("Celu", celu),
    ("HardSigmoid", hard_sigmoid),
    ("Gelu", gelu),
    ("ThresholdedRelu", thresholded_relu),
    ("Shrink", shrink),
    ("IsInf", is_inf),
    ("Add", add),
    ("Sub", sub),
    ("Mul", mul),
    ("Div", div),
    ("Mod", modulo),
    ("PRelu", prelu),
    ("Equal", equal),
    ("Less", less),
    ("LessOrEqual", less_or_equal),
    ("Greater", greater),
    ("GreaterOrEqual", greater_or_equal),
    ("And", and),
    ("Or", or),
    ("Xor", xor),
    ("BitwiseAnd", bitwise_and),
    ("BitwiseOr", bitwise_or),
    ("BitwiseXor", bitwise_xor),
    ("BitShift", bit_shift),
    ("Pow", pow),
    ("Clip", clip),
    ("Max", max),
    ("Min", min),
    ("Sum", sum),
    ("Mean", mean),
    ("Where", where_),
    ("Cast", cast),
    ("CastLike", cast_like),
    ("Identity", identity),
    ("Dropout", dropout),
];

/// Builders for ops without attributes.
macro_rules! simple {
    ($($f:ident => $e:expr),* $(,)?) => {$(
        fn $f(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
            Ok(Box::new($e))
        }
    )*};
}

simple!(
    abs => Unary::new(UnaryOp::Abs),
    neg => Unary::new(UnaryOp::Neg),
    sign => Unary::new(UnaryOp::Sign),
    relu => Unary::new(UnaryOp::Relu),
    sqrt => Unary::new(UnaryOp::Sqrt),
    reciprocal => Unary::new(UnaryOp::Reciprocal),
    exp => Unary::new(UnaryOp::Exp),
    log => Unary::new(UnaryOp::Log),
    ceil => Unary::new(UnaryOp::Ceil),
    floor => Unary::new(UnaryOp::Floor),
    round => Unary::new(UnaryOp::Round),
    sin => Unary::new(UnaryOp::Sin),
    cos => Unary::new(UnaryOp::Cos),
    tan => Unary::new(UnaryOp::Tan),
    asin => Unary::new(UnaryOp::Asin),
    acos => Unary::new(UnaryOp::Acos),
    atan => Unary::new(UnaryOp::Atan),
    sinh => Unary::new(UnaryOp::Sinh),
    cosh => Unary::new(UnaryOp::Cosh),
    asinh => Unary::new(UnaryOp::Asinh),
    acosh => Unary::new(UnaryOp::Acosh),
    atanh => Unary::new(UnaryOp::Atanh),
    erf => Unary::new(UnaryOp::Erf),
    tanh => Unary::new(UnaryOp::Tanh),
    sigmoid => Unary::new(UnaryOp::Sigmoid),
    hard_swish => Unary::new(UnaryOp::HardSwish),
    softplus => Unary::new(UnaryOp::Softplus),
    softsign => Unary::new(UnaryOp::Softsign),
    mish => Unary::new(UnaryOp::Mish),
    is_nan => Unary::new(UnaryOp::IsNaN),
    not => Unary::new(UnaryOp::Not),
    bitwise_not => Unary::new(UnaryOp::BitwiseNot),
    add => Binary::new(BinOp::Add),
    sub => Binary::new(BinOp::Sub),
    mul => Binary::new(BinOp::Mul),
    div => Binary::new(BinOp::Div),
    prelu => Binary::new(BinOp::PRelu),
    equal => Binary::new(BinOp::Equal),
    less => Binary::new(BinOp::Less),
    less_or_equal => Binary::new(BinOp::LessOrEqual),
    greater => Binary::new(BinOp::Greater),
    greater_or_equal => Binary::new(BinOp::GreaterOrEqual),
    and => Binary::new(BinOp::And),
    or => Binary::new(BinOp::Or),
    xor => Binary::new(BinOp::Xor),
    bitwise_and => Binary::new(BinOp::BitwiseAnd),
    bitwise_or => Binary::new(BinOp::BitwiseOr),
    bitwise_xor => Binary::new(BinOp::BitwiseXor),
    pow => Pow,
    max => Variadic::new(VariadicOp::Max),
    min => Variadic::new(VariadicOp::Min),
    sum => Variadic::new(VariadicOp::Sum),
    mean => Variadic::new(VariadicOp::Mean),
    where_ => Where,
    identity => Identity,
);

fn unary(op: UnaryOp) -> Result<Box<dyn Op>> {
    Ok(Box::new(Unary::new(op)))
}

fn leaky_relu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::LeakyRelu {
        alpha: ctx.float_or("alpha", 0.01),
    })
}

fn swish(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::Swish {
        alpha: ctx.float_or("alpha", 1.0),
    })
}

fn swiglu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(SwiGlu {
        alpha: ctx.float_or("alpha", 1.0),
    }))
}

fn elu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::Elu {
        alpha: ctx.float_or("alpha", 1.0),
    })
}

fn selu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::Selu {
        alpha: ctx.float_or("alpha", 1.673_263_2),
        gamma: ctx.float_or("gamma", 1.050_701),
    })
}

fn celu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let alpha = ctx.float_or("alpha", 1.0);
    if alpha == 0.0 {
        return Err(ctx.invalid("Celu alpha must not be 0"));
    }
    unary(UnaryOp::Celu { alpha })
}

fn hard_sigmoid(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::HardSigmoid {
        alpha: ctx.float_or("alpha", 0.2),
        beta: ctx.float_or("beta", 0.5),
    })
}

fn gelu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    match ctx.string_or("approximate", "none").as_str() {
        "none" => unary(UnaryOp::Gelu { tanh: false }),
        "tanh" => unary(UnaryOp::Gelu { tanh: true }),
        other => Err(ctx.unsupported(format!(
            "Gelu approximate '{other}' is not one of none, tanh"
        ))),
    }
}

fn thresholded_relu(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::ThresholdedRelu {
        alpha: ctx.float_or("alpha", 1.0),
    })
}

fn shrink(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::Shrink {
        lambd: ctx.float_or("lambd", 0.5),
        bias: ctx.float_or("bias", 0.0),
    })
}

fn is_inf(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    unary(UnaryOp::IsInf {
        detect_positive: ctx.int_or("detect_positive", 1) != 0,
        detect_negative: ctx.int_or("detect_negative", 1) != 0,
    })
}

fn modulo(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Binary::new(BinOp::Mod {
        fmod: ctx.int_or("fmod", 0) != 0,
    })))
}

fn bit_shift(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let left = match ctx.string("direction").as_deref() {
        Some("LEFT") => true,
        Some("RIGHT") => false,
        other => {
            return Err(ctx.invalid(format!(
                "BitShift direction must be LEFT or RIGHT, got {other:?}"
            )))
        }
    };
    Ok(Box::new(Binary::new(BinOp::BitShift { left })))
}

fn clip(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 11 {
        // Defaults are ±FLT_MAX, i.e. no bound for f32 data.
        let bound = |name: &str| ctx.float(name).filter(|v| v.abs() < f32::MAX);
        return Ok(Box::new(Clip {
            min: bound("min"),
            max: bound("max"),
        }));
    }
    Ok(Box::new(Clip::default()))
}

/// Name of an ONNX dtype code this engine does not represent.
fn unsupported_dtype_name(code: i64) -> String {
    i32::try_from(code).map_or_else(|_| format!("dtype code {code}"), crate::tensor_proto::onnx_dtype_name)
}

fn cast(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let Some(code) = ctx.int("to") else {
        return Err(ctx.invalid("Cast needs the 'to' attribute"));
    };
    let to = i32::try_from(code).ok().and_then(DType::from_onnx_code);
    match to {
        Some(to) => Ok(Box::new(Cast { to, mode: cast_mode(ctx)? })),
        None => Err(ctx.unsupported(format!(
            "Cast to {} is not supported (complex and float6 dtypes are not implemented)",
            unsupported_dtype_name(code)
        ))),
    }
}

/// `saturate` (opset 19+, default 1) and `round_mode` (24+, default "up"); they only
/// affect float8 targets (round_mode only FLOAT8E8M0).
fn cast_mode(ctx: &NodeCtx) -> Result<CastMode> {
    let saturate = ctx.opset < 19 || ctx.int_or("saturate", 1) != 0;
    let round = match ctx.string("round_mode").as_deref() {
        None | Some("up") => RoundMode::Up,
        Some("down") => RoundMode::Down,
        Some("nearest") => RoundMode::Nearest,
        Some(other) if ctx.opset >= 24 => {
            return Err(ctx.invalid(format!("round_mode must be up, down or nearest, got {other:?}")))
        }
        Some(_) => RoundMode::Up,
    };
    Ok(CastMode { saturate, round })
}

fn cast_like(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(CastLike { mode: cast_mode(ctx)? }))
}

fn dropout(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    // Before opset 12 Dropout has no training mode (`ratio` attribute, `is_test` before 7):
    // inference, the data passes through. From 12 the `training_mode` input turns it on.
    let _ = ctx.float("ratio");
    let may_train = ctx.opset >= 12
        && ctx.has_input(2)
        && ctx.const_input(2).is_none_or(|t| t.as_bytes().first().copied().unwrap_or(0) != 0);
    // The executor expects every declared output, named or not.
    let mask = ctx.n_outputs() > 1;
    let seed = ctx.int("seed").map(|s| s as f32);
    Ok(Box::new(Dropout { mask, may_train, seeds: SeedSource::new(seed) }))
}
