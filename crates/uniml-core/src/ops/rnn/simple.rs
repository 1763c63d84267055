//! `RNN` (opsets 7–22): `H_t = f(X_t·Wᵀ + H_{t-1}·Rᵀ + Wb + Rb)`, with
//! `clip`, `sequence_lens`, layouts 0/1.

use uniml_data::{Result, Tensor, TensorView};

use super::common::{self, RnnCommon};
use crate::op::{EvalCtx, Fact, Op};

#[derive(Clone, Debug, PartialEq)]
pub struct Rnn {
    pub common: RnnCommon,
}

impl Op for Rnn {
    fn name(&self) -> &'static str {
        "RNN"
    }

    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        common::output_facts("RNN", &self.common, inputs, n_outputs)
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        common::pack_constants(&self.common, 1, inputs);
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let c = &self.common;
        let s = common::stage("RNN", c, 1, inputs)?;
        let (seq, batch, hs, dirs, isz) = (s.seq, s.batch, s.hidden, s.dirs, s.input_size);
        let mut y = vec![0f32; seq * dirs * batch * hs];
        let mut h_all = s.h0.clone();
        let mut xw = vec![0f32; seq * batch * hs];
        let mut bias = vec![0f32; hs];
        let (ts, bs) = if s.layout1 { (1, seq) } else { (batch, 1) };
        for d in 0..dirs {
            let bd = &s.b[d * 2 * hs..(d + 1) * 2 * hs];
            for (j, o) in bias.iter_mut().enumerate() {
                *o = bd[j] + bd[hs + j];
            }
            let w = &s.w[d * hs * isz..(d + 1) * hs * isz];
            let rec = s.recurrent(d);
            common::project_inputs(ctx.par, &s.x, seq * batch, isz, w, hs, &bias, &mut xw);
            let f = c.act(d, 0, 1);
            let h = &mut h_all[d * batch * hs..(d + 1) * batch * hs];
            let rev = c.direction.is_reverse(d);
            for step in 0..seq {
                let t = if rev { seq - 1 - step } else { step };
                rec.acc(batch, h, hs, &mut xw[t * ts * hs..], bs * hs);
                for b in 0..batch {
                    if t >= s.lens[b] {
                        continue;
                    }
                    let row = s.row(t, b) * hs;
                    let yrow = ((t * dirs + d) * batch + b) * hs;
                    for j in 0..hs {
                        let v = f.apply(c.clip(xw[row + j]));
                        h[b * hs + j] = v;
                        y[yrow + j] = v;
                    }
                }
            }
        }
        common::emit(ctx, &s, &y, &[&h_all], 2)
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::common::{Activation, Direction};
    use super::*;
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn two_steps_by_hand() {
        // hidden 1, input 1: h1 = tanh(0.5*1 + 0 + 0.1), h2 = tanh(0.5*2 + 0.3*h1 + 0.1)
        let op = Rnn {
            common: RnnCommon {
                hidden_size: 1,
                direction: Direction::Forward,
                layout: 0,
                clip: None,
                recurrent_t: Default::default(),
                activations: vec![Activation::Tanh],
            },
        };
        let out = run(
            &op,
            &[
                Some(&t(&[2, 1, 1], &[1.0, 2.0])),
                Some(&t(&[1, 1, 1], &[0.5])),
                Some(&t(&[1, 1, 1], &[0.3])),
                Some(&t(&[1, 2], &[0.1, 0.0])),
            ],
        )
        .unwrap();
        let h1 = (0.6f32).tanh();
        let h2 = (1.1f32 + 0.3 * h1).tanh();
        assert_close(out[0].as_slice::<f32>().unwrap(), &[h1, h2], 1e-6);
        assert_close(out[1].as_slice::<f32>().unwrap(), &[h2], 1e-6);
    }

    #[test]
    fn clip_and_affine() {
        let op = Rnn {
            common: RnnCommon {
                hidden_size: 1,
                direction: Direction::Reverse,
                layout: 0,
                clip: Some(0.5),
                recurrent_t: Default::default(),
                activations: vec![Activation::Affine {
                    alpha: 2.0,
                    beta: 1.0,
                }],
            },
        };
        let out = run(
            &op,
            &[
                Some(&t(&[1, 1, 1], &[3.0])),
                Some(&t(&[1, 1, 1], &[1.0])),
                Some(&t(&[1, 1, 1], &[0.0])),
            ],
        )
        .unwrap();
        assert_close(out[1].as_slice::<f32>().unwrap(), &[2.0], 1e-6);
    }
}
