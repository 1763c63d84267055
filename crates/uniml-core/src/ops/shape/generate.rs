//! Ops that generate tensors: `ConstantOfShape`, `Range`, `EyeLike`.

use std::sync::Arc;

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{checked_numel, fact, konst_ints, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{bf16, f16};

/// The value 1 of a numeric or bool dtype, as a scalar tensor.
pub(crate) fn one_of(dtype: DType) -> Result<Tensor> {
    Ok(match dtype {
        DType::F32 => Tensor::scalar(1f32),
        DType::F64 => Tensor::scalar(1f64),
        DType::F16 => Tensor::scalar(f16::ONE),
        DType::BF16 => Tensor::scalar(bf16::ONE),
        DType::I8 => Tensor::scalar(1i8),
        DType::U8 => Tensor::scalar(1u8),
        DType::I16 => Tensor::scalar(1i16),
        DType::U16 => Tensor::scalar(1u16),
        DType::I32 => Tensor::scalar(1i32),
        DType::U32 => Tensor::scalar(1u32),
        DType::I64 => Tensor::scalar(1i64),
        DType::U64 => Tensor::scalar(1u64),
        DType::Bool => Tensor::from_bools(&[], &[true])?,
        d => bail!("no value 1 for {d} tensors"),
    })
}

/// Reads a target shape (non-negative int64 values).
pub(crate) fn shape_from(t: &TensorView, what: &str) -> Result<Vec<usize>> {
    let v = super::ints_of(t, what)?;
    if t.shape().len() > 1 {
        bail!("{what} must be 1-D, got shape {:?}", t.shape());
    }
    v.iter()
        .map(|&d| {
            if d < 0 {
                Err(uniml_data::Error::Shape(format!(
                    "{what} {v:?} has a negative dim"
                )))
            } else {
                Ok(d as usize)
            }
        })
        .collect()
}

// ---------------------------------------------------------------- ConstantOfShape

/// `ConstantOfShape`: a tensor of the shape given by input 0, filled with
/// `value` (a one-element tensor; float32 0 by default).
#[derive(Debug, Clone)]
pub struct ConstantOfShape {
    pub value: Arc<Tensor>,
}

impl Default for ConstantOfShape {
    fn default() -> Self {
        ConstantOfShape {
            value: Arc::new(Tensor::scalar(0f32)),
        }
    }
}

fn fill_with<T: Data>(value: &Tensor, out: &mut Tensor) -> Result<()> {
    let v = T::src(&value.view())?;
    let Some(v) = v.first() else {
        bail!("ConstantOfShape: value is empty")
    };
    T::dst(out)?.fill(v.clone());
    Ok(())
}

impl Op for ConstantOfShape {
    fn name(&self) -> &'static str {
        "ConstantOfShape"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = Some(self.value.dtype());
        let shape = match konst_ints(inputs, 0) {
            Some(v) => Some(SymbolicShape(
                v.iter()
                    .map(|&d| {
                        if d >= 0 {
                            Dim::Known(d as usize)
                        } else {
                            Dim::Unknown
                        }
                    })
                    .collect(),
            )),
            None => inputs
                .first()
                .and_then(|f| f.shape.as_ref())
                .and_then(|s| s.0.first())
                .and_then(Dim::known)
                .map(|r| SymbolicShape(vec![Dim::Unknown; r])),
        };
        Ok(vec![match shape {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let shape = shape_from(
            input(inputs, 0, "ConstantOfShape")?,
            "ConstantOfShape shape",
        )?;
        checked_numel(&shape)?;
        let mut out = ctx.alloc(self.value.dtype(), &shape)?;
        let zero =
            self.value.as_bytes().iter().all(|&b| b == 0) && self.value.dtype() != DType::String;
        if !zero && !out.is_empty() {
            dispatch_data!(self.value.dtype(), T => fill_with::<T>(&self.value, &mut out)?);
        }
        Ok(vec![out])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- Range

/// `Range(start, limit, delta)`: `ceil((limit - start) / delta)` values
/// (at least 0), accumulated as onnxruntime does (`v += delta`).
#[derive(Debug, Clone, Default)]
pub struct Range;

fn scalar<T: Copy + uniml_data::Element>(t: &TensorView, what: &str) -> Result<T> {
    match t.as_slice::<T>()? {
        [v] => Ok(*v),
        _ => bail!("Range: {what} must be a scalar, got shape {:?}", t.shape()),
    }
}

macro_rules! range_int {
    ($ctx:expr, $s:expr, $l:expr, $d:expr, $t:ty) => {{
        let (s, l, d) = (
            scalar::<$t>($s, "start")?,
            scalar::<$t>($l, "limit")?,
            scalar::<$t>($d, "delta")?,
        );
        if d == 0 {
            bail!("Range: delta must not be 0");
        }
        let (s1, l1, d1) = (s as i128, l as i128, d as i128);
        let span = l1 - s1;
        let n = if (span > 0) == (d1 > 0) && span != 0 {
            (span.abs() + d1.abs() - 1) / d1.abs()
        } else {
            0
        };
        let mut out = $ctx.alloc(<$t as uniml_data::Element>::DTYPE, &[n as usize])?;
        for (i, o) in out.as_slice_mut::<$t>()?.iter_mut().enumerate() {
            *o = (s1 + i as i128 * d1) as $t;
        }
        out
    }};
}

macro_rules! range_float {
    ($ctx:expr, $s:expr, $l:expr, $d:expr, $t:ty, $acc:ty, $to:expr, $from:expr) => {{
        let to: fn($t) -> $acc = $to;
        let from: fn($acc) -> $t = $from;
        let (s, l, d) = (
            to(scalar::<$t>($s, "start")?),
            to(scalar::<$t>($l, "limit")?),
            to(scalar::<$t>($d, "delta")?),
        );
        if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
            bail!("Range: delta must be finite and non-zero, start and limit finite");
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if n > (1u64 << 40) as $acc {
            bail!("Range: {n} elements is too many");
        }
        let mut out = $ctx.alloc(<$t as uniml_data::Element>::DTYPE, &[n as usize])?;
        let mut v = s;
        for o in out.as_slice_mut::<$t>()?.iter_mut() {
            *o = from(v);
            v += d;
        }
        out
    }};
}

impl Op for Range {
    fn name(&self) -> &'static str {
        "Range"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        if inputs.len() == 3 && inputs.iter().all(|f| f.konst.is_some()) {
            let views: Vec<Option<TensorView>> = inputs
                .iter()
                .map(|f| f.konst.as_ref().map(|t| t.view()))
                .collect();
            let mut pool = crate::op::BufferPool::new(u64::MAX);
            let mut ctx = EvalCtx::new(&crate::parallel::Serial, &mut pool);
            let out = self.eval(&mut ctx, &views)?;
            if let Some(t) = out.into_iter().next() {
                return Ok(vec![if t.len() <= 1 << 16 {
                    Fact::constant(Arc::new(t))
                } else {
                    Fact::new(t.dtype(), SymbolicShape::known(t.shape()))
                }]);
            }
        }
        Ok(vec![fact(dtype, SymbolicShape(vec![Dim::Unknown]))])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let s = input(inputs, 0, "Range")?;
        let l = input(inputs, 1, "Range")?;
        let d = input(inputs, 2, "Range")?;
        if l.dtype() != s.dtype() || d.dtype() != s.dtype() {
            bail!(
                "Range: start, limit and delta must share a dtype, got {}, {}, {}",
                s.dtype(),
                l.dtype(),
                d.dtype()
            );
        }
        let out = match s.dtype() {
            DType::F32 => range_float!(ctx, s, l, d, f32, f32, |v| v, |v| v),
            DType::F64 => range_float!(ctx, s, l, d, f64, f64, |v| v, |v| v),
            DType::F16 => range_float!(ctx, s, l, d, f16, f32, |v| v.to_f32(), f16::from_f32),
            DType::BF16 => range_float!(ctx, s, l, d, bf16, f32, |v| v.to_f32(), bf16::from_f32),
            DType::I8 => range_int!(ctx, s, l, d, i8),
            DType::U8 => range_int!(ctx, s, l, d, u8),
            DType::I16 => range_int!(ctx, s, l, d, i16),
            DType::U16 => range_int!(ctx, s, l, d, u16),
            DType::I32 => range_int!(ctx, s, l, d, i32),
            DType::U32 => range_int!(ctx, s, l, d, u32),
            DType::I64 => range_int!(ctx, s, l, d, i64),
            DType::U64 => range_int!(ctx, s, l, d, u64),
            other => bail!("Range: {other} is not supported"),
        };
        Ok(vec![out])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- EyeLike

/// `EyeLike`: a 2-D tensor shaped like the input with ones on diagonal `k`.
#[derive(Debug, Clone, Default)]
pub struct EyeLike {
    /// Output dtype; `None` keeps the input's.
    pub dtype: Option<DType>,
    pub k: i64,
}

fn eye<T: Data>(one: &Tensor, rows: usize, cols: usize, k: i64, out: &mut Tensor) -> Result<()> {
    let Some(v) = T::src(&one.view())?.first().cloned() else {
        bail!("EyeLike: no value")
    };
    let dst = T::dst(out)?;
    for i in 0..rows {
        let j = i as i64 + k;
        if j >= 0 && (j as usize) < cols {
            dst[i * cols + j as usize] = v.clone();
        }
    }
    Ok(())
}

impl Op for EyeLike {
    fn name(&self) -> &'static str {
        "EyeLike"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = self.dtype.or(inputs.first().and_then(|f| f.dtype));
        Ok(vec![match inputs.first().and_then(|f| f.shape.clone()) {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "EyeLike")?;
        let &[rows, cols] = x.shape() else {
            bail!("EyeLike: the input must be 2-D, got shape {:?}", x.shape())
        };
        let dtype = self.dtype.unwrap_or(x.dtype());
        let one = one_of(dtype)?;
        let mut out = ctx.alloc(dtype, &[rows, cols])?;
        dispatch_data!(dtype, T => eye::<T>(&one, rows, cols, self.k, &mut out)?);
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
    fn range_counts_and_values() {
        let (s, l, d) = ([10i32], [4i32], [-3i32]);
        let v = |x: &[i32; 1]| TensorView::from_slice(&[], &x[..]).unwrap().to_owned();
        let (s, l, d) = (v(&s), v(&l), v(&d));
        let out = run(&Range, &[Some(s.view()), Some(l.view()), Some(d.view())]).unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[10, 7]);
        let (s, l, d) = ([1f32], [2f32], [0.25f32]);
        let out = run(
            &Range,
            &[
                Some(TensorView::from_slice(&[], &s).unwrap()),
                Some(TensorView::from_slice(&[], &l).unwrap()),
                Some(TensorView::from_slice(&[], &d).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[1.0, 1.25, 1.5, 1.75]);
        let z = [0i64];
        let zv = TensorView::from_slice(&[], &z).unwrap();
        assert!(run(&Range, &[Some(zv.clone()), Some(zv.clone()), Some(zv)]).is_err());
    }

    #[test]
    fn constant_of_shape_and_eyelike() {
        let sh = [2i64, 3];
        let op = ConstantOfShape {
            value: Arc::new(Tensor::from_slice(&[1], &[7i32]).unwrap()),
        };
        let out = run(&op, &[Some(TensorView::from_slice(&[2], &sh).unwrap())]).unwrap();
        assert_eq!(out[0].as_slice::<i32>().unwrap(), &[7; 6]);
        let d = [0f32; 6];
        let out = run(
            &EyeLike {
                dtype: Some(DType::I64),
                k: 1,
            },
            &[Some(TensorView::from_slice(&[2, 3], &d).unwrap())],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[0, 1, 0, 0, 0, 1]);
        assert!(run(
            &EyeLike::default(),
            &[Some(TensorView::from_slice(&[6], &d).unwrap())]
        )
        .is_err());
    }
}
