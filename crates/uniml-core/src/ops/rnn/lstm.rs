//! `LSTM` (opsets 7–22): gates `i, o, f, c` (ONNX order), optional peepholes
//! `P = [p_i, p_o, p_f]`, `input_forget`, `clip`, `sequence_lens`, layouts 0/1.
//!
//! f32 path: one GEMM projects every step's input (`X·Wᵀ + Wb + Rb`), then each
//! step adds `H·Rᵀ` in place (one small GEMM) and applies the cell update.

use uniml_data::{bail, Result, Tensor, TensorView};

use super::common::{self, opt, read_state, Activation, RnnCommon};
use crate::op::{EvalCtx, Fact, Op};
use crate::ops::nn::f32_data;

#[derive(Clone, Debug, PartialEq)]
pub struct Lstm {
    pub common: RnnCommon,
    /// Couples the input and forget gates (`f = 1 - i`).
    pub input_forget: bool,
}

const GATES: usize = 4;

impl Op for Lstm {
    fn name(&self) -> &'static str {
        "LSTM"
    }

    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        common::output_facts("LSTM", &self.common, inputs, n_outputs)
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        common::pack_constants(&self.common, GATES, inputs);
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let c = &self.common;
        let s = common::stage("LSTM", c, GATES, inputs)?;
        let (seq, batch, hidden, dirs, isz) = (s.seq, s.batch, s.hidden, s.dirs, s.input_size);
        let c0 = read_state(
            "LSTM",
            "initial_c",
            opt(inputs, 6),
            dirs,
            batch,
            hidden,
            s.layout1,
        )?;
        let p = match opt(inputs, 7) {
            Some(p) => {
                if p.shape() != [dirs, 3 * hidden] {
                    bail!(
                        "LSTM: P must have shape [{dirs}, {}], got {:?}",
                        3 * hidden,
                        p.shape()
                    );
                }
                if !p.dtype().is_float() {
                    bail!("LSTM: P must be a float tensor, got {}", p.dtype());
                }
                Some(f32_data(p)?.into_owned())
            }
            None => None,
        };
        let gh = GATES * hidden;
        let mut y = vec![0f32; seq * dirs * batch * hidden];
        let mut h_all = s.h0.clone();
        let mut c_all = c0;
        let mut xw = vec![0f32; seq * batch * gh];
        let mut bias = vec![0f32; gh];
        let (ts, bs) = if s.layout1 { (1, seq) } else { (batch, 1) };
        for d in 0..dirs {
            let bd = &s.b[d * 2 * gh..(d + 1) * 2 * gh];
            for (j, o) in bias.iter_mut().enumerate() {
                *o = bd[j] + bd[gh + j];
            }
            let w = &s.w[d * gh * isz..(d + 1) * gh * isz];
            let rec = s.recurrent(d);
            common::project_inputs(ctx.par, &s.x, seq * batch, isz, w, gh, &bias, &mut xw);
            let (f, g, h_act) = (c.act(d, 0, 3), c.act(d, 1, 3), c.act(d, 2, 3));
            let pd = p.as_ref().map(|p| &p[d * 3 * hidden..(d + 1) * 3 * hidden]);
            let h = &mut h_all[d * batch * hidden..(d + 1) * batch * hidden];
            let cst = &mut c_all[d * batch * hidden..(d + 1) * batch * hidden];
            let rev = c.direction.is_reverse(d);
            for step in 0..seq {
                let t = if rev { seq - 1 - step } else { step };
                let off = t * ts * gh;
                rec.acc(batch, h, hidden, &mut xw[off..], bs * gh);
                for b in 0..batch {
                    if t >= s.lens[b] {
                        continue;
                    }
                    let row = s.row(t, b) * gh;
                    let gates = &mut xw[row..row + gh];
                    let hb = &mut h[b * hidden..(b + 1) * hidden];
                    let cb = &mut cst[b * hidden..(b + 1) * hidden];
                    let yrow = ((t * dirs + d) * batch + b) * hidden;
                    let yb = &mut y[yrow..yrow + hidden];
                    if pd.is_none() && !self.input_forget {
                        step_without_peepholes(c.clip, [f, g, h_act], gates, cb, hb, yb);
                        continue;
                    }
                    for j in 0..hidden {
                        let c_prev = cb[j];
                        let (pi, po, pf) = match pd {
                            Some(p) => (p[j], p[hidden + j], p[2 * hidden + j]),
                            None => (0.0, 0.0, 0.0),
                        };
                        let i_g = f.apply(c.clip(gates[j] + pi * c_prev));
                        let f_g = if self.input_forget {
                            1.0 - i_g
                        } else {
                            f.apply(c.clip(gates[2 * hidden + j] + pf * c_prev))
                        };
                        let c_g = g.apply(c.clip(gates[3 * hidden + j]));
                        let c_new = f_g * c_prev + i_g * c_g;
                        let o_g = f.apply(c.clip(gates[hidden + j] + po * c_new));
                        let h_new = o_g * h_act.apply(c_new);
                        cb[j] = c_new;
                        hb[j] = h_new;
                        yb[j] = h_new;
                    }
                }
            }
        }
        common::emit(ctx, &s, &y, &[&h_all, &c_all], 3)
    }
    crate::op_as_any!();
}

