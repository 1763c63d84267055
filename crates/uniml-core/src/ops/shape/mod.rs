//! Shape and data-movement ops: reshaping, transposition, concatenation and
//! splitting, slicing, gathering and scattering, padding, tiling, and the
//! small generator ops (`Shape`, `Range`, `ConstantOfShape`, …).
//!
//! Data-movement kernels are written once, generic over [`Data`]: the
//! plain-old-data element types (one per byte width, so f32/i32/u32 share a
//! body) and `String`. [`dispatch_data!`] picks the type from a dtype.

use std::sync::Arc;

use uniml_data::{bail, DType, Error, Result, Tensor, TensorView};

use crate::op::{BufferPool, EvalCtx, Fact, Op};
use crate::parallel::{par_chunks_mut, Parallelism, Serial};

/// Runs `$body` with `$T` bound to the [`Data`] type that stores `$dtype`
/// (`u8`/`u16`/`u32`/`u64` by byte width, `String` for strings).
macro_rules! dispatch_data {
    ($dtype:expr, $T:ident => $body:expr) => {
        $crate::dispatch_pod!($dtype, $T => $body, _ => {
            type $T = String;
            $body
        })
    };
}

pub mod col2im;
pub mod concat;
pub mod expand;
pub mod gather;
pub mod generate;
pub mod index_map;
pub mod nonzero;
pub mod onehot;
pub mod pad;
pub mod reshape;
pub mod reverse_sequence;
pub mod scatter;
pub mod shape_of;
pub mod slice;
pub mod split;
pub mod tensor_scatter;
pub mod topk;
pub mod transpose;
pub mod trilu;
pub mod unique;

/// An element type data-movement kernels can move: bytes of one width, or strings.
pub trait Data: Clone + Send + Sync + 'static {
    /// The elements of a view (its dtype must store this type).
    fn src<'a>(v: &TensorView<'a>) -> Result<&'a [Self]>;
    /// The elements of an owned tensor, mutably.
    fn dst(t: &mut Tensor) -> Result<&mut [Self]>;
}

macro_rules! pod_data {
    ($($t:ty),*) => {$(
        impl Data for $t {
            fn src<'a>(v: &TensorView<'a>) -> Result<&'a [Self]> {
                if v.dtype() == DType::String || v.dtype().size() != std::mem::size_of::<$t>() {
                    bail!("internal: {} tensor viewed as {}-byte elements", v.dtype(), std::mem::size_of::<$t>());
                }
                bytemuck::try_cast_slice(v.as_bytes()).map_err(|e| Error::Other(format!("misaligned tensor data: {e}")))
            }
            fn dst(t: &mut Tensor) -> Result<&mut [Self]> {
                if t.dtype() == DType::String || t.dtype().size() != std::mem::size_of::<$t>() {
                    bail!("internal: {} tensor viewed as {}-byte elements", t.dtype(), std::mem::size_of::<$t>());
                }
                bytemuck::try_cast_slice_mut(t.as_bytes_mut()).map_err(|e| Error::Other(format!("misaligned tensor data: {e}")))
            }
        }
    )*};
}
pod_data!(u8, u16, u32, u64);

impl Data for String {
    fn src<'a>(v: &TensorView<'a>) -> Result<&'a [Self]> {
        v.as_strings()
    }
    fn dst(t: &mut Tensor) -> Result<&mut [Self]> {
        t.as_strings_mut()
    }
}

/// Product of dims (1 for a scalar).
pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Product of dims with overflow checking (for shapes computed from model data).
pub(crate) fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Shape(format!("shape {shape:?} has too many elements")))
}

/// A copy of `x` with a new shape (same element count), in a pooled buffer.
pub(crate) fn copy_reshaped(ctx: &mut EvalCtx, x: &TensorView, shape: &[usize]) -> Result<Tensor> {
    if checked_numel(shape)? != x.len() {
        bail!(
            "cannot reshape {:?} ({} elements) to {shape:?} ({} elements)",
            x.shape(),
            x.len(),
            numel(shape)
        );
    }
    // Every element is overwritten below: no zero-fill first.
    let mut out = ctx.alloc_overwritten(x.dtype(), shape)?;
    if x.dtype() == DType::String {
        out.as_strings_mut()?.clone_from_slice(x.as_strings()?);
    } else {
        out.as_bytes_mut().copy_from_slice(x.as_bytes());
    }
    Ok(out)
}

/// Elements per parallel task for memory-bound copies.
pub(crate) const PAR_GRAIN: usize = 1 << 15;

/// Copies `dst.len() / block` blocks, block `i` from `src(i)`, in parallel for big outputs.
pub(crate) fn par_blocks<T: Data>(
    par: &dyn Parallelism,
    dst: &mut [T],
    block: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    if block == 0 || dst.is_empty() {
        return;
    }
    let per_task = (PAR_GRAIN / block).max(1);
    par_chunks_mut(par, dst, per_task * block, &|t, chunk| {
        for (j, b) in chunk.chunks_mut(block).enumerate() {
            f(t * per_task + j, b);
        }
    });
}

/// Reads a 1-D or scalar integer tensor (any integer dtype) as i64s.
pub(crate) fn ints_of(t: &TensorView, what: &str) -> Result<Vec<i64>> {
    let v = crate::dispatch_numeric!(t.dtype(), T => {
        if !t.dtype().is_integer() {
            bail!("{what} must be an integer tensor, got {}", t.dtype());
        }
        t.as_slice::<T>()?.iter().map(|&x| int_of(x)).collect::<Vec<i64>>()
    }, _ => bail!("{what} must be an integer tensor, got {}", t.dtype()));
    Ok(v)
}

