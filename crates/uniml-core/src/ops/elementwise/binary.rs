//! Binary elementwise ops with numpy broadcasting: arithmetic, `Mod`,
//! comparisons, logical and bitwise ops, `BitShift`, `PRelu` ([`Binary`]) and
//! `Pow` with mixed base/exponent dtypes ([`Pow`]). Each op is one closure
//! handed to the generic [`map_binary`] kernel.

use uniml_data::{bail, broadcast_shapes, DType, Element, Result, Tensor, TensorView};

use super::kernel::map_binary;
use super::num::Num;
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::broadcast_fact;
use crate::parallel::Parallelism;

/// The function a [`Binary`] op applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// Integers truncate toward zero; an integer zero divisor is an error.
    Div,
    /// `fmod = true`: C `fmod`/truncated remainder; false: Python-style modulo.
    Mod {
        fmod: bool,
    },
    /// `PRelu(x, slope)`: `x < 0 ? slope * x : x` (slope broadcast to x).
    PRelu,
    /// Maximum (NaN-propagating), the pairwise step of variadic `Max`.
    Max,
    /// Minimum (NaN-propagating), the pairwise step of variadic `Min`.
    Min,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    /// `left = true` shifts left.
    BitShift {
        left: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Arith,
    Compare,
    Logical,
    Bitwise,
}

impl BinOp {
    pub fn name(&self) -> &'static str {
        use BinOp::*;
        match self {
            Add => "Add",
            Sub => "Sub",
            Mul => "Mul",
            Div => "Div",
            Mod { .. } => "Mod",
            PRelu => "PRelu",
            Max => "Max",
            Min => "Min",
            Equal => "Equal",
            Less => "Less",
            LessOrEqual => "LessOrEqual",
            Greater => "Greater",
            GreaterOrEqual => "GreaterOrEqual",
            And => "And",
            Or => "Or",
            Xor => "Xor",
            BitwiseAnd => "BitwiseAnd",
            BitwiseOr => "BitwiseOr",
            BitwiseXor => "BitwiseXor",
            BitShift { .. } => "BitShift",
        }
    }

    fn class(&self) -> Class {
        use BinOp::*;
        match self {
            Add | Sub | Mul | Div | Mod { .. } | PRelu | Max | Min => Class::Arith,
            Equal | Less | LessOrEqual | Greater | GreaterOrEqual => Class::Compare,
            And | Or | Xor => Class::Logical,
            BitwiseAnd | BitwiseOr | BitwiseXor | BitShift { .. } => Class::Bitwise,
        }
    }

    /// Output dtype for input dtype `dt` (both inputs share it).
    pub fn output_dtype(&self, dt: DType) -> Result<DType> {
        let numeric = dt.is_float() || dt.is_integer();
        let (ok, want) = match self.class() {
            Class::Arith => (numeric, "numeric"),
            Class::Compare if *self == BinOp::Equal => (
                numeric || dt == DType::Bool || dt == DType::String,
                "numeric, bool or string",
            ),
            Class::Compare => (numeric || dt == DType::Bool, "numeric"),
            Class::Logical => (dt == DType::Bool, "bool"),
            Class::Bitwise => (dt.is_integer(), "integer"),
        };
        if !ok {
            bail!("{} expects {want} inputs, got {dt}", self.name());
        }
        Ok(match self.class() {
            Class::Compare | Class::Logical => DType::Bool,
            _ => dt,
        })
    }
}

/// A binary elementwise op with numpy broadcasting.
#[derive(Debug, Clone)]
pub struct Binary {
    pub op: BinOp,
}

impl Binary {
    pub fn new(op: BinOp) -> Self {
        Binary { op }
    }
}

/// Runs `f` over the broadcast of two typed views into `out`.
pub(crate) fn typed<A: Element, B: Element, O: Element>(
    par: &dyn Parallelism,
    a: &TensorView,
    b: &TensorView,
    out: &mut Tensor,
    f: impl Fn(&A, &B) -> O + Sync,
) -> Result<()> {
    let shape = out.shape().to_vec();
    map_binary(
        par,
        a.as_slice::<A>()?,
        a.shape(),
        b.as_slice::<B>()?,
        b.shape(),
        out.as_slice_mut::<O>()?,
        &shape,
        f,
    )
}

