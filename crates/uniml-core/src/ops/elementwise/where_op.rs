//! `Where(condition, X, Y)`: three-way numpy broadcast, any dtype (strings too).

use uniml_data::{bail, broadcast_shapes, DType, Error, Result, Tensor, TensorView};

use super::kernel::map_ternary;
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::broadcast_fact;

#[derive(Debug, Clone, Default)]
pub struct Where;

/// Views raw bytes as `T` (the pod type of the same size as the dtype).
pub(crate) fn pod<T: bytemuck::Pod>(bytes: &[u8]) -> Result<&[T]> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| Error::Other(format!("misaligned tensor data: {e}")))
}

pub(crate) fn pod_mut<T: bytemuck::Pod>(bytes: &mut [u8]) -> Result<&mut [T]> {
    bytemuck::try_cast_slice_mut(bytes)
        .map_err(|e| Error::Other(format!("misaligned tensor data: {e}")))
}

impl Op for Where {
    fn name(&self) -> &'static str {
        "Where"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        if inputs.len() != 3 {
            bail!("Where needs 3 inputs, got {}", inputs.len());
        }
        if let Some(c) = inputs[0].dtype {
            if c != DType::Bool {
                bail!("Where condition must be bool, got {c}");
            }
        }
        let dtype = match (inputs[1].dtype, inputs[2].dtype) {
            (Some(a), Some(b)) if a != b => {
                bail!("Where: X and Y have different dtypes {a} and {b}")
            }
            (a, b) => a.or(b),
        };
        Ok(vec![broadcast_fact(inputs, dtype)?])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let c = input(inputs, 0, "Where")?;
        let x = input(inputs, 1, "Where")?;
        let y = input(inputs, 2, "Where")?;
        if c.dtype() != DType::Bool {
            bail!("Where condition must be bool, got {}", c.dtype());
        }
        let dt = x.dtype();
        if y.dtype() != dt {
            bail!(
                "Where: X and Y have different dtypes {dt} and {}",
                y.dtype()
            );
        }
        let shape = broadcast_shapes(&[c.shape(), x.shape(), y.shape()])?;
        let mut out = ctx.alloc(dt, &shape)?;
        let cs = (c.as_bytes(), c.shape());
        if dt == DType::String {
            let os = out.as_strings_mut()?;
            map_ternary(
                ctx.par,
                cs,
                (x.as_strings()?, x.shape()),
                (y.as_strings()?, y.shape()),
                os,
                &shape,
                |&c, a, b| {
                    if c != 0 {
                        a.clone()
                    } else {
                        b.clone()
                    }
                },
            )?;
        } else {
            crate::dispatch_pod!(dt, T => {
                let os = pod_mut::<T>(out.as_bytes_mut())?;
                map_ternary(ctx.par, cs, (pod::<T>(x.as_bytes())?, x.shape()), (pod::<T>(y.as_bytes())?, y.shape()), os, &shape,
                    |&c, &a, &b| if c != 0 { a } else { b })?;
            }, _ => bail!("Where does not support {dt}"));
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

    fn run(c: Tensor, x: Tensor, y: Tensor) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        Ok(Where
            .eval(&mut ctx, &[Some(c.view()), Some(x.view()), Some(y.view())])?
            .remove(0))
    }

    #[test]
    fn selects_with_broadcast() {
        let c = Tensor::from_bools(&[2, 1], &[true, false]).unwrap();
        let x = Tensor::from_slice(&[3], &[1f32, 2., 3.]).unwrap();
        let y = Tensor::scalar(-1f32);
        let r = run(c.clone(), x, y).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![1., 2., 3., -1., -1., -1.]);
        let s = |v: &[&str]| {
            Tensor::from_strings(&[v.len()], v.iter().map(|x| x.to_string()).collect()).unwrap()
        };
        let r = run(c.clone(), s(&["a", "b"]), s(&["z"])).unwrap();
        assert_eq!(r.as_strings().unwrap(), &["a", "b", "z", "z"]);
        assert!(run(c, s(&["a"]), Tensor::scalar(1f32)).is_err());
    }
}
