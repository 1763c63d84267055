//! Vision ops: `NonMaxSuppression`, `RoiAlign`, `GridSample`, `DeformConv`,
//! `AffineGrid`. (`ImageDecoder` is not supported: it needs image codecs.)
//!
//! Float kernels are generic over [`Float`]: `f64` tensors compute in f64,
//! `f32`/`f16`/`bf16` in f32 (half types converted on the way in and out).

pub mod affine_grid;
pub mod deform_conv;
pub mod grid_sample;
pub mod nms;
pub mod roi_align;

use std::borrow::Cow;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use uniml_data::{bail, bf16, f16, DType, Result, Tensor, TensorView};

use crate::op::EvalCtx;

/// The compute type of the float kernels (f32 or f64).
pub trait Float:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + AddAssign
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + uniml_data::Element
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn from_usize(v: usize) -> Self;
    fn to_f64(self) -> f64;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn abs(self) -> Self;
    /// Round half to even (numpy `rint`).
    fn rint(self) -> Self;
    /// Truncation toward zero to an integer (saturating; NaN gives 0).
    fn to_i64(self) -> i64;
    /// Elements of a float tensor in this type (borrowed when the dtype matches).
    fn load<'a>(t: &TensorView<'a>) -> Result<Cow<'a, [Self]>>;
}

macro_rules! float_impl {
    ($t:ty, $dt:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn from_usize(v: usize) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn rint(self) -> Self {
                <$t>::round_ties_even(self)
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn load<'a>(t: &TensorView<'a>) -> Result<Cow<'a, [Self]>> {
                Ok(match t.dtype() {
                    DType::$dt => Cow::Borrowed(t.as_slice::<$t>()?),
                    DType::F16 => Cow::Owned(
                        t.as_slice::<f16>()?
                            .iter()
                            .map(|v| v.to_f64() as $t)
                            .collect(),
                    ),
                    DType::BF16 => Cow::Owned(
                        t.as_slice::<bf16>()?
                            .iter()
                            .map(|v| v.to_f64() as $t)
                            .collect(),
                    ),
                    d if d.is_float() => {
                        Cow::Owned(t.to_f64_vec()?.into_iter().map(|v| v as $t).collect())
                    }
                    d => bail!("expected a float tensor, got {d}"),
                })
            }
        }
    };
}
float_impl!(f32, F32);
float_impl!(f64, F64);

/// Allocates an output of float `dtype` and lets `fill` write it as `F`:
/// in place when `dtype` is `F`'s own, through a temporary otherwise.
pub(crate) fn with_output<F: Float>(
    ctx: &mut EvalCtx,
    dtype: DType,
    shape: &[usize],
    fill: impl FnOnce(&mut EvalCtx, &mut [F]) -> Result<()>,
) -> Result<Tensor> {
    let mut out = ctx.alloc(dtype, shape)?;
    if dtype == F::DTYPE {
        let o = out.as_slice_mut::<F>()?;
        fill(ctx, o)?;
        return Ok(out);
    }
    let mut tmp = vec![F::ZERO; out.len()];
    fill(ctx, &mut tmp)?;
    match dtype {
        DType::F32 => out
            .as_slice_mut::<f32>()?
            .iter_mut()
            .zip(&tmp)
            .for_each(|(o, v)| *o = v.to_f64() as f32),
        DType::F64 => out
            .as_slice_mut::<f64>()?
            .iter_mut()
            .zip(&tmp)
            .for_each(|(o, v)| *o = v.to_f64()),
        DType::F16 => out
            .as_slice_mut::<f16>()?
            .iter_mut()
            .zip(&tmp)
            .for_each(|(o, v)| *o = f16::from_f64(v.to_f64())),
        DType::BF16 => out
            .as_slice_mut::<bf16>()?
            .iter_mut()
            .zip(&tmp)
            .for_each(|(o, v)| *o = bf16::from_f64(v.to_f64())),
        d => bail!("expected a float output dtype, got {d}"),
    }
    Ok(out)
}

/// Runs `$body` with `$F` = f64 for f64 tensors and f32 for the other float dtypes.
macro_rules! dispatch_float {
    ($dtype:expr, $F:ident => $body:expr, _ => $fallback:expr) => {{
        use uniml_data::DType as __D;
        match $dtype {
            __D::F64 => {
                type $F = f64;
                $body
            }
            __D::F32 | __D::F16 | __D::BF16 => {
                type $F = f32;
                $body
            }
            _ => $fallback,
        }
    }};
}
pub(crate) use dispatch_float;

/// A 1-element (or scalar) float input as f64.
pub(crate) fn scalar_f64(t: &TensorView, what: &str) -> Result<Option<f64>> {
    if !t.dtype().is_float() {
        bail!("{what} must be a float tensor, got {}", t.dtype());
    }
    let v = t.to_f64_vec()?;
    match v.len() {
        0 => Ok(None),
        1 => Ok(Some(v[0])),
        n => bail!(
            "{what} must hold one value, got {n} (shape {:?})",
            t.shape()
        ),
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use uniml_data::{Result, Tensor};

    use crate::op::{BufferPool, EvalCtx, Op};
    use crate::parallel::Serial;

    pub fn run(op: &dyn Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let views: Vec<_> = inputs.iter().map(|t| t.map(|t| t.view())).collect();
        op.eval(&mut ctx, &views)
    }

    pub fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_slice(shape, v).unwrap()
    }

    pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "element {i}: got {g}, want {w}\n{got:?}\n{want:?}"
            );
        }
    }
}