/// Like [`typed`] for raw bytes (bool tensors are `u8` 0/1 underneath).
fn bytes(
    par: &dyn Parallelism,
    a: &TensorView,
    b: &TensorView,
    out: &mut Tensor,
    f: impl Fn(&u8, &u8) -> u8 + Sync,
) -> Result<()> {
    let shape = out.shape().to_vec();
    map_binary(
        par,
        a.as_bytes(),
        a.shape(),
        b.as_bytes(),
        b.shape(),
        out.as_bytes_mut(),
        &shape,
        f,
    )
}

fn check_divisor<T: Num>(op: BinOp, b: &TensorView) -> Result<()> {
    if !T::IS_FLOAT && b.as_slice::<T>()?.iter().any(|v| v.is_zero()) {
        bail!("{}: integer division by zero", op.name());
    }
    Ok(())
}

/// Arithmetic on one numeric type.
pub(crate) fn arith<T: Num>(
    op: BinOp,
    par: &dyn Parallelism,
    a: &TensorView,
    b: &TensorView,
    out: &mut Tensor,
) -> Result<()> {
    use BinOp::*;
    match op {
        Add => typed(par, a, b, out, |x: &T, y: &T| x.add(*y)),
        Sub => typed(par, a, b, out, |x: &T, y: &T| x.sub(*y)),
        Mul => typed(par, a, b, out, |x: &T, y: &T| x.mul(*y)),
        Div => {
            check_divisor::<T>(op, b)?;
            typed(par, a, b, out, |x: &T, y: &T| x.div(*y))
        }
        Mod { fmod } => {
            check_divisor::<T>(op, b)?;
            if fmod {
                typed(par, a, b, out, |x: &T, y: &T| x.rem_c(*y))
            } else {
                typed(par, a, b, out, |x: &T, y: &T| x.rem_py(*y))
            }
        }
        Max => typed(par, a, b, out, |x: &T, y: &T| x.max_nan(*y)),
        Min => typed(par, a, b, out, |x: &T, y: &T| x.min_nan(*y)),
        other => bail!("{} is not an arithmetic op", other.name()),
    }
}

/// Comparisons on one ordered type, producing bool bytes.
fn compare<T: Element + PartialOrd>(
    op: BinOp,
    par: &dyn Parallelism,
    a: &[T],
    ash: &[usize],
    b: &[T],
    bsh: &[usize],
    out: &mut Tensor,
) -> Result<()> {
    use BinOp::*;
    let shape = out.shape().to_vec();
    let o = out.as_bytes_mut();
    match op {
        Equal => map_binary(par, a, ash, b, bsh, o, &shape, |x, y| (x == y) as u8),
        Less => map_binary(par, a, ash, b, bsh, o, &shape, |x, y| (x < y) as u8),
        LessOrEqual => map_binary(par, a, ash, b, bsh, o, &shape, |x, y| (x <= y) as u8),
        Greater => map_binary(par, a, ash, b, bsh, o, &shape, |x, y| (x > y) as u8),
        GreaterOrEqual => map_binary(par, a, ash, b, bsh, o, &shape, |x, y| (x >= y) as u8),
        other => bail!("{} is not a comparison", other.name()),
    }
}

/// Bitwise ops on one integer type.
fn bitwise<T>(
    op: BinOp,
    par: &dyn Parallelism,
    a: &TensorView,
    b: &TensorView,
    out: &mut Tensor,
) -> Result<()>
where
    T: Num
        + std::ops::BitAnd<Output = T>
        + std::ops::BitOr<Output = T>
        + std::ops::BitXor<Output = T>
        + Shift,
{
    use BinOp::*;
    match op {
        BitwiseAnd => typed(par, a, b, out, |&x: &T, &y: &T| x & y),
        BitwiseOr => typed(par, a, b, out, |&x: &T, &y: &T| x | y),
        BitwiseXor => typed(par, a, b, out, |&x: &T, &y: &T| x ^ y),
        BitShift { left: true } => typed(par, a, b, out, |&x: &T, &y: &T| x.shl(y)),
        BitShift { left: false } => typed(par, a, b, out, |&x: &T, &y: &T| x.shr(y)),
        other => bail!("{} is not a bitwise op", other.name()),
    }
}

