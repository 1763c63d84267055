//! `TensorScatter(past_cache, update, write_indices?)` (opset 24): writes `update`
//! into a copy of `past_cache` along the sequence axis (`axis`, not 0) at a
//! per-batch offset (`write_indices[b]`, 0 when absent). `linear` mode requires
//! `write_indices[b] + sequence_length <= max_sequence_length`; `circular` mode
//! wraps positions modulo `max_sequence_length`. Any dtype.

use uniml_data::{bail, ensure, Result, Tensor, TensorView};

use super::{fact, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{norm_axis, read_i64s};

#[derive(Debug, Clone, PartialEq)]
pub struct TensorScatter {
    pub axis: i64,
    pub circular: bool,
}

impl Default for TensorScatter {
    fn default() -> Self {
        TensorScatter { axis: -2, circular: false }
    }
}

/// `[outer, max_seq, inner]` view of the cache, `outer` running over the dims
/// before `axis` (the batch index is `o / batch_stride`).
struct Layout {
    outer: usize,
    batch_stride: usize,
    max_seq: usize,
    seq: usize,
    inner: usize,
}

fn scatter<T: Data>(l: &Layout, past: &TensorView, upd: &TensorView, starts: &[i64], circular: bool, out: &mut Tensor) -> Result<()> {
    let (p, u) = (T::src(past)?, T::src(upd)?);
    let dst = T::dst(out)?;
    dst.clone_from_slice(p);
    for o in 0..l.outer {
        let start = starts[o / l.batch_stride];
        for s in 0..l.seq {
            let pos = start + s as i64;
            let pos = if circular { pos.rem_euclid(l.max_seq as i64) } else { pos };
            ensure!(
                (0..l.max_seq as i64).contains(&pos),
                "TensorScatter: write position {pos} is outside the cache's {} positions (linear mode)",
                l.max_seq
            );
            let d = (o * l.max_seq + pos as usize) * l.inner;
            let sidx = (o * l.seq + s) * l.inner;
            dst[d..d + l.inner].clone_from_slice(&u[sidx..sidx + l.inner]);
        }
    }
    Ok(())
}

impl Op for TensorScatter {
    fn name(&self) -> &'static str {
        "TensorScatter"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let f = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![match f.shape {
            Some(s) => fact(f.dtype, s),
            None => Fact::dtype_only(f.dtype),
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let past = input(inputs, 0, "TensorScatter")?;
        let upd = input(inputs, 1, "TensorScatter")?;
        let (ps, us) = (past.shape(), upd.shape());
        ensure!(past.dtype() == upd.dtype(), "TensorScatter: past_cache is {}, update is {}", past.dtype(), upd.dtype());
        ensure!(ps.len() >= 2 && ps.len() == us.len(), "TensorScatter: past_cache {ps:?} and update {us:?} need one rank >= 2");
        let axis = norm_axis(self.axis, ps.len())?;
        ensure!(axis != 0, "TensorScatter: axis cannot be the batch axis 0");
        for d in 0..ps.len() {
            ensure!(d == axis || ps[d] == us[d], "TensorScatter: update {us:?} must match past_cache {ps:?} except along axis {axis}");
        }
        ensure!(us[axis] <= ps[axis], "TensorScatter: update has {} positions along axis {axis}, the cache {}", us[axis], ps[axis]);
        let batch = ps[0];
        let starts = match inputs.get(2).and_then(|v| v.as_ref()) {
            Some(w) => {
                let v = read_i64s(w)?;
                ensure!(v.len() == batch, "TensorScatter: write_indices has {} values for batch {batch}", v.len());
                v
            }
            None => vec![0; batch],
        };
        let outer: usize = ps[..axis].iter().product();
        let l = Layout {
            outer,
            batch_stride: outer.checked_div(batch).unwrap_or(1),
            max_seq: ps[axis],
            seq: us[axis],
            inner: ps[axis + 1..].iter().product(),
        };
        let mut out = ctx.alloc(past.dtype(), ps)?;
        if l.max_seq == 0 && l.seq > 0 {
            bail!("TensorScatter: the cache has no positions along axis {axis}");
        }
        dispatch_data!(past.dtype(), T => scatter::<T>(&l, past, upd, &starts, self.circular, &mut out)?);
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::run;

    #[test]
    fn linear_and_circular() {
        // past [2, 4, 1] (batch, max_seq, d), update [2, 2, 1].
        let past = Tensor::from_slice(&[2, 4, 1], &[0f32; 8]).unwrap();
        let upd = Tensor::from_slice(&[2, 2, 1], &[1f32, 2., 3., 4.]).unwrap();
        let wi = Tensor::from_slice(&[2], &[1i64, 3]).unwrap();
        let op = TensorScatter { axis: 1, circular: true };
        let y = run(&op, &[Some(&past), Some(&upd), Some(&wi)]).unwrap().remove(0);
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![0., 1., 2., 0., 4., 0., 0., 3.]);
        let op = TensorScatter { axis: 1, circular: false };
        assert!(run(&op, &[Some(&past), Some(&upd), Some(&wi)]).is_err());
        let y = run(&op, &[Some(&past), Some(&upd), None]).unwrap().remove(0);
        assert_eq!(y.to_vec::<f32>().unwrap(), vec![1., 2., 0., 0., 3., 4., 0., 0.]);
        let bad = Tensor::from_slice(&[2, 2, 2], &[0f32; 8]).unwrap();
        assert!(run(&op, &[Some(&past), Some(&bad), None]).is_err());
    }
}
