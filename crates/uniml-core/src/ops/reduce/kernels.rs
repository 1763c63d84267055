//! Reduction machinery shared by the reduce ops.
//!
//! Any reduction is brought to the layout `[outer, r, inner]` (reduce the
//! middle axis): size-1 dims are dropped and adjacent dims with the same
//! reduced/kept flag merged; when the reduced dims still form more than one
//! block the input is first permuted to `[kept..., reduced...]`. Then:
//! - `inner == 1` (innermost axis): each output folds one contiguous row with
//!   8 independent accumulators (vectorisable);
//! - `inner > 1` (middle axis): whole rows of `inner` values are combined
//!   into an accumulator row — no index math per element.
//!
//! Accumulation types ([`Acc`]): f32 (f32/f16/bf16 data), f64, i64 (signed
//! ints), u64 (unsigned ints and bool).

use crate::ops::elementwise::kernel::{PAR_CHUNK, PAR_THRESHOLD};
use crate::ops::elementwise::num::Num;
use crate::parallel::{par_chunks_mut, Parallelism};

/// An accumulation type: [`Num`] plus the float functions some reductions need
/// (integers go through f64).
pub trait Acc: Num {
    fn exp_(self) -> Self;
    fn ln_(self) -> Self;
    fn sqrt_(self) -> Self;
    fn is_finite_(self) -> bool;
}

impl Acc for f32 {
    #[inline(always)]
    fn exp_(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn ln_(self) -> Self {
        self.ln()
    }
    #[inline(always)]
    fn sqrt_(self) -> Self {
        self.sqrt()
    }
    #[inline(always)]
    fn is_finite_(self) -> bool {
        self.is_finite()
    }
}

impl Acc for f64 {
    #[inline(always)]
    fn exp_(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn ln_(self) -> Self {
        self.ln()
    }
    #[inline(always)]
    fn sqrt_(self) -> Self {
        self.sqrt()
    }
    #[inline(always)]
    fn is_finite_(self) -> bool {
        self.is_finite()
    }
}

macro_rules! acc_int {
    ($($t:ty),*) => {$(
        impl Acc for $t {
            #[inline(always)] fn exp_(self) -> Self { Self::from_f64(self.to_f64().exp()) }
            #[inline(always)] fn ln_(self) -> Self { Self::from_f64(self.to_f64().ln()) }
            #[inline(always)] fn sqrt_(self) -> Self { Self::from_f64(self.to_f64().sqrt()) }
            #[inline(always)] fn is_finite_(self) -> bool { true }
        }
    )*};
}
acc_int!(i64, u64);

/// The reduction `[outer, r, inner]`, with an optional input permutation.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub outer: usize,
    pub r: usize,
    pub inner: usize,
    /// Input dims order to copy the data into before reducing, if needed.
    pub perm: Option<Vec<usize>>,
}

/// Plans the reduction of `shape` over the dims flagged in `reduced`.
pub fn layout(shape: &[usize], reduced: &[bool]) -> Layout {
    let mut groups: Vec<(usize, bool)> = Vec::new();
    for (d, &n) in shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let red = reduced.get(d).copied().unwrap_or(false);
        match groups.last_mut() {
            Some((size, f)) if *f == red => *size *= n,
            _ => groups.push((n, red)),
        }
    }
    let n_red = groups.iter().filter(|g| g.1).count();
    if n_red <= 1 {
        let pos = groups.iter().position(|g| g.1);
        let (outer, r, inner) = match pos {
            Some(p) => (
                groups[..p].iter().map(|g| g.0).product(),
                groups[p].0,
                groups[p + 1..].iter().map(|g| g.0).product(),
            ),
            None => (groups.iter().map(|g| g.0).product(), 1, 1),
        };
        return Layout {
            outer,
            r,
            inner,
            perm: None,
        };
    }
    let kept: Vec<usize> = (0..shape.len()).filter(|&d| !reduced[d]).collect();
    let red: Vec<usize> = (0..shape.len()).filter(|&d| reduced[d]).collect();
    let outer = kept.iter().map(|&d| shape[d]).product();
    let r = red.iter().map(|&d| shape[d]).product();
    Layout {
        outer,
        r,
        inner: 1,
        perm: Some(kept.into_iter().chain(red).collect()),
    }
}

