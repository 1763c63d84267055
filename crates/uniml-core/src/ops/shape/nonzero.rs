//! Data-dependent selection: `NonZero` (coordinates of non-zero elements)
//! and `Compress` (slices where a boolean condition holds).

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{fact, numel, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{norm_axis, strides};

// ---------------------------------------------------------------- NonZero

/// `NonZero`: int64 `[rank, n]` coordinates of the non-zero elements, in row-major order.
#[derive(Debug, Clone, Default)]
pub struct NonZero;

/// Flat positions of non-zero elements (numeric compare, so -0.0 is zero).
fn nonzero_positions(x: &TensorView) -> Result<Vec<usize>> {
    let pos = crate::dispatch_numeric!(x.dtype(), T => {
        let zero = T::default();
        x.as_slice::<T>()?.iter().enumerate().filter(|(_, v)| **v != zero).map(|(i, _)| i).collect()
    }, _ => match x.dtype() {
        DType::Bool => x.as_bytes().iter().enumerate().filter(|(_, v)| **v != 0).map(|(i, _)| i).collect(),
        DType::String => x.as_strings()?.iter().enumerate().filter(|(_, v)| !v.is_empty()).map(|(i, _)| i).collect(),
        other => bail!("NonZero: {other} is not supported"),
    });
    Ok(pos)
}

impl Op for NonZero {
    fn name(&self) -> &'static str {
        "NonZero"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let rank = inputs
            .first()
            .and_then(|f| f.rank())
            .map_or(Dim::Unknown, Dim::Known);
        Ok(vec![fact(
            Some(DType::I64),
            SymbolicShape(vec![rank, Dim::Unknown]),
        )])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "NonZero")?;
        let pos = nonzero_positions(x)?;
        // A scalar behaves as a 1-element 1-D tensor (as onnxruntime does).
        let shape: Vec<usize> = if x.shape().is_empty() {
            vec![1]
        } else {
            x.shape().to_vec()
        };
        let rank = shape.len();
        let st = strides(&shape);
        let n = pos.len();
        let mut out = ctx.alloc(DType::I64, &[rank, n])?;
        let o = out.as_slice_mut::<i64>()?;
        for (k, &p) in pos.iter().enumerate() {
            for a in 0..rank {
                o[a * n + k] = ((p / st[a]) % shape[a]) as i64;
            }
        }
        Ok(vec![out])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- Compress

/// `Compress`: keeps the slices along `axis` (the flattened input when
/// `None`) whose condition entry is true; missing entries count as false.
#[derive(Debug, Clone, Default)]
pub struct Compress {
    pub axis: Option<i64>,
}

fn compress_into<T: Data>(
    x: &TensorView,
    keep: &[usize],
    outer: usize,
    d: usize,
    inner: usize,
    out: &mut Tensor,
) -> Result<()> {
    let src = T::src(x)?;
    let dst = T::dst(out)?;
    let mut o = 0;
    for b in 0..outer {
        for &k in keep {
            let s = (b * d + k) * inner;
            dst[o..o + inner].clone_from_slice(&src[s..s + inner]);
            o += inner;
        }
    }
    Ok(())
}

impl Op for Compress {
    fn name(&self) -> &'static str {
        "Compress"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let shape = match (self.axis, inputs.first().and_then(|f| f.shape.as_ref())) {
            (None, _) => Some(SymbolicShape(vec![Dim::Unknown])),
            (Some(a), Some(s)) => {
                let a = norm_axis(a, s.rank())?;
                let mut dims = s.0.clone();
                dims[a] = Dim::Unknown;
                Some(SymbolicShape(dims))
            }
            _ => None,
        };
        Ok(vec![match shape {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Compress")?;
        let c = input(inputs, 1, "Compress")?;
        if c.dtype() != DType::Bool || c.shape().len() != 1 {
            bail!(
                "Compress: condition must be a 1-D bool tensor, got {} {:?}",
                c.dtype(),
                c.shape()
            );
        }
        let flat = [x.len()];
        let (shape, axis) = match self.axis {
            Some(a) => (x.shape(), norm_axis(a, x.shape().len())?),
            None => (&flat[..], 0),
        };
        let d = shape[axis];
        let cond = c.as_bytes();
        if cond.len() > d && cond[d..].iter().any(|&v| v != 0) {
            bail!(
                "Compress: condition has {} entries (some true beyond the axis length {d})",
                cond.len()
            );
        }
        let keep: Vec<usize> = cond
            .iter()
            .take(d)
            .enumerate()
            .filter(|(_, &v)| v != 0)
            .map(|(i, _)| i)
            .collect();
        let mut out_shape = shape.to_vec();
        out_shape[axis] = keep.len();
        let mut out = ctx.alloc(x.dtype(), &out_shape)?;
        if !out.is_empty() {
            let (outer, inner) = (numel(&shape[..axis]), numel(&shape[axis + 1..]));
            dispatch_data!(x.dtype(), T => compress_into::<T>(x, &keep, outer, d, inner, &mut out)?);
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

    fn run(op: &dyn Op, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        op.eval(&mut ctx, inputs)
    }

    #[test]
    fn nonzero_coordinates() {
        let d = [1.0f32, 0.0, -0.0, 3.0];
        let out = run(
            &NonZero,
            &[Some(TensorView::from_slice(&[2, 2], &d).unwrap())],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[0, 1, 0, 1]);
    }

    #[test]
    fn compress_axis_and_flat() {
        let d = [1i32, 2, 3, 4, 5, 6];
        let x = TensorView::from_slice(&[3, 2], &d).unwrap();
        let c = Tensor::from_bools(&[2], &[false, true]).unwrap();
        let out = run(
            &Compress { axis: Some(1) },
            &[Some(x.clone()), Some(c.view())],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[2, 4, 6]);
        let out = run(&Compress { axis: None }, &[Some(x.clone()), Some(c.view())]).unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[2]);
        let c4 = Tensor::from_bools(&[4], &[true, false, false, true]).unwrap();
        assert!(run(&Compress { axis: Some(0) }, &[Some(x), Some(c4.view())]).is_err());
    }
}
