//! `Cast` and `CastLike` between every supported dtype.
//!
//! Numbers follow numpy `astype` (floats truncate toward zero into integers,
//! integers wrap, anything non-zero — NaN included — is `true`). Strings parse
//! as numbers (`"inf"`, `"-INF"`, `"NaN"`, `"1e3"` …; integers also accept a
//! float spelling, truncated) and numbers format like numpy `astype(str)`:
//! shortest round-trip digits, scientific notation outside
//! `[1e-4, 10^precision)` (precision 16 for f64, 6 for f32, 3 for f16/bf16),
//! `nan`/`inf`, and `True`/`False` for bools.
//!
//! The low-precision types (float8, float4, 4- and 2-bit ints) convert through
//! their value: into float8/float4 by round-to-nearest-even, out-of-range values
//! saturating to ±max unless `saturate` is off (then inf for E5M2, NaN for the
//! others), FLOAT8E8M0 per `round_mode`; into 4-/2-bit ints by truncation
//! then wrap-around to the width (out-of-range floats are undefined in ONNX).
//! See `uniml_data::lowp` and [`CastMode`].

use uniml_data::{bail, bf16, f16, lowp, DType, Result, Tensor, TensorView};

use super::kernel::map_unary;
pub use super::num::CastMode;
use super::num::{cast_elem_mode, BoolElem, CastElem};
use super::where_op::{pod, pod_mut};
use crate::op::{input, EvalCtx, Fact, Op};