/// Copies `x` (of `shape`) into the dim order `perm`.
pub fn permute<A: Copy>(x: &[A], shape: &[usize], perm: &[usize]) -> Vec<A> {
    let strides = crate::ops::util::strides(shape);
    let dims: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let st: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let rank = dims.len();
    let mut idx = vec![0usize; rank];
    let mut off = 0usize;
    for _ in 0..total {
        out.push(x[off]);
        for d in (0..rank).rev() {
            idx[d] += 1;
            off += st[d];
            if idx[d] < dims[d] {
                break;
            }
            off -= st[d] * dims[d];
            idx[d] = 0;
        }
    }
    out
}

/// One reduction: `post(fold(init, comb, pre(x)))`.
pub struct Folder<A, P, C, Q> {
    pub init: A,
    pub pre: P,
    pub comb: C,
    pub post: Q,
}

/// Folds a contiguous row with 8 independent accumulators.
#[inline(always)]
fn fold_row<A: Acc>(row: &[A], init: A, pre: &impl Fn(A) -> A, comb: &impl Fn(A, A) -> A) -> A {
    let mut lanes = [init; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            lanes[k] = comb(lanes[k], pre(c[k]));
        }
    }
    let mut acc = init;
    for &v in chunks.remainder() {
        acc = comb(acc, pre(v));
    }
    for l in lanes {
        acc = comb(acc, l);
    }
    acc
}

/// Splits the outputs into parallel chunks sized by the work per output (`r`).
fn for_out_chunks<A: Send>(
    par: &dyn Parallelism,
    out: &mut [A],
    r: usize,
    f: &(dyn Fn(usize, &mut [A]) + Sync),
) {
    if out.len().saturating_mul(r.max(1)) < PAR_THRESHOLD || par.threads() <= 1 {
        f(0, out);
        return;
    }
    let chunk = PAR_CHUNK.div_ceil(r.max(1)).max(1);
    par_chunks_mut(par, out, chunk, &|ci, c| f(ci * chunk, c));
}

/// Runs a fold over `x` in layout `[outer, r, inner]` into `out` (`outer * inner` values).
pub fn reduce<A, P, C, Q>(
    par: &dyn Parallelism,
    x: &[A],
    lay: &Layout,
    fo: &Folder<A, P, C, Q>,
    out: &mut [A],
) where
    A: Acc,
    P: Fn(A) -> A + Sync,
    C: Fn(A, A) -> A + Sync,
    Q: Fn(A) -> A + Sync,
{
    let (r, inner) = (lay.r, lay.inner);
    if inner == 1 {
        for_out_chunks(par, out, r, &|start, chunk| {
            for (i, o) in chunk.iter_mut().enumerate() {
                let row = &x[(start + i) * r..(start + i + 1) * r];
                *o = (fo.post)(fold_row(row, fo.init, &fo.pre, &fo.comb));
            }
        });
        return;
    }
    for_out_chunks(par, out, r, &|start, chunk| {
        let mut pos = start;
        let end = start + chunk.len();
        while pos < end {
            let (o, i0) = (pos / inner, pos % inner);
            let len = (inner - i0).min(end - pos);
            let acc = &mut chunk[pos - start..pos - start + len];
            acc.fill(fo.init);
            for k in 0..r {
                let base = (o * r + k) * inner + i0;
                for (a, &v) in acc.iter_mut().zip(&x[base..base + len]) {
                    *a = (fo.comb)(*a, (fo.pre)(v));
                }
            }
            for a in acc.iter_mut() {
                *a = (fo.post)(*a);
            }
            pos += len;
        }
    });
}

