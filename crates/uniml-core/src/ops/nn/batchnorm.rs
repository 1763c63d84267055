//! `BatchNormalization`: inference form `y = (x - mean) / sqrt(var + eps) * scale + B`
//! per channel (axis 1), plus the training form (batch statistics and updated
//! running mean/variance outputs) of opset 14+.

use uniml_data::{ensure, Result, Tensor, TensorView};

use super::{float_data, with_f32_output, with_f32_output_overwritten, FusedActivation};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub epsilon: f32,
    pub momentum: f32,
    /// Use batch statistics and also output the updated running mean/var.
    pub training: bool,
    /// Applied last (a pass may fuse a following activation).
    pub activation: FusedActivation,
}

/// Per-channel `(a, b)` with `y = x * a + b`, for folding into a preceding conv.
pub fn scale_shift(
    scale: &[f32],
    bias: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>) {
    let a: Vec<f32> = scale
        .iter()
        .zip(var)
        .map(|(&s, &v)| (s as f64 / (v as f64 + epsilon as f64).sqrt()) as f32)
        .collect();
    let b = bias
        .iter()
        .zip(mean)
        .zip(&a)
        .map(|((&b, &m), &a)| b - m * a)
        .collect();
    (a, b)
}

impl Op for BatchNorm {
    fn name(&self) -> &'static str {
        "BatchNormalization"
    }
    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let mut out = vec![Fact {
            dtype: x.dtype,
            shape: x.shape.clone(),
            konst: None,
            is_sequence: false,
        }];
        for i in 1..n.min(3) {
            let f = inputs.get(2 + i).copied().cloned().unwrap_or_default();
            out.push(Fact {
                dtype: f.dtype,
                shape: f.shape,
                konst: None,
                is_sequence: false,
            });
        }
        Ok(out)
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "BatchNormalization")?;
        let xs = x.shape();
        ensure!(
            xs.len() >= 2,
            "BatchNormalization input must have rank >= 2, got {xs:?}"
        );
        let (n, c) = (xs[0], xs[1]);
        let plane: usize = xs[2..].iter().product();
        let mut p = Vec::with_capacity(4);
        for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let t = input(inputs, i, "BatchNormalization")?;
            ensure!(
                t.len() == c,
                "BatchNormalization {what} must have {c} values (one per channel), got shape {:?}",
                t.shape()
            );
            p.push(float_data(t, what)?);
        }
        let xd = float_data(x, "X")?;
        let (mut mean, mut var) = (p[2].to_vec(), p[3].to_vec());
        let mut running = None;
        if self.training {
            let cnt = (n * plane).max(1) as f64;
            let mut bm = vec![0f64; c];
            let mut bv = vec![0f64; c];
            for ch in 0..c {
                let it = || {
                    (0..n).flat_map(|b| {
                        xd[(b * c + ch) * plane..(b * c + ch + 1) * plane]
                            .iter()
                            .map(|&v| v as f64)
                    })
                };
                let m = it().sum::<f64>() / cnt;
                bm[ch] = m;
                bv[ch] = it().map(|v| (v - m) * (v - m)).sum::<f64>() / cnt;
            }
            let mo = self.momentum as f64;
            let rm: Vec<f32> = (0..c)
                .map(|i| (p[2][i] as f64 * mo + bm[i] * (1.0 - mo)) as f32)
                .collect();
            let rv: Vec<f32> = (0..c)
                .map(|i| (p[3][i] as f64 * mo + bv[i] * (1.0 - mo)) as f32)
                .collect();
            mean = bm.iter().map(|&v| v as f32).collect();
            var = bv.iter().map(|&v| v as f32).collect();
            running = Some((rm, rv));
        }
        let (a, b) = scale_shift(&p[0], &p[1], &mean, &var, self.epsilon);
        let act = self.activation;
        // Every element is written.
        let y = with_f32_output_overwritten(ctx, x.dtype(), xs, |ctx, out| {
            if plane == 0 {
                return Ok(());
            }
            super::par_planes(ctx.par, out, plane, plane * 2, &|i, o| {
                let ch = i % c;
                let (a, b) = (a[ch], b[ch]);
                crate::ops::wide::wide(#[inline(always)] || {
                    for (y, &v) in o.iter_mut().zip(&xd[i * plane..(i + 1) * plane]) {
                        *y = v * a + b;
                    }
                });
                act.apply_slice(o);
            });
            Ok(())
        })?;
        let mut res = vec![y];
        if let Some((rm, rv)) = running {
            for (v, i) in [(rm, 3), (rv, 4)] {
                let dt = input(inputs, i, "BatchNormalization")?.dtype();
                res.push(with_f32_output(ctx, dt, &[c], |_, o| {
                    o.copy_from_slice(&v);
                    Ok(())
                })?);
            }
        }
        Ok(res)
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn inference_and_training() {
        let x = t(&[2, 2, 1], &[1., 2., 3., 4.]);
        let s = t(&[2], &[1., 2.]);
        let b = t(&[2], &[0., 1.]);
        let m = t(&[2], &[1., 2.]);
        let v = t(&[2], &[4., 1.]);
        let op = BatchNorm {
            epsilon: 0.0,
            momentum: 0.9,
            training: false,
            activation: FusedActivation::None,
        };
        let y = run(&op, &[Some(&x), Some(&s), Some(&b), Some(&m), Some(&v)]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[0., 1., 1., 5.], 1e-6);
        let op = BatchNorm {
            training: true,
            ..op
        };
        let y = run(&op, &[Some(&x), Some(&s), Some(&b), Some(&m), Some(&v)]).unwrap();
        // channel 0: values 1, 3 -> mean 2, var 1; channel 1: 2, 4 -> mean 3, var 1
        assert_close(y[0].as_slice::<f32>().unwrap(), &[-1., -1., 1., 3.], 1e-6);
        assert_close(
            y[1].as_slice::<f32>().unwrap(),
            &[0.9 + 0.2, 1.8 + 0.3],
            1e-6,
        );
        assert_close(
            y[2].as_slice::<f32>().unwrap(),
            &[3.6 + 0.1, 0.9 + 0.1],
            1e-6,
        );
        assert!(run(
            &op,
            &[
                Some(&x),
                Some(&t(&[3], &[1., 1., 1.])),
                Some(&b),
                Some(&m),
                Some(&v)
            ]
        )
        .is_err());
    }
}
