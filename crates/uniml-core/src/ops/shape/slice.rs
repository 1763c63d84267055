//! `Slice` (opset 1–23): starts/ends/axes/steps with numpy clamping and
//! negative steps. Parameters are attributes before opset 10, inputs 1–4 after.

use uniml_data::{bail, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::index_map::map_copy;
use super::{fact, fold_small, ints_param, ints_param_fact, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::norm_axis;

/// `Slice`. Each field is the attribute (opset < 10) or a constant input
/// known at import; `None` means input 1/2/3/4 at run time, or the default
/// (all axes, step 1) when that input is absent.
#[derive(Debug, Clone, Default)]
pub struct Slice {
    pub starts: Option<Vec<i64>>,
    pub ends: Option<Vec<i64>>,
    pub axes: Option<Vec<i64>>,
    pub steps: Option<Vec<i64>>,
}

/// One axis of a slice: first source index, step, and output length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AxisSlice {
    pub start: i64,
    pub step: i64,
    pub len: usize,
}

/// Clamps `start..end` by `step` against a dim of size `d` (ONNX/numpy rules).
pub fn slice_axis(start: i64, end: i64, step: i64, d: usize) -> Result<AxisSlice> {
    if step == 0 {
        bail!("Slice: step must not be 0");
    }
    let d = d as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, len) = if step > 0 {
        let s = s.clamp(0, d);
        let e = e.clamp(0, d);
        (s, if e > s { (e - s + step - 1) / step } else { 0 })
    } else {
        if d == 0 {
            return Ok(AxisSlice {
                start: 0,
                step,
                len: 0,
            });
        }
        let s = s.clamp(0, d - 1);
        let e = e.clamp(-1, d - 1);
        (
            s,
            if s > e {
                (s - e + (-step) - 1) / (-step)
            } else {
                0
            },
        )
    };
    Ok(AxisSlice {
        start: s,
        step,
        len: len as usize,
    })
}

/// Validated per-axis parameters: `(axis, start, end, step)`.
fn params(
    rank: usize,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<(usize, i64, i64, i64)>> {
    let n = starts.len();
    if ends.len() != n {
        bail!("Slice: {} starts but {} ends", n, ends.len());
    }
    let axes: Vec<usize> = match axes {
        Some(a) => {
            if a.len() != n {
                bail!("Slice: {} starts but {} axes", n, a.len());
            }
            a.iter()
                .map(|&x| norm_axis(x, rank))
                .collect::<Result<_>>()?
        }
        None => {
            if n > rank {
                bail!("Slice: {n} starts for a rank-{rank} input");
            }
            (0..n).collect()
        }
    };
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].contains(a) {
            bail!("Slice: axis {a} is repeated");
        }
    }
    let steps: Vec<i64> = match steps {
        Some(s) if s.len() != n => bail!("Slice: {} starts but {} steps", n, s.len()),
        Some(s) => s.to_vec(),
        None => vec![1; n],
    };
    Ok((0..n)
        .map(|i| (axes[i], starts[i], ends[i], steps[i]))
        .collect())
}

impl Slice {
    fn resolve(&self, inputs: &[Option<TensorView>]) -> Result<[Option<Vec<i64>>; 4]> {
        Ok([
            ints_param(&self.starts, inputs, 1, "Slice starts")?,
            ints_param(&self.ends, inputs, 2, "Slice ends")?,
            ints_param(&self.axes, inputs, 3, "Slice axes")?,
            ints_param(&self.steps, inputs, 4, "Slice steps")?,
        ])
    }
}

fn slice_into<T: Data>(
    ctx: &EvalCtx,
    x: &TensorView,
    plan: &[AxisSlice],
    out: &mut Tensor,
) -> Result<()> {
    let maps: Vec<Vec<Option<usize>>> = plan
        .iter()
        .map(|p| {
            (0..p.len)
                .map(|j| Some((p.start + j as i64 * p.step) as usize))
                .collect()
        })
        .collect();
    let src = T::src(x)?;
    // Any element serves as the (unused) fill value.
    let Some(fill) = src.first() else {
        return Ok(());
    };
    map_copy(ctx.par, src, x.shape(), &maps, fill, T::dst(out)?)
}