/// Log-sum-exp over layout `[outer, r, inner]`, stabilised by the largest
/// finite value of each group (numpy reference semantics).
pub fn log_sum_exp<A: Acc>(par: &dyn Parallelism, x: &[A], lay: &Layout, out: &mut [A]) {
    let max_finite = |a: A, v: A| {
        if v.is_finite_() && (v > a || !a.is_finite_()) {
            v
        } else {
            a
        }
    };
    let mut m = vec![A::LOWEST; out.len()];
    reduce(
        par,
        x,
        lay,
        &Folder {
            init: A::LOWEST,
            pre: |v| v,
            comb: max_finite,
            post: |v| v,
        },
        &mut m,
    );
    let (r, inner) = (lay.r, lay.inner);
    let shift = |v: A| if v.is_finite_() { v } else { A::ZERO };
    for_out_chunks(par, out, r, &|start, chunk| {
        for (i, o) in chunk.iter_mut().enumerate() {
            let p = start + i;
            let (oo, ii) = (p / inner, p % inner);
            let mx = shift(m[p]);
            let mut s = A::ZERO;
            for k in 0..r {
                s = s.add(x[(oo * r + k) * inner + ii].sub(mx).exp_());
            }
            *o = s.ln_().add(mx);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let l = layout(&[2, 3, 4], &[false, false, true]);
        assert_eq!(
            l,
            Layout {
                outer: 6,
                r: 4,
                inner: 1,
                perm: None
            }
        );
        let l = layout(&[2, 3, 4], &[false, true, false]);
        assert_eq!(
            l,
            Layout {
                outer: 2,
                r: 3,
                inner: 4,
                perm: None
            }
        );
        let l = layout(&[2, 1, 3, 4], &[true, true, true, false]);
        assert_eq!(
            l,
            Layout {
                outer: 1,
                r: 6,
                inner: 4,
                perm: None
            }
        );
        let l = layout(&[2, 3, 4], &[true, false, true]);
        assert_eq!(
            l,
            Layout {
                outer: 3,
                r: 8,
                inner: 1,
                perm: Some(vec![1, 0, 2])
            }
        );
        let l = layout(&[2, 3], &[false, false]);
        assert_eq!(
            l,
            Layout {
                outer: 6,
                r: 1,
                inner: 1,
                perm: None
            }
        );
        let l = layout(&[2, 0, 3], &[false, true, false]);
        assert_eq!((l.outer, l.r, l.inner), (2, 0, 3));
    }

    #[test]
    fn permute_moves_dims() {
        let x: Vec<i32> = (0..6).collect();
        assert_eq!(permute(&x, &[2, 3], &[1, 0]), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn folds_match_naive() {
        let shape = [3usize, 5, 7];
        let x: Vec<f64> = (0..105).map(|v| ((v * 37) % 11) as f64 - 5.0).collect();
        for lay in [
            layout(&shape, &[false, true, false]),
            layout(&shape, &[false, false, true]),
            layout(&shape, &[true, false, false]),
        ] {
            let mut out = vec![0.0; lay.outer * lay.inner];
            let fo = Folder {
                init: 0.0,
                pre: |v: f64| v * v,
                comb: |a: f64, b: f64| a + b,
                post: |v: f64| v,
            };
            reduce(&crate::parallel::Serial, &x, &lay, &fo, &mut out);
            for o in 0..lay.outer {
                for i in 0..lay.inner {
                    let want: f64 = (0..lay.r)
                        .map(|k| x[(o * lay.r + k) * lay.inner + i].powi(2))
                        .sum();
                    assert_eq!(out[o * lay.inner + i], want);
                }
            }
            let mut lse = vec![0.0; lay.outer * lay.inner];
            log_sum_exp(&crate::parallel::Serial, &x, &lay, &mut lse);
            let want: f64 = (0..lay.r).map(|k| x[k * lay.inner].exp()).sum::<f64>().ln();
            assert!((lse[0] - want).abs() < 1e-12);
        }
    }
}
