//! Variadic `Max`, `Min`, `Sum`, `Mean` with numpy broadcasting of all inputs,
//! folded pairwise with the binary kernel.

use uniml_data::{bail, broadcast_shapes, Result, Tensor, TensorView};

use super::binary::{arith, BinOp};
use super::kernel::for_chunks;
use super::num::Num;
use crate::op::{EvalCtx, Fact, Op};
use crate::ops::util::broadcast_fact;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariadicOp {
    Max,
    Min,
    Sum,
    Mean,
}

#[derive(Debug, Clone)]
pub struct Variadic {
    pub op: VariadicOp,
}

impl Variadic {
    pub fn new(op: VariadicOp) -> Self {
        Variadic { op }
    }
    fn step(&self) -> BinOp {
        match self.op {
            VariadicOp::Max => BinOp::Max,
            VariadicOp::Min => BinOp::Min,
            VariadicOp::Sum | VariadicOp::Mean => BinOp::Add,
        }
    }
}

fn scale<T: Num>(ctx: &EvalCtx, t: &mut Tensor, n: usize) -> Result<()> {
    let d = T::from_f64(n as f64);
    for_chunks(ctx.par, t.as_slice_mut::<T>()?, &|_, chunk| {
        for v in chunk {
            *v = v.div(d);
        }
    });
    Ok(())
}

impl Op for Variadic {
    fn name(&self) -> &'static str {
        match self.op {
            VariadicOp::Max => "Max",
            VariadicOp::Min => "Min",
            VariadicOp::Sum => "Sum",
            VariadicOp::Mean => "Mean",
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        if inputs.is_empty() {
            bail!("{} needs at least one input", self.name());
        }
        let mut dtype = None;
        for f in inputs {
            match (dtype, f.dtype) {
                (Some(a), Some(b)) if a != b => {
                    bail!("{}: inputs have different dtypes {a} and {b}", self.name())
                }
                (None, Some(b)) => dtype = Some(b),
                _ => {}
            }
        }
        if let Some(dt) = dtype {
            if !(dt.is_float() || dt.is_integer()) {
                bail!("{} expects numeric inputs, got {dt}", self.name());
            }
        }
        Ok(vec![broadcast_fact(inputs, dtype)?])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let ins: Vec<&TensorView> = inputs.iter().flatten().collect();
        let Some(first) = ins.first() else {
            bail!("{} needs at least one input", self.name())
        };
        let dt = first.dtype();
        if !(dt.is_float() || dt.is_integer()) {
            bail!("{} expects numeric inputs, got {dt}", self.name());
        }
        if let Some(x) = ins.iter().find(|x| x.dtype() != dt) {
            bail!(
                "{}: inputs have different dtypes {dt} and {}",
                self.name(),
                x.dtype()
            );
        }
        let mut acc: Option<Tensor> = None;
        for x in &ins[1..] {
            let prev = acc
                .as_ref()
                .map(|t| t.view())
                .unwrap_or_else(|| (*first).clone());
            let shape = broadcast_shapes(&[prev.shape(), x.shape()])?;
            let mut out = ctx.alloc(dt, &shape)?;
            crate::dispatch_numeric!(dt, T => arith::<T>(self.step(), ctx.par, &prev, x, &mut out)?, _ => bail!("{} expects numeric inputs, got {dt}", self.name()));
            if let Some(old) = acc.replace(out) {
                ctx.release(old);
            }
        }
        let mut out = match acc {
            Some(t) => t,
            None => {
                let mut t = ctx.alloc(dt, first.shape())?;
                t.as_bytes_mut().copy_from_slice(first.as_bytes());
                t
            }
        };
        if self.op == VariadicOp::Mean && ins.len() > 1 {
            crate::dispatch_numeric!(dt, T => scale::<T>(ctx, &mut out, ins.len())?, _ => bail!("{} expects numeric inputs, got {dt}", self.name()));
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

    fn run(op: VariadicOp, ins: &[Tensor]) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let views: Vec<Option<TensorView>> = ins.iter().map(|t| Some(t.view())).collect();
        Ok(Variadic::new(op).eval(&mut ctx, &views)?.remove(0))
    }

    #[test]
    fn folds_with_broadcast() {
        let a = Tensor::from_slice(&[3], &[3f32, 2., 1.]).unwrap();
        let b = Tensor::from_slice(&[2, 1], &[1f32, 5.]).unwrap();
        let c = Tensor::scalar(2f32);
        let r = run(VariadicOp::Max, &[a.clone(), b.clone(), c.clone()]).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![3., 2., 2., 5., 5., 5.]);
        let r = run(VariadicOp::Mean, &[a.clone(), b, c]).unwrap();
        assert_eq!(
            r.to_vec::<f32>().unwrap(),
            vec![2., 5. / 3., 4. / 3., 10. / 3., 3., 8. / 3.]
        );
        let r = run(VariadicOp::Sum, std::slice::from_ref(&a)).unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![3., 2., 1.]);
        let i = Tensor::from_slice(&[2], &[1i32, 9]).unwrap();
        assert_eq!(
            run(VariadicOp::Min, &[i.clone(), Tensor::scalar(4i32)])
                .unwrap()
                .to_vec::<i32>()
                .unwrap(),
            vec![1, 4]
        );
        assert!(run(VariadicOp::Min, &[i, a]).is_err());
    }
}