/// An integer element as i64 (u64 values above i64::MAX saturate).
pub(crate) fn int_of<T: IntLike>(x: T) -> i64 {
    x.to_i64()
}

/// Integer and float element types convertible to i64 (floats truncate).
pub(crate) trait IntLike: Copy {
    fn to_i64(self) -> i64;
}
macro_rules! intlike {
    ($($t:ty),*) => {$( impl IntLike for $t { fn to_i64(self) -> i64 { self as i64 } } )*};
}
intlike!(i8, u8, i16, u16, i32, u32, i64, f32, f64);
impl IntLike for u64 {
    fn to_i64(self) -> i64 {
        self.min(i64::MAX as u64) as i64
    }
}
impl IntLike for crate::ops::util::f16 {
    fn to_i64(self) -> i64 {
        self.to_f32() as i64
    }
}
impl IntLike for crate::ops::util::bf16 {
    fn to_i64(self) -> i64 {
        self.to_f32() as i64
    }
}

/// Reads index tensor `t` (int32/int64) and resolves each index against `dim`
/// (negative indices count from the end); out-of-range indices are an error.
pub(crate) fn resolve_indices(t: &TensorView, dim: usize, what: &str) -> Result<Vec<usize>> {
    let d = dim as i64;
    let fix = |i: i64| -> Result<usize> {
        let j = if i < 0 { i + d } else { i };
        if j < 0 || j >= d {
            bail!("{what} index {i} is out of range for a dimension of size {dim}");
        }
        Ok(j as usize)
    };
    match t.dtype() {
        DType::I64 => t.as_slice::<i64>()?.iter().map(|&i| fix(i)).collect(),
        DType::I32 => t
            .as_slice::<i32>()?
            .iter()
            .map(|&i| fix(i as i64))
            .collect(),
        other => bail!("{what} indices must be int32 or int64, got {other}"),
    }
}

/// Output facts of a constant-foldable op: when every input is a small
/// constant, evaluates it now so shape subgraphs fold during inference.
/// `facts` are the rule-derived facts, returned unchanged otherwise.
pub(crate) fn fold_small(op: &dyn Op, inputs: &[&Fact], facts: Vec<Fact>) -> Vec<Fact> {
    const MAX: usize = 1 << 16;
    if inputs.is_empty()
        || inputs
            .iter()
            .any(|f| f.konst.as_ref().is_none_or(|t| t.len() > MAX))
    {
        return facts;
    }
    let views: Vec<Option<TensorView>> = inputs
        .iter()
        .map(|f| f.konst.as_ref().map(|t| t.view()))
        .collect();
    let mut pool = BufferPool::new(u64::MAX);
    let mut ctx = EvalCtx::new(&Serial, &mut pool);
    match op.eval(&mut ctx, &views) {
        Ok(outs) if outs.len() == facts.len() && outs.iter().all(|t| t.len() <= MAX) => outs
            .into_iter()
            .map(|t| Fact::constant(Arc::new(t)))
            .collect(),
        _ => facts,
    }
}

/// A fact with an optional dtype and a known (symbolic) shape.
pub(crate) fn fact(dtype: Option<DType>, shape: uniml_data::SymbolicShape) -> Fact {
    Fact {
        dtype,
        shape: Some(shape),
        ..Fact::default()
    }
}

/// The dtype of input `i`'s fact, if known.
pub(crate) fn dtype_of(inputs: &[&Fact], i: usize) -> Option<DType> {
    inputs.get(i).and_then(|f| f.dtype)
}

/// The constant value of input `i`, if known.
pub(crate) fn konst_of<'a>(inputs: &[&'a Fact], i: usize) -> Option<&'a Arc<Tensor>> {
    inputs.get(i).and_then(|f| f.konst.as_ref())
}

/// Integer values of constant input `i`, if constant.
pub(crate) fn konst_ints(inputs: &[&Fact], i: usize) -> Option<Vec<i64>> {
    konst_of(inputs, i).and_then(|t| ints_of(&t.view(), "constant").ok())
}

/// Parameters that come from an attribute (old opsets), a constant input
/// known at import, or a run-time input: the field if set, else input `i` if present.
pub(crate) fn ints_param(
    field: &Option<Vec<i64>>,
    inputs: &[Option<TensorView>],
    i: usize,
    what: &str,
) -> Result<Option<Vec<i64>>> {
    if let Some(v) = field {
        return Ok(Some(v.clone()));
    }
    match inputs.get(i).and_then(|x| x.as_ref()) {
        Some(t) => ints_of(t, what).map(Some),
        None => Ok(None),
    }
}

/// Like [`ints_param`] on facts (for shape rules): `Ok(None)` when the
/// value is present but unknown, `Ok(Some(None))` when absent.
pub(crate) fn ints_param_fact(
    field: &Option<Vec<i64>>,
    inputs: &[&Fact],
    i: usize,
) -> Option<Option<Vec<i64>>> {
    if let Some(v) = field {
        return Some(Some(v.clone()));
    }
    match inputs.get(i) {
        None => Some(None),
        Some(f) if f.konst.is_some() => konst_ints(inputs, i).map(Some),
        Some(f) if f.dtype.is_none() && f.shape.is_none() => None,
        Some(_) => None,
    }
}
