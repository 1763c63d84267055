//! `Expand` (numpy broadcast to a shape) and `Tile` (repeat along each axis),
//! both on the index-map copy engine.

use uniml_data::{bail, broadcast_shapes, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::generate::shape_from;
use super::index_map::map_copy;
use super::{checked_numel, fact, fold_small, konst_ints, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::broadcast_symbolic;

fn map_into<T: Data>(
    ctx: &EvalCtx,
    x: &TensorView,
    src_shape: &[usize],
    maps: &[Vec<Option<usize>>],
    out: &mut Tensor,
) -> Result<()> {
    let src = T::src(x)?;
    let Some(fill) = src.first() else {
        return Ok(());
    };
    map_copy(ctx.par, src, src_shape, maps, fill, T::dst(out)?)
}

// ---------------------------------------------------------------- Expand

/// `Expand`: broadcasts the input against the shape in input 1 (both ways).
#[derive(Debug, Clone, Default)]
pub struct Expand;

impl Op for Expand {
    fn name(&self) -> &'static str {
        "Expand"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let xs = inputs.first().and_then(|f| f.shape.as_ref());
        let shape = match (xs, konst_ints(inputs, 1)) {
            (Some(xs), Some(v)) => {
                let target = SymbolicShape(
                    v.iter()
                        .map(|&d| {
                            if d >= 0 {
                                Dim::Known(d as usize)
                            } else {
                                Dim::Unknown
                            }
                        })
                        .collect(),
                );
                Some(broadcast_symbolic(&[xs, &target])?)
            }
            (Some(xs), None) => match inputs
                .get(1)
                .and_then(|f| f.shape.as_ref())
                .and_then(|s| s.0.first())
                .and_then(Dim::known)
            {
                Some(n) => Some(SymbolicShape(vec![Dim::Unknown; n.max(xs.rank())])),
                None => None,
            },
            _ => None,
        };
        let f = match shape {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        };
        Ok(fold_small(self, inputs, vec![f]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Expand")?;
        let target = shape_from(input(inputs, 1, "Expand")?, "Expand shape")?;
        let out_shape = broadcast_shapes(&[x.shape(), &target])
            .map_err(|e| uniml_data::Error::Shape(format!("Expand: {e}")))?;
        checked_numel(&out_shape)?;
        let off = out_shape.len() - x.shape().len();
        let mut src_shape = vec![1usize; off];
        src_shape.extend_from_slice(x.shape());
        let maps: Vec<Vec<Option<usize>>> = out_shape
            .iter()
            .zip(&src_shape)
            .map(|(&o, &s)| {
                if s == 1 {
                    vec![Some(0); o]
                } else {
                    (0..o).map(Some).collect()
                }
            })
            .collect();
        let mut out = ctx.alloc(x.dtype(), &out_shape)?;
        if !out.is_empty() {
            dispatch_data!(x.dtype(), T => map_into::<T>(ctx, x, &src_shape, &maps, &mut out)?);
        }
        Ok(vec![out])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- Tile

/// `Tile`: repeats the input `repeats[a]` times along each axis `a`.
#[derive(Debug, Clone, Default)]
pub struct Tile;

impl Op for Tile {
    fn name(&self) -> &'static str {
        "Tile"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let xs = inputs.first().and_then(|f| f.shape.as_ref());
        let shape = match (xs, konst_ints(inputs, 1)) {
            (Some(xs), Some(r)) => {
                if r.len() != xs.rank() {
                    bail!("Tile: {} repeats for a rank-{} input", r.len(), xs.rank());
                }
                Some(SymbolicShape(
                    xs.0.iter()
                        .zip(&r)
                        .map(|(d, &k)| match (d, k) {
                            (d, 1) => d.clone(),
                            (Dim::Known(v), k) if k >= 0 => Dim::Known(v * k as usize),
                            _ => Dim::Unknown,
                        })
                        .collect(),
                ))
            }
            (Some(xs), None) => Some(SymbolicShape(vec![Dim::Unknown; xs.rank()])),
            _ => None,
        };
        let f = match shape {
            Some(s) => fact(dtype, s),
            None => Fact::dtype_only(dtype),
        };
        Ok(fold_small(self, inputs, vec![f]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Tile")?;
        let reps = shape_from(input(inputs, 1, "Tile")?, "Tile repeats")?;
        if reps.len() != x.shape().len() {
            bail!(
                "Tile: {} repeats for an input of shape {:?}",
                reps.len(),
                x.shape()
            );
        }
        let out_shape: Vec<usize> = x
            .shape()
            .iter()
            .zip(&reps)
            .map(|(&d, &r)| d.checked_mul(r))
            .collect::<Option<_>>()
            .ok_or_else(|| uniml_data::Error::Shape("Tile: output too large".into()))?;
        checked_numel(&out_shape)?;
        let maps: Vec<Vec<Option<usize>>> = out_shape
            .iter()
            .zip(x.shape())
            .map(|(&o, &d)| (0..o).map(|j| Some(j % d)).collect())
            .collect();
        let mut out = ctx.alloc(x.dtype(), &out_shape)?;
        if !out.is_empty() {
            dispatch_data!(x.dtype(), T => map_into::<T>(ctx, x, x.shape(), &maps, &mut out)?);
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
    fn expand_both_ways() {
        let d = [1.0f32, 2.0, 3.0];
        let x = TensorView::from_slice(&[3, 1], &d).unwrap();
        let s = [2i64, 1, 2];
        let out = run(
            &Expand,
            &[
                Some(x.clone()),
                Some(TensorView::from_slice(&[3], &s).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 3, 2]);
        assert_eq!(
            out[0].as_slice::<f32>().unwrap(),
            &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
        );
        let bad = [2i64, 2];
        assert!(run(
            &Expand,
            &[Some(x), Some(TensorView::from_slice(&[2], &bad).unwrap())]
        )
        .is_err());
    }

    #[test]
    fn tile_repeats() {
        let d = [1i32, 2, 3, 4];
        let x = TensorView::from_slice(&[2, 2], &d).unwrap();
        let r = [2i64, 2];
        let out = run(
            &Tile,
            &[Some(x), Some(TensorView::from_slice(&[2], &r).unwrap())],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[4, 4]);
        assert_eq!(
            out[0].as_slice::<i32>().unwrap(),
            &[1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4]
        );
    }
}
