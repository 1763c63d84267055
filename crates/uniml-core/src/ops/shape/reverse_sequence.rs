//! `ReverseSequence`: reverses the first `sequence_lens[b]` time steps of
//! each batch entry; later steps are copied unchanged.

use uniml_data::{bail, Result, Tensor, TensorView};

use super::{fact, ints_of, numel, Data};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct ReverseSequence {
    pub batch_axis: usize,
    pub time_axis: usize,
}

impl Default for ReverseSequence {
    fn default() -> Self {
        ReverseSequence {
            batch_axis: 1,
            time_axis: 0,
        }
    }
}

fn reverse_into<T: Data>(
    x: &TensorView,
    rs: &ReverseSequence,
    lens: &[usize],
    out: &mut Tensor,
) -> Result<()> {
    let src = T::src(x)?;
    let dst = T::dst(out)?;
    let s = x.shape();
    let inner = numel(&s[2..]);
    let (nb, nt) = (s[rs.batch_axis], s[rs.time_axis]);
    // Offset of (batch b, time t) in the first two axes.
    let at = |b: usize, t: usize| {
        if rs.time_axis == 0 {
            (t * nb + b) * inner
        } else {
            (b * nt + t) * inner
        }
    };
    for (b, &len) in lens.iter().enumerate() {
        for t in 0..nt {
            let from = if t < len { len - 1 - t } else { t };
            let (o, i) = (at(b, t), at(b, from));
            dst[o..o + inner].clone_from_slice(&src[i..i + inner]);
        }
    }
    Ok(())
}

impl Op for ReverseSequence {
    fn name(&self) -> &'static str {
        "ReverseSequence"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let f = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![match f.shape {
            Some(s) => fact(f.dtype, s),
            None => Fact::dtype_only(f.dtype),
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "ReverseSequence")?;
        let lens = ints_of(
            input(inputs, 1, "ReverseSequence")?,
            "ReverseSequence sequence_lens",
        )?;
        let s = x.shape();
        if s.len() < 2
            || self.batch_axis > 1
            || self.time_axis > 1
            || self.batch_axis == self.time_axis
        {
            bail!("ReverseSequence: needs rank >= 2 and batch/time axes 0 and 1, got shape {s:?}, axes {} {}", self.batch_axis, self.time_axis);
        }
        let (nb, nt) = (s[self.batch_axis], s[self.time_axis]);
        if lens.len() != nb {
            bail!(
                "ReverseSequence: {} sequence lengths for a batch of {nb}",
                lens.len()
            );
        }
        let lens: Vec<usize> = lens
            .iter()
            .map(|&l| {
                if (0..=nt as i64).contains(&l) {
                    Ok(l as usize)
                } else {
                    Err(uniml_data::Error::Shape(format!(
                        "ReverseSequence: length {l} is out of range 0..={nt}"
                    )))
                }
            })
            .collect::<Result<_>>()?;
        let mut out = ctx.alloc(x.dtype(), s)?;
        if !out.is_empty() {
            dispatch_data!(x.dtype(), T => reverse_into::<T>(x, self, &lens, &mut out)?);
        }
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    #[test]
    fn reverses_time_major() {
        // [time 3, batch 2]
        let d = [0i32, 10, 1, 11, 2, 12];
        let l = [3i64, 2];
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let out = ReverseSequence {
            batch_axis: 1,
            time_axis: 0,
        }
        .eval(
            &mut ctx,
            &[
                Some(TensorView::from_slice(&[3, 2], &d).unwrap()),
                Some(TensorView::from_slice(&[2], &l).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[2, 11, 1, 10, 0, 12]);
    }
}
