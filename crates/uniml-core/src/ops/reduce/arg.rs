//! `ArgMax` / `ArgMin` along one axis → int64 indices (first occurrence, or
//! last with `select_last_index`). The axis is viewed as the middle of
//! `[outer, r, inner]`; with `inner > 1` whole rows are compared at once.

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::norm_axis;

#[derive(Debug, Clone)]
pub struct ArgReduce {
    /// true: ArgMax, false: ArgMin.
    pub max: bool,
    pub axis: i64,
    pub keepdims: bool,
    pub select_last_index: bool,
}

/// Whether `v` should replace the current best `b`.
#[inline(always)]
fn better<T: PartialOrd>(v: &T, b: &T, max: bool, last: bool) -> bool {
    match (max, last) {
        (true, false) => v > b,
        (true, true) => v >= b,
        (false, false) => v < b,
        (false, true) => v <= b,
    }
}

fn arg<T: PartialOrd + Copy>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    max: bool,
    last: bool,
    out: &mut [i64],
) {
    if inner == 1 {
        for (o, row) in out.iter_mut().zip(x.chunks_exact(r)) {
            let mut bi = 0;
            for k in 1..r {
                if better(&row[k], &row[bi], max, last) {
                    bi = k;
                }
            }
            *o = bi as i64;
        }
        return;
    }
    let mut best: Vec<T> = Vec::with_capacity(inner);
    for o in 0..outer {
        let base = o * r * inner;
        best.clear();
        best.extend_from_slice(&x[base..base + inner]);
        let idx = &mut out[o * inner..(o + 1) * inner];
        idx.fill(0);
        for k in 1..r {
            let row = &x[base + k * inner..base + (k + 1) * inner];
            for ((b, i), v) in best.iter_mut().zip(idx.iter_mut()).zip(row) {
                if better(v, b, max, last) {
                    *b = *v;
                    *i = k as i64;
                }
            }
        }
    }
}

impl Op for ArgReduce {
    fn name(&self) -> &'static str {
        if self.max {
            "ArgMax"
        } else {
            "ArgMin"
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("{} needs an input", self.name())
        };
        if let Some(dt) = x.dtype {
            if !(dt.is_float() || dt.is_integer()) {
                bail!("{} expects a numeric tensor, got {dt}", self.name());
            }
        }
        let shape = match &x.shape {
            Some(s) => {
                let a = norm_axis(self.axis, s.rank())?;
                let mut dims = s.0.clone();
                if self.keepdims {
                    if let Some(d) = dims.get_mut(a) {
                        *d = Dim::Known(1);
                    }
                } else if a < dims.len() {
                    dims.remove(a);
                }
                Some(SymbolicShape(dims))
            }
            None => None,
        };
        Ok(vec![Fact {
            dtype: Some(DType::I64),
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, self.name())?;
        let shape = x.shape();
        if shape.is_empty() {
            bail!(
                "{} expects a tensor of rank >= 1, got a scalar",
                self.name()
            );
        }
        let a = norm_axis(self.axis, shape.len())?;
        let (outer, r, inner): (usize, usize, usize) = (
            shape[..a].iter().product(),
            shape[a],
            shape[a + 1..].iter().product(),
        );
        let mut out_shape = shape.to_vec();
        if self.keepdims {
            out_shape[a] = 1;
        } else {
            out_shape.remove(a);
        }
        let mut out = ctx.alloc(DType::I64, &out_shape)?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        if r == 0 {
            bail!("{} over an empty axis {a} of shape {shape:?}", self.name());
        }
        let o = out.as_slice_mut::<i64>()?;
        let dt = x.dtype();
        crate::dispatch_numeric!(dt, T => arg(x.as_slice::<T>()?, outer, r, inner, self.max, self.select_last_index, o),
            _ => bail!("{} expects a numeric tensor, got {dt}", self.name()));
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &ArgReduce, x: &Tensor) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        Ok(op.eval(&mut ctx, &[Some(x.view())])?.remove(0))
    }

    #[test]
    fn argmax_argmin() {
        let x = Tensor::from_slice(&[2, 3], &[1f32, 5., 5., 7., 2., 7.]).unwrap();
        let op = |max, axis, keepdims, last| ArgReduce {
            max,
            axis,
            keepdims,
            select_last_index: last,
        };
        let r = run(&op(true, 1, true, false), &x).unwrap();
        assert_eq!(r.shape(), &[2, 1]);
        assert_eq!(r.to_vec::<i64>().unwrap(), vec![1, 0]);
        assert_eq!(
            run(&op(true, 1, false, true), &x)
                .unwrap()
                .to_vec::<i64>()
                .unwrap(),
            vec![2, 2]
        );
        assert_eq!(
            run(&op(false, 0, false, false), &x)
                .unwrap()
                .to_vec::<i64>()
                .unwrap(),
            vec![0, 1, 0]
        );
        assert_eq!(
            run(&op(true, -2, false, false), &x)
                .unwrap()
                .to_vec::<i64>()
                .unwrap(),
            vec![1, 0, 1]
        );
        let i = Tensor::from_slice(&[3], &[3i8, -1, 3]).unwrap();
        assert_eq!(
            run(&op(true, 0, false, true), &i)
                .unwrap()
                .to_vec::<i64>()
                .unwrap(),
            vec![2]
        );
        assert!(run(&op(true, 2, false, false), &x).is_err());
        assert!(run(
            &op(true, 1, false, false),
            &Tensor::zeros(DType::F32, &[2, 0]).unwrap()
        )
        .is_err());
    }
}
