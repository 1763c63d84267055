//! `OneHot`: indices → one-hot encoding along a new axis of size `depth`,
//! with `values = [off, on]`. Negative indices count from `depth`;
//! out-of-range indices give an all-`off` row (as onnxruntime does).

use uniml_data::{bail, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{checked_numel, fact, numel, Data, IntLike};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct OneHot {
    pub axis: i64,
}

impl Default for OneHot {
    fn default() -> Self {
        OneHot { axis: -1 }
    }
}

/// Any numeric tensor as i64s (floats truncate toward zero).
fn as_i64s(t: &TensorView, what: &str) -> Result<Vec<i64>> {
    Ok(
        crate::dispatch_numeric!(t.dtype(), T => t.as_slice::<T>()?.iter().map(|&v| v.to_i64()).collect(),
        _ => bail!("OneHot: {what} must be numeric, got {}", t.dtype())),
    )
}

impl OneHot {
    fn axis_for(&self, rank: usize) -> Result<usize> {
        let r = rank as i64 + 1;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if !(0..r).contains(&a) {
            bail!(
                "OneHot: axis {} is out of range for indices of rank {rank}",
                self.axis
            );
        }
        Ok(a as usize)
    }
}

fn onehot_into<T: Data>(
    values: &TensorView,
    idx: &[i64],
    depth: usize,
    outer: usize,
    inner: usize,
    out: &mut Tensor,
) -> Result<()> {
    let v = T::src(values)?;
    let [off, on] = v else {
        bail!(
            "OneHot: values must have exactly 2 elements, got {}",
            v.len()
        )
    };
    let dst = T::dst(out)?;
    dst.fill(off.clone());
    let d = depth as i64;
    for o in 0..outer {
        for i in 0..inner {
            let j = idx[o * inner + i];
            let j = if j < 0 { j + d } else { j };
            if (0..d).contains(&j) {
                dst[(o * depth + j as usize) * inner + i] = on.clone();
            }
        }
    }
    Ok(())
}

impl Op for OneHot {
    fn name(&self) -> &'static str {
        "OneHot"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.get(2).and_then(|f| f.dtype);
        let Some(s) = inputs.first().and_then(|f| f.shape.as_ref()) else {
            return Ok(vec![Fact::dtype_only(dtype)]);
        };
        let a = self.axis_for(s.rank())?;
        let depth = super::konst_of(inputs, 1)
            .and_then(|t| as_i64s(&t.view(), "depth").ok())
            .and_then(|v| v.first().copied());
        let mut dims = s.0.clone();
        dims.insert(
            a,
            depth
                .filter(|&d| d > 0)
                .map_or(Dim::Unknown, |d| Dim::Known(d as usize)),
        );
        Ok(vec![fact(dtype, SymbolicShape(dims))])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let ind = input(inputs, 0, "OneHot")?;
        let depth = input(inputs, 1, "OneHot")?;
        let values = input(inputs, 2, "OneHot")?;
        let depth = match as_i64s(depth, "depth")?.as_slice() {
            [d] if *d > 0 => *d as usize,
            other => bail!("OneHot: depth must be one positive number, got {other:?}"),
        };
        let idx = as_i64s(ind, "indices")?;
        let a = self.axis_for(ind.shape().len())?;
        let mut shape = ind.shape().to_vec();
        shape.insert(a, depth);
        checked_numel(&shape)?;
        let (outer, inner) = (numel(&ind.shape()[..a]), numel(&ind.shape()[a..]));
        let mut out = ctx.alloc(values.dtype(), &shape)?;
        dispatch_data!(values.dtype(), T => onehot_into::<T>(values, &idx, depth, outer, inner, &mut out)?);
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
    fn onehot_axis0_negative_and_out_of_range() {
        let i = [1i64, -1, 7];
        let d = [3.0f32];
        let v = [0.5f32, 2.0];
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let out = OneHot { axis: 0 }
            .eval(
                &mut ctx,
                &[
                    Some(TensorView::from_slice(&[3], &i).unwrap()),
                    Some(TensorView::from_slice(&[], &d).unwrap()),
                    Some(TensorView::from_slice(&[2], &v).unwrap()),
                ],
            )
            .unwrap();
        assert_eq!(out[0].shape(), &[3, 3]);
        assert_eq!(
            out[0].as_slice::<f32>().unwrap(),
            &[0.5, 0.5, 0.5, 2.0, 0.5, 0.5, 0.5, 2.0, 0.5]
        );
    }
}