/// Runs `$body` with `$T` bound to the element type of a non-string dtype
/// (bool as [`BoolElem`]).
macro_rules! dispatch_cast {
    ($dtype:expr, $T:ident => $body:expr, _ => $fallback:expr) => {{
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::F16 => {
                type $T = f16;
                $body
            }
            DType::BF16 => {
                type $T = bf16;
                $body
            }
            DType::I8 => {
                type $T = i8;
                $body
            }
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::I16 => {
                type $T = i16;
                $body
            }
            DType::U16 => {
                type $T = u16;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::U32 => {
                type $T = u32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::U64 => {
                type $T = u64;
                $body
            }
            DType::Bool => {
                type $T = BoolElem;
                $body
            }
            DType::F8E4M3FN => {
                type $T = lowp::F8E4M3FN;
                $body
            }
            DType::F8E4M3FNUZ => {
                type $T = lowp::F8E4M3FNUZ;
                $body
            }
            DType::F8E5M2 => {
                type $T = lowp::F8E5M2;
                $body
            }
            DType::F8E5M2FNUZ => {
                type $T = lowp::F8E5M2FNUZ;
                $body
            }
            DType::F8E8M0 => {
                type $T = lowp::F8E8M0;
                $body
            }
            DType::F4E2M1 => {
                type $T = lowp::F4E2M1;
                $body
            }
            DType::U4 => {
                type $T = lowp::U4;
                $body
            }
            DType::I4 => {
                type $T = lowp::I4;
                $body
            }
            DType::U2 => {
                type $T = lowp::U2;
                $body
            }
            DType::I2 => {
                type $T = lowp::I2;
                $body
            }
            #[allow(unreachable_patterns)]
            _ => $fallback,
        }
    }};
}

/// `Cast(x)` to dtype `to`.
#[derive(Debug, Clone)]
pub struct Cast {
    pub to: DType,
    pub mode: CastMode,
}

/// `CastLike(x, like)`: casts `x` to the dtype of `like`.
#[derive(Debug, Clone, Default)]
pub struct CastLike {
    pub mode: CastMode,
}

fn numeric<S: CastElem, D: CastElem>(
    ctx: &EvalCtx,
    x: &TensorView,
    out: &mut Tensor,
    mode: CastMode,
) -> Result<()> {
    let src = pod::<S>(x.as_bytes())?;
    let dst = pod_mut::<D>(out.as_bytes_mut())?;
    map_unary(ctx.par, src, dst, |&v| cast_elem_mode::<S, D>(v, mode))
}

/// Casts a tensor view to `to` (default [`CastMode`]), allocating the output from `ctx`.
pub fn cast_view(ctx: &mut EvalCtx, x: &TensorView, to: DType) -> Result<Tensor> {
    cast_view_mode(ctx, x, to, CastMode::default())
}

/// Casts a tensor view to `to` under `mode`, allocating the output from `ctx`.
pub fn cast_view_mode(ctx: &mut EvalCtx, x: &TensorView, to: DType, mode: CastMode) -> Result<Tensor> {
    let from = x.dtype();
    let mut out = ctx.alloc(to, x.shape())?;
    if from == to {
        if to == DType::String {
            out.as_strings_mut()?.clone_from_slice(x.as_strings()?);
        } else {
            out.as_bytes_mut().copy_from_slice(x.as_bytes());
        }
    } else if from == DType::String {
        let strs = x.as_strings()?;
        dispatch_cast!(to, D => {
            let dst = pod_mut::<D>(out.as_bytes_mut())?;
            for (o, s) in dst.iter_mut().zip(strs) {
                *o = parse::<D>(s, to, mode)?;
            }
        }, _ => bail!("Cast cannot convert string to {to}"));
    } else if to == DType::String {
        let dst = out.as_strings_mut()?;
        dispatch_cast!(from, S => {
            for (o, &v) in dst.iter_mut().zip(pod::<S>(x.as_bytes())?) {
                *o = format_elem(v, from);
            }
        }, _ => bail!("Cast cannot convert {from} to string"));
    } else {
        dispatch_cast!(from, S => dispatch_cast!(to, D => numeric::<S, D>(ctx, x, &mut out, mode)?,
            _ => bail!("Cast cannot convert to {to}")),
            _ => bail!("Cast cannot convert from {from}"));
    }
    Ok(out)
}

/// Parses one string as element type `D`.
fn parse<D: CastElem>(s: &str, to: DType, mode: CastMode) -> Result<D> {
    let t = s.trim();
    if to == DType::Bool {
        match t.to_ascii_lowercase().as_str() {
            "true" => return Ok(D::from_i128(1)),
            "false" => return Ok(D::from_i128(0)),
            _ => {}
        }
    }
    if D::INTEGRAL {
        if let Ok(v) = t.parse::<i128>() {
            return Ok(D::from_i128_mode(v, mode));
        }
    }
    match t.parse::<f64>() {
        Ok(v) => Ok(D::from_f64_mode(v, mode)),
        Err(_) => bail!("Cast cannot parse string {s:?} as {to}"),
    }
}

/// Formats one element like numpy `astype(str)`.
fn format_elem<S: CastElem>(v: S, dt: DType) -> String {
    match dt {
        DType::Bool => (if v.to_i128() != 0 { "True" } else { "False" }).to_string(),
        DType::F32 => format_float(&format!("{:e}", v.to_f64c() as f32), v.to_f64c(), 1e6),
        DType::F64 => format_float(&format!("{:e}", v.to_f64c()), v.to_f64c(), 1e16),
        DType::F16 => format_float(
            &shortest_half(v.to_f64c(), |x| f16::from_f64(x).to_f64()),
            v.to_f64c(),
            1e3,
        ),
        DType::BF16 => format_float(
            &shortest_half(v.to_f64c(), |x| bf16::from_f64(x).to_f64()),
            v.to_f64c(),
            1e3,
        ),
        // float8/float4 values are exact in f32: its shortest spelling.
        d if d.is_low_precision_float() => format_float(&format!("{:e}", v.to_f64c() as f32), v.to_f64c(), 1e6),
        _ => v.to_i128().to_string(),
    }
}

/// Shortest scientific spelling of `v` that rounds back to `v` through `round`.
fn shortest_half(v: f64, round: impl Fn(f64) -> f64) -> String {
    for p in 0..8 {
        let s = format!("{v:.p$e}");
        if s.parse::<f64>().map(&round).ok() == Some(v) {
            return s;
        }
    }
    format!("{v:e}")
}

/// Lays out shortest digits (`sci` is Rust `{:e}` output, e.g. `-1.25e-5`)
/// positionally or in C-style scientific notation, as numpy does.
fn format_float(sci: &str, v: f64, upper: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let (neg, body) = match sci.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, sci),
    };
    let (mant, exp) = body.split_once('e').unwrap_or((body, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let a = v.abs();
    if a != 0.0 && (a < 1e-4 || a >= upper) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(&digits);
    }
    out
}

