//! `Softmax`, `LogSoftmax`, `Hardmax` over one axis, or (opset < 13
//! semantics, chosen by the builder) over all dims from `axis` on.
//! Numerically stable (the max is subtracted before `exp`).

use uniml_data::{bail, Result, Tensor, TensorView};

use super::{float_data, with_f32_output, with_f32_output_overwritten};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::norm_axis;
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftmaxKind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

#[derive(Debug, Clone)]
pub struct Softmax {
    pub kind: SoftmaxKind,
    pub axis: i64,
    /// Normalise over the flattened dims `[axis..]` (opset < 13) instead of the single `axis`.
    pub flatten_tail: bool,
}

impl Op for Softmax {
    fn name(&self) -> &'static str {
        match self.kind {
            SoftmaxKind::Softmax => "Softmax",
            SoftmaxKind::LogSoftmax => "LogSoftmax",
            SoftmaxKind::Hardmax => "Hardmax",
        }
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
        let x = input(inputs, 0, self.name())?;
        let xs = x.shape();
        if xs.is_empty() {
            bail!("{} input must have rank >= 1", self.name());
        }
        let axis = norm_axis(self.axis, xs.len())?;
        let outer: usize = xs[..axis].iter().product();
        let (n, inner) = if self.flatten_tail {
            (xs[axis..].iter().product::<usize>(), 1)
        } else {
            (xs[axis], xs[axis + 1..].iter().product::<usize>())
        };
        let xd = float_data(x, "input")?;
        let kind = self.kind;
        let y = with_f32_output(ctx, x.dtype(), xs, |ctx, out| {
            let block = n * inner;
            if block == 0 {
                return Ok(());
            }
            let per = super::per_task(ctx.par, outer, n * inner * 4);
            par_chunks_mut(ctx.par, out, per * block, &|t, chunk| {
                // The max and scaling loops compiled 16 lanes wide where the
                // CPU has them (attention rows are short: 128 values).
                crate::ops::wide::wide(
                    #[inline(always)]
                    || {
                        for (i, yo) in chunk.chunks_mut(block).enumerate() {
                            let o = t * per + i;
                            let xo = &xd[o * block..(o + 1) * block];
                            if inner == 1 {
                                row(kind, xo, yo);
                            } else {
                                strided(kind, xo, yo, n, inner);
                            }
                        }
                    },
                )
            });
            Ok(())
        })?;
        Ok(vec![y])
    }
    crate::op_as_any!();
}

/// The largest non-NaN value (`-inf` if none), in 16 independent lanes so
/// that it vectorises (a `fold(f32::max)` is one serial chain).
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    lanes.iter().copied().fold(tail, f32::max)
}

/// `y = exp(y - max) / sum(exp(y - max))` in place (linalg's vector exp).
#[inline(always)]
fn normalise_exp(y: &mut [f32], max: f32) {
    let inv = 1.0 / uniml_linalg::exp_sum(y, max);
    y.iter_mut().for_each(|v| *v *= inv);
}

#[inline(always)]
fn row(kind: SoftmaxKind, x: &[f32], y: &mut [f32]) {
    let max = max_of(x);
    match kind {
        SoftmaxKind::Hardmax => {
            y.fill(0.0);
            if let Some(i) =
                x.iter()
                    .position(|&v| v == max)
                    .or(if x.is_empty() { None } else { Some(0) })
            {
                y[i] = 1.0;
            }
        }
        SoftmaxKind::Softmax => {
            // Vectorised exp (linalg's polynomial, ~2e-7 relative).
            y.copy_from_slice(x);
            normalise_exp(y, max);
        }
        SoftmaxKind::LogSoftmax => {
            let sum: f32 = x.iter().map(|&v| (v - max).exp()).sum();
            let lse = sum.ln();
            for (o, &v) in y.iter_mut().zip(x) {
                *o = v - max - lse;
            }
        }
    }
}

/// Softmax along a strided axis: element `(k, j)` at `k * inner + j`; vectorised over `j`.
#[inline(always)]
fn strided(kind: SoftmaxKind, x: &[f32], y: &mut [f32], n: usize, inner: usize) {
    let mut max = vec![f32::NEG_INFINITY; inner];
    for k in 0..n {
        for (m, &v) in max.iter_mut().zip(&x[k * inner..(k + 1) * inner]) {
            *m = m.max(v);
        }
    }
    match kind {
        SoftmaxKind::Hardmax => {
            y.fill(0.0);
            for j in 0..inner {
                let k = (0..n).find(|&k| x[k * inner + j] == max[j]).unwrap_or(0);
                y[k * inner + j] = 1.0;
            }
        }
        SoftmaxKind::Softmax | SoftmaxKind::LogSoftmax => {
            let mut sum = vec![0f32; inner];
            for k in 0..n {
                let r = k * inner..(k + 1) * inner;
                for ((o, &v), (s, &m)) in y[r.clone()]
                    .iter_mut()
                    .zip(&x[r])
                    .zip(sum.iter_mut().zip(&max))
                {
                    let e = (v - m).exp();
                    *o = e;
                    *s += e;
                }
            }
            if kind == SoftmaxKind::Softmax {
                let inv: Vec<f32> = sum.iter().map(|s| 1.0 / s).collect();
                for k in 0..n {
                    for (o, &iv) in y[k * inner..(k + 1) * inner].iter_mut().zip(&inv) {
                        *o *= iv;
                    }
                }
            } else {
                let sub: Vec<f32> = sum.iter().zip(&max).map(|(s, m)| m + s.ln()).collect();
                for k in 0..n {
                    let r = k * inner..(k + 1) * inner;
                    for ((o, &v), &s) in y[r.clone()].iter_mut().zip(&x[r]).zip(&sub) {
                        *o = v - s;
                    }
                }
            }
        }
    }
}

