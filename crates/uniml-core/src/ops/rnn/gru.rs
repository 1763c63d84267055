//! `GRU` (opsets 7–22): gates `z, r, h` (ONNX order), `linear_before_reset`
//! 0/1, `clip`, `sequence_lens`, layouts 0/1.
//!
//! f32 path: one GEMM projects every step's input; per step one GEMM adds
//! `H·R_{z,r}ᵀ` and a second adds `(r⊙H)·R_hᵀ` (or `H·R_hᵀ`, kept apart, when
//! `linear_before_reset = 1`).

use uniml_data::{Result, Tensor, TensorView};

use super::common::{self, RnnCommon};
use crate::op::{EvalCtx, Fact, Op};

#[derive(Clone, Debug, PartialEq)]
pub struct Gru {
    pub common: RnnCommon,
    pub linear_before_reset: bool,
}

const GATES: usize = 3;

impl Op for Gru {
    fn name(&self) -> &'static str {
        "GRU"
    }

    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        common::output_facts("GRU", &self.common, inputs, n_outputs)
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        common::pack_constants(&self.common, GATES, inputs);
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let c = &self.common;
        let s = common::stage("GRU", c, GATES, inputs)?;
        let (seq, batch, hs, dirs, isz) = (s.seq, s.batch, s.hidden, s.dirs, s.input_size);
        let gh = GATES * hs;
        let mut y = vec![0f32; seq * dirs * batch * hs];
        let mut h_all = s.h0.clone();
        let mut xw = vec![0f32; seq * batch * gh];
        let mut bias = vec![0f32; gh];
        // Recurrent part of the candidate gate: `H·R_hᵀ` (+ Rb_h) or `(r⊙H)·R_hᵀ`.
        let mut rh = vec![0f32; batch * hs];
        let mut rmul = vec![0f32; batch * hs];
        let (ts, bs) = if s.layout1 { (1, seq) } else { (batch, 1) };
        for d in 0..dirs {
            let bd = &s.b[d * 2 * gh..(d + 1) * 2 * gh];
            for (j, o) in bias.iter_mut().enumerate() {
                // Rb_h stays out of the projection: it is scaled by r when linear_before_reset.
                *o = bd[j]
                    + if j >= 2 * hs && self.linear_before_reset {
                        0.0
                    } else {
                        bd[gh + j]
                    };
            }
            let rbh = &bd[gh + 2 * hs..2 * gh];
            let w = &s.w[d * gh * isz..(d + 1) * gh * isz];
            let rec = s.recurrent(d);
            let (rec_zr, rec_h) = (rec.rows(0, 2 * hs), rec.rows(2 * hs, hs));
            common::project_inputs(ctx.par, &s.x, seq * batch, isz, w, gh, &bias, &mut xw);
            let (f, g) = (c.act(d, 0, 2), c.act(d, 1, 2));
            let h = &mut h_all[d * batch * hs..(d + 1) * batch * hs];
            let rev = c.direction.is_reverse(d);
            for step in 0..seq {
                let t = if rev { seq - 1 - step } else { step };
                let off = t * ts * gh;
                // z and r gates.
                rec_zr.acc(batch, h, hs, &mut xw[off..], bs * gh);
                for b in 0..batch {
                    let row = s.row(t, b) * gh;
                    let gates = &mut xw[row..row + 2 * hs];
                    for v in gates.iter_mut() {
                        *v = f.apply(c.clip(*v));
                    }
                }
                if self.linear_before_reset {
                    for b in 0..batch {
                        rh[b * hs..(b + 1) * hs].copy_from_slice(rbh);
                    }
                    rec_h.acc(batch, h, hs, &mut rh, hs);
                } else {
                    for b in 0..batch {
                        let row = s.row(t, b) * gh;
                        for j in 0..hs {
                            rmul[b * hs + j] = xw[row + hs + j] * h[b * hs + j];
                        }
                    }
                    rh.fill(0.0);
                    rec_h.acc(batch, &rmul, hs, &mut rh, hs);
                }
                for b in 0..batch {
                    if t >= s.lens[b] {
                        continue;
                    }
                    let row = s.row(t, b) * gh;
                    let gates = &xw[row..row + gh];
                    let yrow = ((t * dirs + d) * batch + b) * hs;
                    for j in 0..hs {
                        let z = gates[j];
                        let rg = gates[hs + j];
                        let rec = rh[b * hs + j];
                        let pre = if self.linear_before_reset {
                            gates[2 * hs + j] + rg * rec
                        } else {
                            gates[2 * hs + j] + rec
                        };
                        let cand = g.apply(c.clip(pre));
                        let hp = h[b * hs + j];
                        let hn = (1.0 - z) * cand + z * hp;
                        h[b * hs + j] = hn;
                        y[yrow + j] = hn;
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
    use crate::ops::nn::test_util::{assert_close, rand_vec, run, t};
    use std::sync::Arc;

    fn sig(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        seq: usize,
        batch: usize,
        isz: usize,
        hs: usize,
        w: &[f32],
        r: &[f32],
        b: &[f32],
        lbr: bool,
    ) -> Vec<f32> {
        let mut h = vec![0f32; batch * hs];
        for t in 0..seq {
            let mut nh = h.clone();
            for bi in 0..batch {
                let xw = |row: usize| {
                    (0..isz)
                        .map(|k| x[(t * batch + bi) * isz + k] * w[row * isz + k])
                        .sum::<f32>()
                        + b[row]
                };
                let hr = |row: usize, hv: &dyn Fn(usize) -> f32| {
                    (0..hs).map(|k| hv(k) * r[row * hs + k]).sum::<f32>() + b[3 * hs + row]
                };
                let hcur = |k: usize| h[bi * hs + k];
                let z: Vec<f32> = (0..hs).map(|j| sig(xw(j) + hr(j, &hcur))).collect();
                let rr: Vec<f32> = (0..hs)
                    .map(|j| sig(xw(hs + j) + hr(hs + j, &hcur)))
                    .collect();
                for j in 0..hs {
                    let row = 2 * hs + j;
                    let cand = if lbr {
                        (xw(row) + rr[j] * hr(row, &hcur)).tanh()
                    } else {
                        let rh = |k: usize| rr[k] * h[bi * hs + k];
                        (xw(row) + hr(row, &rh)).tanh()
                    };
                    nh[bi * hs + j] = (1.0 - z[j]) * cand + z[j] * h[bi * hs + j];
                }
            }
            h = nh;
        }
        h
    }

    #[test]
    fn matches_naive_both_reset_modes() {
        let (seq, batch, isz, hs) = (3, 2, 4, 5);
        let x = rand_vec(seq * batch * isz, 21);
        let w = rand_vec(3 * hs * isz, 22);
        let r = rand_vec(3 * hs * hs, 23);
        let b = rand_vec(6 * hs, 24);
        let rt = Arc::new(t(&[1, 3 * hs, hs], &r));
        // With a constant R the steps use its transpose (made by pack_constants).
        for (lbr, konst) in [(false, false), (true, false), (false, true), (true, true)] {
            let op = Gru {
                common: RnnCommon {
                    hidden_size: hs,
                    direction: Direction::Forward,
                    layout: 0,
                    clip: None,
                    recurrent_t: Default::default(),
                    activations: vec![Activation::Sigmoid, Activation::Tanh],
                },
                linear_before_reset: lbr,
            };
            if konst {
                super::super::common::tests::pack_constant_r(&op, &op.common, &rt);
            }
            let out = run(
                &op,
                &[
                    Some(&t(&[seq, batch, isz], &x)),
                    Some(&t(&[1, 3 * hs, isz], &w)),
                    Some(&*rt),
                    Some(&t(&[1, 6 * hs], &b)),
                ],
            )
            .unwrap();
            assert_close(
                out[1].as_slice::<f32>().unwrap(),
                &naive(&x, seq, batch, isz, hs, &w, &r, &b, lbr),
                1e-5,
            );
        }
    }
}
