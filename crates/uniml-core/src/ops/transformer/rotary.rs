//! `RotaryEmbedding` (opset 23): rotates the first `rotary_embedding_dim`
//! features of each head by position-dependent angles (`cos_cache`,
//! `sin_cache`), split in halves or interleaved pairs. Input is 4-D
//! `[batch, heads, seq, head_size]` or 3-D `[batch, seq, heads*head_size]`.

use uniml_data::{bail, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::nn::{f32_data, with_f32_output};
use crate::parallel::par_chunks_mut;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct RotaryEmbedding {
    pub interleaved: bool,
    /// 0: the whole head.
    pub rotary_embedding_dim: usize,
    /// Required for 3-D inputs.
    pub num_heads: Option<usize>,
}

impl Op for RotaryEmbedding {
    fn name(&self) -> &'static str {
        "RotaryEmbedding"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("RotaryEmbedding needs an input")
        };
        if let Some(dt) = x.dtype {
            if !dt.is_float() {
                bail!("RotaryEmbedding expects a float input, got {dt}");
            }
        }
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: x.shape.clone(),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "RotaryEmbedding")?;
        let cos = input(inputs, 1, "RotaryEmbedding")?;
        let sin = input(inputs, 2, "RotaryEmbedding")?;
        let pos = inputs.get(3).and_then(|p| p.as_ref());
        if !x.dtype().is_float() || !cos.dtype().is_float() || !sin.dtype().is_float() {
            bail!(
                "RotaryEmbedding expects float X, cos_cache and sin_cache, got {}, {}, {}",
                x.dtype(),
                cos.dtype(),
                sin.dtype()
            );
        }
        let sh = x.shape();
        // (batch, seq, heads, head_size) and the element strides of those axes.
        let (batch, seq, heads, hs, st) = match sh.len() {
            4 => (
                sh[0],
                sh[2],
                sh[1],
                sh[3],
                [sh[1] * sh[2] * sh[3], sh[3], sh[2] * sh[3]],
            ),
            3 => {
                let Some(nh) = self.num_heads.filter(|&n| n > 0) else {
                    bail!("RotaryEmbedding: 3-D input needs the num_heads attribute")
                };
                if sh[2] % nh != 0 {
                    bail!(
                        "RotaryEmbedding: hidden size {} is not divisible by num_heads {nh}",
                        sh[2]
                    );
                }
                (
                    sh[0],
                    sh[1],
                    nh,
                    sh[2] / nh,
                    [sh[1] * sh[2], sh[2], sh[2] / nh],
                )
            }
            r => bail!("RotaryEmbedding: input must be rank 3 or 4, got rank {r}"),
        };
        let rd = if self.rotary_embedding_dim == 0 {
            hs
        } else {
            self.rotary_embedding_dim
        };
        if rd > hs || rd % 2 != 0 {
            bail!("RotaryEmbedding: rotary_embedding_dim {rd} must be even and at most the head size {hs}");
        }
        let half = rd / 2;
        if cos.shape() != sin.shape() {
            bail!(
                "RotaryEmbedding: cos_cache {:?} and sin_cache {:?} differ in shape",
                cos.shape(),
                sin.shape()
            );
        }
        if cos.shape().last() != Some(&half) {
            bail!("RotaryEmbedding: cache last dim must be rotary_embedding_dim/2 = {half}, got shape {:?}", cos.shape());
        }
        // Row of the caches for (b, s).
        let pos_ids = match pos {
            Some(p) => {
                if p.shape() != [batch, seq] {
                    bail!("RotaryEmbedding: position_ids must be [{batch}, {seq}], got {:?}", p.shape());
                }
                if cos.shape().len() != 2 {
                    bail!("RotaryEmbedding: with position_ids the caches must be 2-D, got {:?}", cos.shape());
                }
                let ids = crate::ops::util::read_i64s(p)?;
                let max = cos.shape()[0];
                let mut rows = Vec::with_capacity(ids.len());
                for &id in &ids {
                    if id < 0 || id as usize >= max {
                        bail!("RotaryEmbedding: position id {id} is out of range for a cache of {max} rows");
                    }
                    rows.push(id as usize);
                }
                rows
            }
            None => match cos.shape() {
                [s, _] if *s == seq => (0..batch * seq).map(|i| i % seq).collect(),
                [b, s, _] if *b == batch && *s == seq => (0..batch * seq).collect(),
                other => bail!("RotaryEmbedding: without position_ids the caches must be [{batch}, {seq}, {half}] or [{seq}, {half}], got {other:?}"),
            },
        };
        let xs = f32_data(x)?;
        let (cs, ss) = (f32_data(cos)?, f32_data(sin)?);
        let interleaved = self.interleaved;
        let out = with_f32_output(ctx, x.dtype(), sh, |ctx, out| {
            out.copy_from_slice(&xs);
            // One task per (b, s); each touches the heads of that token only,
            // which are contiguous for 3-D input but strided for 4-D, so the
            // 4-D case runs per batch.
            let per = st[0];
            par_chunks_mut(ctx.par, out, per.max(1), &|b, ob| {
                for s in 0..seq {
                    let row = pos_ids[b * seq + s] * half;
                    let (c, sn) = (&cs[row..row + half], &ss[row..row + half]);
                    for h in 0..heads {
                        let base = s * st[1] + h * st[2];
                        let v = &mut ob[base..base + rd];
                        if interleaved {
                            for i in 0..half {
                                let (x1, x2) = (v[2 * i], v[2 * i + 1]);
                                v[2 * i] = c[i] * x1 - sn[i] * x2;
                                v[2 * i + 1] = sn[i] * x1 + c[i] * x2;
                            }
                        } else {
                            for i in 0..half {
                                let (x1, x2) = (v[i], v[half + i]);
                                v[i] = c[i] * x1 - sn[i] * x2;
                                v[half + i] = sn[i] * x1 + c[i] * x2;
                            }
                        }
                    }
                }
            });
            Ok(())
        })?;
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn rotates_halves_and_pairs() {
        // One token, one head of 4: angle θ with cos/sin for each of the 2 pairs.
        let x = t(&[1, 1, 1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let (c, s) = (0.6f32, 0.8f32);
        let cos = t(&[1, 2], &[c, 1.0]);
        let sin = t(&[1, 2], &[s, 0.0]);
        let op = RotaryEmbedding::default();
        let y = run(&op, &[Some(&x), Some(&cos), Some(&sin)]).unwrap();
        // halves: (x0, x2) rotated by θ, (x1, x3) by 0.
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[c * 1.0 - s * 3.0, 2.0, s * 1.0 + c * 3.0, 4.0],
            1e-6,
        );
        let op = RotaryEmbedding {
            interleaved: true,
            ..Default::default()
        };
        let y = run(&op, &[Some(&x), Some(&cos), Some(&sin)]).unwrap();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[c * 1.0 - s * 2.0, s * 1.0 + c * 2.0, 3.0, 4.0],
            1e-6,
        );
    }

    #[test]
    fn partial_rotation_3d_with_position_ids() {
        let x = t(&[1, 1, 8], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let cos = t(&[2, 1], &[1.0, 0.0]);
        let sin = t(&[2, 1], &[0.0, 1.0]);
        let pos = Tensor::from_slice(&[1, 1], &[1i64]).unwrap();
        let op = RotaryEmbedding {
            interleaved: false,
            rotary_embedding_dim: 2,
            num_heads: Some(2),
        };
        let y = run(&op, &[Some(&x), Some(&cos), Some(&sin), Some(&pos)]).unwrap();
        // Each head of 4: first 2 rotated by 90°: (a, b) -> (-b, a).
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[-2.0, 1.0, 3.0, 4.0, -6.0, 5.0, 7.0, 8.0],
            1e-6,
        );
        let bad = Tensor::from_slice(&[1, 1], &[5i64]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&cos), Some(&sin), Some(&bad)]).is_err());
    }
}