/// One cell update of one batch item without peepholes or coupled gates:
/// every gate's activation over whole slices (vectorised), then
/// `c = f·c + i·g`, `h = o·h(c)`; `gates` is `[i, o, f, c]` pre-activations.
fn step_without_peepholes(
    clip: Option<f32>,
    [f, g, h_act]: [Activation; 3],
    gates: &mut [f32],
    cst: &mut [f32],
    h: &mut [f32],
    y: &mut [f32],
) {
    let hidden = cst.len();
    if let Some(cl) = clip {
        gates.iter_mut().for_each(|v| *v = v.clamp(-cl, cl));
    }
    let (ifo, c_g) = gates.split_at_mut(3 * hidden);
    f.apply_slice(ifo);
    g.apply_slice(c_g);
    let (i_g, rest) = ifo.split_at(hidden);
    let (o_g, f_g) = rest.split_at(hidden);
    crate::ops::wide::wide(
        #[inline(always)]
        || {
            for (((cv, &fv), &iv), &gv) in cst.iter_mut().zip(f_g).zip(i_g).zip(c_g.iter()) {
                *cv = fv * *cv + iv * gv;
            }
        },
    );
    y.copy_from_slice(cst);
    h_act.apply_slice(y);
    crate::ops::wide::wide(
        #[inline(always)]
        || {
            for ((yv, hv), &ov) in y.iter_mut().zip(h.iter_mut()).zip(o_g) {
                *yv *= ov;
                *hv = *yv;
            }
        },
    );
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

    /// Naive single-direction forward LSTM (layout 0) with peepholes.
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
        p: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut h = vec![0f32; batch * hs];
        let mut c = vec![0f32; batch * hs];
        let mut y = vec![];
        for t in 0..seq {
            let mut nh = h.clone();
            for bi in 0..batch {
                let gate = |g: usize, j: usize| {
                    let row = g * hs + j;
                    let mut acc = b[row] + b[4 * hs + row];
                    for k in 0..isz {
                        acc += x[(t * batch + bi) * isz + k] * w[row * isz + k];
                    }
                    for k in 0..hs {
                        acc += h[bi * hs + k] * r[row * hs + k];
                    }
                    acc
                };
                for j in 0..hs {
                    let cp = c[bi * hs + j];
                    let i = sig(gate(0, j) + p[j] * cp);
                    let f = sig(gate(2, j) + p[2 * hs + j] * cp);
                    let cc = gate(3, j).tanh();
                    let cn = f * cp + i * cc;
                    let o = sig(gate(1, j) + p[hs + j] * cn);
                    nh[bi * hs + j] = o * cn.tanh();
                    c[bi * hs + j] = cn;
                }
            }
            h = nh;
            y.extend_from_slice(&h);
        }
        (y, h, c)
    }

    fn op(dir: Direction, hs: usize, layout: i64) -> Lstm {
        Lstm {
            common: RnnCommon {
                hidden_size: hs,
                direction: dir,
                layout,
                clip: None,
                recurrent_t: Default::default(),
                activations: vec![Activation::Sigmoid, Activation::Tanh, Activation::Tanh],
            },
            input_forget: false,
        }
    }

    #[test]
    fn matches_naive_forward_with_and_without_peepholes() {
        // A constant R (transposed once by pack_constants) in the last three:
        // batches of 3 and 2 then take the per-row GEMVs, 6 the GEMM; hidden
        // 37 leaves tails after the vector bodies; no peepholes: the sliced step.
        let cases = [
            (5, 3, 4, 6, true, false),
            (4, 3, 5, 37, false, false),
            (4, 3, 5, 37, false, true),
            (3, 6, 4, 37, false, true),
            (3, 2, 4, 8, true, true),
        ];
        for (seq, batch, isz, hs, peep, konst) in cases {
            let x = rand_vec(seq * batch * isz, 1);
            let w = rand_vec(4 * hs * isz, 2);
            let r = rand_vec(4 * hs * hs, 3);
            let b = rand_vec(8 * hs, 4);
            let p = if peep {
                rand_vec(3 * hs, 5)
            } else {
                vec![0.0; 3 * hs]
            };
            let (y, h, c) = naive(&x, seq, batch, isz, hs, &w, &r, &b, &p);
            let pt = t(&[1, 3 * hs], &p);
            let rt = Arc::new(t(&[1, 4 * hs, hs], &r));
            let lstm = op(Direction::Forward, hs, 0);
            if konst {
                super::super::common::tests::pack_constant_r(&lstm, &lstm.common, &rt);
            }
            let out = run(
                &lstm,
                &[
                    Some(&t(&[seq, batch, isz], &x)),
                    Some(&t(&[1, 4 * hs, isz], &w)),
                    Some(&*rt),
                    Some(&t(&[1, 8 * hs], &b)),
                    None,
                    None,
                    None,
                    peep.then_some(&pt),
                ],
            )
            .unwrap();
            assert_eq!(out[0].shape(), &[seq, 1, batch, hs]);
            assert_close(out[0].as_slice::<f32>().unwrap(), &y, 1e-5);
            assert_close(out[1].as_slice::<f32>().unwrap(), &h, 1e-5);
            assert_close(out[2].as_slice::<f32>().unwrap(), &c, 1e-5);
        }
    }

    #[test]
    fn reverse_equals_forward_on_flipped_input_and_layout1_matches() {
        let (seq, batch, isz, hs) = (4, 2, 3, 5);
        let x = rand_vec(seq * batch * isz, 7);
        let w = rand_vec(4 * hs * isz, 8);
        let r = rand_vec(4 * hs * hs, 9);
        let mut xf = vec![0f32; x.len()];
        for ti in 0..seq {
            let n = batch * isz;
            xf[ti * n..(ti + 1) * n].copy_from_slice(&x[(seq - 1 - ti) * n..(seq - ti) * n]);
        }
        let fwd = run(
            &op(Direction::Forward, hs, 0),
            &[
                Some(&t(&[seq, batch, isz], &xf)),
                Some(&t(&[1, 4 * hs, isz], &w)),
                Some(&t(&[1, 4 * hs, hs], &r)),
            ],
        )
        .unwrap();
        let rev = run(
            &op(Direction::Reverse, hs, 0),
            &[
                Some(&t(&[seq, batch, isz], &x)),
                Some(&t(&[1, 4 * hs, isz], &w)),
                Some(&t(&[1, 4 * hs, hs], &r)),
            ],
        )
        .unwrap();
        assert_close(
            rev[1].as_slice::<f32>().unwrap(),
            fwd[1].as_slice::<f32>().unwrap(),
            1e-6,
        );
        // Layout 1: X transposed to [batch, seq, isz].
        let mut xt = vec![0f32; x.len()];
        for ti in 0..seq {
            for bi in 0..batch {
                for k in 0..isz {
                    xt[(bi * seq + ti) * isz + k] = x[(ti * batch + bi) * isz + k];
                }
            }
        }
        let l0 = run(
            &op(Direction::Bidirectional, hs, 0),
            &[
                Some(&t(&[seq, batch, isz], &x)),
                Some(&t(&[2, 4 * hs, isz], &[w.clone(), w.clone()].concat())),
                Some(&t(&[2, 4 * hs, hs], &[r.clone(), r.clone()].concat())),
            ],
        )
        .unwrap();
        let l1 = run(
            &op(Direction::Bidirectional, hs, 1),
            &[
                Some(&t(&[batch, seq, isz], &xt)),
                Some(&t(&[2, 4 * hs, isz], &[w.clone(), w.clone()].concat())),
                Some(&t(&[2, 4 * hs, hs], &[r.clone(), r].concat())),
            ],
        )
        .unwrap();
        assert_eq!(l1[0].shape(), &[batch, seq, 2, hs]);
        let (y0, y1) = (
            l0[0].as_slice::<f32>().unwrap(),
            l1[0].as_slice::<f32>().unwrap(),
        );
        for ti in 0..seq {
            for d in 0..2 {
                for bi in 0..batch {
                    for j in 0..hs {
                        assert_eq!(
                            y0[((ti * 2 + d) * batch + bi) * hs + j],
                            y1[((bi * seq + ti) * 2 + d) * hs + j]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sequence_lens_freeze_state_and_zero_outputs() {
        let (seq, batch, isz, hs) = (4, 2, 3, 2);
        let x = rand_vec(seq * batch * isz, 11);
        let w = rand_vec(4 * hs * isz, 12);
        let r = rand_vec(4 * hs * hs, 13);
        let lens = Tensor::from_slice(&[2], &[2i32, 4]).unwrap();
        let out = run(
            &op(Direction::Forward, hs, 0),
            &[
                Some(&t(&[seq, batch, isz], &x)),
                Some(&t(&[1, 4 * hs, isz], &w)),
                Some(&t(&[1, 4 * hs, hs], &r)),
                None,
                Some(&lens),
            ],
        )
        .unwrap();
        let y = out[0].as_slice::<f32>().unwrap();
        let yh = out[1].as_slice::<f32>().unwrap();
        // Batch 0 stops after step 1: Y is zero afterwards and Y_h is the step-1 output.
        assert!(y[(2 * batch) * hs..(2 * batch) * hs + hs]
            .iter()
            .all(|&v| v == 0.0));
        assert_eq!(&yh[..hs], &y[batch * hs..batch * hs + hs]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = t(&[2, 1, 3], &[0.0; 6]);
        let w = t(&[1, 8, 3], &[0.0; 24]);
        let r = t(&[1, 8, 3], &[0.0; 24]);
        assert!(run(
            &op(Direction::Forward, 2, 0),
            &[Some(&x), Some(&w), Some(&r)]
        )
        .is_err());
        assert!(run(&op(Direction::Forward, 2, 0), &[Some(&x)]).is_err());
    }
}
