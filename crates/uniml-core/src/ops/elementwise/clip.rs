//! `Clip(x, min?, max?)`: `min(max(x, lo), hi)` (numpy `clip`: when lo > hi
//! the result is hi; NaN passes through). Bounds come from the optional scalar
//! inputs 1/2 (opset ≥ 11) or else from the attribute fields (opset < 11).

use uniml_data::{bail, DType, Result, Tensor, TensorView};

use super::kernel::map_unary;
use super::num::Num;
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Default)]
pub struct Clip {
    /// Lower bound from the attribute (opset < 11); input 1 overrides it.
    pub min: Option<f32>,
    /// Upper bound from the attribute (opset < 11); input 2 overrides it.
    pub max: Option<f32>,
}

fn bound<T: Num>(t: Option<&TensorView>, attr: Option<f32>, default: T, what: &str) -> Result<T> {
    if let Some(t) = t {
        let v = t.as_slice::<T>().map_err(|_| {
            uniml_data::Error::Shape(format!(
                "Clip {what} must have the input's dtype, got {}",
                t.dtype()
            ))
        })?;
        match v {
            [] => {}
            [x] => return Ok(*x),
            _ => bail!("Clip {what} must be a scalar, got shape {:?}", t.shape()),
        }
    }
    Ok(attr.map(|a| T::from_f64(a as f64)).unwrap_or(default))
}

fn clip<T: Num>(
    ctx: &mut EvalCtx,
    op: &Clip,
    x: &TensorView,
    inputs: &[Option<TensorView>],
) -> Result<Tensor> {
    let lo = bound(
        inputs.get(1).and_then(|v| v.as_ref()),
        op.min,
        T::LOWEST,
        "min",
    )?;
    let hi = bound(
        inputs.get(2).and_then(|v| v.as_ref()),
        op.max,
        T::HIGHEST,
        "max",
    )?;
    let mut out = ctx.alloc(x.dtype(), x.shape())?;
    map_unary(
        ctx.par,
        x.as_slice::<T>()?,
        out.as_slice_mut::<T>()?,
        |&v| {
            let y = if v < lo { lo } else { v };
            if y > hi {
                hi
            } else {
                y
            }
        },
    )?;
    Ok(out)
}

impl Op for Clip {
    fn name(&self) -> &'static str {
        "Clip"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("Clip needs an input")
        };
        if let Some(dt) = x.dtype {
            if !(dt.is_float() || dt.is_integer()) {
                bail!("Clip expects a numeric tensor, got {dt}");
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
        let x = input(inputs, 0, "Clip")?;
        let dt: DType = x.dtype();
        let out = crate::dispatch_numeric!(dt, T => clip::<T>(ctx, self, x, inputs)?,
            _ => bail!("Clip expects a numeric tensor, got {dt}"));
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &Clip, ins: &[Option<Tensor>]) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let views: Vec<Option<TensorView>> =
            ins.iter().map(|t| t.as_ref().map(|t| t.view())).collect();
        Ok(op.eval(&mut ctx, &views)?.remove(0))
    }

    #[test]
    fn clips_with_inputs_and_attrs() {
        let x = Tensor::from_slice(&[4], &[-2f32, 0.5, 3., f32::NAN]).unwrap();
        let r = run(
            &Clip::default(),
            &[
                Some(x.clone()),
                Some(Tensor::scalar(0f32)),
                Some(Tensor::scalar(1f32)),
            ],
        )
        .unwrap();
        let v = r.to_vec::<f32>().unwrap();
        assert_eq!(&v[..3], &[0., 0.5, 1.]);
        assert!(v[3].is_nan());
        let r = run(
            &Clip::default(),
            &[Some(x.clone()), None, Some(Tensor::scalar(0f32))],
        )
        .unwrap();
        assert_eq!(&r.to_vec::<f32>().unwrap()[..3], &[-2., 0., 0.]);
        let r = run(
            &Clip {
                min: Some(-1.0),
                max: None,
            },
            &[Some(x.clone())],
        )
        .unwrap();
        assert_eq!(&r.to_vec::<f32>().unwrap()[..3], &[-1., 0.5, 3.]);
        // min > max gives max everywhere.
        let r = run(
            &Clip::default(),
            &[
                Some(x),
                Some(Tensor::scalar(2f32)),
                Some(Tensor::scalar(1f32)),
            ],
        )
        .unwrap();
        assert_eq!(&r.to_vec::<f32>().unwrap()[..3], &[1., 1., 1.]);
        let xi = Tensor::from_slice(&[3], &[-100i8, 0, 100]).unwrap();
        let r = run(
            &Clip::default(),
            &[Some(xi.clone()), Some(Tensor::scalar(-5i8)), None],
        )
        .unwrap();
        assert_eq!(r.to_vec::<i8>().unwrap(), vec![-5, 0, 100]);
        assert!(run(
            &Clip::default(),
            &[Some(xi), Some(Tensor::scalar(1f32)), None]
        )
        .is_err());
    }
}
