//! Element-wise kernels from one template: unary functions (activations,
//! math), `Clip`, and broadcasting binary ops (`Add`, `Sub`, `Mul`, `Div`,
//! `Pow`, `Max`, `Min`, `PRelu`). Same-shape operands skip index math; other
//! shapes unravel the output index against baked broadcast strides.

use uniml_core::ops::elementwise::binary::{prelu_slope_shape, BinOp, Binary, Pow};
use uniml_core::ops::elementwise::clip::Clip;
use uniml_core::ops::elementwise::unary::{Unary, UnaryOp};
use uniml_core::ops::elementwise::variadic::{Variadic, VariadicOp};
use uniml_core::{DType, Node};
use uniml_data::{Error, Result};

use super::wgsl::{broadcast_strides, kernel_1d, lit, unravel, MATH};
use super::{Bind, Facts, Launch, LowerCx, Support};

/// The WGSL expression of a unary op on `v`, if the GPU has it.
fn unary_expr(op: UnaryOp) -> Option<String> {
    Some(match op {
        UnaryOp::Abs => "abs(v)".into(),
        UnaryOp::Neg => "-v".into(),
        UnaryOp::Sign => "sign(v)".into(),
        UnaryOp::Relu => "max(v, 0.0)".into(),
        UnaryOp::Sqrt => "sqrt(v)".into(),
        UnaryOp::Reciprocal => "1.0 / v".into(),
        UnaryOp::Exp => "exp(v)".into(),
        UnaryOp::Log => "log(v)".into(),
        UnaryOp::Ceil => "ceil(v)".into(),
        UnaryOp::Floor => "floor(v)".into(),
        UnaryOp::Round => "round(v)".into(),
        UnaryOp::Sin => "sin(v)".into(),
        UnaryOp::Cos => "cos(v)".into(),
        UnaryOp::Tan => "tan(v)".into(),
        UnaryOp::Atan => "atan(v)".into(),
        UnaryOp::Erf => "erf_(v)".into(),
        UnaryOp::Tanh => "tanh_(v)".into(),
        UnaryOp::Sigmoid => "sigmoid_(v)".into(),
        UnaryOp::LeakyRelu { alpha } => format!("select(v, v * {}, v < 0.0)", lit(alpha)),
        UnaryOp::Elu { alpha } => format!("select(v, {} * (exp(v) - 1.0), v < 0.0)", lit(alpha)),
        UnaryOp::Selu { alpha, gamma } => format!("{} * select(v, {} * (exp(v) - 1.0), v <= 0.0)", lit(gamma), lit(alpha)),
        UnaryOp::HardSigmoid { alpha, beta } => format!("clamp({} * v + {}, 0.0, 1.0)", lit(alpha), lit(beta)),
        UnaryOp::HardSwish => "v * clamp(v / 6.0 + 0.5, 0.0, 1.0)".into(),
        UnaryOp::Softplus => "softplus_(v)".into(),
        UnaryOp::Softsign => "v / (1.0 + abs(v))".into(),
        UnaryOp::Mish => "v * tanh_(softplus_(v))".into(),
        UnaryOp::Gelu { tanh: false } => "0.5 * v * (1.0 + erf_(v * 0.70710678118654752))".into(),
        UnaryOp::Gelu { tanh: true } => "0.5 * v * (1.0 + tanh_(0.7978845608028654 * (v + 0.044715 * v * v * v)))".into(),
        UnaryOp::ThresholdedRelu { alpha } => format!("select(0.0, v, v > {})", lit(alpha)),
        _ => return None,
    })
}

/// The WGSL expression of a binary op on `a`, `b`.
fn binary_expr(op: BinOp) -> Option<&'static str> {
    Some(match op {
        BinOp::Add => "a + b",
        BinOp::Sub => "a - b",
        BinOp::Mul => "a * b",
        BinOp::Div => "a / b",
        BinOp::Max => "select(max(a, b), a + b, a != a || b != b)",
        BinOp::Min => "select(min(a, b), a + b, a != a || b != b)",
        BinOp::PRelu => "select(a, a * b, a < 0.0)",
        _ => return None,
    })
}

/// `pow` with numpy semantics for negative bases and integral exponents.
const POW: &str = "select(pow(abs(a), b) * select(1.0, -1.0, a < 0.0 && (abs(b) % 2.0) == 1.0), pow(a, b), a >= 0.0 || floor(b) != b) ";

fn binary_of(node: &Node) -> Option<Option<String>> {
    let op = node.op.as_any();
    if let Some(b) = op.downcast_ref::<Binary>() {
        return Some(binary_expr(b.op).map(String::from));
    }
    if op.downcast_ref::<Pow>().is_some() {
        return Some(Some(POW.into()));
    }
    if let Some(v) = op.downcast_ref::<Variadic>() {
        if node.inputs.len() != 2 {
            return Some(None);
        }
        return Some(match v.op {
            VariadicOp::Sum => Some("a + b".into()),
            VariadicOp::Mean => Some("(a + b) * 0.5".into()),
            VariadicOp::Max => binary_expr(BinOp::Max).map(String::from),
            VariadicOp::Min => binary_expr(BinOp::Min).map(String::from),
        });
    }
    None
}

