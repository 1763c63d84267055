//! `LRN`: local response normalisation across channels,
//! `y = x / (bias + alpha / size * sum_{window} x^2) ^ beta`.

use uniml_data::{ensure, Result, Tensor, TensorView};

use super::{float_data, with_f32_output};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct Lrn {
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
    pub size: usize,
}

impl Op for Lrn {
    fn name(&self) -> &'static str {
        "LRN"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: x.shape,
            konst: None,
            is_sequence: false,
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "LRN")?;
        let xs = x.shape();
        ensure!(
            xs.len() >= 2,
            "LRN input must have rank >= 2 (N, C, ...), got {xs:?}"
        );
        ensure!(self.size >= 1, "LRN size must be >= 1");
        let (c, plane) = (xs[1], xs[2..].iter().product::<usize>());
        let xd = float_data(x, "X")?;
        let (lo, hi) = ((self.size - 1) / 2, (self.size - 1).div_ceil(2));
        let (alpha, beta, bias, size) = (self.alpha, self.beta, self.bias, self.size as f32);
        let y = with_f32_output(ctx, x.dtype(), xs, |ctx, out| {
            if plane == 0 {
                return Ok(());
            }
            super::par_planes(ctx.par, out, plane, plane * (hi + lo + 2), &|i, o| {
                let (b, ch) = (i / c, i % c);
                let first = ch.saturating_sub(lo);
                let last = (ch + hi).min(c - 1);
                let xp = &xd[i * plane..(i + 1) * plane];
                for (p, y) in o.iter_mut().enumerate() {
                    let mut s = 0f32;
                    for cc in first..=last {
                        let v = xd[(b * c + cc) * plane + p];
                        s += v * v;
                    }
                    *y = xp[p] / (bias + alpha / size * s).powf(beta);
                }
            });
            Ok(())
        })?;
        Ok(vec![y])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn lrn_small() {
        let x = t(&[1, 3, 1], &[1., 2., 3.]);
        let y = run(
            &Lrn {
                alpha: 1.0,
                beta: 1.0,
                bias: 1.0,
                size: 3,
            },
            &[Some(&x)],
        )
        .unwrap();
        let want = [
            1. / (1. + 5. / 3.),
            2. / (1. + 14. / 3.),
            3. / (1. + 13. / 3.),
        ];
        assert_close(y[0].as_slice::<f32>().unwrap(), &want, 1e-6);
    }
}