/// `Softmax(x·scale + mask)` over the last axis (CPU only, from
/// `passes::fuse_attention_softmax`): the attention scores' scaling `Div`
/// and mask `Add` done while the row is read, instead of two more passes
/// over the `heads × tokens × tokens` scores. Input 1, the mask, is
/// optional and broadcasts to `x` (BERT's `[batch, 1, 1, tokens]`).
#[derive(Debug, Clone)]
pub struct MaskedSoftmax {
    pub scale: f32,
}

impl Op for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "MaskedSoftmax"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![Fact { dtype: x.dtype, shape: x.shape, konst: None, is_sequence: false }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "MaskedSoftmax")?;
        let xs = x.shape();
        let Some(&n) = xs.last() else { bail!("MaskedSoftmax input must have rank >= 1") };
        let xd = float_data(x, "input")?;
        let mask = inputs.get(1).and_then(|m| m.as_ref());
        // Per row of `x`: the offset of its mask row (strides 0 on broadcast dims).
        let (md, mstrides, mlast) = match mask {
            Some(m) => {
                let ms = m.shape();
                let fits = ms.len() <= xs.len()
                    && ms.iter().rev().zip(xs.iter().rev()).all(|(&a, &b)| a == b || a == 1);
                if !fits {
                    bail!("MaskedSoftmax mask shape {ms:?} does not broadcast to the input's {xs:?}");
                }
                let full = crate::ops::util::broadcast_strides(ms, xs);
                (Some(float_data(m, "mask")?), full[..xs.len() - 1].to_vec(), full[xs.len() - 1])
            }
            None => (None, Vec::new(), 0),
        };
        let rows_dims = &xs[..xs.len() - 1];
        let scale = self.scale;
        // Every element is written.
        let y = with_f32_output_overwritten(ctx, x.dtype(), xs, |ctx, out| {
            if n == 0 {
                return Ok(());
            }
            let rows = out.len() / n;
            let per = super::per_task(ctx.par, rows, n * 4);
            par_chunks_mut(ctx.par, out, per * n, &|t, chunk| {
                crate::ops::wide::wide(
                    #[inline(always)]
                    || {
                        for (i, yo) in chunk.chunks_mut(n).enumerate() {
                            let o = t * per + i;
                            let xo = &xd[o * n..(o + 1) * n];
                            match &md {
                                Some(md) => {
                                    // The mask row's offset from the row's index.
                                    let (mut rest, mut off) = (o, 0);
                                    for (d, &len) in rows_dims.iter().enumerate().rev() {
                                        off += (rest % len) * mstrides[d];
                                        rest /= len;
                                    }
                                    if mlast == 1 {
                                        let mo = &md[off..off + n];
                                        for ((v, &a), &b) in yo.iter_mut().zip(xo).zip(mo) {
                                            *v = a * scale + b;
                                        }
                                    } else {
                                        let b = md[off];
                                        yo.iter_mut().zip(xo).for_each(|(v, &a)| *v = a * scale + b);
                                    }
                                }
                                None => yo.iter_mut().zip(xo).for_each(|(v, &a)| *v = a * scale),
                            }
                            normalise_exp(yo, max_of(yo));
                        }
                    },
                )
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
    fn softmax_axes() {
        let x = t(&[2, 3], &[1., 2., 3., 1000., 1000., 1000.]);
        let op = Softmax {
            kind: SoftmaxKind::Softmax,
            axis: -1,
            flatten_tail: false,
        };
        let y = run(&op, &[Some(&x)]).unwrap();
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        let s: f32 = e.iter().sum();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[e[0] / s, e[1] / s, e[2] / s, 1. / 3., 1. / 3., 1. / 3.],
            1e-6,
        );
        let op = Softmax {
            kind: SoftmaxKind::Softmax,
            axis: 0,
            flatten_tail: false,
        };
        let y = run(&op, &[Some(&t(&[2, 2], &[0., 1., 0., 1.]))]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[0.5; 4], 1e-6);
        let op = Softmax {
            kind: SoftmaxKind::LogSoftmax,
            axis: 0,
            flatten_tail: true,
        };
        let y = run(&op, &[Some(&t(&[2, 2], &[0., 0., 0., 0.]))]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[-(4f32.ln()); 4], 1e-6);
        let op = Softmax {
            kind: SoftmaxKind::Hardmax,
            axis: 0,
            flatten_tail: false,
        };
        let y = run(&op, &[Some(&t(&[2, 2], &[1., 3., 2., 3.]))]).unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[0., 1., 1., 0.]);
        assert!(run(&op, &[Some(&t(&[], &[1.]))]).is_err());
    }
}