impl Op for Cast {
    fn name(&self) -> &'static str {
        "Cast"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("Cast needs an input")
        };
        Ok(vec![Fact {
            dtype: Some(self.to),
            shape: x.shape.clone(),
            konst: None,
            is_sequence: false,
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Cast")?;
        Ok(vec![cast_view_mode(ctx, x, self.to, self.mode)?])
    }
    crate::op_as_any!();
}

impl Op for CastLike {
    fn name(&self) -> &'static str {
        "CastLike"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        if inputs.len() != 2 {
            bail!("CastLike needs 2 inputs, got {}", inputs.len());
        }
        Ok(vec![Fact {
            dtype: inputs[1].dtype,
            shape: inputs[0].shape.clone(),
            konst: None,
            is_sequence: false,
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "CastLike")?;
        let like = input(inputs, 1, "CastLike")?;
        Ok(vec![cast_view_mode(ctx, x, like.dtype(), self.mode)?])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        Cast { to, mode: CastMode::default() }
            .eval(&mut ctx, &[Some(x.view())])
            .map(|mut v| v.remove(0))
    }

    #[test]
    fn numeric_casts() {
        let x = Tensor::from_slice(&[5], &[-1.5f32, 0.0, 2.7, 300.0, f32::NAN]).unwrap();
        assert_eq!(
            cast(&x, DType::I32).unwrap().to_vec::<i32>().unwrap(),
            vec![-1, 0, 2, 300, 0]
        );
        assert_eq!(cast(&x, DType::U8).unwrap().to_vec::<u8>().unwrap()[3], 44);
        assert_eq!(
            cast(&x, DType::Bool).unwrap().as_bools().unwrap(),
            &[true, false, true, true, true]
        );
        let h = cast(&x, DType::F16).unwrap();
        assert_eq!(h.to_f64_vec().unwrap()[..4], [-1.5, 0.0, 2.69921875, 300.0]);
        let b = Tensor::from_bools(&[2], &[true, false]).unwrap();
        assert_eq!(
            cast(&b, DType::F64).unwrap().to_vec::<f64>().unwrap(),
            vec![1.0, 0.0]
        );
        let i = Tensor::from_slice(&[2], &[i64::MAX, -1]).unwrap();
        assert_eq!(
            cast(&i, DType::U64).unwrap().to_vec::<u64>().unwrap(),
            vec![i64::MAX as u64, u64::MAX]
        );
    }

    fn cast_mode(x: &Tensor, to: DType, saturate: bool, round: lowp::RoundMode) -> Tensor {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        Cast { to, mode: CastMode { saturate, round } }.eval(&mut ctx, &[Some(x.view())]).unwrap().remove(0)
    }

    /// Expected values from the ONNX Cast tables (saturate on/off) and the formats'
    /// definitions, written out by hand.
    #[test]
    fn low_precision_casts() {
        let up = lowp::RoundMode::Up;
        let x = Tensor::from_slice(&[6], &[0.3f32, 1e6, f32::INFINITY, -f32::INFINITY, -0.0, 17.0]).unwrap();
        // E4M3FN: 0.3 → 0.3125 (RNE), ±max 448, -0 kept, 17 → 16 (tie to even).
        let y = cast_mode(&x, DType::F8E4M3FN, true, up);
        assert_eq!(y.to_f64_vec().unwrap(), vec![0.3125, 448.0, 448.0, -448.0, -0.0, 16.0]);
        let y = cast_mode(&x, DType::F8E4M3FN, false, up).to_f64_vec().unwrap();
        assert!(y[1].is_nan() && y[2].is_nan() && y[3].is_nan());
        // E5M2 without saturation keeps infinities; FNUZ has no -0.
        let y = cast_mode(&x, DType::F8E5M2, false, up).to_f64_vec().unwrap();
        assert_eq!(&y[1..4], &[f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY]);
        let y = cast_mode(&x, DType::F8E4M3FNUZ, true, up);
        assert_eq!(y.to_f64_vec().unwrap()[1], 240.0);
        assert_eq!(y.as_bytes()[4], 0);
        // float4: ±6 at most, always saturating.
        let y = cast_mode(&x, DType::F4E2M1, false, up);
        assert_eq!(y.to_f64_vec().unwrap(), vec![0.5, 6.0, 6.0, -6.0, -0.0, 6.0]);
        // E8M0 rounding modes: 0.3 lies between 2^-2 and 2^-1.
        let p = Tensor::from_slice(&[1], &[0.3f32]).unwrap();
        assert_eq!(cast_mode(&p, DType::F8E8M0, true, up).to_f64_vec().unwrap(), vec![0.5]);
        assert_eq!(cast_mode(&p, DType::F8E8M0, true, lowp::RoundMode::Down).to_f64_vec().unwrap(), vec![0.25]);
        // 4-bit ints: floats truncate, integers wrap; back to wider types exactly.
        let f = Tensor::from_slice(&[4], &[-7.9f32, 7.9, 3.5, -1.0]).unwrap();
        assert_eq!(cast(&f, DType::I4).unwrap().to_f64_vec().unwrap(), vec![-7.0, 7.0, 3.0, -1.0]);
        let i = Tensor::from_slice(&[3], &[200i32, -9, 15]).unwrap();
        let y = cast(&i, DType::I4).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![-8.0, 7.0, -1.0]);
        assert_eq!(cast(&y, DType::I8).unwrap().to_vec::<i8>().unwrap(), vec![-8, 7, -1]);
        assert_eq!(cast(&i, DType::U2).unwrap().to_f64_vec().unwrap(), vec![0.0, 3.0, 3.0]);
        // float8 → float8 and → string.
        let y = cast(&cast(&x, DType::F8E4M3FN).unwrap(), DType::F8E5M2).unwrap();
        assert_eq!(y.to_f64_vec().unwrap()[..2], [0.3125, 448.0]);
        let s = cast(&cast(&p, DType::F8E5M2).unwrap(), DType::String).unwrap();
        assert_eq!(s.as_strings().unwrap(), &["0.3125"]);
    }

    #[test]
    fn strings_round_trip() {
        let x = Tensor::from_slice(
            &[9],
            &[
                0.1f32,
                1e10,
                123456789.0,
                1e-4,
                -0.0,
                f32::INFINITY,
                100.0,
                999999.0,
                0.00011,
            ],
        )
        .unwrap();
        let s = cast(&x, DType::String).unwrap();
        assert_eq!(
            s.as_strings().unwrap(),
            &[
                "0.1",
                "1e+10",
                "1.2345679e+08",
                "1e-04",
                "-0.0",
                "inf",
                "100.0",
                "999999.0",
                "0.00011"
            ]
        );
        let d = Tensor::from_slice(&[3], &[123456789.0f64, 1e16, 1.5e-5]).unwrap();
        assert_eq!(
            cast(&d, DType::String).unwrap().as_strings().unwrap(),
            &["123456789.0", "1e+16", "1.5e-05"]
        );
        let h = Tensor::from_slice(&[2], &[f16::from_f64(123.456), f16::from_f64(1000.0)]).unwrap();
        assert_eq!(
            cast(&h, DType::String).unwrap().as_strings().unwrap(),
            &["123.44", "1e+03"]
        );
        let strs = Tensor::from_strings(
            &[5],
            ["1.5", " -2 ", "inf", "-INF", "NaN"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
        .unwrap();
        let f = cast(&strs, DType::F32).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(&f[..4], &[1.5, -2.0, f32::INFINITY, f32::NEG_INFINITY]);
        assert!(f[4].is_nan());
        let ints = Tensor::from_strings(&[2], vec!["42".into(), "7.9".into()]).unwrap();
        assert_eq!(
            cast(&ints, DType::I64).unwrap().to_vec::<i64>().unwrap(),
            vec![42, 7]
        );
        let bad = Tensor::from_strings(&[1], vec!["abc".into()]).unwrap();
        assert!(cast(&bad, DType::F32).is_err());
        let b = Tensor::from_bools(&[2], &[true, false]).unwrap();
        assert_eq!(
            cast(&b, DType::String).unwrap().as_strings().unwrap(),
            &["True", "False"]
        );
        let i = Tensor::from_slice(&[2], &[-5i8, 7]).unwrap();
        assert_eq!(
            cast(&i, DType::String).unwrap().as_strings().unwrap(),
            &["-5", "7"]
        );
    }
}
