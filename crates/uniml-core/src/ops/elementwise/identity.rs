//! Pass-through ops a graph pass may remove: `Identity` (tensors, sequences
//! and optionals) and inference-mode `Dropout` (output = input, optional mask
//! of all `true`).

use uniml_data::{bail, DType, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op, Value, ValueRef};

#[derive(Debug, Clone, Default)]
pub struct Identity;

fn copy(ctx: &mut EvalCtx, x: &TensorView) -> Result<Tensor> {
    let mut out = ctx.alloc(x.dtype(), x.shape())?;
    if x.dtype() == DType::String {
        out.as_strings_mut()?.clone_from_slice(x.as_strings()?);
    } else {
        out.as_bytes_mut().copy_from_slice(x.as_bytes());
    }
    Ok(out)
}

impl Op for Identity {
    fn name(&self) -> &'static str {
        "Identity"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("Identity needs an input")
        };
        Ok(vec![Fact {
            konst: None,
            ..(*x).clone()
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Ok(vec![copy(ctx, input(inputs, 0, "Identity")?)?])
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        Ok(vec![match inputs.first() {
            Some(Some(ValueRef::Tensor(t))) => Value::Tensor(copy(ctx, t)?),
            Some(Some(v)) => v.to_owned(),
            Some(None) | None => Value::None,
        }])
    }
    crate::op_as_any!();
}

/// Inference-mode `Dropout`: the data passes through; the mask (when
/// requested) is all `true`. A `training_mode` input that is true at run time
/// with a non-zero ratio is an error (random dropout is not supported).
#[derive(Debug, Clone, Default)]
pub struct Dropout {
    /// Whether the node has the mask output.
    pub mask: bool,
}

fn scalar_f64(t: &TensorView) -> Result<Option<f64>> {
    if t.dtype() == DType::Bool {
        return Ok(t.as_bytes().first().map(|&b| b as f64));
    }
    Ok(t.to_f64_vec()?.first().copied())
}

impl Op for Dropout {
    fn name(&self) -> &'static str {
        "Dropout"
    }
    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("Dropout needs an input")
        };
        let mut v = vec![Fact {
            konst: None,
            ..(*x).clone()
        }];
        if n > 1 {
            v.push(Fact {
                dtype: Some(DType::Bool),
                shape: x.shape.clone(),
                konst: None,
                is_sequence: false,
            });
        }
        Ok(v)
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Dropout")?;
        let ratio = match inputs.get(1).and_then(|v| v.as_ref()) {
            Some(r) => scalar_f64(r)?.unwrap_or(0.5),
            None => 0.5,
        };
        if let Some(t) = inputs.get(2).and_then(|v| v.as_ref()) {
            if scalar_f64(t)?.unwrap_or(0.0) != 0.0 && ratio != 0.0 {
                bail!("Dropout in training mode (random dropout) is not supported");
            }
        }
        let mut outs = vec![copy(ctx, x)?];
        if self.mask {
            let mut m = ctx.alloc(DType::Bool, x.shape())?;
            m.as_bytes_mut().fill(1);
            outs.push(m);
        }
        Ok(outs)
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    #[test]
    fn pass_through() {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let x = Tensor::from_slice(&[2], &[1f32, 2.]).unwrap();
        let r = Identity.eval(&mut ctx, &[Some(x.view())]).unwrap();
        assert_eq!(r[0].to_vec::<f32>().unwrap(), vec![1., 2.]);
        let r = Dropout { mask: true }
            .eval(&mut ctx, &[Some(x.view())])
            .unwrap();
        assert_eq!(r[0].to_vec::<f32>().unwrap(), vec![1., 2.]);
        assert_eq!(r[1].as_bools().unwrap(), &[true, true]);
        let tm = Tensor::from_bools(&[], &[true]).unwrap();
        assert!(Dropout { mask: false }
            .eval(&mut ctx, &[Some(x.view()), None, Some(tm.view())])
            .is_err());
        let seq = vec![x.clone()];
        let r = Identity
            .eval_values(&mut ctx, &[Some(ValueRef::Sequence(&seq))])
            .unwrap();
        assert!(matches!(&r[0], Value::Sequence(s) if s.len() == 1));
    }
}
