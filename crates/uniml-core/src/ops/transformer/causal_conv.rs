//! `CausalConvWithState` (opset 27): depthwise causal 1-D convolution over
//! `[B, C, L]` with a carried `[B, C, k-1]` state, optional bias and fused
//! SiLU. Returns the output and the last `k-1` positions of `[state | input]`.

use uniml_data::{bail, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::nn::{float_data, store_f32};
use crate::parallel::par_chunks_mut;

use super::round_to;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct CausalConvWithState {
    /// Fused SiLU (`silu`/`swish`).
    pub silu: bool,
}

impl Op for CausalConvWithState {
    fn name(&self) -> &'static str {
        "CausalConvWithState"
    }

    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let mut out = vec![
            Fact {
                dtype: x.dtype,
                shape: x.shape.clone(),
                konst: None,
                is_sequence: false,
            },
            Fact::dtype_only(x.dtype),
        ];
        out.truncate(n.max(1));
        Ok(out)
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = "CausalConvWithState";
        let x = input(inputs, 0, op)?;
        let w = input(inputs, 1, op)?;
        let opt = |i: usize| inputs.get(i).and_then(|x| x.as_ref());
        let (bias, past) = (opt(2), opt(3));
        let xs = x.shape();
        if xs.len() != 3 {
            bail!("{op}: input must be rank 3 (B, C, L), got shape {xs:?}");
        }
        let (b_, c_, l_) = (xs[0], xs[1], xs[2]);
        if w.shape().len() != 3 || w.shape()[0] != c_ || w.shape()[1] != 1 || w.shape()[2] == 0 {
            bail!(
                "{op}: weight must be [{c_}, 1, k] with k >= 1, got {:?}",
                w.shape()
            );
        }
        let k = w.shape()[2];
        let km1 = k - 1;
        if let Some(b) = bias {
            if b.shape() != [c_] {
                bail!("{op}: bias must be [{c_}], got {:?}", b.shape());
            }
        }
        if let Some(p) = past {
            if p.shape() != [b_, c_, km1] {
                bail!(
                    "{op}: past_state must be [{b_}, {c_}, {km1}], got {:?}",
                    p.shape()
                );
            }
        }
        let xf = float_data(x, "input")?;
        let wf = float_data(w, "weight")?;
        let bf = match bias {
            Some(b) => Some(float_data(b, "bias")?),
            None => None,
        };
        let pf = match past {
            Some(p) => Some(float_data(p, "past_state")?),
            None => None,
        };
        let dt = x.dtype();
        let plen = l_ + km1;
        // The padded sequence [state | input] per (b, c).
        let mut padded = vec![0f32; b_ * c_ * plen];
        for bc in 0..b_ * c_ {
            let row = &mut padded[bc * plen..(bc + 1) * plen];
            if let Some(p) = &pf {
                row[..km1].copy_from_slice(&p[bc * km1..(bc + 1) * km1]);
            }
            row[km1..].copy_from_slice(&xf[bc * l_..(bc + 1) * l_]);
        }
        let mut out = vec![0f32; b_ * c_ * l_];
        let (padded_r, wf_r, bf_r) = (&padded[..], &wf[..], bf.as_deref());
        let silu = self.silu;
        par_chunks_mut(ctx.par, &mut out, l_.max(1), &|bc, o| {
            let c = bc % c_;
            let row = &padded_r[bc * plen..(bc + 1) * plen];
            let wr = &wf_r[c * k..(c + 1) * k];
            let b0 = bf_r.map_or(0.0, |b| b[c]);
            for (t, ov) in o.iter_mut().enumerate() {
                let acc: f32 = wr.iter().zip(&row[t..t + k]).map(|(a, b)| a * b).sum();
                *ov = acc + b0;
            }
            if silu {
                round_to(dt, o);
                o.iter_mut()
                    .for_each(|v| *v *= crate::ops::rnn::common::sigmoid(*v));
            }
        });
        let mut y = ctx.alloc(dt, xs)?;
        store_f32(&out, &mut y)?;
        let mut st = ctx.alloc(dt, &[b_, c_, km1])?;
        let mut state = vec![0f32; b_ * c_ * km1];
        for bc in 0..b_ * c_ {
            state[bc * km1..(bc + 1) * km1]
                .copy_from_slice(&padded[bc * plen + l_..(bc + 1) * plen]);
        }
        store_f32(&state, &mut st)?;
        Ok(vec![y, st])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn causal_conv_with_and_without_state() {
        // One channel, k = 2: y_t = w0 * x_{t-1} + w1 * x_t.
        let x = t(&[1, 1, 3], &[1.0, 2.0, 3.0]);
        let w = t(&[1, 1, 2], &[10.0, 1.0]);
        let y = run(&CausalConvWithState::default(), &[Some(&x), Some(&w)]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[1.0, 12.0, 23.0], 1e-6);
        assert_eq!(y[1].as_slice::<f32>().unwrap(), &[3.0]);
        let past = t(&[1, 1, 1], &[5.0]);
        let bias = t(&[1], &[0.5]);
        let y = run(
            &CausalConvWithState::default(),
            &[Some(&x), Some(&w), Some(&bias), Some(&past)],
        )
        .unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[51.5, 12.5, 23.5], 1e-6);
        let bad = t(&[1, 1, 2], &[0.0, 0.0]);
        assert!(run(
            &CausalConvWithState::default(),
            &[Some(&x), Some(&w), None, Some(&bad)]
        )
        .is_err());
    }
}