impl Op for Slice {
    fn name(&self) -> &'static str {
        "Slice"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let p = [
            ints_param_fact(&self.starts, inputs, 1),
            ints_param_fact(&self.ends, inputs, 2),
            ints_param_fact(&self.axes, inputs, 3),
            ints_param_fact(&self.steps, inputs, 4),
        ];
        let shape = match (&x.shape, p) {
            (Some(s), [Some(Some(st)), Some(Some(en)), Some(ax), Some(sp)]) => {
                let mut dims = s.0.clone();
                for (a, b, e, step) in params(s.rank(), &st, &en, ax.as_deref(), sp.as_deref())? {
                    dims[a] = match &s.0[a] {
                        Dim::Known(d) => Dim::Known(slice_axis(b, e, step, *d)?.len),
                        // Whole symbolic axis kept as is.
                        other if b == 0 && step == 1 && e >= i32::MAX as i64 => other.clone(),
                        _ => Dim::Unknown,
                    };
                }
                Some(SymbolicShape(dims))
            }
            (Some(s), _) => Some(SymbolicShape(vec![Dim::Unknown; s.rank()])),
            _ => None,
        };
        let f = match shape {
            Some(s) => fact(x.dtype, s),
            None => Fact::dtype_only(x.dtype),
        };
        Ok(fold_small(self, inputs, vec![f]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Slice")?;
        let [starts, ends, axes, steps] = self.resolve(inputs)?;
        let (Some(starts), Some(ends)) = (starts, ends) else {
            bail!("Slice: starts and ends are required")
        };
        let rank = x.shape().len();
        let mut plan: Vec<AxisSlice> = x
            .shape()
            .iter()
            .map(|&d| AxisSlice {
                start: 0,
                step: 1,
                len: d,
            })
            .collect();
        for (a, b, e, step) in params(rank, &starts, &ends, axes.as_deref(), steps.as_deref())? {
            plan[a] = slice_axis(b, e, step, x.shape()[a])?;
        }
        let out_shape: Vec<usize> = plan.iter().map(|p| p.len).collect();
        let mut out = ctx.alloc(x.dtype(), &out_shape)?;
        if !out.is_empty() {
            dispatch_data!(x.dtype(), T => slice_into::<T>(ctx, x, &plan, &mut out)?);
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

    #[test]
    fn axis_clamping_matches_numpy() {
        // numpy: list(range(10))[s:e:k] lengths
        let cases = [
            (0, 3, 1, 3),
            (-3, i64::MAX, 1, 3),
            (20, 30, 1, 0),
            (-100, 2, 1, 2),
            (9, i64::MIN, -1, 10),
            (-1, -11, -2, 5),
            (5, 2, -3, 1),
            (2, 5, -1, 0),
            (1, 9, 3, 3),
        ];
        for (s, e, k, n) in cases {
            assert_eq!(slice_axis(s, e, k, 10).unwrap().len, n, "{s}:{e}:{k}");
        }
        assert_eq!(slice_axis(-1, i64::MIN, -1, 10).unwrap().start, 9);
        assert!(slice_axis(0, 1, 0, 10).is_err());
    }

    #[test]
    fn slices_with_negative_steps() {
        let d: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let x = TensorView::from_slice(&[3, 4], &d).unwrap();
        let op = Slice {
            starts: Some(vec![-1, 3]),
            ends: Some(vec![i64::MIN, 0]),
            axes: Some(vec![0, 1]),
            steps: Some(vec![-2, -2]),
        };
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let out = op.eval(&mut ctx, &[Some(x.clone())]).unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[11.0, 9.0, 3.0, 1.0]);
        let bad = Slice {
            starts: Some(vec![0]),
            ends: Some(vec![1]),
            axes: Some(vec![2]),
            steps: None,
        };
        assert!(bad.eval(&mut ctx, &[Some(x)]).is_err());
    }
}
