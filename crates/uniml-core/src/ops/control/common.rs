//! Helpers shared by the control-flow and sequence ops: feeding bodies,
//! merging facts, and dtype-generic slicing / concatenation of tensors.

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use crate::graph::Subgraph;
use crate::op::{EvalCtx, Fact, Value, ValueRef};
use crate::ops::util::norm_axis;

/// The values a body captures from enclosing scopes, taken from the owning
/// node's extra inputs (those after its `n_formal` formal inputs).
pub fn captured<'a>(
    sub: &Subgraph,
    inputs: &[Option<ValueRef<'a>>],
    n_formal: usize,
) -> Result<Vec<ValueRef<'a>>> {
    sub.captures
        .iter()
        .map(|&c| match inputs.get(n_formal + c) {
            Some(Some(v)) => Ok(v.clone()),
            Some(None) => Ok(ValueRef::None),
            None => bail!(
                "captured value {c} of the body is not among the node's inputs ({} formal + {} extra)",
                n_formal,
                inputs.len().saturating_sub(n_formal)
            ),
        })
        .collect()
}

/// Number of formal (non-captured) inputs of a body.
pub fn n_body_formal(sub: &Subgraph) -> usize {
    sub.graph.inputs.len().saturating_sub(sub.captures.len())
}

/// Facts of a body's outputs (as inferred and declared when it was imported).
pub fn body_output_facts(sub: &Subgraph) -> Vec<Fact> {
    sub.graph
        .outputs
        .iter()
        .map(|&o| {
            sub.graph
                .values
                .get(o)
                .map(|v| Fact {
                    konst: None,
                    ..v.fact.clone()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Whether every node of a body is pure (nested bodies answer for themselves).
pub fn body_is_pure(sub: &Subgraph) -> bool {
    sub.graph.nodes.iter().all(|n| n.op.is_pure())
}

/// A fact valid for a value that may be either `a` or `b`: dims that differ
/// become unknown; differing ranks or dtypes make the shape / dtype unknown.
pub fn merge_facts(a: &Fact, b: &Fact) -> Fact {
    let dtype = match (a.dtype, b.dtype) {
        (Some(x), Some(y)) if x == y => Some(x),
        _ => None,
    };
    let shape = match (&a.shape, &b.shape) {
        (Some(x), Some(y)) if x.rank() == y.rank() => Some(SymbolicShape(
            x.0.iter()
                .zip(&y.0)
                .map(|(p, q)| if p == q { p.clone() } else { Dim::Unknown })
                .collect(),
        )),
        _ => None,
    };
    Fact {
        dtype,
        shape,
        konst: None,
        is_sequence: a.is_sequence || b.is_sequence,
    }
}

/// The single element of a condition tensor, as a bool.
pub fn scalar_bool(t: &TensorView, what: &str) -> Result<bool> {
    ensure!(
        t.len() == 1,
        "{what} must hold exactly one element, got shape {:?}",
        t.shape()
    );
    Ok(match t.dtype() {
        DType::Bool | DType::U8 | DType::I8 => t.as_bytes().first().is_some_and(|&b| b != 0),
        DType::String => bail!("{what} must be a bool tensor, got string"),
        _ => t.to_f64_vec()?.first().is_some_and(|&v| v != 0.0),
    })
}

/// The single element of an integer tensor (int64 or int32), as i64.
pub fn scalar_i64(t: &TensorView, what: &str) -> Result<i64> {
    ensure!(
        t.len() == 1,
        "{what} must hold exactly one element, got shape {:?}",
        t.shape()
    );
    let v = match t.dtype() {
        DType::I64 => t.as_slice::<i64>()?.first().copied(),
        DType::I32 => t.as_slice::<i32>()?.first().map(|&v| v as i64),
        other => bail!("{what} must be an int64 or int32 tensor, got {other}"),
    };
    v.ok_or_else(|| uniml_data::Error::Shape(format!("{what} is empty")))
}

/// Hands the tensors of a no-longer-needed value back to the pool.
pub fn release_value(ctx: &mut EvalCtx, v: Value) {
    match v {
        Value::Tensor(t) => ctx.release(t),
        Value::Sequence(s) => s.into_iter().for_each(|t| ctx.release(t)),
        Value::None => {}
    }
}

/// An owned copy of a tensor view, with its buffer from the pool.
pub fn copy_view(ctx: &mut EvalCtx, x: &TensorView) -> Result<Tensor> {
    let mut out = ctx.alloc(x.dtype(), x.shape())?;
    if x.dtype() == DType::String {
        out.as_strings_mut()?.clone_from_slice(x.as_strings()?);
    } else {
        out.as_bytes_mut().copy_from_slice(x.as_bytes());
    }
    Ok(out)
}

/// Copies `outer` rounds of one block from each source (block `k` has
/// `inners[k]` elements) into `dst`, in order.
fn copy_blocks<T: Clone>(
    dst: &mut [T],
    srcs: &[&[T]],
    outer: usize,
    inners: &[usize],
) -> Result<()> {
    let mut pos = 0;
    for o in 0..outer {
        for (s, &n) in srcs.iter().zip(inners) {
            let (Some(src), Some(d)) = (s.get(o * n..(o + 1) * n), dst.get_mut(pos..pos + n))
            else {
                bail!("internal: block copy out of range");
            };
            d.clone_from_slice(src);
            pos += n;
        }
    }
    Ok(())
}

/// Concatenates `parts` along `axis`, or stacks them along a new axis
/// inserted at `axis` when `new_axis` (then all parts must have one shape).
/// Any dtype, strings included.
pub fn concat(
    ctx: &mut EvalCtx,
    parts: &[TensorView],
    axis: i64,
    new_axis: bool,
) -> Result<Tensor> {
    let Some(first) = parts.first() else {
        bail!("cannot concatenate an empty list of tensors")
    };
    let dtype = first.dtype();
    let rank = first.shape().len();
    ensure!(
        new_axis || rank > 0,
        "cannot concatenate scalars (rank 0) without new_axis"
    );
    let out_rank = if new_axis { rank + 1 } else { rank };
    let axis = norm_axis(axis, out_rank)?;
    for (k, p) in parts.iter().enumerate() {
        ensure!(
            p.dtype() == dtype,
            "element {k} has dtype {}, element 0 has {dtype}",
            p.dtype()
        );
        let same = p.shape().len() == rank
            && p.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .all(|(d, (a, b))| a == b || (!new_axis && d == axis));
        ensure!(
            same,
            "element {k} has shape {:?}, incompatible with element 0's {:?} for {} along axis {axis}",
            p.shape(),
            first.shape(),
            if new_axis { "stacking" } else { "concatenation" }
        );
    }
    let mut out_shape = first.shape().to_vec();
    if new_axis {
        out_shape.insert(axis, parts.len());
    } else {
        out_shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
    }
    let outer: usize = first.shape()[..axis].iter().product();
    let inners: Vec<usize> = parts
        .iter()
        .map(|p| p.shape()[axis..].iter().product())
        .collect();
    let mut out = ctx.alloc(dtype, &out_shape)?;
    if dtype == DType::String {
        let srcs: Vec<&[String]> = parts
            .iter()
            .map(|p| p.as_strings())
            .collect::<Result<_>>()?;
        copy_blocks(out.as_strings_mut()?, &srcs, outer, &inners)?;
    } else {
        let es = dtype.size();
        let srcs: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        let inners: Vec<usize> = inners.iter().map(|n| n * es).collect();
        copy_blocks(out.as_bytes_mut(), &srcs, outer, &inners)?;
    }
    Ok(out)
}

/// The part `start..start + len` of `x` along `axis`; with `keep_dim` false
/// (only when `len == 1`) the axis is removed.
pub fn slice_axis(
    ctx: &mut EvalCtx,
    x: &TensorView,
    axis: usize,
    start: usize,
    len: usize,
    keep_dim: bool,
) -> Result<Tensor> {
    let shape = x.shape();
    ensure!(
        axis < shape.len(),
        "axis {axis} is out of range for rank {}",
        shape.len()
    );
    let dim = shape[axis];
    ensure!(
        start.checked_add(len).is_some_and(|e| e <= dim),
        "slice {start}..{} is out of range for dimension {dim} (axis {axis})",
        start.saturating_add(len)
    );
    ensure!(
        keep_dim || len == 1,
        "internal: removing axis {axis} needs a slice of length 1, got {len}"
    );
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    if keep_dim {
        out_shape[axis] = len;
    } else {
        out_shape.remove(axis);
    }
    let mut out = ctx.alloc(x.dtype(), &out_shape)?;
    fn copy<T: Clone>(
        dst: &mut [T],
        src: &[T],
        outer: usize,
        dim: usize,
        start: usize,
        n: usize,
        inner: usize,
    ) -> Result<()> {
        let block = n * inner;
        for o in 0..outer {
            let from = (o * dim + start) * inner;
            let (Some(s), Some(d)) = (
                src.get(from..from + block),
                dst.get_mut(o * block..(o + 1) * block),
            ) else {
                bail!("internal: slice copy out of range");
            };
            d.clone_from_slice(s);
        }
        Ok(())
    }
    if x.dtype() == DType::String {
        copy(
            out.as_strings_mut()?,
            x.as_strings()?,
            outer,
            dim,
            start,
            len,
            inner,
        )?;
    } else {
        let es = x.dtype().size();
        copy(
            out.as_bytes_mut(),
            x.as_bytes(),
            outer,
            dim,
            start,
            len,
            inner * es,
        )?;
    }
    Ok(out)
}

/// An empty tensor standing for zero stacked iterations of a body output
/// whose fact is `elem`: `[0]` inserted at `axis` into the element shape when
/// that is known (else shape `[0]`), dtype from the fact (f32 if unknown).
pub fn empty_stack(ctx: &mut EvalCtx, elem: &Fact, axis: i64) -> Result<Tensor> {
    let dtype = elem.dtype.unwrap_or(DType::F32);
    let shape = match elem.shape.as_ref().and_then(|s| s.concrete()) {
        Some(mut s) => {
            let a = norm_axis(axis, s.len() + 1)?;
            s.insert(a, 0);
            s
        }
        None => vec![0],
    };
    ctx.alloc(dtype, &shape)
}

/// Views of owned values.
pub fn refs(vals: &[Value]) -> Vec<ValueRef<'_>> {
    vals.iter().map(Value::as_ref).collect()
}

/// The tensor inside a value, or an error naming `what`.
pub fn tensor_of<'a>(v: &ValueRef<'a>, what: &str) -> Result<TensorView<'a>> {
    match v {
        ValueRef::Tensor(t) => Ok(t.clone()),
        ValueRef::Sequence(_) => bail!("{what} must be a tensor, got a sequence"),
        ValueRef::None => bail!("{what} must be a tensor, got an empty optional"),
    }
}

/// The sequence inside a value, or an error naming `what`.
pub fn sequence_of<'a>(v: Option<&Option<ValueRef<'a>>>, what: &str) -> Result<&'a [Tensor]> {
    match v {
        Some(Some(ValueRef::Sequence(s))) => Ok(*s),
        Some(Some(ValueRef::Tensor(_))) => bail!("{what} must be a sequence, got a tensor"),
        Some(Some(ValueRef::None)) => bail!("{what} must be a sequence, got an empty optional"),
        Some(None) | None => bail!("{what} is missing"),
    }
}
