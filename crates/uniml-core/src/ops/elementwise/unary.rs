//! Unary elementwise ops: math functions, activations, predicates (`IsNaN`,
//! `IsInf`) and `Not`/`BitwiseNot`. One op struct, [`Unary`], parametrised by
//! [`UnaryOp`]; one generic kernel per element class:
//!
//! - floats: [`apply_real`] matches the op once and runs a tight loop over the
//!   slice (f32/f64 directly; f16/bf16 through f32 in small stack blocks);
//! - integers (`Abs`, `Neg`, `Sign`, `Relu`, `Shrink`): [`Num`] arithmetic;
//! - predicates and bit/bool negation map to `bool`/the same integer type.

use uniml_data::{bail, bf16, f16, DType, Result, Tensor, TensorView};

use super::kernel::{for_chunks, map_unary};
use super::num::{Num, Real};
use crate::op::{input, EvalCtx, Fact, Op};

/// The function a [`Unary`] op applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Abs,
    Neg,
    Sign,
    Relu,
    Sqrt,
    Reciprocal,
    Exp,
    Log,
    Ceil,
    Floor,
    /// Round half to even.
    Round,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    /// Exact error function.
    Erf,
    Tanh,
    Sigmoid,
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Celu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    /// `x * sigmoid(alpha * x)`.
    Swish {
        alpha: f32,
    },
    Softplus,
    Softsign,
    Mish,
    /// `approximate = "tanh"` when `tanh` is true, exact erf form otherwise.
    Gelu {
        tanh: bool,
    },
    ThresholdedRelu {
        alpha: f32,
    },
    Shrink {
        lambd: f32,
        bias: f32,
    },
    /// float -> bool.
    IsNaN,
    /// float -> bool.
    IsInf {
        detect_positive: bool,
        detect_negative: bool,
    },
    /// bool -> bool.
    Not,
    /// integer -> integer.
    BitwiseNot,
}

/// Which dtypes an op accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    /// Floats and integers.
    Numeric,
    /// Floats only.
    Float,
    Predicate,
    Bool,
    Int,
}

impl UnaryOp {
    pub fn name(&self) -> &'static str {
        use UnaryOp::*;
        match self {
            Abs => "Abs",
            Neg => "Neg",
            Sign => "Sign",
            Relu => "Relu",
            Sqrt => "Sqrt",
            Reciprocal => "Reciprocal",
            Exp => "Exp",
            Log => "Log",
            Ceil => "Ceil",
            Floor => "Floor",
            Round => "Round",
            Sin => "Sin",
            Cos => "Cos",
            Tan => "Tan",
            Asin => "Asin",
            Acos => "Acos",
            Atan => "Atan",
            Sinh => "Sinh",
            Cosh => "Cosh",
            Asinh => "Asinh",
            Acosh => "Acosh",
            Atanh => "Atanh",
            Erf => "Erf",
            Tanh => "Tanh",
            Sigmoid => "Sigmoid",
            LeakyRelu { .. } => "LeakyRelu",
            Elu { .. } => "Elu",
            Selu { .. } => "Selu",
            Celu { .. } => "Celu",
            HardSigmoid { .. } => "HardSigmoid",
            HardSwish => "HardSwish",
            Swish { .. } => "Swish",
            Softplus => "Softplus",
            Softsign => "Softsign",
            Mish => "Mish",
            Gelu { .. } => "Gelu",
            ThresholdedRelu { .. } => "ThresholdedRelu",
            Shrink { .. } => "Shrink",
            IsNaN => "IsNaN",
            IsInf { .. } => "IsInf",
            Not => "Not",
            BitwiseNot => "BitwiseNot",
        }
    }

    fn class(&self) -> Class {
        use UnaryOp::*;
        match self {
            Abs | Neg | Sign | Relu | Shrink { .. } => Class::Numeric,
            IsNaN | IsInf { .. } => Class::Predicate,
            Not => Class::Bool,
            BitwiseNot => Class::Int,
            _ => Class::Float,
        }
    }

    /// Output dtype for an input dtype, or an error naming what is accepted.
    pub fn output_dtype(&self, dt: DType) -> Result<DType> {
        let ok = match self.class() {
            Class::Numeric => dt.is_float() || dt.is_integer(),
            Class::Float | Class::Predicate => dt.is_float(),
            Class::Bool => dt == DType::Bool,
            Class::Int => dt.is_integer(),
        };
        if !ok {
            let want = match self.class() {
                Class::Numeric => "a numeric",
                Class::Float | Class::Predicate => "a float",
                Class::Bool => "a bool",
                Class::Int => "an integer",
            };
            bail!("{} expects {want} tensor, got {dt}", self.name());
        }
        Ok(if self.class() == Class::Predicate {
            DType::Bool
        } else {
            dt
        })
    }
}

