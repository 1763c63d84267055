//! `AffineGrid` (opset 20): the sampling grid of an affine transform, as fed to
//! `GridSample`. `theta [N, 2, 3]` with `size = [N, C, H, W]` gives
//! `[N, H, W, 2]`; `theta [N, 3, 4]` with `size = [N, C, D, H, W]` gives
//! `[N, D, H, W, 3]`. Each output point is `theta · (x, y[, z], 1)` where the
//! base coordinates span [−1, 1]: `−1 + 2i/(d−1)` with `align_corners`
//! (−1 for d = 1), else the pixel centres `−1 + (2i+1)/d`. Computed in f64.

use uniml_data::{bail, ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{dispatch_float, with_output, Float};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone)]
pub struct AffineGrid {
    pub align_corners: bool,
}

impl AffineGrid {
    fn base(&self, i: usize, d: usize) -> f64 {
        if self.align_corners {
            if d <= 1 {
                -1.0
            } else {
                -1.0 + 2.0 * i as f64 / (d - 1) as f64
            }
        } else {
            -1.0 + (2 * i + 1) as f64 / d as f64
        }
    }
}

impl Op for AffineGrid {
    fn name(&self) -> &'static str {
        "AffineGrid"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let theta = inputs.first().copied().cloned().unwrap_or_default();
        let size_fact = inputs.get(1);
        let shape = if let Some(k) = size_fact.and_then(|f| f.konst.as_ref()) {
            let s = crate::ops::util::read_i64s(&k.view())?;
            ensure!(
                s.len() == 4 || s.len() == 5,
                "AffineGrid size must have 4 or 5 values, got {s:?}"
            );
            let mut d: Vec<Dim> = vec![Dim::Known(s[0].max(0) as usize)];
            d.extend(s[2..].iter().map(|&v| Dim::Known(v.max(0) as usize)));
            d.push(Dim::Known(s.len() - 2));
            Some(SymbolicShape(d))
        } else {
            match size_fact
                .and_then(|f| f.shape.as_ref())
                .and_then(|s| s.0.first())
                .and_then(|d| d.known())
            {
                Some(n) if n == 4 || n == 5 => {
                    let mut d = vec![Dim::Unknown; n];
                    d[n - 1] = Dim::Known(n - 2);
                    Some(SymbolicShape(d))
                }
                _ => None,
            }
        };
        Ok(vec![Fact {
            dtype: theta.dtype,
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = "AffineGrid";
        let theta = input(inputs, 0, op)?;
        let size = crate::ops::util::read_i64s(input(inputs, 1, op)?)?;
        ensure!(
            size.len() == 4 || size.len() == 5,
            "{op}: size must be [N, C, H, W] or [N, C, D, H, W], got {size:?}"
        );
        ensure!(
            size.iter().all(|&v| v >= 0),
            "{op}: size must be non-negative, got {size:?}"
        );
        let r = size.len() - 2;
        let n = size[0] as usize;
        let ts = theta.shape();
        ensure!(
            ts == [n, r, r + 1],
            "{op}: theta must be [{n}, {r}, {}] for size {size:?}, got {ts:?}",
            r + 1
        );
        let spatial: Vec<usize> = size[2..].iter().map(|&v| v as usize).collect();
        let Some(points) = spatial.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            bail!("{op}: size {size:?} is too large");
        };
        let mut out_shape = vec![n];
        out_shape.extend_from_slice(&spatial);
        out_shape.push(r);
        let th = theta.to_f64_vec()?;
        let y = dispatch_float!(theta.dtype(), F => {
            with_output::<F>(ctx, theta.dtype(), &out_shape, |ctx, out| {
                if points == 0 || r == 0 {
                    return Ok(());
                }
                // Base coordinates per spatial dim (computed once the output exists).
                let axes: Vec<Vec<f64>> =
                    spatial.iter().map(|&d| (0..d).map(|i| self.base(i, d)).collect()).collect();
                par_chunks_mut(ctx.par, out, points * r, &|b, ob| {
                    let t = &th[b * r * (r + 1)..(b + 1) * r * (r + 1)];
                    let mut idx = vec![0usize; r];
                    let mut homo = vec![1.0f64; r + 1];
                    for p in 0..points {
                        // homo = (x, y[, z], 1): reversed spatial index order.
                        for d in 0..r {
                            homo[r - 1 - d] = axes[d][idx[d]];
                        }
                        for row in 0..r {
                            let tr = &t[row * (r + 1)..(row + 1) * (r + 1)];
                            let v: f64 = tr.iter().zip(&homo).map(|(a, b)| a * b).sum();
                            ob[p * r + row] = F::from_f64(v);
                        }
                        for d in (0..r).rev() {
                            idx[d] += 1;
                            if idx[d] < spatial[d] {
                                break;
                            }
                            idx[d] = 0;
                        }
                    }
                });
                Ok(())
            })?
        }, _ => bail!("{op}: theta must be a float tensor, got {}", theta.dtype()));
        Ok(vec![y])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run, t};
    use super::*;

    #[test]
    fn identity_theta_gives_base_grid() {
        let theta = t(&[1, 2, 3], &[1., 0., 0., 0., 1., 0.]);
        let size = Tensor::from_slice(&[4], &[1i64, 1, 2, 3]).unwrap();
        let y = run(
            &AffineGrid {
                align_corners: true,
            },
            &[Some(&theta), Some(&size)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 2, 3, 2]);
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[-1., -1., 0., -1., 1., -1., -1., 1., 0., 1., 1., 1.],
            1e-6,
        );
        let y = run(
            &AffineGrid {
                align_corners: false,
            },
            &[Some(&theta), Some(&size)],
        )
        .unwrap();
        let (a, b) = (-2.0 / 3.0, 2.0 / 3.0);
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[a, -0.5, 0., -0.5, b, -0.5, a, 0.5, 0., 0.5, b, 0.5],
            1e-6,
        );
        // translation in 3-D
        let theta = t(
            &[1, 3, 4],
            &[1., 0., 0., 0.5, 0., 1., 0., 0., 0., 0., 1., -0.5],
        );
        let size = Tensor::from_slice(&[5], &[1i64, 1, 1, 1, 2]).unwrap();
        let y = run(
            &AffineGrid {
                align_corners: true,
            },
            &[Some(&theta), Some(&size)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 1, 2, 3]);
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[-0.5, -1., -1.5, 1.5, -1., -1.5],
            1e-6,
        );
        let bad = Tensor::from_slice(&[4], &[2i64, 1, 2, 3]).unwrap();
        assert!(run(
            &AffineGrid {
                align_corners: true
            },
            &[Some(&theta), Some(&bad)]
        )
        .is_err());
    }
}
