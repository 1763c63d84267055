//! `LpNormalization` (opsets 1–22): `x / ||x||_p` along `axis`, `p` ∈ {1, 2};
//! a zero norm gives zeros. Float dtypes (f16/bf16 through f32, f64 native).

use uniml_data::{bail, DType, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::nn::{float_data, with_f32_output};
use crate::ops::util::norm_axis;

#[derive(Clone, Debug, PartialEq)]
pub struct LpNormalization {
    pub axis: i64,
    pub p: i64,
}

impl Default for LpNormalization {
    fn default() -> Self {
        LpNormalization { axis: -1, p: 2 }
    }
}

fn normalize<T>(x: &[T], out: &mut [T], outer: usize, r: usize, inner: usize, p: i64)
where
    T: Copy
        + Default
        + PartialEq
        + std::ops::Mul<Output = T>
        + std::ops::Div<Output = T>
        + std::ops::Add<Output = T>
        + Abs,
{
    for o in 0..outer {
        for i in 0..inner {
            let idx = |k: usize| (o * r + k) * inner + i;
            let mut acc = T::default();
            for k in 0..r {
                let v = x[idx(k)];
                acc = acc + if p == 1 { v.abs() } else { v * v };
            }
            let norm = if p == 1 { acc } else { acc.sqrt() };
            for k in 0..r {
                out[idx(k)] = if norm == T::default() {
                    T::default()
                } else {
                    x[idx(k)] / norm
                };
            }
        }
    }
}

trait Abs {
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
}
impl Abs for f32 {
    fn abs(self) -> Self {
        f32::abs(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}
impl Abs for f64 {
    fn abs(self) -> Self {
        f64::abs(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

impl Op for LpNormalization {
    fn name(&self) -> &'static str {
        "LpNormalization"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("LpNormalization needs an input")
        };
        if let Some(dt) = x.dtype {
            if !dt.is_float() {
                bail!("LpNormalization expects a float input, got {dt}");
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
        let x = input(inputs, 0, "LpNormalization")?;
        if self.p != 1 && self.p != 2 {
            bail!("LpNormalization: p must be 1 or 2, got {}", self.p);
        }
        let sh = x.shape();
        let axis = norm_axis(self.axis, sh.len())?;
        let (outer, r, inner) = if sh.is_empty() {
            (1, 1, 1)
        } else {
            (
                sh[..axis].iter().product(),
                sh[axis],
                sh[axis + 1..].iter().product(),
            )
        };
        if x.dtype() == DType::F64 {
            let xs = x.as_slice::<f64>()?;
            let mut out = ctx.alloc(DType::F64, sh)?;
            normalize(xs, out.as_slice_mut::<f64>()?, outer, r, inner, self.p);
            return Ok(vec![out]);
        }
        let xs = float_data(x, "LpNormalization input")?;
        let out = with_f32_output(ctx, x.dtype(), sh, |_, o| {
            normalize(&xs, o, outer, r, inner, self.p);
            Ok(())
        })?;
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn l2_and_l1_along_axes() {
        let x = t(&[2, 2], &[3.0, 4.0, 0.0, 0.0]);
        let y = run(&LpNormalization::default(), &[Some(&x)]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[0.6, 0.8, 0.0, 0.0], 1e-6);
        let y = run(
            &LpNormalization { axis: 0, p: 1 },
            &[Some(&t(&[2, 1], &[-1.0, 3.0]))],
        )
        .unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[-0.25, 0.75], 1e-6);
        assert!(run(&LpNormalization { axis: 0, p: 3 }, &[Some(&x)]).is_err());
        assert!(run(&LpNormalization { axis: 2, p: 2 }, &[Some(&x)]).is_err());
    }
}
