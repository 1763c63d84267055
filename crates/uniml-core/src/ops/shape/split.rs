//! `Split`: cuts a tensor into parts along an axis, copying whole inner blocks.

use uniml_data::{bail, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{fact, fold_small, ints_param, ints_param_fact, numel, par_blocks, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::norm_axis;

/// `Split`. Part sizes come from `split` (attribute before opset 13, constant
/// input after), else input 1 at run time, else `num_outputs` (opset 18) or
/// the node's output count: equal parts, the last one smaller if uneven.
#[derive(Debug, Clone)]
pub struct Split {
    pub axis: i64,
    pub split: Option<Vec<i64>>,
    pub num_outputs: Option<usize>,
    /// Outputs the node declares.
    pub n_outputs: usize,
}

impl Split {
    fn parts(&self) -> usize {
        self.num_outputs.unwrap_or(self.n_outputs)
    }

    /// Part sizes for a dim of size `dim`.
    fn sizes(&self, split: Option<Vec<i64>>, dim: usize) -> Result<Vec<usize>> {
        // An empty `split` input means "not given".
        match split.filter(|s| !s.is_empty()) {
            Some(s) => {
                if s.iter().any(|&v| v < 0) || s.iter().sum::<i64>() != dim as i64 {
                    bail!("Split: sizes {s:?} do not add up to the axis length {dim}");
                }
                if s.len() != self.n_outputs {
                    bail!(
                        "Split: {} sizes given for {} outputs",
                        s.len(),
                        self.n_outputs
                    );
                }
                Ok(s.iter().map(|&v| v as usize).collect())
            }
            None => {
                let n = self.parts();
                if n == 0 {
                    bail!("Split: no outputs");
                }
                let each = dim.div_ceil(n);
                let last = dim as i64 - (each * (n - 1)) as i64;
                if last < 0 {
                    bail!("Split: cannot split an axis of length {dim} into {n} parts");
                }
                let mut v = vec![each; n];
                v[n - 1] = last as usize;
                Ok(v)
            }
        }
    }
}

fn split_into<T: Data>(
    ctx: &EvalCtx,
    x: &TensorView,
    outer: usize,
    row: usize,
    blocks: &[usize],
    outs: &mut [Tensor],
) -> Result<()> {
    let src = T::src(x)?;
    let mut off = 0;
    for (out, &b) in outs.iter_mut().zip(blocks) {
        let dst = T::dst(out)?;
        if outer == 1 {
            dst.clone_from_slice(&src[off..off + b]);
        } else {
            par_blocks(ctx.par, dst, b, &|o, d| {
                d.clone_from_slice(&src[o * row + off..o * row + off + b])
            });
        }
        off += b;
    }
    Ok(())
}

impl Op for Split {
    fn name(&self) -> &'static str {
        "Split"
    }
    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let Some(s) = &x.shape else {
            return Ok(vec![Fact::dtype_only(x.dtype); n]);
        };
        let axis = norm_axis(self.axis, s.rank())?;
        let sizes: Vec<Dim> = match (ints_param_fact(&self.split, inputs, 1), &s.0[axis]) {
            (Some(Some(sp)), d) => {
                let known = d
                    .known()
                    .map(|d| self.sizes(Some(sp.clone()), d))
                    .transpose()?;
                match known {
                    Some(k) => k.into_iter().map(Dim::Known).collect(),
                    None => sp.iter().map(|&v| Dim::Known(v.max(0) as usize)).collect(),
                }
            }
            (Some(None), Dim::Known(d)) => {
                self.sizes(None, *d)?.into_iter().map(Dim::Known).collect()
            }
            _ => vec![Dim::Unknown; n],
        };
        let facts = (0..n)
            .map(|i| {
                let mut dims = s.0.clone();
                dims[axis] = sizes.get(i).cloned().unwrap_or(Dim::Unknown);
                fact(x.dtype, SymbolicShape(dims))
            })
            .collect();
        Ok(fold_small(self, inputs, facts))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Split")?;
        let axis = norm_axis(self.axis, x.shape().len())?;
        let split = ints_param(&self.split, inputs, 1, "Split split")?;
        let sizes = self.sizes(split, x.shape()[axis])?;
        let outer = numel(&x.shape()[..axis]);
        let inner = numel(&x.shape()[axis + 1..]);
        let row = x.shape()[axis] * inner;
        let mut outs = Vec::with_capacity(sizes.len());
        for &s in &sizes {
            let mut shape = x.shape().to_vec();
            shape[axis] = s;
            outs.push(ctx.alloc(x.dtype(), &shape)?);
        }
        let blocks: Vec<usize> = sizes.iter().map(|&s| s * inner).collect();
        if x.len() > 0 {
            dispatch_data!(x.dtype(), T => split_into::<T>(ctx, x, outer, row, &blocks, &mut outs)?);
        }
        Ok(outs)
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &Split, x: TensorView) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        op.eval(&mut ctx, &[Some(x)])
    }

    #[test]
    fn uneven_split_and_explicit_sizes() {
        let d: Vec<f32> = (0..7).map(|v| v as f32).collect();
        let x = TensorView::from_slice(&[7], &d).unwrap();
        let outs = run(
            &Split {
                axis: 0,
                split: None,
                num_outputs: Some(3),
                n_outputs: 3,
            },
            x.clone(),
        )
        .unwrap();
        assert_eq!(
            outs.iter().map(|t| t.len()).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
        assert_eq!(outs[2].as_slice::<f32>().unwrap(), &[6.0]);
        let outs = run(
            &Split {
                axis: 0,
                split: Some(vec![2, 5]),
                num_outputs: None,
                n_outputs: 2,
            },
            x.clone(),
        )
        .unwrap();
        assert_eq!(
            outs[1].as_slice::<f32>().unwrap(),
            &[2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert!(run(
            &Split {
                axis: 0,
                split: Some(vec![2, 4]),
                num_outputs: None,
                n_outputs: 2
            },
            x
        )
        .is_err());
    }

    #[test]
    fn split_inner_axis() {
        let d: Vec<i32> = (0..6).collect();
        let x = TensorView::from_slice(&[2, 3], &d).unwrap();
        let outs = run(
            &Split {
                axis: 1,
                split: Some(vec![1, 2]),
                num_outputs: None,
                n_outputs: 2,
            },
            x,
        )
        .unwrap();
        assert_eq!(outs[0].as_slice::<i32>().unwrap(), &[0, 3]);
        assert_eq!(outs[1].as_slice::<i32>().unwrap(), &[1, 2, 4, 5]);
    }
}
