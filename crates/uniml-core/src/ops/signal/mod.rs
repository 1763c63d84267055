//! Signal-processing ops (audio front-ends): `DFT`, `STFT`, `MelWeightMatrix`
//! and the `HannWindow` / `HammingWindow` / `BlackmanWindow` generators.
//!
//! Transforms compute in `f64` whatever the tensor dtype (f32, f64, f16, bf16),
//! with an FFT of any length ([`fft::Fft`]: radix-2 for powers of two,
//! Bluestein's chirp-z otherwise, a direct DFT for short odd lengths).

pub mod dft;
pub mod fft;
pub mod mel;
pub mod stft;
pub mod window;

use uniml_data::{bail, bf16, f16, DType, Element, Result, Tensor, TensorView};

/// Float element types the transforms read and write (computed in f64).
pub trait Real: Element {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Real for f64 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}
impl Real for f16 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
}
impl Real for bf16 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
}

/// Runs `$body` with `$T` bound to the float element type of `$dtype`.
macro_rules! dispatch_real {
    ($dtype:expr, $T:ident => $body:expr, _ => $fallback:expr) => {{
        use uniml_data::DType as __D;
        match $dtype {
            __D::F32 => {
                type $T = f32;
                $body
            }
            __D::F64 => {
                type $T = f64;
                $body
            }
            __D::F16 => {
                type $T = uniml_data::f16;
                $body
            }
            __D::BF16 => {
                type $T = uniml_data::bf16;
                $body
            }
            _ => $fallback,
        }
    }};
}
pub(crate) use dispatch_real;

/// A scalar (or one-element) integer input as i64.
pub(crate) fn scalar_int(t: &TensorView, what: &str) -> Result<i64> {
    let v = crate::ops::util::read_i64s(t)?;
    match v.as_slice() {
        [x] => Ok(*x),
        _ => bail!(
            "{what} must be a scalar, got a tensor of shape {:?}",
            t.shape()
        ),
    }
}

/// A scalar (or one-element) float input as f64.
pub(crate) fn scalar_float(t: &TensorView, what: &str) -> Result<f64> {
    if !t.dtype().is_float() {
        bail!("{what} must be a float scalar, got {}", t.dtype());
    }
    let v = t.to_f64_vec()?;
    match v.as_slice() {
        [x] => Ok(*x),
        _ => bail!(
            "{what} must be a scalar, got a tensor of shape {:?}",
            t.shape()
        ),
    }
}

/// Stores f64 values into `out` (any numeric dtype): floats round to nearest,
/// integers truncate toward zero (saturating), as numpy's `astype` does for
/// in-range values.
pub(crate) fn store_f64(vals: &[f64], out: &mut Tensor) -> Result<()> {
    macro_rules! put {
        ($t:ty, $f:expr) => {{
            let d = out.as_slice_mut::<$t>()?;
            if d.len() != vals.len() {
                bail!(
                    "internal: output holds {} elements, computed {}",
                    d.len(),
                    vals.len()
                );
            }
            for (o, &v) in d.iter_mut().zip(vals) {
                *o = $f(v);
            }
        }};
    }
    match out.dtype() {
        DType::F32 => put!(f32, |v: f64| v as f32),
        DType::F64 => put!(f64, |v: f64| v),
        DType::F16 => put!(f16, f16::from_f64),
        DType::BF16 => put!(bf16, bf16::from_f64),
        DType::I8 => put!(i8, |v: f64| v as i8),
        DType::U8 => put!(u8, |v: f64| v as u8),
        DType::I16 => put!(i16, |v: f64| v as i16),
        DType::U16 => put!(u16, |v: f64| v as u16),
        DType::I32 => put!(i32, |v: f64| v as i32),
        DType::U32 => put!(u32, |v: f64| v as u32),
        DType::I64 => put!(i64, |v: f64| v as i64),
        DType::U64 => put!(u64, |v: f64| v as u64),
        other => bail!("cannot store numeric results as {other}"),
    }
    Ok(())
}

/// Whether `dtype` is a valid `output_datatype` of the window / mel generators.
pub fn is_numeric_output(dtype: DType) -> bool {
    !matches!(dtype, DType::Bool | DType::String)
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

    /// Reports 3 threads and runs tasks in reverse order, to exercise task splitting.
    pub struct Fake3;
    impl crate::parallel::Parallelism for Fake3 {
        fn threads(&self) -> usize {
            3
        }
        fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
            (0..tasks).rev().for_each(f)
        }
    }

    pub fn run_par(op: &dyn Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Fake3, &mut pool);
        let views: Vec<_> = inputs.iter().map(|t| t.map(|t| t.view())).collect();
        op.eval(&mut ctx, &views)
    }

    pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "element {i}: got {g}, want {w}\n{got:?}\n{want:?}"
            );
        }
    }
}
