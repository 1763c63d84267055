//! `LinearAttention` (opset 27): recurrent linear attention over packed
//! `[B, T, H*D]` inputs with a `[B, H_kv, d_k, d_v]` state, update rules
//! `linear`, `gated`, `delta`, `gated_delta`, and grouped query heads.
//!
//! Runs the sequential recurrence (the reference semantics) in f32, one task
//! per `(batch, kv head)`, each owning its state.

use uniml_data::{bail, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::nn::{float_data, store_f32};
use crate::parallel::{par_chunks_mut, SyncPtr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UpdateRule {
    Linear,
    Gated,
    Delta,
    #[default]
    GatedDelta,
}

impl UpdateRule {
    pub fn parse(s: &str) -> Option<UpdateRule> {
        match s {
            "linear" => Some(UpdateRule::Linear),
            "gated" => Some(UpdateRule::Gated),
            "delta" => Some(UpdateRule::Delta),
            "gated_delta" => Some(UpdateRule::GatedDelta),
            _ => None,
        }
    }
    fn gated(self) -> bool {
        matches!(self, UpdateRule::Gated | UpdateRule::GatedDelta)
    }
    fn delta(self) -> bool {
        matches!(self, UpdateRule::Delta | UpdateRule::GatedDelta)
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct LinearAttention {
    pub q_num_heads: usize,
    pub kv_num_heads: usize,
    /// 0: `1/sqrt(d_k)`.
    pub scale: f32,
    pub update_rule: UpdateRule,
}

impl Op for LinearAttention {
    fn name(&self) -> &'static str {
        "LinearAttention"
    }

    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let q = inputs.first().copied().cloned().unwrap_or_default();
        let state_dt = inputs.get(3).and_then(|f| f.dtype).or(q.dtype);
        let mut out = vec![Fact::dtype_only(q.dtype), Fact::dtype_only(state_dt)];
        out.truncate(n.max(1));
        Ok(out)
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = "LinearAttention";
        let q = input(inputs, 0, op)?;
        let k = input(inputs, 1, op)?;
        let v = input(inputs, 2, op)?;
        let opt = |i: usize| inputs.get(i).and_then(|x| x.as_ref());
        let (past, decay, beta) = (opt(3), opt(4), opt(5));
        let rule = self.update_rule;
        if rule.gated() != decay.is_some() {
            bail!(
                "{op}: update_rule {rule:?} {} the decay input",
                if rule.gated() { "requires" } else { "forbids" }
            );
        }
        if rule.delta() != beta.is_some() {
            bail!(
                "{op}: update_rule {rule:?} {} the beta input",
                if rule.delta() { "requires" } else { "forbids" }
            );
        }
        let (qh, kvh) = (self.q_num_heads, self.kv_num_heads);
        if qh == 0 || kvh == 0 || qh % kvh != 0 {
            bail!("{op}: q_num_heads ({qh}) must be a positive multiple of kv_num_heads ({kvh})");
        }
        for (n, t) in [("query", q), ("key", k), ("value", v)] {
            if t.shape().len() != 3 {
                bail!(
                    "{op}: {n} must be rank 3 (B, T, H*D), got shape {:?}",
                    t.shape()
                );
            }
        }
        let (b_, t_) = (q.shape()[0], q.shape()[1]);
        if q.shape()[2] % qh != 0 {
            bail!(
                "{op}: query last dim {} is not divisible by q_num_heads {qh}",
                q.shape()[2]
            );
        }
        let dk = q.shape()[2] / qh;
        if k.shape() != [b_, t_, kvh * dk] {
            bail!(
                "{op}: key must have shape [{b_}, {t_}, {}], got {:?}",
                kvh * dk,
                k.shape()
            );
        }
        if v.shape()[0] != b_ || v.shape()[1] != t_ || v.shape()[2] % kvh != 0 {
            bail!(
                "{op}: value shape {:?} does not match query {:?} and kv_num_heads {kvh}",
                v.shape(),
                q.shape()
            );
        }
        let dv = v.shape()[2] / kvh;
        let decay_per_dim = match decay {
            Some(d) => {
                if d.shape().len() != 3 || d.shape()[0] != b_ || d.shape()[1] != t_ {
                    bail!(
                        "{op}: decay must be [{b_}, {t_}, {kvh} or {}], got {:?}",
                        kvh * dk,
                        d.shape()
                    );
                }
                match d.shape()[2] {
                    x if x == kvh * dk => true,
                    x if x == kvh => false,
                    x => bail!("{op}: decay last dim {x} must be kv_num_heads ({kvh}) or kv_num_heads*d_k ({})", kvh * dk),
                }
            }
            None => false,
        };
        let beta_w = match beta {
            Some(bt) => {
                let s = bt.shape();
                if s.len() != 3 || s[0] != b_ || s[1] != t_ || (s[2] != kvh && s[2] != 1) {
                    bail!("{op}: beta must be [{b_}, {t_}, {kvh} or 1], got {s:?}");
                }
                s[2]
            }
            None => 0,
        };
        if let Some(p) = past {
            if p.shape() != [b_, kvh, dk, dv] {
                bail!(
                    "{op}: past_state must be [{b_}, {kvh}, {dk}, {dv}], got {:?}",
                    p.shape()
                );
            }
        }
        let qf = float_data(q, "query")?;
        let kf = float_data(k, "key")?;
        let vf = float_data(v, "value")?;
        let df = match decay {
            Some(d) => Some(float_data(d, "decay")?),
            None => None,
        };
        let bf = match beta {
            Some(b) => Some(float_data(b, "beta")?),
            None => None,
        };
        let mut state = match past {
            Some(p) => float_data(p, "past_state")?.into_owned(),
            None => vec![0f32; b_ * kvh * dk * dv],
        };
        let scale = if self.scale == 0.0 {
            1.0 / (dk as f32).sqrt()
        } else {
            self.scale
        };
        let group = qh / kvh;
        let mut out = vec![0f32; b_ * t_ * qh * dv];
        let optr = SyncPtr(out.as_mut_ptr());
        let (qf, kf, vf, df, bf) = (&qf[..], &kf[..], &vf[..], df.as_deref(), bf.as_deref());
        par_chunks_mut(ctx.par, &mut state, (dk * dv).max(1), &|task, s| {
            let (b, h) = (task / kvh, task % kvh);
            let mut vt = vec![0f32; dv];
            let mut o = vec![0f32; dv];
            for t in 0..t_ {
                let bt = b * t_ + t;
                let kt = &kf[(bt * kvh + h) * dk..(bt * kvh + h + 1) * dk];
                vt.copy_from_slice(&vf[(bt * kvh + h) * dv..(bt * kvh + h + 1) * dv]);
                if let Some(d) = df {
                    for i in 0..dk {
                        let g = if decay_per_dim {
                            d[(bt * kvh + h) * dk + i]
                        } else {
                            d[bt * kvh + h]
                        };
                        let e = g.exp();
                        s[i * dv..(i + 1) * dv].iter_mut().for_each(|x| *x *= e);
                    }
                }
                if let Some(bb) = bf {
                    let beta = if beta_w == 1 {
                        bb[bt]
                    } else {
                        bb[bt * kvh + h]
                    };
                    for (m, vm) in vt.iter_mut().enumerate() {
                        let r: f32 = (0..dk).map(|i| s[i * dv + m] * kt[i]).sum();
                        *vm = beta * (*vm - r);
                    }
                }
                for i in 0..dk {
                    let ki = kt[i];
                    for (x, &vm) in s[i * dv..(i + 1) * dv].iter_mut().zip(&vt) {
                        *x += ki * vm;
                    }
                }
                for g in 0..group {
                    let hq = h * group + g;
                    let qt = &qf[(bt * qh + hq) * dk..(bt * qh + hq + 1) * dk];
                    o.fill(0.0);
                    for i in 0..dk {
                        let qi = qt[i];
                        for (om, &x) in o.iter_mut().zip(&s[i * dv..(i + 1) * dv]) {
                            *om += qi * x;
                        }
                    }
                    o.iter_mut().for_each(|x| *x *= scale);
                    // SAFETY: (b, t, hq) rows are written by exactly one task (the
                    // one owning kv head h = hq / group of batch b); `out` outlives the call.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            o.as_ptr(),
                            optr.get().add((bt * qh + hq) * dv),
                            dv,
                        )
                    };
                }
            }
        });
        let mut y = ctx.alloc(q.dtype(), &[b_, t_, qh * dv])?;
        store_f32(&out, &mut y)?;
        let mut st = ctx.alloc(past.map_or(q.dtype(), |p| p.dtype()), &[b_, kvh, dk, dv])?;
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
    fn linear_rule_accumulates_outer_products() {
        // B=1, T=2, one head, d_k = d_v = 1: S_t = sum k*v, o_t = scale * q * S_t.
        let op = LinearAttention {
            q_num_heads: 1,
            kv_num_heads: 1,
            scale: 1.0,
            update_rule: UpdateRule::Linear,
        };
        let q = t(&[1, 2, 1], &[1.0, 2.0]);
        let k = t(&[1, 2, 1], &[3.0, 4.0]);
        let v = t(&[1, 2, 1], &[5.0, 6.0]);
        let y = run(&op, &[Some(&q), Some(&k), Some(&v)]).unwrap();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[15.0, 2.0 * (15.0 + 24.0)],
            1e-6,
        );
        assert_close(y[1].as_slice::<f32>().unwrap(), &[39.0], 1e-6);
        // gated_delta needs decay and beta.
        let op = LinearAttention {
            q_num_heads: 1,
            kv_num_heads: 1,
            scale: 1.0,
            update_rule: UpdateRule::GatedDelta,
        };
        assert!(run(&op, &[Some(&q), Some(&k), Some(&v)]).is_err());
    }

    #[test]
    fn gated_delta_single_step_by_hand() {
        let op = LinearAttention {
            q_num_heads: 1,
            kv_num_heads: 1,
            scale: 0.5,
            update_rule: UpdateRule::GatedDelta,
        };
        let (q, k, v) = (
            t(&[1, 1, 1], &[2.0]),
            t(&[1, 1, 1], &[1.0]),
            t(&[1, 1, 1], &[3.0]),
        );
        let past = t(&[1, 1, 1, 1], &[4.0]);
        let decay = t(&[1, 1, 1], &[0.0f32.ln_1p()]); // exp(g) = 1
        let beta = t(&[1, 1, 1], &[0.5]);
        let y = run(
            &op,
            &[
                Some(&q),
                Some(&k),
                Some(&v),
                Some(&past),
                Some(&decay),
                Some(&beta),
            ],
        )
        .unwrap();
        // S = 4; v' = 0.5 * (3 - 4) = -0.5; S = 4 - 0.5 = 3.5; o = 0.5 * 2 * 3.5
        assert_close(y[1].as_slice::<f32>().unwrap(), &[3.5], 1e-6);
        assert_close(y[0].as_slice::<f32>().unwrap(), &[3.5], 1e-6);
    }
}