pub(crate) fn support(f: &Facts) -> Option<std::result::Result<Support, String>> {
    let op = f.node.op.as_any();
    if let Some(u) = op.downcast_ref::<Unary>() {
        return Some(match unary_expr(u.op) {
            Some(_) => f.f32s(&[0]).map(|_| Support::Kernel),
            None => Err(format!("no GPU kernel for unary {:?}", u.op)),
        });
    }
    if op.downcast_ref::<Clip>().is_some() {
        return Some((|| {
            f.f32s(&[0])?;
            for i in [1, 2] {
                if f.input(i).is_some() && f.dtype(i) != Some(DType::F32) {
                    return Err("Clip bounds must be f32".into());
                }
            }
            Ok(Support::Kernel)
        })());
    }
    let expr = binary_of(f.node)?;
    Some(match expr {
        None => Err("no GPU kernel for this binary op".into()),
        Some(_) => f.f32s(&[0, 1]).and_then(|_| match (f.rank(0), f.rank(1)) {
            (Some(a), Some(b)) if a.max(b) <= 8 => Ok(Support::Kernel),
            _ => Err("operand ranks unknown or > 8".into()),
        }),
    })
}

pub(crate) fn lower(cx: &LowerCx) -> Option<Result<Launch>> {
    let op = cx.node.op.as_any();
    if let Some(u) = op.downcast_ref::<Unary>() {
        return Some(match unary_expr(u.op) {
            Some(e) => lower_unary(cx, &e),
            None => Err(Error::Other(format!("no GPU kernel for unary {:?}", u.op))),
        });
    }
    if let Some(c) = op.downcast_ref::<Clip>() {
        return Some(lower_clip(cx, c));
    }
    let expr = binary_of(cx.node)?;
    Some(match expr {
        Some(e) => lower_binary(cx, &e),
        None => Err(Error::Other("no GPU kernel for this binary op".into())),
    })
}

fn lower_unary(cx: &LowerCx, expr: &str) -> Result<Launch> {
    let n: usize = cx.shape(0)?.iter().product();
    let prelude = format!("{MATH}fn op_(v: f32) -> f32 {{ return {expr}; }}\n");
    let pair = "  let v = ld2_x(i);\n  return vec2<f32>(op_(v.x), op_(v.y));";
    let (src, g) = kernel_1d(&["x"], &[], &prelude, n, "  return op_(ld_x(i));", Some(pair), cx.pairs());
    cx.single("unary", src, vec![Bind::In(0), Bind::Out(0)], g)
}

fn host_scalar(cx: &LowerCx, i: usize) -> Result<Option<f32>> {
    if !cx.has(i) {
        return Ok(None);
    }
    let t = cx.host(i).ok_or_else(|| Error::Other(format!("Clip bound {i} is not on the host")))?;
    match t.as_slice::<f32>()? {
        [] => Ok(None),
        [v] => Ok(Some(*v)),
        _ => Err(Error::Shape(format!("Clip bound must be a scalar, got shape {:?}", t.shape()))),
    }
}

fn lower_clip(cx: &LowerCx, c: &Clip) -> Result<Launch> {
    let lo = host_scalar(cx, 1)?.or(c.min).unwrap_or(f32::NEG_INFINITY);
    let hi = host_scalar(cx, 2)?.or(c.max).unwrap_or(f32::INFINITY);
    lower_unary(cx, &format!("min(max(v, {}), {})", lit(lo), lit(hi)))
}

fn lower_binary(cx: &LowerCx, expr: &str) -> Result<Launch> {
    let (sa, mut sb) = (cx.shape(0)?.to_vec(), cx.shape(1)?.to_vec());
    if cx.node.op.as_any().downcast_ref::<Binary>().is_some_and(|b| b.op == BinOp::PRelu) {
        // The CPU kernel's rule: a 1-D slope that does not broadcast aligns with x's one dim of its size.
        sb = prelu_slope_shape(&sa, &sb)?;
    }
    let out = cx.out(0)?.to_vec();
    let n: usize = out.iter().product();
    let na: usize = sa.iter().product();
    let nb: usize = sb.iter().product();
    // Per operand: (element, pair) reads when it is the output's layout or a scalar.
    let index = |s: &[usize], len: usize, name: &str| -> Option<(String, String)> {
        if len == n && s.iter().filter(|&&d| d != 1).eq(out.iter().filter(|&&d| d != 1)) {
            Some((format!("ld_{name}(i)"), format!("ld2_{name}(i)")))
        } else if len == 1 {
            Some((format!("ld_{name}(0u)"), format!("vec2<f32>(ld_{name}(0u))")))
        } else {
            None
        }
    };
    let prelude = format!("fn op_(a: f32, b: f32) -> f32 {{ return {expr}; }}\n");
    let (elem, pair) = match (index(&sa, na, "x0"), index(&sb, nb, "x1")) {
        (Some((a, a2)), Some((b, b2))) => (format!("  return op_({a}, {b});"), Some(format!("  let a = {a2};\n  let b = {b2};\n  return vec2<f32>(op_(a.x, b.x), op_(a.y, b.y));"))),
        _ => {
            let (ta, tb) = (broadcast_strides(&sa, &out), broadcast_strides(&sb, &out));
            (format!("{}  return op_(ld_x0(u32(oa)), ld_x1(u32(ob)));", unravel("i", &out, &[("oa", &ta), ("ob", &tb)])), None)
        }
    };
    let (src, g) = kernel_1d(&["x0", "x1"], &[], &prelude, n, &elem, pair.as_deref(), cx.pairs());
    cx.single("binary", src, vec![Bind::In(0), Bind::In(1), Bind::Out(0)], g)
}
