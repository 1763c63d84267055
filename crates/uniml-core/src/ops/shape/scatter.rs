//! `ScatterElements` (and the deprecated `Scatter`) and `ScatterND`, with
//! reductions none/add/mul/max/min. Updates apply in index order, so
//! duplicate indices behave like onnxruntime (the last write wins for `none`).

use uniml_data::{bail, Result, Tensor, TensorView};

use super::gather::{check_elements_shapes, nd_geometry, nd_offsets};
use super::{copy_reshaped, resolve_indices, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{bf16, f16, strides};

/// How an update combines with the existing value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    #[default]
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    pub fn parse(s: &str) -> Option<Reduction> {
        Some(match s {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            _ => return None,
        })
    }
}

/// Numeric element types that reductions can combine.
trait Combine: Copy {
    fn combine(self, u: Self, r: Reduction) -> Self;
}
macro_rules! combine_int {
    ($($t:ty),*) => {$(impl Combine for $t {
        fn combine(self, u: Self, r: Reduction) -> Self {
            match r {
                Reduction::None => u,
                Reduction::Add => self.wrapping_add(u),
                Reduction::Mul => self.wrapping_mul(u),
                Reduction::Max => self.max(u),
                Reduction::Min => self.min(u),
            }
        }
    })*};
}
combine_int!(i8, u8, i16, u16, i32, u32, i64, u64);
macro_rules! combine_float {
    ($($t:ty),*) => {$(impl Combine for $t {
        fn combine(self, u: Self, r: Reduction) -> Self {
            match r {
                Reduction::None => u,
                Reduction::Add => self + u,
                Reduction::Mul => self * u,
                Reduction::Max => self.max(u),
                Reduction::Min => self.min(u),
            }
        }
    })*};
}
combine_float!(f32, f64);
macro_rules! combine_half {
    ($($t:ty),*) => {$(impl Combine for $t {
        fn combine(self, u: Self, r: Reduction) -> Self {
            <$t>::from_f32(self.to_f32().combine(u.to_f32(), r))
        }
    })*};
}
combine_half!(f16, bf16);

/// Applies `f(dst_offset, update_index)` pairs: plain copies for `none`, typed reductions otherwise.
fn apply<F>(out: &mut Tensor, upd: &TensorView, r: Reduction, pairs: F) -> Result<()>
where
    F: Fn(&mut dyn FnMut(usize, usize)),
{
    if upd.dtype() != out.dtype() {
        bail!(
            "updates dtype {} differs from data dtype {}",
            upd.dtype(),
            out.dtype()
        );
    }
    if r == Reduction::None {
        dispatch_data!(out.dtype(), T => {
            let u = T::src(upd)?;
            let d = T::dst(out)?;
            pairs(&mut |o, i| d[o] = u[i].clone());
        });
        return Ok(());
    }
    crate::dispatch_numeric!(out.dtype(), T => {
        let u = upd.as_slice::<T>()?;
        let d = out.as_slice_mut::<T>()?;
        pairs(&mut |o, i| d[o] = d[o].combine(u[i], r));
    }, _ => bail!("reduction {r:?} is not defined for {} tensors", out.dtype()));
    Ok(())
}

// ---------------------------------------------------------------- ScatterElements

/// `ScatterElements` / `Scatter`: `out[.., indices[i], ..] = updates[i]` along `axis`.
#[derive(Debug, Clone, Default)]
pub struct ScatterElements {
    pub axis: i64,
    pub reduction: Reduction,
}