/// Shifts with ONNX semantics: a shift outside `0..bits` gives 0 (or -1 for
/// a right shift of a negative value).
pub trait Shift: Sized {
    fn shl(self, by: Self) -> Self;
    fn shr(self, by: Self) -> Self;
}

macro_rules! shift {
    ($($t:ty),*) => {$(
        impl Shift for $t {
            #[inline(always)]
            fn shl(self, by: Self) -> Self {
                let by = by as i128;
                if (0..<$t>::BITS as i128).contains(&by) { self.wrapping_shl(by as u32) } else { 0 }
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn shr(self, by: Self) -> Self {
                let by = by as i128;
                if (0..<$t>::BITS as i128).contains(&by) {
                    self.wrapping_shr(by as u32)
                } else if self < 0 {
                    (0 as $t).wrapping_sub(1)
                } else {
                    0
                }
            }
        }
    )*};
}
shift!(i8, u8, i16, u16, i32, u32, i64, u64);

impl Op for Binary {
    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        if inputs.len() != 2 {
            bail!("{} needs 2 inputs, got {}", self.name(), inputs.len());
        }
        let dtype = match (inputs[0].dtype, inputs[1].dtype) {
            (Some(a), Some(b)) if a != b => {
                bail!("{}: inputs have different dtypes {a} and {b}", self.name())
            }
            (Some(a), _) | (_, Some(a)) => Some(self.op.output_dtype(a)?),
            _ => None,
        };
        if self.op == BinOp::PRelu {
            // Unidirectional: the output has x's shape.
            return Ok(vec![Fact {
                dtype,
                shape: inputs[0].shape.clone(),
                konst: None,
                is_sequence: false,
            }]);
        }
        Ok(vec![broadcast_fact(inputs, dtype)?])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, self.name())?;
        let b = input(inputs, 1, self.name())?;
        let dt = a.dtype();
        if b.dtype() != dt {
            bail!(
                "{}: inputs have different dtypes {dt} and {}",
                self.name(),
                b.dtype()
            );
        }
        let out_dt = self.op.output_dtype(dt)?;
        if self.op == BinOp::PRelu {
            return Ok(vec![prelu(ctx, a, b)?]);
        }
        let shape = broadcast_shapes(&[a.shape(), b.shape()])?;
        // Arithmetic kernels write every element; the others start from zeros.
        let mut out = match self.op.class() {
            Class::Arith => ctx.alloc_overwritten(out_dt, &shape)?,
            _ => ctx.alloc(out_dt, &shape)?,
        };
        let par = ctx.par;
        match self.op.class() {
            Class::Arith => {
                crate::dispatch_numeric!(dt, T => arith::<T>(self.op, par, a, b, &mut out)?,
                _ => bail!("{} does not support {dt}", self.name()))
            }
            Class::Compare => match dt {
                DType::String => {
                    if self.op != BinOp::Equal {
                        bail!("{} does not support strings", self.name());
                    }
                    let (sa, sb) = (a.as_strings()?, b.as_strings()?);
                    let o = out.as_bytes_mut();
                    map_binary(par, sa, a.shape(), sb, b.shape(), o, &shape, |x, y| {
                        (x == y) as u8
                    })?
                }
                DType::Bool => compare(
                    self.op,
                    par,
                    a.as_bytes(),
                    a.shape(),
                    b.as_bytes(),
                    b.shape(),
                    &mut out,
                )?,
                _ => {
                    crate::dispatch_numeric!(dt, T => compare(self.op, par, a.as_slice::<T>()?, a.shape(), b.as_slice::<T>()?, b.shape(), &mut out)?,
                    _ => bail!("{} does not support {dt}", self.name()))
                }
            },
            Class::Logical => match self.op {
                BinOp::And => bytes(par, a, b, &mut out, |x, y| x & y)?,
                BinOp::Or => bytes(par, a, b, &mut out, |x, y| x | y)?,
                _ => bytes(par, a, b, &mut out, |x, y| x ^ y)?,
            },
            Class::Bitwise => dispatch_int!(dt, T => bitwise::<T>(self.op, par, a, b, &mut out)?,
                _ => bail!("{} expects integer inputs, got {dt}", self.name())),
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

/// The shape the PRelu slope is broadcast with: its own when it broadcasts
/// to `x` unidirectionally, else (like the ONNX reference) a 1-D slope of
/// size `d` aligned with the one dim of `x` of size `d`.
pub fn prelu_slope_shape(x: &[usize], s: &[usize]) -> Result<Vec<usize>> {
    if broadcast_shapes(&[x, s]).is_ok_and(|o| o == x) {
        return Ok(s.to_vec());
    }
    if let [d] = *s {
        let hits: Vec<usize> = (0..x.len()).filter(|&i| x[i] == d).collect();
        if let [axis] = hits[..] {
            let mut shape = vec![1; x.len()];
            shape[axis] = d;
            return Ok(shape);
        }
    }
    bail!("PRelu slope {s:?} does not broadcast to x {x:?}")
}

fn prelu(ctx: &mut EvalCtx, x: &TensorView, slope: &TensorView) -> Result<Tensor> {
    let s_shape = prelu_slope_shape(x.shape(), slope.shape())?;
    let dt = x.dtype();
    let mut out = ctx.alloc(dt, x.shape())?;
    let shape = x.shape().to_vec();
    crate::dispatch_numeric!(dt, T => map_binary(ctx.par, x.as_slice::<T>()?, x.shape(), slope.as_slice::<T>()?, &s_shape,
        out.as_slice_mut::<T>()?, &shape, |&v: &T, &s: &T| if v > T::ZERO || v.is_nan() { v } else { s.mul(v) })?,
        _ => bail!("PRelu does not support {dt}"));
    Ok(out)
}

/// `Pow(base, exponent)`: output has the base's dtype; the exponent may be
/// any numeric dtype (numpy `power(...).astype(base.dtype)` semantics).
#[derive(Debug, Clone, Default)]
pub struct Pow;

/// Integer power with wrapping; negative exponents give `1/base^n`
/// truncated (0 unless |base| == 1).
fn int_pow<T: Num>(base: T, e: i64) -> T {
    if e < 0 {
        return if base == T::ONE {
            T::ONE
        } else if T::IS_SIGNED && base == T::ONE.neg() {
            if e & 1 == 0 {
                T::ONE
            } else {
                base
            }
        } else {
            T::ZERO
        };
    }
    let (mut acc, mut b, mut e) = (T::ONE, base, e as u64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.mul(b);
        }
        b = b.mul(b);
        e >>= 1;
    }
    acc
}

/// Exponent values converted once: floats as f64, integers as i64.
enum Exps {
    F(Vec<f64>),
    I(Vec<i64>),
}

fn pow_with<T: Num>(
    par: &dyn Parallelism,
    a: &TensorView,
    b: &TensorView,
    exps: &Exps,
    out: &mut Tensor,
) -> Result<()> {
    let shape = out.shape().to_vec();
    let xs = a.as_slice::<T>()?;
    let os = out.as_slice_mut::<T>()?;
    match exps {
        Exps::F(e) => map_binary(par, xs, a.shape(), e, b.shape(), os, &shape, |&x, &y| {
            T::from_f64(x.to_f64().powf(y))
        }),
        Exps::I(e) if T::IS_FLOAT => {
            map_binary(par, xs, a.shape(), e, b.shape(), os, &shape, |&x, &y| {
                T::from_f64(if (i32::MIN as i64..=i32::MAX as i64).contains(&y) {
                    x.to_f64().powi(y as i32)
                } else {
                    x.to_f64().powf(y as f64)
                })
            })
        }
        Exps::I(e) => map_binary(par, xs, a.shape(), e, b.shape(), os, &shape, |&x, &y| {
            int_pow(x, y)
        }),
    }
}

impl Op for Pow {
    fn name(&self) -> &'static str {
        "Pow"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        if inputs.len() != 2 {
            bail!("Pow needs 2 inputs, got {}", inputs.len());
        }
        for f in inputs {
            if let Some(dt) = f.dtype {
                if !(dt.is_float() || dt.is_integer()) {
                    bail!("Pow expects numeric inputs, got {dt}");
                }
            }
        }
        Ok(vec![broadcast_fact(inputs, inputs[0].dtype)?])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "Pow")?;
        let b = input(inputs, 1, "Pow")?;
        let (da, db) = (a.dtype(), b.dtype());
        let shape = broadcast_shapes(&[a.shape(), b.shape()])?;
        let mut out = ctx.alloc(da, &shape)?;
        let par = ctx.par;
        match (da, db) {
            (DType::F32, DType::F32) => {
                let e = b.as_slice::<f32>()?;
                if e.len() == 1 && e[0] == 2.0 {
                    typed(par, a, b, &mut out, |&x: &f32, _: &f32| x * x)?
                } else {
                    typed(par, a, b, &mut out, |&x: &f32, &y: &f32| x.powf(y))?
                }
            }
            (DType::F64, DType::F64) => typed(par, a, b, &mut out, |&x: &f64, &y: &f64| x.powf(y))?,
            _ => {
                let exps = if db.is_integer() && (da.is_integer() || db != DType::U64) {
                    Exps::I(
                        crate::dispatch_numeric!(db, E => b.as_slice::<E>()?.iter().map(|&v| v.to_i64()).collect(),
                        _ => bail!("Pow exponent must be numeric, got {db}")),
                    )
                } else {
                    Exps::F(
                        crate::dispatch_numeric!(db, E => b.as_slice::<E>()?.iter().map(|&v| v.to_f64()).collect(),
                        _ => bail!("Pow exponent must be numeric, got {db}")),
                    )
                };
                crate::dispatch_numeric!(da, T => pow_with::<T>(par, a, b, &exps, &mut out)?,
                    _ => bail!("Pow base must be numeric, got {da}"))
            }
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

    fn run(op: &dyn Op, a: Tensor, b: Tensor) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        Ok(op
            .eval(&mut ctx, &[Some(a.view()), Some(b.view())])?
            .remove(0))
    }
    fn t<T: Element>(shape: &[usize], v: &[T]) -> Tensor {
        Tensor::from_slice(shape, v).unwrap()
    }

    #[test]
    fn arithmetic_broadcasts() {
        let r = run(
            &Binary::new(BinOp::Add),
            t(&[2, 2], &[1f32, 2., 3., 4.]),
            t(&[2], &[10f32, 20.]),
        )
        .unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![11., 22., 13., 24.]);
        let r = run(
            &Binary::new(BinOp::Sub),
            t(&[], &[1i64]),
            t(&[3], &[1i64, 2, 3]),
        )
        .unwrap();
        assert_eq!(r.to_vec::<i64>().unwrap(), vec![0, -1, -2]);
        let r = run(
            &Binary::new(BinOp::Div),
            t(&[4], &[7i32, -7, 7, -7]),
            t(&[4], &[2i32, 2, -2, -2]),
        )
        .unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap(), vec![3, -3, -3, 3]);
        assert!(run(&Binary::new(BinOp::Div), t(&[1], &[1i32]), t(&[1], &[0i32])).is_err());
        assert!(run(
            &Binary::new(BinOp::Add),
            t(&[2], &[1i32, 2]),
            t(&[3], &[1i32, 2, 3])
        )
        .is_err());
        assert!(run(
            &Binary::new(BinOp::Add),
            t(&[2], &[1i32, 2]),
            t(&[2], &[1f32, 2.])
        )
        .is_err());
    }

    #[test]
    fn modulo_and_shift() {
        let a = t(&[4], &[-7i32, 7, -7, 7]);
        let b = t(&[4], &[3i32, -3, -3, 3]);
        let r = run(
            &Binary::new(BinOp::Mod { fmod: false }),
            a.clone(),
            b.clone(),
        )
        .unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap(), vec![2, -2, -1, 1]);
        let r = run(&Binary::new(BinOp::Mod { fmod: true }), a, b).unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap(), vec![-1, 1, -1, 1]);
        let r = run(
            &Binary::new(BinOp::BitShift { left: true }),
            t(&[3], &[1u8, 2, 3]),
            t(&[3], &[1u8, 7, 8]),
        )
        .unwrap();
        assert_eq!(r.to_vec::<u8>().unwrap(), vec![2, 0, 0]);
        let r = run(
            &Binary::new(BinOp::BitShift { left: false }),
            t(&[2], &[-8i8, -8]),
            t(&[2], &[1i8, 9]),
        )
        .unwrap();
        assert_eq!(r.to_vec::<i8>().unwrap(), vec![-4, -1]);
    }

    #[test]
    fn comparisons_and_logic() {
        let r = run(
            &Binary::new(BinOp::Less),
            t(&[3], &[1f32, 2., 3.]),
            t(&[], &[2f32]),
        )
        .unwrap();
        assert_eq!(r.as_bools().unwrap(), &[true, false, false]);
        let s = |v: &[&str]| {
            Tensor::from_strings(&[v.len()], v.iter().map(|x| x.to_string()).collect()).unwrap()
        };
        let r = run(&Binary::new(BinOp::Equal), s(&["a", "b"]), s(&["a"])).unwrap();
        assert_eq!(r.as_bools().unwrap(), &[true, false]);
        let b = |v: &[bool]| Tensor::from_bools(&[v.len()], v).unwrap();
        let r = run(
            &Binary::new(BinOp::Xor),
            b(&[true, false, true]),
            b(&[true, true, false]),
        )
        .unwrap();
        assert_eq!(r.as_bools().unwrap(), &[false, true, true]);
        assert!(run(&Binary::new(BinOp::And), t(&[1], &[1f32]), t(&[1], &[1f32])).is_err());
    }

    #[test]
    fn prelu_and_pow() {
        let r = run(
            &Binary::new(BinOp::PRelu),
            t(&[2, 2], &[-1f32, 2., -3., 4.]),
            t(&[2], &[0.5f32, 0.1]),
        )
        .unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![-0.5, 2., -1.5, 4.]);
        // A 1-D slope aligned with the one matching dim (channels).
        let x = t(&[1, 3, 2], &[-1f32, -1., -1., -1., -1., 1.]);
        let r = run(
            &Binary::new(BinOp::PRelu),
            x.clone(),
            t(&[3], &[1f32, 2., 3.]),
        )
        .unwrap();
        assert_eq!(
            r.to_vec::<f32>().unwrap(),
            vec![-1., -1., -2., -2., -3., 1.]
        );
        assert!(run(&Binary::new(BinOp::PRelu), x, t(&[4], &[1f32, 2., 3., 4.])).is_err());
        let r = run(&Pow, t(&[3], &[1f32, 2., 3.]), t(&[], &[2f32])).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![1., 4., 9.]);
        let r = run(&Pow, t(&[3], &[1i32, 2, 3]), t(&[3], &[4i64, 5, 6])).unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap(), vec![1, 32, 729]);
        let r = run(&Pow, t(&[2], &[2i64, 3]), t(&[2], &[0.5f32, 2.0])).unwrap();
        assert_eq!(r.to_vec::<i64>().unwrap(), vec![1, 9]);
        let r = run(&Pow, t(&[2], &[2f32, 4.]), t(&[2], &[-1i32, 3])).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![0.5, 64.]);
    }

    #[test]
    fn facts_broadcast_symbolically() {
        use uniml_data::{Dim, SymbolicShape};
        let a = Fact::new(
            DType::F32,
            SymbolicShape(vec![Dim::Sym("N".into()), Dim::Known(3)]),
        );
        let b = Fact::new(DType::F32, SymbolicShape::known(&[3]));
        let f = Binary::new(BinOp::Greater)
            .output_facts(&[&a, &b], 1)
            .unwrap();
        assert_eq!(f[0].dtype, Some(DType::Bool));
        assert_eq!(f[0].shape, a.shape);
    }
}
