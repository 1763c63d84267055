//! `CumProd(x, axis)` (opset 26) with `exclusive` and `reverse`. The axis
//! (input 1, a scalar int tensor) is read at run time. Runs as
//! `[outer, r, inner]` with a running row of `inner` products.

use uniml_data::{bail, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::elementwise::num::Num;
use crate::ops::util::{norm_axis, read_i64s};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CumProd {
    pub exclusive: bool,
    pub reverse: bool,
}

#[allow(clippy::too_many_arguments)]
fn cumprod<T: Num>(
    x: &[T],
    out: &mut [T],
    outer: usize,
    r: usize,
    inner: usize,
    exclusive: bool,
    reverse: bool,
) {
    let mut acc = vec![T::ONE; inner];
    for o in 0..outer {
        acc.fill(T::ONE);
        for step in 0..r {
            let k = if reverse { r - 1 - step } else { step };
            let base = (o * r + k) * inner;
            let (xs, os) = (&x[base..base + inner], &mut out[base..base + inner]);
            for ((a, o), &v) in acc.iter_mut().zip(os.iter_mut()).zip(xs) {
                if exclusive {
                    *o = *a;
                    *a = a.mul(v);
                } else {
                    *a = a.mul(v);
                    *o = *a;
                }
            }
        }
    }
}

impl Op for CumProd {
    fn name(&self) -> &'static str {
        "CumProd"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("CumProd needs an input")
        };
        if let Some(dt) = x.dtype {
            if !(dt.is_float() || dt.is_integer()) {
                bail!("CumProd expects a numeric tensor, got {dt}");
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
        let x = input(inputs, 0, "CumProd")?;
        let axis = match read_i64s(input(inputs, 1, "CumProd")?)?.as_slice() {
            [a] => *a,
            other => bail!("CumProd axis must be a single integer, got {other:?}"),
        };
        let sh = x.shape();
        let axis = norm_axis(axis, sh.len())?;
        let (outer, r, inner) = if sh.is_empty() {
            (1, 1, 1)
        } else {
            (
                sh[..axis].iter().product(),
                sh[axis],
                sh[axis + 1..].iter().product(),
            )
        };
        let mut out = ctx.alloc(x.dtype(), sh)?;
        crate::dispatch_numeric!(x.dtype(), T => {
            cumprod::<T>(x.as_slice::<T>()?, out.as_slice_mut::<T>()?, outer, r, inner, self.exclusive, self.reverse)
        }, _ => bail!("CumProd does not support {} tensors", x.dtype()));
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::run;

    #[test]
    fn flags_match_spec_example() {
        let x = Tensor::from_slice(&[3], &[1i32, 2, 3]).unwrap();
        let ax = Tensor::from_slice(&[], &[0i64]).unwrap();
        let go = |exclusive, reverse| {
            run(&CumProd { exclusive, reverse }, &[Some(&x), Some(&ax)]).unwrap()[0]
                .as_slice::<i32>()
                .unwrap()
                .to_vec()
        };
        assert_eq!(go(false, false), [1, 2, 6]);
        assert_eq!(go(true, false), [1, 1, 2]);
        assert_eq!(go(false, true), [6, 6, 3]);
        assert_eq!(go(true, true), [6, 3, 1]);
        let x2 = Tensor::from_slice(&[2, 2], &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
        let ax = Tensor::from_slice(&[], &[-1i64]).unwrap();
        let y = run(&CumProd::default(), &[Some(&x2), Some(&ax)]).unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0, 12.0]);
        let bad = Tensor::from_slice(&[], &[2i64]).unwrap();
        assert!(run(&CumProd::default(), &[Some(&x2), Some(&bad)]).is_err());
    }
}
