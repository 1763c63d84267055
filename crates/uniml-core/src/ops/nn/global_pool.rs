//! `GlobalAveragePool`, `GlobalMaxPool`, `GlobalLpPool`: reduce all spatial
//! dims of `[N, C, spatial...]` to 1.

use uniml_data::{bail, ensure, Result, Tensor, TensorView};

use super::pool::unit_spatial;
use super::{float_data, with_f32_output};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GlobalPoolKind {
    Average,
    Max,
    Lp { p: f32 },
}

#[derive(Debug, Clone)]
pub struct GlobalPool {
    pub kind: GlobalPoolKind,
}

impl Op for GlobalPool {
    fn name(&self) -> &'static str {
        match self.kind {
            GlobalPoolKind::Average => "GlobalAveragePool",
            GlobalPoolKind::Max => "GlobalMaxPool",
            GlobalPoolKind::Lp { .. } => "GlobalLpPool",
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        if let Some(s) = &x.shape {
            ensure!(
                s.rank() >= 2,
                "{} input must have rank >= 2, got {s}",
                self.name()
            );
        }
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: x.shape.as_ref().map(unit_spatial),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, self.name())?;
        let xs = x.shape();
        if xs.len() < 2 {
            bail!(
                "{} input must have rank >= 2 (N, C, ...), got shape {xs:?}",
                self.name()
            );
        }
        let mut out_shape = xs.to_vec();
        out_shape[2..].iter_mut().for_each(|d| *d = 1);
        let plane: usize = xs[2..].iter().product();
        let xd = float_data(x, "X")?;
        let kind = self.kind;
        let y = with_f32_output(ctx, x.dtype(), &out_shape, |ctx, out| {
            let per = super::per_task(ctx.par, out.len(), plane);
            par_chunks_mut(ctx.par, out, per, &|t, chunk| {
                for (i, o) in chunk.iter_mut().enumerate() {
                    let p = t * per + i;
                    *o = reduce(kind, &xd[p * plane..(p + 1) * plane]);
                }
            });
            Ok(())
        })?;
        Ok(vec![y])
    }

    crate::op_as_any!();
}

fn reduce(kind: GlobalPoolKind, v: &[f32]) -> f32 {
    match kind {
        GlobalPoolKind::Average => {
            if v.is_empty() {
                return 0.0;
            }
            sum8(v, |x| x) / v.len() as f32
        }
        GlobalPoolKind::Max => {
            v.iter().copied().fold(
                f32::NEG_INFINITY,
                |a, b| if b > a || b.is_nan() { b } else { a },
            )
        }
        GlobalPoolKind::Lp { p } => {
            if p == 2.0 {
                sum8(v, |x| x * x).sqrt()
            } else {
                sum8(v, |x| x.abs().powf(p)).powf(1.0 / p)
            }
        }
    }
}

/// Sum with 8 independent accumulators (vectorisable, and more accurate than a single chain).
#[inline]
pub(crate) fn sum8(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &x in rem {
        s += f(x);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{run, t};

    #[test]
    fn global_pools() {
        let x = t(&[1, 2, 2, 2], &[1., 2., 3., 4., -1., -2., -3., 10.]);
        let avg = run(
            &GlobalPool {
                kind: GlobalPoolKind::Average,
            },
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(avg[0].shape(), &[1, 2, 1, 1]);
        assert_eq!(avg[0].as_slice::<f32>().unwrap(), &[2.5, 1.0]);
        let mx = run(
            &GlobalPool {
                kind: GlobalPoolKind::Max,
            },
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(mx[0].as_slice::<f32>().unwrap(), &[4., 10.]);
        let lp = run(
            &GlobalPool {
                kind: GlobalPoolKind::Lp { p: 2.0 },
            },
            &[Some(&t(&[1, 1, 2], &[3., 4.]))],
        )
        .unwrap();
        assert_eq!(lp[0].as_slice::<f32>().unwrap(), &[5.]);
        assert!(run(
            &GlobalPool {
                kind: GlobalPoolKind::Max
            },
            &[Some(&t(&[3], &[1., 2., 3.]))]
        )
        .is_err());
    }
}