/// A unary elementwise op. Output shape = input shape.
#[derive(Debug, Clone)]
pub struct Unary {
    pub op: UnaryOp,
}

impl Unary {
    pub fn new(op: UnaryOp) -> Self {
        Unary { op }
    }
}

/// [`apply_real`] for f32, with the ops the GEMM epilogue vectorises (its
/// polynomial `exp`, FMA where the CPU has it) sent there: Sigmoid,
/// HardSwish and the erf GELU.
fn apply_f32(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    let act = match op {
        UnaryOp::Sigmoid => uniml_linalg::Activation::Sigmoid,
        UnaryOp::HardSwish => uniml_linalg::Activation::HardSwish,
        UnaryOp::Gelu { tanh: false } => uniml_linalg::Activation::Gelu,
        // The generic loop compiled for AVX-512 or AVX2 (16 or 8 lanes instead
        // of SSE2's 4): the polynomial exp/erf/tanh are compute-bound.
        _ => return crate::ops::wide::wide(#[inline(always)] || apply_real(op, x, out)),
    };
    out.copy_from_slice(x);
    uniml_linalg::activate(act, out);
}

/// Applies a float op to a slice (one `match`, then a tight loop).
#[inline(always)]
pub fn apply_real<R: Real>(op: UnaryOp, x: &[R], out: &mut [R]) {
    macro_rules! m {
        (|$v:ident| $e:expr) => {
            for (o, &$v) in out.iter_mut().zip(x) {
                *o = $e;
            }
        };
    }
    let zero = R::ZERO;
    let one = R::ONE;
    let half = R::of(0.5);
    use UnaryOp::*;
    match op {
        Abs => m!(|v| v.abs()),
        Neg => m!(|v| -v),
        Sign => m!(|v| v.sign()),
        Relu => m!(|v| if v < zero { zero } else { v }),
        Sqrt => m!(|v| v.sqrt()),
        Reciprocal => m!(|v| one / v),
        Exp => m!(|v| v.fast_exp()),
        Log => m!(|v| v.ln()),
        Ceil => m!(|v| v.ceil()),
        Floor => m!(|v| v.floor()),
        Round => m!(|v| v.round_even()),
        Sin => m!(|v| v.sin()),
        Cos => m!(|v| v.cos()),
        Tan => m!(|v| v.tan()),
        Asin => m!(|v| v.asin()),
        Acos => m!(|v| v.acos()),
        Atan => m!(|v| v.atan()),
        Sinh => m!(|v| v.sinh()),
        Cosh => m!(|v| v.cosh()),
        Asinh => m!(|v| v.asinh()),
        Acosh => m!(|v| v.acosh()),
        Atanh => m!(|v| v.atanh()),
        Erf => m!(|v| v.erf()),
        Tanh => m!(|v| v.fast_tanh()),
        Sigmoid => m!(|v| sigmoid(v)),
        LeakyRelu { alpha } => {
            let a = R::of(alpha as f64);
            m!(|v| if v < zero { v * a } else { v })
        }
        Elu { alpha } => {
            let a = R::of(alpha as f64);
            m!(|v| if v < zero {
                a * (v.fast_exp() - one)
            } else {
                v
            })
        }
        Selu { alpha, gamma } => {
            let (a, g) = (R::of(alpha as f64), R::of(gamma as f64));
            m!(|v| if v > zero {
                g * v
            } else {
                g * (a * v.fast_exp() - a)
            })
        }
        Celu { alpha } => {
            let a = R::of(alpha as f64);
            m!(|v| {
                let neg = a * ((v / a).fast_exp() - one);
                (if v > zero { v } else { zero }) + (if neg < zero { neg } else { zero })
            })
        }
        HardSigmoid { alpha, beta } => {
            let (a, b) = (R::of(alpha as f64), R::of(beta as f64));
            m!(|v| (a * v + b).max_f(zero).min_f(one))
        }
        HardSwish => {
            let a = R::of(1.0 / 6.0);
            m!(|v| v * (a * v + half).max_f(zero).min_f(one))
        }
        Swish { alpha } => {
            let a = R::of(alpha as f64);
            m!(|v| v * sigmoid(a * v))
        }
        Softplus => m!(|v| softplus(v)),
        Softsign => m!(|v| v / (one + v.abs())),
        Mish => m!(|v| v * softplus(v).tanh()),
        Gelu { tanh: false } => {
            let r = R::of(std::f64::consts::FRAC_1_SQRT_2);
            m!(|v| half * v * (one + (v * r).erf()))
        }
        Gelu { tanh: true } => {
            let k = R::of((2.0 / std::f64::consts::PI).sqrt());
            let c = R::of(0.044715);
            m!(|v| half * v * (one + (k * (v + c * v * v * v)).fast_tanh()))
        }
        ThresholdedRelu { alpha } => {
            let a = R::of(alpha as f64);
            m!(|v| if v > a { v } else { zero })
        }
        Shrink { lambd, bias } => {
            let (l, b) = (R::of(lambd as f64), R::of(bias as f64));
            m!(|v| if v < -l {
                v + b
            } else if v > l {
                v - b
            } else {
                zero
            })
        }
        // Not float ops: handled before reaching here; identity keeps this total.
        IsNaN | IsInf { .. } | Not | BitwiseNot => m!(|v| v),
    }
}

/// `1 / (1 + e^-v)`: exact at both tails with the overflow-safe exp
/// (e^-v = inf gives 0), and branch-free so f32 loops vectorise.
#[inline(always)]
pub(crate) fn sigmoid<R: Real>(v: R) -> R {
    R::ONE / (R::ONE + (-v).fast_exp())
}

#[inline(always)]
fn softplus<R: Real>(v: R) -> R {
    if v > R::ZERO {
        v + (-v).exp().ln_1p()
    } else {
        v.exp().ln_1p()
    }
}

/// Applies a float op to f16/bf16 data through f32, in stack blocks.
fn apply_half<H: Copy>(
    op: UnaryOp,
    x: &[H],
    out: &mut [H],
    to: impl Fn(H) -> f32,
    from: impl Fn(f32) -> H,
) {
    const B: usize = 64;
    let mut bi = [0f32; B];
    let mut bo = [0f32; B];
    for (xc, oc) in x.chunks(B).zip(out.chunks_mut(B)) {
        let n = xc.len();
        for (b, &v) in bi.iter_mut().zip(xc) {
            *b = to(v);
        }
        apply_real(op, &bi[..n], &mut bo[..n]);
        for (o, &b) in oc.iter_mut().zip(&bo[..n]) {
            *o = from(b);
        }
    }
}

/// Runs a float op over a whole tensor's data, in parallel chunks.
fn run_float(ctx: &EvalCtx, op: UnaryOp, x: &TensorView, out: &mut Tensor) -> Result<()> {
    macro_rules! go {
        ($t:ty, $apply:expr) => {{
            let xs = x.as_slice::<$t>()?;
            let os = out.as_slice_mut::<$t>()?;
            for_chunks(ctx.par, os, &|start, chunk| {
                $apply(&xs[start..start + chunk.len()], chunk)
            });
        }};
    }
    match x.dtype() {
        DType::F32 => go!(f32, |a, b| apply_f32(op, a, b)),
        DType::F64 => go!(f64, |a, b| apply_real(op, a, b)),
        DType::F16 => go!(f16, |a, b| apply_half(op, a, b, f16::to_f32, f16::from_f32)),
        DType::BF16 => go!(bf16, |a, b| apply_half(
            op,
            a,
            b,
            bf16::to_f32,
            bf16::from_f32
        )),
        other => bail!("{} expects a float tensor, got {other}", op.name()),
    }
    Ok(())
}

/// Integer versions of the numeric ops.
fn run_int<T: Num>(ctx: &EvalCtx, op: UnaryOp, x: &TensorView, out: &mut Tensor) -> Result<()> {
    let xs = x.as_slice::<T>()?;
    let os = out.as_slice_mut::<T>()?;
    match op {
        UnaryOp::Abs => map_unary(ctx.par, xs, os, |v| v.abs()),
        UnaryOp::Neg => map_unary(ctx.par, xs, os, |v| v.neg()),
        UnaryOp::Sign => map_unary(ctx.par, xs, os, |v| v.sign()),
        UnaryOp::Relu => map_unary(ctx.par, xs, os, |&v| if v < T::ZERO { T::ZERO } else { v }),
        UnaryOp::Shrink { lambd, bias } => {
            let (l, b) = (lambd as f64, bias as f64);
            map_unary(ctx.par, xs, os, |&v| {
                let f = v.to_f64();
                T::from_f64(if f < -l {
                    f + b
                } else if f > l {
                    f - b
                } else {
                    0.0
                })
            })
        }
        other => bail!("{} expects a float tensor, got {}", other.name(), x.dtype()),
    }
}

impl Op for Unary {
    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("{} needs one input", self.name())
        };
        let dtype = match x.dtype {
            Some(dt) => Some(self.op.output_dtype(dt)?),
            None => None,
        };
        Ok(vec![Fact {
            dtype,
            shape: x.shape.clone(),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, self.name())?;
        let dt = x.dtype();
        let out_dt = self.op.output_dtype(dt)?;
        let mut out = ctx.alloc(out_dt, x.shape())?;
        match self.op {
            UnaryOp::IsNaN | UnaryOp::IsInf { .. } => {
                let (pos, neg) = match self.op {
                    UnaryOp::IsInf {
                        detect_positive,
                        detect_negative,
                    } => (detect_positive, detect_negative),
                    _ => (false, false),
                };
                let is_nan = self.op == UnaryOp::IsNaN;
                let pred = move |v: f64| -> u8 {
                    (if is_nan {
                        v.is_nan()
                    } else {
                        (pos && v == f64::INFINITY) || (neg && v == f64::NEG_INFINITY)
                    }) as u8
                };
                let os = out.as_bytes_mut();
                match dt {
                    DType::F32 => {
                        map_unary(ctx.par, x.as_slice::<f32>()?, os, |&v| pred(v as f64))?
                    }
                    DType::F64 => map_unary(ctx.par, x.as_slice::<f64>()?, os, |&v| pred(v))?,
                    DType::F16 => {
                        map_unary(ctx.par, x.as_slice::<f16>()?, os, |v| pred(v.to_f64()))?
                    }
                    DType::BF16 => {
                        map_unary(ctx.par, x.as_slice::<bf16>()?, os, |v| pred(v.to_f64()))?
                    }
                    other => bail!("{} expects a float tensor, got {other}", self.name()),
                }
            }
            UnaryOp::Not => map_unary(ctx.par, x.as_bytes(), out.as_bytes_mut(), |&v| {
                (v == 0) as u8
            })?,
            UnaryOp::BitwiseNot => {
                dispatch_int!(dt, T => map_unary(ctx.par, x.as_slice::<T>()?, out.as_slice_mut::<T>()?, |&v| !v)?,
                _ => bail!("BitwiseNot expects an integer tensor, got {dt}"))
            }
            op if dt.is_float() => run_float(ctx, op, x, &mut out)?,
            op => dispatch_int!(dt, T => run_int::<T>(ctx, op, x, &mut out)?,
                _ => bail!("{} does not support {dt}", self.name())),
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: UnaryOp, x: Tensor) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        Ok(Unary::new(op).eval(&mut ctx, &[Some(x.view())])?.remove(0))
    }

    fn f32s(op: UnaryOp, xs: &[f32]) -> Vec<f32> {
        run(op, Tensor::from_slice(&[xs.len()], xs).unwrap())
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-6 * (1.0 + y.abs()) || (x.is_nan() && y.is_nan()),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn math_functions() {
        close(
            &f32s(UnaryOp::Round, &[0.5, 1.5, 2.5, -0.5, -1.5, 2.4]),
            &[0.0, 2.0, 2.0, -0.0, -2.0, 2.0],
        );
        close(&f32s(UnaryOp::Sign, &[-3.0, 0.0, 2.0]), &[-1.0, 0.0, 1.0]);
        close(
            &f32s(UnaryOp::Erf, &[0.0, 0.5, -1.0, 3.0]),
            &[0.0, 0.520_499_9, -0.842_700_8, 0.999_977_9],
        );
        close(
            &f32s(UnaryOp::Relu, &[-1.0, 2.0, f32::NAN]),
            &[0.0, 2.0, f32::NAN],
        );
        close(&f32s(UnaryOp::Reciprocal, &[2.0, -4.0]), &[0.5, -0.25]);
    }

    #[test]
    fn activations() {
        let x = [-2.0f32, -0.5, 0.0, 0.5, 3.0];
        let sig: Vec<f32> = x.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
        close(&f32s(UnaryOp::Sigmoid, &x), &sig);
        close(&f32s(UnaryOp::Sigmoid, &[-100.0, 100.0]), &[0.0, 1.0]);
        let sp: Vec<f32> = x.iter().map(|&v| (v.exp() + 1.0).ln()).collect();
        close(&f32s(UnaryOp::Softplus, &x), &sp);
        close(&f32s(UnaryOp::Softplus, &[1000.0]), &[1000.0]);
        close(
            &f32s(UnaryOp::HardSwish, &x),
            &x.iter()
                .map(|&v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0))
                .collect::<Vec<_>>(),
        );
        close(
            &f32s(UnaryOp::LeakyRelu { alpha: 0.1 }, &x),
            &[-0.2, -0.05, 0.0, 0.5, 3.0],
        );
        close(
            &f32s(UnaryOp::ThresholdedRelu { alpha: 1.0 }, &x),
            &[0.0, 0.0, 0.0, 0.0, 3.0],
        );
        close(
            &f32s(
                UnaryOp::Shrink {
                    lambd: 1.0,
                    bias: 0.5,
                },
                &x,
            ),
            &[-1.5, 0.0, 0.0, 0.0, 2.5],
        );
        let gelu: Vec<f32> = x
            .iter()
            .map(|&v| 0.5 * v * (1.0 + libm::erff(v / 2f32.sqrt())))
            .collect();
        close(&f32s(UnaryOp::Gelu { tanh: false }, &x), &gelu);
        close(
            &f32s(UnaryOp::Celu { alpha: 2.0 }, &[-1.0, 1.0]),
            &[2.0 * ((-0.5f32).exp() - 1.0), 1.0],
        );
    }

    #[test]
    fn parallel_chunks_match_serial() {
        use crate::ops::elementwise::kernel::test_par::FakePar;
        let xs: Vec<f32> = (0..200_001)
            .map(|i| (i % 1000) as f32 * 0.01 - 5.0)
            .collect();
        let x = Tensor::from_slice(&[xs.len()], &xs).unwrap();
        let serial = run(UnaryOp::Tanh, x.clone()).unwrap();
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&FakePar, &mut pool);
        let par = Unary::new(UnaryOp::Tanh)
            .eval(&mut ctx, &[Some(x.view())])
            .unwrap()
            .remove(0);
        assert_eq!(
            serial.to_vec::<f32>().unwrap(),
            par.to_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn half_and_ints() {
        let x = Tensor::from_slice(
            &[3],
            &[f16::from_f32(-1.0), f16::from_f32(0.25), f16::from_f32(4.0)],
        )
        .unwrap();
        let y = run(UnaryOp::Sqrt, x).unwrap();
        let v = y.to_f64_vec().unwrap();
        assert!(v[0].is_nan() && v[1] == 0.5 && v[2] == 2.0);
        let x = Tensor::from_slice(&[4], &[-3i32, 0, 5, i32::MIN]).unwrap();
        assert_eq!(
            run(UnaryOp::Abs, x.clone())
                .unwrap()
                .to_vec::<i32>()
                .unwrap(),
            vec![3, 0, 5, i32::MIN]
        );
        assert_eq!(
            run(UnaryOp::Relu, x.clone())
                .unwrap()
                .to_vec::<i32>()
                .unwrap(),
            vec![0, 0, 5, 0]
        );
        assert_eq!(
            run(UnaryOp::BitwiseNot, x.clone())
                .unwrap()
                .to_vec::<i32>()
                .unwrap(),
            vec![2, -1, -6, i32::MAX]
        );
        assert!(run(UnaryOp::Exp, x).is_err());
    }

    #[test]
    fn predicates_and_not() {
        let x =
            Tensor::from_slice(&[4], &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0]).unwrap();
        let r = run(UnaryOp::IsNaN, x.clone()).unwrap();
        assert_eq!(r.dtype(), DType::Bool);
        assert_eq!(r.as_bools().unwrap(), &[true, false, false, false]);
        let r = run(
            UnaryOp::IsInf {
                detect_positive: false,
                detect_negative: true,
            },
            x.clone(),
        )
        .unwrap();
        assert_eq!(r.as_bools().unwrap(), &[false, false, true, false]);
        let b = Tensor::from_bools(&[2], &[true, false]).unwrap();
        assert_eq!(
            run(UnaryOp::Not, b).unwrap().as_bools().unwrap(),
            &[false, true]
        );
        assert!(run(UnaryOp::Not, x).is_err());
    }

    #[test]
    fn facts() {
        let f = Fact::new(DType::F32, uniml_data::SymbolicShape::known(&[2, 3]));
        let out = Unary::new(UnaryOp::IsNaN).output_facts(&[&f], 1).unwrap();
        assert_eq!(out[0].dtype, Some(DType::Bool));
        assert_eq!(out[0].shape, f.shape);
        let i = Fact::new(DType::I64, uniml_data::SymbolicShape::known(&[2]));
        assert!(Unary::new(UnaryOp::Sqrt).output_facts(&[&i], 1).is_err());
    }
}