impl Op for ScatterElements {
    fn name(&self) -> &'static str {
        "ScatterElements"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let f = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![Fact { konst: None, ..f }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "ScatterElements")?;
        let ind = input(inputs, 1, "ScatterElements")?;
        let upd = input(inputs, 2, "ScatterElements")?;
        if ind.shape() != upd.shape() {
            bail!(
                "ScatterElements: indices {:?} and updates {:?} must have the same shape",
                ind.shape(),
                upd.shape()
            );
        }
        let axis = check_elements_shapes("ScatterElements", x.shape(), ind.shape(), self.axis)?;
        let idx = resolve_indices(ind, x.shape()[axis], "ScatterElements")?;
        let mut out = copy_reshaped(ctx, x, x.shape())?;
        let ds = strides(x.shape());
        let is = ind.shape();
        let rank = is.len();
        apply(&mut out, upd, self.reduction, |f| {
            let mut pos = vec![0usize; rank];
            for (k, &i) in idx.iter().enumerate() {
                let off: usize = (0..rank)
                    .map(|a| if a == axis { i * ds[a] } else { pos[a] * ds[a] })
                    .sum();
                f(off, k);
                for a in (0..rank).rev() {
                    pos[a] += 1;
                    if pos[a] < is[a] {
                        break;
                    }
                    pos[a] = 0;
                }
            }
        })
        .map_err(|e| uniml_data::Error::Shape(format!("ScatterElements: {e}")))?;
        Ok(vec![out])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- ScatterND

/// `ScatterND`: each index tuple (last indices axis) selects a slice of
/// `data` that the matching slice of `updates` replaces or combines with.
#[derive(Debug, Clone, Default)]
pub struct ScatterND {
    pub reduction: Reduction,
}

impl Op for ScatterND {
    fn name(&self) -> &'static str {
        "ScatterND"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let f = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![Fact { konst: None, ..f }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "ScatterND")?;
        let ind = input(inputs, 1, "ScatterND")?;
        let upd = input(inputs, 2, "ScatterND")?;
        let (_, _, m, slice) = nd_geometry("ScatterND", x.shape(), ind.shape(), 0)?;
        let q = ind.shape().len();
        let mut want = ind.shape()[..q - 1].to_vec();
        want.extend_from_slice(&x.shape()[m..]);
        if upd.shape() != want.as_slice() {
            bail!(
                "ScatterND: updates have shape {:?}, expected {want:?}",
                upd.shape()
            );
        }
        let offs = nd_offsets("ScatterND", x.shape(), ind, 0)?;
        let mut out = copy_reshaped(ctx, x, x.shape())?;
        apply(&mut out, upd, self.reduction, |f| {
            for (k, &o) in offs.iter().enumerate() {
                for j in 0..slice {
                    f(o + j, k * slice + j);
                }
            }
        })
        .map_err(|e| uniml_data::Error::Shape(format!("ScatterND: {e}")))?;
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
    fn scatter_elements_with_reductions() {
        let d = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        let x = TensorView::from_slice(&[1, 5], &d).unwrap();
        let i = [1i64, -2, 1];
        let u = [10.0f32, 20.0, 30.0];
        let iv = TensorView::from_slice(&[1, 3], &i).unwrap();
        let uv = TensorView::from_slice(&[1, 3], &u).unwrap();
        let none = run(
            &ScatterElements {
                axis: 1,
                reduction: Reduction::None,
            },
            &[Some(x.clone()), Some(iv.clone()), Some(uv.clone())],
        )
        .unwrap();
        assert_eq!(
            none[0].as_slice::<f32>().unwrap(),
            &[1.0, 30.0, 3.0, 20.0, 5.0]
        );
        let add = run(
            &ScatterElements {
                axis: 1,
                reduction: Reduction::Add,
            },
            &[Some(x.clone()), Some(iv.clone()), Some(uv.clone())],
        )
        .unwrap();
        assert_eq!(
            add[0].as_slice::<f32>().unwrap(),
            &[1.0, 42.0, 3.0, 24.0, 5.0]
        );
        let max = run(
            &ScatterElements {
                axis: 1,
                reduction: Reduction::Max,
            },
            &[Some(x.clone()), Some(iv), Some(uv)],
        )
        .unwrap();
        assert_eq!(
            max[0].as_slice::<f32>().unwrap(),
            &[1.0, 30.0, 3.0, 20.0, 5.0]
        );
        let bad = [5i64];
        let one = [1.0f32];
        assert!(run(
            &ScatterElements::default(),
            &[
                Some(x),
                Some(TensorView::from_slice(&[1, 1], &bad).unwrap()),
                Some(TensorView::from_slice(&[1, 1], &one).unwrap())
            ]
        )
        .is_err());
    }

    #[test]
    fn scatter_nd_slices() {
        let d = [0i64; 8];
        let x = TensorView::from_slice(&[4, 2], &d).unwrap();
        let i = [2i64, 0, 2];
        let u = [1i64, 2, 3, 4, 5, 6];
        let out = run(
            &ScatterND {
                reduction: Reduction::Mul,
            },
            &[
                Some(x.clone()),
                Some(TensorView::from_slice(&[3, 1], &i).unwrap()),
                Some(TensorView::from_slice(&[3, 2], &u).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[0; 8]);
        let out = run(
            &ScatterND {
                reduction: Reduction::Add,
            },
            &[
                Some(x),
                Some(TensorView::from_slice(&[3, 1], &i).unwrap()),
                Some(TensorView::from_slice(&[3, 2], &u).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[3, 4, 0, 0, 6, 8, 0, 0]);
    }
}
