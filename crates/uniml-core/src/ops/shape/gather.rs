//! `Gather`, `GatherElements` and `GatherND`. Indices may be negative
//! (counted from the end); out-of-range indices are an error. Gather and
//! GatherND copy whole inner blocks.

use uniml_data::{bail, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{fact, fold_small, ints_of, numel, par_blocks, resolve_indices, Data, PAR_GRAIN};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{norm_axis, strides};
use crate::parallel::par_chunks_mut;

// ---------------------------------------------------------------- Gather

/// `Gather`: `out[o, k..., i] = data[o, indices[k...], i]` along `axis`.
#[derive(Debug, Clone)]
pub struct Gather {
    pub axis: i64,
}

fn gather_into<T: Data>(
    ctx: &EvalCtx,
    x: &TensorView,
    idx: &[usize],
    outer: usize,
    d: usize,
    inner: usize,
    out: &mut Tensor,
) -> Result<()> {
    let src = T::src(x)?;
    let dst = T::dst(out)?;
    let n = idx.len();
    if inner == 1 && outer == 1 {
        for (o, &i) in dst.iter_mut().zip(idx) {
            *o = src[i].clone();
        }
        return Ok(());
    }
    par_blocks(ctx.par, dst, inner, &|b, blk| {
        let (o, k) = (b / n, b % n);
        let s = (o * d + idx[k]) * inner;
        blk.clone_from_slice(&src[s..s + inner]);
    });
    Ok(())
}

impl Op for Gather {
    fn name(&self) -> &'static str {
        "Gather"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let shape = match (
            inputs.first().and_then(|f| f.shape.as_ref()),
            inputs.get(1).and_then(|f| f.shape.as_ref()),
        ) {
            (Some(ds), Some(is)) => {
                let axis = norm_axis(self.axis, ds.rank())?;
                let mut dims = ds.0[..axis].to_vec();
                dims.extend(is.0.iter().cloned());
                dims.extend(ds.0[axis + 1..].iter().cloned());
                Some(SymbolicShape(dims))
            }
            _ => None,
        };
        let f = match shape {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        };
        Ok(fold_small(self, inputs, vec![f]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Gather")?;
        let ind = input(inputs, 1, "Gather")?;
        let ds = x.shape();
        if ds.is_empty() {
            bail!("Gather: data must have rank >= 1");
        }
        let axis = norm_axis(self.axis, ds.len())?;
        let idx = resolve_indices(ind, ds[axis], "Gather")?;
        let mut shape = ds[..axis].to_vec();
        shape.extend_from_slice(ind.shape());
        shape.extend_from_slice(&ds[axis + 1..]);
        let mut out = ctx.alloc(x.dtype(), &shape)?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        let (outer, inner) = (numel(&ds[..axis]), numel(&ds[axis + 1..]));
        dispatch_data!(x.dtype(), T => gather_into::<T>(ctx, x, &idx, outer, ds[axis], inner, &mut out)?);
        Ok(vec![out])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- GatherElements

/// `GatherElements`: `out[i0, .., ia, ..] = data[i0, .., indices[i0, .., ia, ..], ..]`.
#[derive(Debug, Clone)]
pub struct GatherElements {
    pub axis: i64,
}

/// Checks the shapes of an element-wise gather/scatter: same rank, index dims
/// no larger than data dims off the axis. Returns the normalised axis.
pub(crate) fn check_elements_shapes(
    op: &str,
    data: &[usize],
    ind: &[usize],
    axis: i64,
) -> Result<usize> {
    if data.is_empty() || data.len() != ind.len() {
        bail!("{op}: data {data:?} and indices {ind:?} must have the same rank >= 1");
    }
    let axis = norm_axis(axis, data.len())?;
    for (a, (&d, &i)) in data.iter().zip(ind).enumerate() {
        if a != axis && i > d {
            bail!("{op}: indices {ind:?} exceed data {data:?} on axis {a}");
        }
    }
    Ok(axis)
}

fn gather_elements_into<T: Data>(
    ctx: &EvalCtx,
    x: &TensorView,
    ishape: &[usize],
    idx: &[usize],
    axis: usize,
    out: &mut Tensor,
) -> Result<()> {
    let src = T::src(x)?;
    let dst = T::dst(out)?;
    let rank = ishape.len();
    let ds = strides(x.shape());
    let len = ishape[rank - 1];
    if len == 0 {
        return Ok(());
    }
    let outer = &ishape[..rank - 1];
    let rows_per_task = (PAR_GRAIN / len).max(1);
    par_chunks_mut(ctx.par, dst, rows_per_task * len, &|t, chunk| {
        let mut pos = vec![0usize; rank - 1];
        let mut r = t * rows_per_task;
        for a in (0..rank - 1).rev() {
            pos[a] = r % outer[a];
            r /= outer[a];
        }
        let mut row = t * rows_per_task;
        for out_row in chunk.chunks_mut(len) {
            let base: usize = (0..rank - 1)
                .filter(|&a| a != axis)
                .map(|a| pos[a] * ds[a])
                .sum();
            let irow = &idx[row * len..(row + 1) * len];
            if axis == rank - 1 {
                for (o, &i) in out_row.iter_mut().zip(irow) {
                    *o = src[base + i].clone();
                }
            } else {
                for (j, (o, &i)) in out_row.iter_mut().zip(irow).enumerate() {
                    *o = src[base + j + i * ds[axis]].clone();
                }
            }
            row += 1;
            for a in (0..rank - 1).rev() {
                pos[a] += 1;
                if pos[a] < outer[a] {
                    break;
                }
                pos[a] = 0;
            }
        }
    });
    Ok(())
}

impl Op for GatherElements {
    fn name(&self) -> &'static str {
        "GatherElements"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let f = match inputs.get(1).and_then(|f| f.shape.clone()) {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        };
        Ok(fold_small(self, inputs, vec![f]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "GatherElements")?;
        let ind = input(inputs, 1, "GatherElements")?;
        let axis = check_elements_shapes("GatherElements", x.shape(), ind.shape(), self.axis)?;
        let idx = resolve_indices(ind, x.shape()[axis], "GatherElements")?;
        let mut out = ctx.alloc(x.dtype(), ind.shape())?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        dispatch_data!(x.dtype(), T => gather_elements_into::<T>(ctx, x, ind.shape(), &idx, axis, &mut out)?);
        Ok(vec![out])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- GatherND

/// `GatherND` with `batch_dims`: the last indices axis holds coordinates
/// into `data[batch.., :m]`; each selects a slice of the remaining dims.
#[derive(Debug, Clone, Default)]
pub struct GatherND {
    pub batch_dims: usize,
}

/// Shapes for GatherND/ScatterND: returns `(batches, tuples per batch, m, slice size)`.
pub(crate) fn nd_geometry(
    op: &str,
    data: &[usize],
    ind: &[usize],
    b: usize,
) -> Result<(usize, usize, usize, usize)> {
    let (r, q) = (data.len(), ind.len());
    if q == 0 || r == 0 {
        bail!("{op}: data {data:?} and indices {ind:?} must have rank >= 1");
    }
    let m = ind[q - 1];
    if b >= q || b > r || m < 1 || m + b > r {
        bail!("{op}: indices {ind:?} (batch_dims {b}) do not fit data {data:?}");
    }
    if data[..b] != ind[..b] {
        bail!("{op}: batch dims of data {data:?} and indices {ind:?} differ");
    }
    Ok((
        numel(&data[..b]),
        numel(&ind[b..q - 1]),
        m,
        numel(&data[b + m..]),
    ))
}

/// Source offsets (in elements) of every index tuple, batch-major.
pub(crate) fn nd_offsets(
    op: &str,
    data: &[usize],
    ind: &TensorView,
    b: usize,
) -> Result<Vec<usize>> {
    let (batches, tuples, m, slice) = nd_geometry(op, data, ind.shape(), b)?;
    let coords = ints_of(ind, op)?;
    let batch_stride = numel(&data[b..]);
    let st = strides(&data[b..b + m]);
    let mut offs = Vec::with_capacity(batches * tuples);
    for (t, tuple) in coords.chunks(m).enumerate() {
        let mut off = (t / tuples.max(1)) * batch_stride;
        for (k, &c) in tuple.iter().enumerate() {
            let d = data[b + k] as i64;
            let c2 = if c < 0 { c + d } else { c };
            if c2 < 0 || c2 >= d {
                bail!(
                    "{op}: index {c} is out of range for axis {} of size {d}",
                    b + k
                );
            }
            off += c2 as usize * st[k] * slice;
        }
        offs.push(off);
    }
    Ok(offs)
}

fn gather_nd_into<T: Data>(
    ctx: &EvalCtx,
    x: &TensorView,
    offs: &[usize],
    slice: usize,
    out: &mut Tensor,
) -> Result<()> {
    let src = T::src(x)?;
    par_blocks(ctx.par, T::dst(out)?, slice, &|i, blk| {
        blk.clone_from_slice(&src[offs[i]..offs[i] + slice])
    });
    Ok(())
}

impl Op for GatherND {
    fn name(&self) -> &'static str {
        "GatherND"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let shape = match (
            inputs.first().and_then(|f| f.shape.as_ref()),
            inputs.get(1).and_then(|f| f.shape.as_ref()),
        ) {
            (Some(ds), Some(is)) => match is.0.last() {
                Some(Dim::Known(m)) if self.batch_dims + m <= ds.rank() => {
                    let mut dims = is.0[..is.rank() - 1].to_vec();
                    dims.extend(ds.0[self.batch_dims + m..].iter().cloned());
                    Some(SymbolicShape(dims))
                }
                Some(Dim::Known(_)) => bail!(
                    "GatherND: indices {is} (batch_dims {}) do not fit data {ds}",
                    self.batch_dims
                ),
                _ => None,
            },
            _ => None,
        };
        let f = match shape {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        };
        Ok(fold_small(self, inputs, vec![f]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "GatherND")?;
        let ind = input(inputs, 1, "GatherND")?;
        let b = self.batch_dims;
        let offs = nd_offsets("GatherND", x.shape(), ind, b)?;
        let (_, _, m, slice) = nd_geometry("GatherND", x.shape(), ind.shape(), b)?;
        let q = ind.shape().len();
        let mut shape = ind.shape()[..q - 1].to_vec();
        shape.extend_from_slice(&x.shape()[b + m..]);
        let mut out = ctx.alloc(x.dtype(), &shape)?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        dispatch_data!(x.dtype(), T => gather_nd_into::<T>(ctx, x, &offs, slice, &mut out)?);
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &dyn Op, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        op.eval(&mut ctx, inputs)
    }

    #[test]
    fn gather_axis1_with_negative_index() {
        let d: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let x = TensorView::from_slice(&[2, 3], &d).unwrap();
        let i = [-1i64, 0];
        let out = run(
            &Gather { axis: 1 },
            &[
                Some(x.clone()),
                Some(TensorView::from_slice(&[2], &i).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[2.0, 0.0, 5.0, 3.0]);
        let bad = [3i32];
        assert!(run(
            &Gather { axis: 1 },
            &[
                Some(x.clone()),
                Some(TensorView::from_slice(&[1], &bad).unwrap())
            ]
        )
        .is_err());
        // Scalar index on axis 0 drops the axis.
        let s = [1i64];
        let out = run(
            &Gather { axis: 0 },
            &[Some(x), Some(TensorView::from_slice(&[], &s).unwrap())],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[3]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[3.0, 4.0, 5.0]);
    }

    #[test]
    fn gather_elements_both_axes() {
        let d = [1i32, 2, 3, 4];
        let x = TensorView::from_slice(&[2, 2], &d).unwrap();
        let i = [0i64, 0, 1, 0];
        let iv = TensorView::from_slice(&[2, 2], &i).unwrap();
        let out = run(
            &GatherElements { axis: 1 },
            &[Some(x.clone()), Some(iv.clone())],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[1, 1, 4, 3]);
        let out = run(&GatherElements { axis: 0 }, &[Some(x), Some(iv)]).unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[1, 2, 3, 2]);
    }

    #[test]
    fn gather_nd_batch_dims() {
        // data [2,2,2], indices [2,1] batch_dims=1 -> out [2,2]
        let d: Vec<i32> = (0..8).collect();
        let x = TensorView::from_slice(&[2, 2, 2], &d).unwrap();
        let i = [1i64, 0];
        let out = run(
            &GatherND { batch_dims: 1 },
            &[
                Some(x.clone()),
                Some(TensorView::from_slice(&[2, 1], &i).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[2, 3, 4, 5]);
        let i2 = [0i64, 1, 1, 0];
        let out = run(
            &GatherND { batch_dims: 0 },
            &[Some(x), Some(TensorView::from_slice(&[2, 2], &i2).unwrap())],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[2, 3, 4, 5]);
    }
}
