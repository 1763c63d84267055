//! Neural-network ops: convolution, pooling, GEMM/MatMul, normalisations,
//! softmax, resize and depth/space rearrangements.
//!
//! Float kernels compute in `f32`; `f64`/`f16`/`bf16` inputs are converted on
//! the way in and out (see [`f32_data`] and [`with_f32_output`]).
//!
//! # Hooks for graph passes
//! - [`conv::Conv`] and [`conv_transpose::ConvTranspose`] carry a pub
//!   `activation: FusedActivation` applied after the bias, so a pass may fuse a
//!   following `Relu`/`Clip`/`HardSwish`/`Sigmoid`/... into the conv.
//! - Conv weights are graph constants (input 1): a pass folding a following
//!   `BatchNormalization` rewrites them with [`conv::fold_batchnorm`]
//!   (returns new weight and bias tensors to store as the conv's inputs 1/2).
//! - Constant weights of `Conv`/`Gemm`/`MatMul` are pre-packed for the GEMM
//!   once the graph is final ([`crate::Graph::pack_constants`], which the
//!   session calls after every pass for graphs run on the CPU; the facts'
//!   `konst` says which inputs are constant), or explicitly with the ops'
//!   `prepack` methods. The pack remembers the constant tensor it came from (by `Arc`),
//!   and the kernel uses it only when the run-time input is that very tensor,
//!   so eval stays correct when the input is not (or no longer) that constant.

pub mod batchnorm;
mod bench;
pub mod conv;
pub mod conv_concat;
pub mod conv_integer;
mod conv_direct;
mod conv_kernels;
mod conv_implicit;
mod conv_ocvec;
pub mod conv_transpose;
pub mod deform_conv;
pub mod depth_space;
pub mod det;
mod depthwise;
#[cfg(target_arch = "x86_64")]
mod depthwise_phase;
pub mod gemm;
pub mod gemm_glue;
mod gemm_split;
pub mod global_pool;
pub mod lrn;
pub mod matmul;
pub mod max_unpool;
pub mod norm;
pub mod padding;
pub mod pool;
pub mod resize;
pub mod resize_kernels;
pub mod softmax;

use std::borrow::Cow;

use uniml_data::{bail, bf16, f16, DType, Result, Tensor, TensorView};

use crate::op::EvalCtx;

pub use gemm_glue::PackedWeight;

/// An element-wise activation fused into a producer's epilogue (applied after bias).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum FusedActivation {
    #[default]
    None,
    Relu,
    LeakyRelu {
        alpha: f32,
    },
    Clip {
        min: f32,
        max: f32,
    },
    /// `x * clamp(x / 6 + 0.5, 0, 1)`.
    HardSwish,
    /// `HardSwish(x) · scale + shift`: PP-LCNet's learnable affine after the
    /// activation (PP-OCR exports it as a scalar `Mul` and `Add`), taken in
    /// by `passes::fuse_activation_affine`.
    HardSwishAffine {
        scale: f32,
        shift: f32,
    },
    /// `clamp(alpha * x + beta, 0, 1)`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Sigmoid,
    /// `x * sigmoid(x)`.
    SiLU,
    /// `x * Φ(x)` (erf form; fused into MatMul only, see `passes::matmul_fusion`).
    Gelu,
}

