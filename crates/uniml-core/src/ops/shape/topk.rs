//! `TopK`: the `k` largest (or smallest) values along an axis and their
//! int64 indices. Ordering is total and stable like onnxruntime's: equal
//! values keep the lower index first; NaN ranks above every number.

use std::cmp::Ordering;

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{fact, ints_of, numel};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::norm_axis;

/// `TopK`. `k` is the attribute (opset < 10) or the constant input 1; when
/// `None`, input 1 is read at run time.
#[derive(Debug, Clone)]
pub struct TopK {
    pub axis: i64,
    pub largest: bool,
    pub sorted: bool,
    pub k: Option<i64>,
}

impl Default for TopK {
    fn default() -> Self {
        TopK {
            axis: -1,
            largest: true,
            sorted: true,
            k: None,
        }
    }
}

/// Ascending order with NaN above everything (NaN == NaN).
fn cmp_nan_last<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    #[allow(clippy::eq_op)]
    match a.partial_cmp(b) {
        Some(o) => o,
        None => match (a != a, b != b) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            _ => Ordering::Less,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn topk_lanes<T: PartialOrd + Copy + Default + uniml_data::Element>(
    x: &TensorView,
    outer: usize,
    d: usize,
    inner: usize,
    k: usize,
    largest: bool,
    vals: &mut Tensor,
    idxs: &mut Tensor,
) -> Result<()> {
    let src = x.as_slice::<T>()?;
    let vo = vals.as_slice_mut::<T>()?;
    let io = idxs.as_slice_mut::<i64>()?;
    let cmp = |a: &(T, usize), b: &(T, usize)| -> Ordering {
        let o = cmp_nan_last(&a.0, &b.0);
        let o = if largest { o.reverse() } else { o };
        o.then(a.1.cmp(&b.1))
    };
    let mut lane: Vec<(T, usize)> = Vec::with_capacity(d);
    for o in 0..outer {
        for i in 0..inner {
            lane.clear();
            let base = o * d * inner + i;
            if k * 4 <= d {
                // Small k: keep candidates better than a threshold (the k-th
                // best so far), pruning to k whenever `cap` accumulate; most
                // elements are rejected by one comparison.
                let mut thr: Option<(T, usize)> = None;
                let cap = (2 * k).max(k + 64);
                for j in 0..d {
                    let c = (src[base + j * inner], j);
                    if thr.as_ref().is_some_and(|t| cmp(&c, t) != Ordering::Less) {
                        continue;
                    }
                    lane.push(c);
                    if lane.len() == cap {
                        lane.select_nth_unstable_by(k - 1, cmp);
                        lane.truncate(k);
                        thr = lane.last().copied();
                    }
                }
                if lane.len() > k {
                    lane.select_nth_unstable_by(k - 1, cmp);
                    lane.truncate(k);
                }
                lane.sort_unstable_by(cmp);
            } else {
                lane.extend((0..d).map(|j| (src[base + j * inner], j)));
                if k < d {
                    lane.select_nth_unstable_by(k - 1, cmp);
                    lane.truncate(k);
                }
                lane.sort_unstable_by(cmp);
            }
            let obase = o * k * inner + i;
            for (j, &(v, ix)) in lane.iter().enumerate() {
                vo[obase + j * inner] = v;
                io[obase + j * inner] = ix as i64;
            }
        }
    }
    Ok(())
}

impl Op for TopK {
    fn name(&self) -> &'static str {
        "TopK"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let Some(s) = inputs.first().and_then(|f| f.shape.as_ref()) else {
            return Ok(vec![
                Fact::dtype_only(dtype),
                Fact::dtype_only(Some(DType::I64)),
            ]);
        };
        let axis = norm_axis(self.axis, s.rank())?;
        let k = self
            .k
            .or_else(|| super::konst_ints(inputs, 1).and_then(|v| v.first().copied()));
        let mut dims = s.0.clone();
        dims[axis] = match k {
            Some(k) if k >= 0 => Dim::Known(k as usize),
            _ => Dim::Unknown,
        };
        let shape = SymbolicShape(dims);
        Ok(vec![
            fact(dtype, shape.clone()),
            fact(Some(DType::I64), shape),
        ])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "TopK")?;
        let k = match self.k {
            Some(k) => k,
            None => match ints_of(input(inputs, 1, "TopK")?, "TopK k")?.as_slice() {
                [k] => *k,
                other => bail!("TopK: k must have exactly one element, got {other:?}"),
            },
        };
        let shape = x.shape();
        if shape.is_empty() {
            bail!("TopK: the input must have rank >= 1");
        }
        let axis = norm_axis(self.axis, shape.len())?;
        let d = shape[axis];
        if k < 0 || k as usize > d {
            bail!("TopK: k = {k} is out of range for an axis of length {d}");
        }
        let k = k as usize;
        let mut out_shape = shape.to_vec();
        out_shape[axis] = k;
        let mut vals = ctx.alloc(x.dtype(), &out_shape)?;
        let mut idxs = ctx.alloc(DType::I64, &out_shape)?;
        if k > 0 {
            let (outer, inner) = (numel(&shape[..axis]), numel(&shape[axis + 1..]));
            crate::dispatch_numeric!(x.dtype(), T => topk_lanes::<T>(x, outer, d, inner, k, self.largest, &mut vals, &mut idxs)?,
                _ => bail!("TopK: {} is not supported", x.dtype()));
        }
        Ok(vec![vals, idxs])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &TopK, x: TensorView) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        op.eval(&mut ctx, &[Some(x)])
    }

    #[test]
    fn ties_prefer_lower_index() {
        let d = [1.0f32, 3.0, 3.0, 2.0, 3.0];
        let x = TensorView::from_slice(&[5], &d).unwrap();
        let out = run(
            &TopK {
                k: Some(3),
                ..TopK::default()
            },
            x.clone(),
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[3.0, 3.0, 3.0]);
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[1, 2, 4]);
        let out = run(
            &TopK {
                k: Some(2),
                largest: false,
                ..TopK::default()
            },
            x.clone(),
        )
        .unwrap();
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[0, 3]);
        assert!(run(
            &TopK {
                k: Some(6),
                ..TopK::default()
            },
            x
        )
        .is_err());
    }

    #[test]
    fn small_k_scan_matches_full_sort() {
        let d: Vec<f32> = (0..200).map(|i| ((i * 37) % 23) as f32).collect();
        let x = TensorView::from_slice(&[200], &d).unwrap();
        for largest in [true, false] {
            let small = run(
                &TopK {
                    k: Some(7),
                    largest,
                    ..TopK::default()
                },
                x.clone(),
            )
            .unwrap();
            let big = run(
                &TopK {
                    k: Some(120),
                    largest,
                    ..TopK::default()
                },
                x.clone(),
            )
            .unwrap();
            assert_eq!(
                small[1].as_slice::<i64>().unwrap(),
                &big[1].as_slice::<i64>().unwrap()[..7]
            );
            assert_eq!(
                small[0].as_slice::<f32>().unwrap(),
                &big[0].as_slice::<f32>().unwrap()[..7]
            );
        }
    }

    #[test]
    fn along_inner_axis_and_nan() {
        let d = [1.0f32, f32::NAN, 5.0, 2.0];
        let x = TensorView::from_slice(&[2, 2], &d).unwrap();
        let out = run(
            &TopK {
                k: Some(1),
                axis: 0,
                ..TopK::default()
            },
            x,
        )
        .unwrap();
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[1, 0]);
    }
}
