//! `CumSum(x, axis)` with `exclusive` and `reverse`. The axis (input 1, a
//! scalar int tensor) is read at run time. Runs as `[outer, r, inner]` with a
//! running row of `inner` sums.

use uniml_data::{bail, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::elementwise::num::Num;
use crate::ops::util::{norm_axis, read_i64s};

#[derive(Debug, Clone, Default)]
pub struct CumSum {
    pub exclusive: bool,
    pub reverse: bool,
}

#[allow(clippy::too_many_arguments)]
fn cumsum<T: Num>(
    x: &[T],
    out: &mut [T],
    outer: usize,
    r: usize,
    inner: usize,
    exclusive: bool,
    reverse: bool,
) {
    let mut acc = vec![T::ZERO; inner];
    for o in 0..outer {
        acc.fill(T::ZERO);
        for step in 0..r {
            let k = if reverse { r - 1 - step } else { step };
            let base = (o * r + k) * inner;
            let (xs, os) = (&x[base..base + inner], &mut out[base..base + inner]);
            if exclusive {
                for ((a, o), &v) in acc.iter_mut().zip(os.iter_mut()).zip(xs) {
                    *o = *a;
                    *a = a.add(v);
                }
            } else {
                for ((a, o), &v) in acc.iter_mut().zip(os.iter_mut()).zip(xs) {
                    *a = a.add(v);
                    *o = *a;
                }
            }
        }
    }
}

impl Op for CumSum {
    fn name(&self) -> &'static str {
        "CumSum"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("CumSum needs an input")
        };
        if let Some(dt) = x.dtype {
            if !(dt.is_float() || dt.is_integer()) {
                bail!("CumSum expects a numeric tensor, got {dt}");
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
        let x = input(inputs, 0, "CumSum")?;
        let axis = match read_i64s(input(inputs, 1, "CumSum")?)?.as_slice() {
            [a] => *a,
            other => bail!("CumSum axis must be a single integer, got {other:?}"),
        };
        let shape = x.shape();
        if shape.is_empty() {
            bail!("CumSum expects a tensor of rank >= 1, got a scalar");
        }
        let a = norm_axis(axis, shape.len())?;
        let (outer, r, inner) = (
            shape[..a].iter().product(),
            shape[a],
            shape[a + 1..].iter().product(),
        );
        let dt = x.dtype();
        let mut out = ctx.alloc(dt, shape)?;
        crate::dispatch_numeric!(dt, T => cumsum(x.as_slice::<T>()?, out.as_slice_mut::<T>()?, outer, r, inner, self.exclusive, self.reverse),
            _ => bail!("CumSum expects a numeric tensor, got {dt}"));
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &CumSum, x: &Tensor, axis: i32) -> Result<Vec<f64>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let a = Tensor::scalar(axis);
        op.eval(&mut ctx, &[Some(x.view()), Some(a.view())])?
            .remove(0)
            .to_f64_vec()
    }

    #[test]
    fn variants() {
        let x = Tensor::from_slice(&[5], &[1f64, 2., 3., 4., 5.]).unwrap();
        let op = |exclusive, reverse| CumSum { exclusive, reverse };
        assert_eq!(
            run(&op(false, false), &x, 0).unwrap(),
            vec![1., 3., 6., 10., 15.]
        );
        assert_eq!(
            run(&op(true, false), &x, 0).unwrap(),
            vec![0., 1., 3., 6., 10.]
        );
        assert_eq!(
            run(&op(false, true), &x, 0).unwrap(),
            vec![15., 14., 12., 9., 5.]
        );
        assert_eq!(
            run(&op(true, true), &x, -1).unwrap(),
            vec![14., 12., 9., 5., 0.]
        );
        let m = Tensor::from_slice(&[2, 3], &[1i32, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(
            run(&op(false, false), &m, 0).unwrap(),
            vec![1., 2., 3., 5., 7., 9.]
        );
        assert_eq!(
            run(&op(false, false), &m, 1).unwrap(),
            vec![1., 3., 6., 4., 9., 15.]
        );
        assert!(run(&op(false, false), &m, 2).is_err());
    }
}
