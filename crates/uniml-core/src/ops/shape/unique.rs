//! `Unique`: distinct elements (or slices along `axis`), sorted ascending or
//! in order of first occurrence, with first-occurrence indices, inverse
//! indices and counts (all int64), as numpy.unique / onnxruntime.

use std::cmp::Ordering;

use uniml_data::{bail, DType, Dim, Element, Result, SymbolicShape, Tensor, TensorView};

use super::{fact, numel};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::norm_axis;

#[derive(Debug, Clone)]
pub struct Unique {
    pub axis: Option<i64>,
    pub sorted: bool,
}

impl Default for Unique {
    fn default() -> Self {
        Unique {
            axis: None,
            sorted: true,
        }
    }
}

/// Ascending with NaN last (NaNs equal to each other).
fn cmp_total<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    #[allow(clippy::eq_op)]
    a.partial_cmp(b).unwrap_or_else(|| match (a != a, b != b) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        _ => Ordering::Less,
    })
}

struct Uniq<T> {
    y: Vec<T>,
    n_unique: usize,
    first: Vec<i64>,
    inverse: Vec<i64>,
    counts: Vec<i64>,
}

/// Unique slices of `src` viewed as `[outer, d, inner]` along the middle axis.
fn unique_core<T: PartialOrd + Clone>(
    src: &[T],
    outer: usize,
    d: usize,
    inner: usize,
    sorted: bool,
) -> Uniq<T> {
    let elem = |s: usize, k: usize| &src[((k / inner) * d + s) * inner + k % inner];
    let width = outer * inner;
    let cmp_slices = |a: &usize, b: &usize| -> Ordering {
        for k in 0..width {
            match cmp_total(elem(*a, k), elem(*b, k)) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    };
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(cmp_slices); // stable: ties keep index order
                               // Groups of equal slices, in sorted order; the first member is the first occurrence.
    let mut group_of = vec![0usize; d];
    let mut groups: Vec<(usize, i64)> = Vec::new(); // (first index, count)
    for (p, &s) in order.iter().enumerate() {
        if p == 0 || cmp_slices(&order[p - 1], &s) != Ordering::Equal {
            groups.push((s, 0));
        }
        let g = groups.len() - 1;
        groups[g].1 += 1;
        group_of[s] = g;
    }
    // Output order of the groups.
    let mut rank: Vec<usize> = (0..groups.len()).collect();
    if !sorted {
        let mut by_first: Vec<usize> = (0..groups.len()).collect();
        by_first.sort_by_key(|&g| groups[g].0);
        for (pos, &g) in by_first.iter().enumerate() {
            rank[g] = pos;
        }
    }
    let mut out_groups = vec![0usize; groups.len()];
    for (g, &r) in rank.iter().enumerate() {
        out_groups[r] = g;
    }
    let first: Vec<i64> = out_groups.iter().map(|&g| groups[g].0 as i64).collect();
    let counts: Vec<i64> = out_groups.iter().map(|&g| groups[g].1).collect();
    let inverse: Vec<i64> = (0..d).map(|s| rank[group_of[s]] as i64).collect();
    let mut y = Vec::with_capacity(outer * groups.len() * inner);
    for o in 0..outer {
        for &f in &first {
            let s = f as usize;
            y.extend_from_slice(&src[(o * d + s) * inner..(o * d + s + 1) * inner]);
        }
    }
    Uniq {
        y,
        n_unique: groups.len(),
        first,
        inverse,
        counts,
    }
}

impl Op for Unique {
    fn name(&self) -> &'static str {
        "Unique"
    }
    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let y = match (self.axis, inputs.first().and_then(|f| f.shape.as_ref())) {
            (None, _) => fact(dtype, SymbolicShape(vec![Dim::Unknown])),
            (Some(a), Some(s)) => {
                let a = norm_axis(a, s.rank())?;
                let mut dims = s.0.clone();
                dims[a] = Dim::Unknown;
                fact(dtype, SymbolicShape(dims))
            }
            _ => Fact::dtype_only(dtype),
        };
        let vec1 = fact(Some(DType::I64), SymbolicShape(vec![Dim::Unknown]));
        let mut out = vec![vec1; n.max(1)];
        out[0] = y;
        Ok(out)
    }
    fn eval(&self, _ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Unique")?;
        let flat = [x.len()];
        let (shape, axis) = match self.axis {
            Some(a) => (x.shape(), norm_axis(a, x.shape().len())?),
            None => (&flat[..], 0),
        };
        let (outer, d, inner) = (
            numel(&shape[..axis]),
            shape[axis],
            numel(&shape[axis + 1..]),
        );
        let out_shape = |u: usize| {
            let mut s = shape.to_vec();
            s[axis] = u;
            s
        };
        fn pack<T: Element>(shape: &[usize], u: Uniq<T>) -> Result<(Tensor, Uniq<T>)> {
            Ok((Tensor::from_slice(shape, &u.y)?, u))
        }
        let (y, first, inverse, counts) = match x.dtype() {
            DType::String => {
                let u = unique_core(x.as_strings()?, outer, d, inner, self.sorted);
                (
                    Tensor::from_strings(&out_shape(u.n_unique), u.y)?,
                    u.first,
                    u.inverse,
                    u.counts,
                )
            }
            DType::Bool => {
                let u = unique_core(x.as_bytes(), outer, d, inner, self.sorted);
                (
                    Tensor::from_raw_bytes(DType::Bool, &out_shape(u.n_unique), &u.y)?,
                    u.first,
                    u.inverse,
                    u.counts,
                )
            }
            dt => crate::dispatch_numeric!(dt, T => {
                let u = unique_core(x.as_slice::<T>()?, outer, d, inner, self.sorted);
                let (t, u) = pack(&out_shape(u.n_unique), u)?;
                (t, u.first, u.inverse, u.counts)
            }, _ => bail!("Unique: {dt} is not supported")),
        };
        let v = |a: Vec<i64>| Tensor::from_slice(&[a.len()], &a);
        Ok(vec![y, v(first)?, v(inverse)?, v(counts)?])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &Unique, x: TensorView) -> Vec<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        op.eval(&mut ctx, &[Some(x)]).unwrap()
    }

    #[test]
    fn unique_sorted_and_unsorted() {
        let d = [2.0f32, 1.0, 1.0, 3.0, 4.0, 3.0];
        let x = TensorView::from_slice(&[6], &d).unwrap();
        let o = run(
            &Unique {
                axis: None,
                sorted: true,
            },
            x.clone(),
        );
        assert_eq!(o[0].as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(o[1].as_slice::<i64>().unwrap(), &[1, 0, 3, 4]);
        assert_eq!(o[2].as_slice::<i64>().unwrap(), &[1, 0, 0, 2, 3, 2]);
        assert_eq!(o[3].as_slice::<i64>().unwrap(), &[2, 1, 2, 1]);
        let o = run(
            &Unique {
                axis: None,
                sorted: false,
            },
            x,
        );
        assert_eq!(o[0].as_slice::<f32>().unwrap(), &[2.0, 1.0, 3.0, 4.0]);
        assert_eq!(o[1].as_slice::<i64>().unwrap(), &[0, 1, 3, 4]);
        assert_eq!(o[2].as_slice::<i64>().unwrap(), &[0, 1, 1, 2, 3, 2]);
        assert_eq!(o[3].as_slice::<i64>().unwrap(), &[1, 2, 2, 1]);
    }

    #[test]
    fn unique_rows() {
        // numpy.unique([[1,0,0],[1,0,0],[2,3,4]], axis=0)
        let d = [1i64, 0, 0, 1, 0, 0, 2, 3, 4];
        let o = run(
            &Unique {
                axis: Some(0),
                sorted: true,
            },
            TensorView::from_slice(&[3, 3], &d).unwrap(),
        );
        assert_eq!(o[0].shape(), &[2, 3]);
        assert_eq!(o[0].as_slice::<i64>().unwrap(), &[1, 0, 0, 2, 3, 4]);
        assert_eq!(o[2].as_slice::<i64>().unwrap(), &[0, 0, 1]);
    }
}
