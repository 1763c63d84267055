//! `Concat`: joins tensors along an axis, copying whole inner blocks.

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{fold_small, numel, par_blocks, Data};
use crate::op::{EvalCtx, Fact, Op};
use crate::ops::util::norm_axis;

#[derive(Debug, Clone)]
pub struct Concat {
    pub axis: i64,
}

/// Merges two facts about the same dim (prefers known, then symbolic).
pub(crate) fn merge_dim(a: &Dim, b: &Dim) -> Result<Dim> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => bail!("dims {x} and {y} must match"),
        (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(*x),
        (Dim::Sym(s), _) | (_, Dim::Sym(s)) => Dim::Sym(s.clone()),
        _ => Dim::Unknown,
    })
}

fn concat_into<T: Data>(
    ctx: &EvalCtx,
    parts: &[&TensorView],
    outer: usize,
    blocks: &[usize],
    out: &mut Tensor,
) -> Result<()> {
    let srcs = parts
        .iter()
        .map(|p| T::src(p))
        .collect::<Result<Vec<&[T]>>>()?;
    let row: usize = blocks.iter().sum();
    let dst = T::dst(out)?;
    if outer == 1 {
        // One row (a batch-1 channel concat): chunks of the output copied in
        // parallel, each from the parts it overlaps.
        super::par_chunks_mut(ctx.par, dst, super::PAR_GRAIN, &|t, d| {
            let start = t * super::PAR_GRAIN;
            let mut part_start = 0;
            for (s, &b) in srcs.iter().zip(blocks) {
                let (lo, hi) = (start.max(part_start), (start + d.len()).min(part_start + b));
                if lo < hi {
                    d[lo - start..hi - start].clone_from_slice(&s[lo - part_start..hi - part_start]);
                }
                part_start += b;
            }
        });
        return Ok(());
    }
    par_blocks(ctx.par, dst, row, &|o, d| {
        let mut off = 0;
        for (s, &b) in srcs.iter().zip(blocks) {
            d[off..off + b].clone_from_slice(&s[o * b..(o + 1) * b]);
            off += b;
        }
    });
    Ok(())
}

impl Op for Concat {
    fn name(&self) -> &'static str {
        "Concat"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.iter().find_map(|f| f.dtype);
        let shapes: Option<Vec<&SymbolicShape>> = inputs.iter().map(|f| f.shape.as_ref()).collect();
        let shape = match shapes {
            Some(shapes) if !shapes.is_empty() => {
                let rank = shapes[0].rank();
                if shapes.iter().any(|s| s.rank() != rank) {
                    bail!(
                        "Concat: inputs have different ranks: {}",
                        shapes
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                let axis = norm_axis(self.axis, rank)?;
                let mut dims = shapes[0].0.clone();
                for s in &shapes[1..] {
                    for (i, d) in s.0.iter().enumerate() {
                        if i == axis {
                            dims[i] = match (&dims[i], d) {
                                (Dim::Known(a), Dim::Known(b)) => Dim::Known(a + b),
                                (Dim::Known(0), x) | (x, Dim::Known(0)) => x.clone(),
                                _ => Dim::Unknown,
                            };
                        } else {
                            dims[i] = merge_dim(&dims[i], d).map_err(|e| {
                                uniml_data::Error::Shape(format!("Concat: axis {i}: {e}"))
                            })?;
                        }
                    }
                }
                Some(SymbolicShape(dims))
            }
            _ => None,
        };
        let fact = Fact {
            dtype,
            shape,
            ..Fact::default()
        };
        Ok(fold_small(self, inputs, vec![fact]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let parts: Vec<&TensorView> = inputs.iter().flatten().collect();
        let Some(first) = parts.first() else {
            bail!("Concat: no inputs")
        };
        let rank = first.shape().len();
        let axis = norm_axis(self.axis, rank)?;
        let dtype: DType = first.dtype();
        let mut out_shape = first.shape().to_vec();
        out_shape[axis] = 0;
        for p in &parts {
            if p.dtype() != dtype {
                bail!(
                    "Concat: inputs have different dtypes ({dtype} and {})",
                    p.dtype()
                );
            }
            let s = p.shape();
            if s.len() != rank
                || s.iter()
                    .enumerate()
                    .any(|(i, &d)| i != axis && d != first.shape()[i])
            {
                bail!(
                    "Concat: input shapes {:?} and {s:?} differ outside axis {axis}",
                    first.shape()
                );
            }
            out_shape[axis] += s[axis];
        }
        let outer = numel(&out_shape[..axis]);
        let inner = numel(&out_shape[axis + 1..]);
        let blocks: Vec<usize> = parts.iter().map(|p| p.shape()[axis] * inner).collect();
        // The parts cover every element of the output.
        let mut out = ctx.alloc_overwritten(dtype, &out_shape)?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        dispatch_data!(dtype, T => concat_into::<T>(ctx, &parts, outer, &blocks, &mut out)?);
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    #[test]
    fn concat_axis1_and_errors() {
        let a = [1i64, 2, 3, 4];
        let b = [5i64, 6];
        let (va, vb) = (
            TensorView::from_slice(&[2, 2], &a).unwrap(),
            TensorView::from_slice(&[2, 1], &b).unwrap(),
        );
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let out = Concat { axis: -1 }
            .eval(&mut ctx, &[Some(va.clone()), Some(vb.clone())])
            .unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[1, 2, 5, 3, 4, 6]);
        assert!(Concat { axis: 0 }
            .eval(&mut ctx, &[Some(va), Some(vb)])
            .is_err());
    }

    #[test]
    fn concat_facts_sum_axis_and_fold_constants() {
        use std::sync::Arc;
        let s = Fact::new(
            DType::F32,
            SymbolicShape(vec![Dim::Sym("b".into()), Dim::Known(3)]),
        );
        let t = Fact::new(DType::F32, SymbolicShape(vec![Dim::Unknown, Dim::Known(4)]));
        let f = Concat { axis: 1 }.output_facts(&[&s, &t], 1).unwrap();
        assert_eq!(
            f[0].shape.as_ref().unwrap().0,
            vec![Dim::Sym("b".into()), Dim::Known(7)]
        );
        let c1 = Fact::constant(Arc::new(Tensor::from_slice(&[1], &[1i64]).unwrap()));
        let c2 = Fact::constant(Arc::new(Tensor::from_slice(&[2], &[-1i64, 8]).unwrap()));
        let f = Concat { axis: 0 }.output_facts(&[&c1, &c2], 1).unwrap();
        assert_eq!(
            f[0].konst.as_ref().unwrap().as_slice::<i64>().unwrap(),
            &[1, -1, 8]
        );
    }

    /// A batch-1 channel concat larger than one parallel chunk: chunks that
    /// straddle part boundaries, run by a (fake) 4-thread pool in reverse.
    #[test]
    fn one_row_concat_in_parallel_chunks() {
        let sizes = [40_000usize, 7, 30_001];
        let parts: Vec<Vec<f32>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 100_000 + j) as f32).collect())
            .collect();
        let views: Vec<TensorView> = parts
            .iter()
            .map(|p| TensorView::from_slice(&[1, p.len(), 1], p).unwrap())
            .collect();
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&crate::ops::nn::test_util::FakePar, &mut pool);
        let inputs: Vec<Option<TensorView>> = views.iter().map(|v| Some(v.clone())).collect();
        let out = Concat { axis: 1 }.eval(&mut ctx, &inputs).unwrap();
        let want: Vec<f32> = parts.concat();
        assert_eq!(out[0].shape(), &[1, want.len(), 1]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), want.as_slice());
    }
}