impl FusedActivation {
    /// `(lo, hi)` when the activation is a clamp (None, Relu, Clip), which
    /// kernels apply in registers before their store.
    pub fn clamp_bounds(self) -> Option<(f32, f32)> {
        match self {
            FusedActivation::None => Some((f32::NEG_INFINITY, f32::INFINITY)),
            FusedActivation::Relu => Some((0.0, f32::INFINITY)),
            FusedActivation::Clip { min, max } => Some((min, max)),
            _ => None,
        }
    }

    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            FusedActivation::None => x,
            FusedActivation::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            FusedActivation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    x * alpha
                } else {
                    x
                }
            }
            FusedActivation::Clip { min, max } => {
                let y = if x < min { min } else { x };
                if y > max {
                    max
                } else {
                    y
                }
            }
            FusedActivation::HardSwish => {
                let t = x * (1.0 / 6.0) + 0.5;
                x * t.clamp(0.0, 1.0)
            }
            FusedActivation::HardSwishAffine { scale, shift } => FusedActivation::HardSwish.apply(x) * scale + shift,
            FusedActivation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            FusedActivation::Sigmoid => sigmoid(x),
            FusedActivation::SiLU => x * sigmoid(x),
            FusedActivation::Gelu => uniml_linalg::Activation::Gelu.apply(x),
        }
    }

    /// Applies the activation in place (a no-op for `None`).
    pub fn apply_slice(self, xs: &mut [f32]) {
        use uniml_linalg::Activation as La;
        let la = match self {
            FusedActivation::None => return,
            FusedActivation::Relu => La::Relu,
            FusedActivation::Clip { min, max } => La::Clip { min, max },
            FusedActivation::HardSwish => La::HardSwish,
            FusedActivation::Sigmoid => La::Sigmoid,
            FusedActivation::SiLU => La::SiLU,
            FusedActivation::Gelu => La::Gelu,
            FusedActivation::HardSwishAffine { scale, shift } => {
                uniml_linalg::activate(La::HardSwish, xs);
                for x in xs.iter_mut() {
                    *x = *x * scale + shift;
                }
                return;
            }
            other => {
                for x in xs.iter_mut() {
                    *x = other.apply(*x);
                }
                return;
            }
        };
        // The GEMM epilogue's vectorised pass (exp by polynomial, no libm call).
        uniml_linalg::activate(la, xs);
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

thread_local! {
    /// Per-thread reusable f32 buffers (a stack, so nested users each get one).
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with a per-thread scratch buffer that keeps its allocation (and
/// stale contents) between calls: callers size it and overwrite what they read.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    let mut v = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    let r = f(&mut v);
    SCRATCH.with(|s| s.borrow_mut().push(v));
    r
}

/// Grows `v` to at least `n` elements (new ones zero) and returns its first `n`.
pub(crate) fn scratch_slice(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// Items per parallel task: about four tasks per thread, but at least
/// `MIN_TASK_COST` units of work each (a parallel dispatch costs tens of
/// microseconds of wake-up; small ops run serially).
pub(crate) fn per_task(
    par: &dyn crate::parallel::Parallelism,
    items: usize,
    cost_per_item: usize,
) -> usize {
    const MIN_TASK_COST: usize = 1 << 16;
    let threads = par.threads().max(1);
    if threads == 1 {
        return items.max(1);
    }
    let per = items.div_ceil(threads * 4);
    per.max(MIN_TASK_COST.div_ceil(cost_per_item.max(1)))
        .clamp(1, items.max(1))
}

/// Calls `f(plane_index, plane)` for every `plane`-sized chunk of `out`,
/// grouping planes into tasks of at least [`per_task`]'s minimum cost.
pub(crate) fn par_planes<T: Send>(
    par: &dyn crate::parallel::Parallelism,
    out: &mut [T],
    plane: usize,
    cost_per_plane: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    if plane == 0 {
        return;
    }
    let per = per_task(par, out.len() / plane, cost_per_plane);
    crate::parallel::par_chunks_mut(par, out, per * plane, &|t, chunk| {
        for (i, o) in chunk.chunks_mut(plane).enumerate() {
            f(t * per + i, o);
        }
    });
}

/// The elements of a numeric tensor as `f32` (borrowed when already `f32`).
pub(crate) fn f32_data<'a>(t: &TensorView<'a>) -> Result<Cow<'a, [f32]>> {
    Ok(match t.dtype() {
        DType::F32 => Cow::Borrowed(t.as_slice::<f32>()?),
        DType::F16 => Cow::Owned(t.as_slice::<f16>()?.iter().map(|v| v.to_f32()).collect()),
        DType::BF16 => Cow::Owned(t.as_slice::<bf16>()?.iter().map(|v| v.to_f32()).collect()),
        DType::String | DType::Bool => bail!("expected a numeric tensor, got {}", t.dtype()),
        _ => Cow::Owned(t.to_f64_vec()?.into_iter().map(|v| v as f32).collect()),
    })
}

/// Like [`f32_data`] but only for float dtypes (the usual ONNX "T: float" constraint).
pub(crate) fn float_data<'a>(t: &TensorView<'a>, what: &str) -> Result<Cow<'a, [f32]>> {
    if !t.dtype().is_float() {
        bail!("{what} must be a float tensor, got {}", t.dtype());
    }
    f32_data(t)
}

