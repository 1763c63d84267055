//! Pass-through ops a graph pass may remove: `Identity` (tensors, sequences
//! and optionals) and inference-mode `Dropout` (output = input, optional mask
//! of all `true`). `Dropout` in training mode (a true `training_mode` input
//! and a non-zero ratio) drops elements at random and is not removable.

use uniml_data::{bail, ensure, DType, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op, Value, ValueRef};
use crate::ops::random::SeedSource;

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

/// `Dropout`. In inference mode the data passes through and the mask (when
/// requested) is all `true`. With a `training_mode` input that is true at run
/// time and a ratio `r > 0`, each element is kept with probability `1 - r`
/// (`mask[i] = u_i >= r`, `u_i` uniform in [0, 1) from the node's seeded
/// generator, see [`crate::ops::random`]) and `y = mask ? x / (1 - r) : 0`;
/// the mask output is that same mask. The values cannot match onnx's reference
/// (numpy's generator); only shape, dtype and that relation are specified.
#[derive(Debug, Default)]
pub struct Dropout {
    /// Whether the node has the mask output.
    pub mask: bool,
    /// Whether training mode can be on at run time (a `training_mode` input
    /// that is not the constant false). A graph pass may remove the node only
    /// when this is false.
    pub may_train: bool,
    pub seeds: SeedSource,
}

impl Dropout {
    /// An inference-only Dropout (no `training_mode` input).
    pub fn inference(mask: bool) -> Self {
        Dropout { mask, ..Default::default() }
    }
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
        let training = match inputs.get(2).and_then(|v| v.as_ref()) {
            Some(t) => scalar_f64(t)?.unwrap_or(0.0) != 0.0,
            None => false,
        };
        if !training || ratio == 0.0 {
            let mut outs = vec![copy(ctx, x)?];
            if self.mask {
                let mut m = ctx.alloc(DType::Bool, x.shape())?;
                m.as_bytes_mut().fill(1);
                outs.push(m);
            }
            return Ok(outs);
        }
        ensure!((0.0..1.0).contains(&ratio), "Dropout ratio must be in [0, 1), got {ratio}");
        ensure!(x.dtype().is_float(), "Dropout input must be a float tensor, got {}", x.dtype());
        let mut rng = self.seeds.next_rng();
        let keep: Vec<bool> = (0..x.len()).map(|_| rng.uniform() >= ratio).collect();
        let scale = 1.0 / (1.0 - ratio);
        let ys: Vec<f64> = x.to_f64_vec()?.iter().zip(&keep).map(|(&v, &k)| if k { v * scale } else { 0.0 }).collect();
        let mut y = ctx.alloc(x.dtype(), x.shape())?;
        crate::ops::signal::store_f64(&ys, &mut y)?;
        let mut outs = vec![y];
        if self.mask {
            let mut m = ctx.alloc(DType::Bool, x.shape())?;
            for (o, &k) in m.as_bytes_mut().iter_mut().zip(&keep) {
                *o = k as u8;
            }
            outs.push(m);
        }
        Ok(outs)
    }
    fn is_pure(&self) -> bool {
        !self.may_train
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
        let r = Dropout::inference(true)
            .eval(&mut ctx, &[Some(x.view())])
            .unwrap();
        assert_eq!(r[0].to_vec::<f32>().unwrap(), vec![1., 2.]);
        assert_eq!(r[1].as_bools().unwrap(), &[true, true]);
        let tm = Tensor::from_bools(&[], &[true]).unwrap();
        let bad = Tensor::scalar(1.5f32);
        assert!(Dropout::inference(false)
            .eval(&mut ctx, &[Some(x.view()), Some(bad.view()), Some(tm.view())])
            .is_err());
        let seq = vec![x.clone()];
        let r = Identity
            .eval_values(&mut ctx, &[Some(ValueRef::Sequence(&seq))])
            .unwrap();
        assert!(matches!(&r[0], Value::Sequence(s) if s.len() == 1));
    }

    #[test]
    fn training_dropout_is_seeded_and_mask_consistent() {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let xs: Vec<f64> = (0..4000).map(|i| i as f64 * 0.25 + 1.0).collect();
        let x = Tensor::from_slice(&[40, 100], &xs).unwrap();
        let r = Tensor::scalar(0.3f32);
        let t = Tensor::from_bools(&[], &[true]).unwrap();
        let run = |seed: Option<f32>, ctx: &mut EvalCtx| {
            let op = Dropout { mask: true, may_train: true, seeds: SeedSource::new(seed) };
            op.eval(ctx, &[Some(x.view()), Some(r.view()), Some(t.view())]).unwrap()
        };
        let a = run(Some(7.0), &mut ctx);
        let b = run(Some(7.0), &mut ctx);
        let c = run(Some(8.0), &mut ctx);
        assert_eq!(a[1].as_bools().unwrap(), b[1].as_bools().unwrap(), "same seed, same mask");
        assert_ne!(a[1].as_bools().unwrap(), c[1].as_bools().unwrap());
        let (y, m) = (a[0].to_vec::<f64>().unwrap(), a[1].as_bools().unwrap());
        for i in 0..xs.len() {
            let want = if m[i] { xs[i] / (1.0 - 0.3f32 as f64) } else { 0.0 };
            assert!((y[i] - want).abs() <= 1e-12 * want.abs(), "{i}");
        }
        let kept = m.iter().filter(|&&k| k).count() as f64 / xs.len() as f64;
        assert!((kept - 0.7).abs() < 0.03, "kept fraction {kept}");
        // ratio 0 or training off: identity.
        let zero = Tensor::scalar(0.0f32);
        let op = Dropout { mask: true, may_train: true, seeds: SeedSource::new(None) };
        let r0 = op.eval(&mut ctx, &[Some(x.view()), Some(zero.view()), Some(t.view())]).unwrap();
        assert_eq!(r0[0].to_vec::<f64>().unwrap(), xs);
        assert!(r0[1].as_bools().unwrap().iter().all(|&b| b));
    }
}