/// Stores `f32` values into a slice of `dtype` elements (round to nearest for
/// halves, saturating `as` casts for integers).
pub(crate) fn store_f32(src: &[f32], dst: &mut Tensor) -> Result<()> {
    macro_rules! cast {
        ($t:ty, $f:expr) => {{
            let d = dst.as_slice_mut::<$t>()?;
            if d.len() != src.len() {
                bail!(
                    "internal: output holds {} elements, computed {}",
                    d.len(),
                    src.len()
                );
            }
            for (o, &v) in d.iter_mut().zip(src) {
                *o = $f(v);
            }
        }};
    }
    match dst.dtype() {
        DType::F32 => cast!(f32, |v| v),
        DType::F64 => cast!(f64, |v: f32| v as f64),
        DType::F16 => cast!(f16, f16::from_f32),
        DType::BF16 => cast!(bf16, bf16::from_f32),
        DType::I8 => cast!(i8, |v: f32| v as i8),
        DType::U8 => cast!(u8, |v: f32| v as u8),
        DType::I16 => cast!(i16, |v: f32| v as i16),
        DType::U16 => cast!(u16, |v: f32| v as u16),
        DType::I32 => cast!(i32, |v: f32| v as i32),
        DType::U32 => cast!(u32, |v: f32| v as u32),
        DType::I64 => cast!(i64, |v: f32| v as i64),
        DType::U64 => cast!(u64, |v: f32| v as u64),
        other => bail!("cannot store float results as {other}"),
    }
    Ok(())
}

/// Allocates an output of `dtype`/`shape` and lets `f` fill it as `f32`:
/// in place for `f32`, through a temporary otherwise.
pub(crate) fn with_f32_output(
    ctx: &mut EvalCtx,
    dtype: DType,
    shape: &[usize],
    f: impl FnOnce(&mut EvalCtx, &mut [f32]) -> Result<()>,
) -> Result<Tensor> {
    with_f32_output_as(ctx, dtype, shape, true, f)
}

/// [`with_f32_output`] for kernels that write every output element: the f32
/// buffer handed to `f` holds unspecified values (a recycled, unzeroed buffer).
pub(crate) fn with_f32_output_overwritten(
    ctx: &mut EvalCtx,
    dtype: DType,
    shape: &[usize],
    f: impl FnOnce(&mut EvalCtx, &mut [f32]) -> Result<()>,
) -> Result<Tensor> {
    with_f32_output_as(ctx, dtype, shape, false, f)
}

fn with_f32_output_as(
    ctx: &mut EvalCtx,
    dtype: DType,
    shape: &[usize],
    zero: bool,
    f: impl FnOnce(&mut EvalCtx, &mut [f32]) -> Result<()>,
) -> Result<Tensor> {
    let mut out = if zero { ctx.alloc(dtype, shape)? } else { ctx.alloc_overwritten(dtype, shape)? };
    if dtype == DType::F32 {
        f(ctx, out.as_slice_mut::<f32>()?)?;
    } else {
        let mut tmp = vec![0f32; out.len()];
        f(ctx, &mut tmp)?;
        store_f32(&tmp, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_util {
    use uniml_data::{Result, Tensor, TensorView};

    use crate::op::{BufferPool, EvalCtx, Op};
    use crate::parallel::{Parallelism, Serial};

    /// Pretends to have 4 threads but runs tasks serially, in reverse order,
    /// to exercise the parallel splits.
    pub struct FakePar;
    impl Parallelism for FakePar {
        fn threads(&self) -> usize {
            4
        }
        fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
            (0..tasks).rev().for_each(f)
        }
    }

    /// Runs `op` on owned tensors (None = absent optional input).
    pub fn run(op: &dyn Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        run_with(&Serial, op, inputs)
    }

    pub fn run_with(
        par: &dyn Parallelism,
        op: &dyn Op,
        inputs: &[Option<&Tensor>],
    ) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(par, &mut pool);
        let views: Vec<Option<TensorView>> = inputs.iter().map(|t| t.map(|t| t.view())).collect();
        op.eval(&mut ctx, &views)
    }

    pub fn t(shape: &[usize], data: &[f32]) -> Tensor {
        Tensor::from_slice(shape, data).unwrap()
    }

    pub fn assert_close(got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "length mismatch");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "element {i}: got {g}, want {w}"
            );
        }
    }

    /// Deterministic pseudo-random values in [-1, 1).
    pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }
}
