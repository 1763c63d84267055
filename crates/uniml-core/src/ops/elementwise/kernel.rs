//! The two generic elementwise kernels every op in this family is built on:
//!
//! - [`map_unary`]: `out[i] = f(x[i])`, in parallel chunks for large tensors.
//! - [`map_binary`]: `out = f(a, b)` with numpy broadcasting. The broadcast is
//!   planned once ([`BlockPlan`]) as an outer walk over contiguous inner blocks
//!   in which each input is either contiguous or a single repeated value, so
//!   same-shape, scalar, row-bias (`[N, C] + [C]`) and channel-bias
//!   (`[N, C, H, W] + [C, 1, 1]`) cases all run as tight, auto-vectorisable
//!   zip loops with no index math per element.
//!
//! [`map_ternary`] (for `Where`) uses the same plan with a strided inner loop.

use uniml_data::{bail, Result};

use crate::ops::wide::wide;
use crate::parallel::{par_chunks_mut, Parallelism};

/// Tensors with fewer elements than this run on the calling thread.
pub const PAR_THRESHOLD: usize = 1 << 16;
/// Elements per parallel task.
pub const PAR_CHUNK: usize = 1 << 15;

/// Runs `f(start, chunk)` over `out`, split into parallel chunks when large.
pub fn for_chunks<O: Send>(
    par: &dyn Parallelism,
    out: &mut [O],
    f: &(dyn Fn(usize, &mut [O]) + Sync),
) {
    if out.len() < PAR_THRESHOLD || par.threads() <= 1 {
        f(0, out);
    } else {
        par_chunks_mut(par, out, PAR_CHUNK, &|ci, chunk| f(ci * PAR_CHUNK, chunk));
    }
}

/// `out[i] = f(&x[i])`, parallel over chunks for large tensors.
pub fn map_unary<I: Sync, O: Send>(
    par: &dyn Parallelism,
    x: &[I],
    out: &mut [O],
    f: impl Fn(&I) -> O + Sync,
) -> Result<()> {
    if x.len() != out.len() {
        bail!(
            "elementwise kernel: input has {} elements, output {}",
            x.len(),
            out.len()
        );
    }
    for_chunks(par, out, &|start, chunk| {
        let xs = &x[start..start + chunk.len()];
        wide(#[inline(always)] || {
            for (o, v) in chunk.iter_mut().zip(xs) {
                *o = f(v);
            }
        })
    });
    Ok(())
}

/// How the output of a broadcast is walked: `outer` blocks of `inner`
/// contiguous elements; in each block every input is contiguous (`full`) or
/// one repeated element.
#[derive(Debug, Clone)]
pub struct BlockPlan<const N: usize> {
    pub inner: usize,
    pub full: [bool; N],
    outer_shape: Vec<usize>,
    outer_strides: [Vec<usize>; N],
    pub total: usize,
}

impl<const N: usize> BlockPlan<N> {
    /// Plans the walk of `out` (the broadcast of `ins`).
    pub fn new(out: &[usize], ins: [&[usize]; N]) -> Result<Self> {
        for s in ins {
            if s.len() > out.len() {
                bail!("input shape {s:?} has a higher rank than the output {out:?}");
            }
        }
        let rank = out.len();
        let dim = |k: usize, d: usize| -> usize {
            let s = ins[k];
            let off = rank - s.len();
            if d < off {
                1
            } else {
                s[d - off]
            }
        };
        for d in 0..rank {
            for (k, s) in ins.iter().enumerate() {
                let id = dim(k, d);
                if id != out[d] && id != 1 {
                    bail!("shape {s:?} cannot be broadcast to {out:?}");
                }
            }
        }
        // state: None = undecided, Some(true) = contiguous, Some(false) = repeated.
        let mut state: [Option<bool>; N] = [None; N];
        let mut split = 0; // dims [split..rank) form the inner block
        'dims: for d in (0..rank).rev() {
            let od = out[d];
            if od != 1 {
                let mut next = state;
                for (k, st) in next.iter_mut().enumerate() {
                    let want = dim(k, d) == od;
                    match *st {
                        None => *st = Some(want),
                        Some(s) if s != want => {
                            split = d + 1;
                            break 'dims;
                        }
                        _ => {}
                    }
                }
                state = next;
            }
        }
        let inner: usize = out[split..].iter().product();
        let outer_shape = out[..split].to_vec();
        let outer_strides: [Vec<usize>; N] = std::array::from_fn(|k| {
            let s = ins[k];
            let off = rank - s.len();
            let own = crate::ops::util::strides(s);
            (0..split)
                .map(|d| {
                    if d < off || s[d - off] == 1 {
                        0
                    } else {
                        own[d - off]
                    }
                })
                .collect()
        });
        let full = std::array::from_fn(|k| state[k].unwrap_or(true));
        Ok(BlockPlan {
            inner,
            full,
            outer_shape,
            outer_strides,
            total: out.iter().product(),
        })
    }

    /// Calls `f(out_offset, len, input_offsets)` for consecutive segments of
    /// output range `[start, start + len)`; a segment never crosses a block.
    /// Input offsets point at the segment's first element (for repeated
    /// inputs, at the repeated element).
    pub fn for_segments(
        &self,
        start: usize,
        len: usize,
        mut f: impl FnMut(usize, usize, [usize; N]),
    ) {
        if len == 0 || self.inner == 0 {
            return;
        }
        let rank = self.outer_shape.len();
        let block = start / self.inner;
        let mut within = start % self.inner;
        // Unravel the first block once; then advance like an odometer.
        let mut idx = vec![0usize; rank];
        let mut rem = block;
        for d in (0..rank).rev() {
            let n = self.outer_shape[d].max(1);
            idx[d] = rem % n;
            rem /= n;
        }
        let mut offs: [usize; N] =
            std::array::from_fn(|k| (0..rank).map(|d| idx[d] * self.outer_strides[k][d]).sum());
        let end = start + len;
        let mut pos = start;
        while pos < end {
            let seg = (self.inner - within).min(end - pos);
            let ins: [usize; N] = std::array::from_fn(|k| {
                if self.full[k] {
                    offs[k] + within
                } else {
                    offs[k]
                }
            });
            f(pos, seg, ins);
            pos += seg;
            within = 0;
            if pos >= end {
                break;
            }
            for d in (0..rank).rev() {
                idx[d] += 1;
                for (o, st) in offs.iter_mut().zip(&self.outer_strides) {
                    *o += st[d];
                }
                if idx[d] < self.outer_shape[d] {
                    break;
                }
                for (o, st) in offs.iter_mut().zip(&self.outer_strides) {
                    *o -= st[d] * self.outer_shape[d];
                }
                idx[d] = 0;
            }
        }
    }
}

/// Checks that `data` holds exactly the elements of `shape`.
fn check_len(what: &str, len: usize, shape: &[usize]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != len {
        bail!("{what} has {len} elements but its shape {shape:?} needs {n}");
    }
    Ok(())
}

/// `out = f(a, b)` with numpy broadcasting; `out` must have the broadcast shape.
#[allow(clippy::too_many_arguments)]
pub fn map_binary<A: Sync, B: Sync, O: Send>(
    par: &dyn Parallelism,
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    out: &mut [O],
    out_shape: &[usize],
    f: impl Fn(&A, &B) -> O + Sync,
) -> Result<()> {
    check_len("input A", a.len(), a_shape)?;
    check_len("input B", b.len(), b_shape)?;
    check_len("output", out.len(), out_shape)?;
    if a_shape == b_shape && a_shape == out_shape {
        for_chunks(par, out, &|start, chunk| {
            let n = chunk.len();
            wide(#[inline(always)] || {
                for ((o, x), y) in chunk.iter_mut().zip(&a[start..start + n]).zip(&b[start..start + n]) {
                    *o = f(x, y);
                }
            })
        });
        return Ok(());
    }
    let plan = BlockPlan::new(out_shape, [a_shape, b_shape])?;
    let [fa, fb] = plan.full;
    for_chunks(par, out, &|start, chunk| {
        wide(#[inline(always)] || plan.for_segments(start, chunk.len(), |pos, len, [ao, bo]| {
            let o = &mut chunk[pos - start..pos - start + len];
            match (fa, fb) {
                (true, true) => {
                    for ((o, x), y) in o.iter_mut().zip(&a[ao..ao + len]).zip(&b[bo..bo + len]) {
                        *o = f(x, y);
                    }
                }
                (true, false) => {
                    let y = &b[bo];
                    for (o, x) in o.iter_mut().zip(&a[ao..ao + len]) {
                        *o = f(x, y);
                    }
                }
                (false, true) => {
                    let x = &a[ao];
                    for (o, y) in o.iter_mut().zip(&b[bo..bo + len]) {
                        *o = f(x, y);
                    }
                }
                (false, false) => {
                    for o in o.iter_mut() {
                        *o = f(&a[ao], &b[bo]);
                    }
                }
            }
        }))
    });
    Ok(())
}

/// `out = f(a, b, c)` with numpy broadcasting of three inputs.
#[allow(clippy::too_many_arguments)]
pub fn map_ternary<A: Sync, B: Sync, C: Sync, O: Send>(
    par: &dyn Parallelism,
    (a, a_shape): (&[A], &[usize]),
    (b, b_shape): (&[B], &[usize]),
    (c, c_shape): (&[C], &[usize]),
    out: &mut [O],
    out_shape: &[usize],
    f: impl Fn(&A, &B, &C) -> O + Sync,
) -> Result<()> {
    check_len("input A", a.len(), a_shape)?;
    check_len("input B", b.len(), b_shape)?;
    check_len("input C", c.len(), c_shape)?;
    check_len("output", out.len(), out_shape)?;
    let plan = BlockPlan::new(out_shape, [a_shape, b_shape, c_shape])?;
    let [fa, fb, fc] = plan.full.map(|x| x as usize);
    for_chunks(par, out, &|start, chunk| {
        plan.for_segments(start, chunk.len(), |pos, len, [ao, bo, co]| {
            let o = &mut chunk[pos - start..pos - start + len];
            for (i, o) in o.iter_mut().enumerate() {
                *o = f(&a[ao + i * fa], &b[bo + i * fb], &c[co + i * fc]);
            }
        });
    });
    Ok(())
}

/// Test helper: a parallelism that runs tasks serially (in reverse order) but
/// reports several threads, so the chunked code paths run in unit tests.
#[cfg(test)]
pub(crate) mod test_par {
    use crate::parallel::Parallelism;

    pub struct FakePar;
    impl Parallelism for FakePar {
        fn threads(&self) -> usize {
            4
        }
        fn for_each(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
            (0..tasks).rev().for_each(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Serial;
    use uniml_data::broadcast_shapes;

    use super::test_par::FakePar;

    fn naive(a: &[i64], ash: &[usize], b: &[i64], bsh: &[usize]) -> (Vec<i64>, Vec<usize>) {
        let out = broadcast_shapes(&[ash, bsh]).unwrap();
        let mut v = vec![0; out.iter().product()];
        crate::ops::util::for_each_broadcast(&out, [ash, bsh], |o, [x, y]| {
            v[o] = a[x] * 1000 + b[y]
        });
        (v, out)
    }

    #[test]
    fn binary_matches_naive_broadcast() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3], &[2, 3]),
            (&[2, 3], &[3]),
            (&[2, 3], &[]),
            (&[], &[4]),
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[3, 1], &[1, 4]),
            (&[2, 1, 4], &[3, 1]),
            (&[1, 3, 1, 2], &[2, 1, 5, 1]),
            (&[2, 0, 3], &[3]),
            (&[1, 1], &[1]),
            (&[4, 1, 3], &[4, 2, 1]),
        ];
        for par in [&Serial as &dyn Parallelism, &FakePar] {
            for (ash, bsh) in cases {
                let a: Vec<i64> = (0..ash.iter().product::<usize>() as i64).collect();
                let b: Vec<i64> = (0..bsh.iter().product::<usize>() as i64)
                    .map(|v| v + 7)
                    .collect();
                let (want, out_shape) = naive(&a, ash, &b, bsh);
                let mut got = vec![0i64; want.len()];
                map_binary(par, &a, ash, &b, bsh, &mut got, &out_shape, |x, y| {
                    x * 1000 + y
                })
                .unwrap();
                assert_eq!(got, want, "{ash:?} vs {bsh:?}");
            }
        }
    }

    #[test]
    fn large_broadcast_chunks_agree() {
        let ash = [3usize, 70, 700];
        let bsh = [70usize, 1];
        let a: Vec<i64> = (0..ash.iter().product::<usize>() as i64).collect();
        let b: Vec<i64> = (0..70).collect();
        let (want, out_shape) = naive(&a, &ash, &b, &bsh);
        let mut got = vec![0i64; want.len()];
        map_binary(
            &FakePar,
            &a,
            &ash,
            &b,
            &bsh,
            &mut got,
            &out_shape,
            |x, y| x * 1000 + y,
        )
        .unwrap();
        assert_eq!(got, want);
        let bsh2 = [3usize, 1, 700];
        let b2: Vec<i64> = (0..2100).collect();
        let (want, out_shape) = naive(&a, &ash, &b2, &bsh2);
        let mut got = vec![0i64; want.len()];
        map_binary(
            &FakePar,
            &a,
            &ash,
            &b2,
            &bsh2,
            &mut got,
            &out_shape,
            |x, y| x * 1000 + y,
        )
        .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn ternary_broadcasts() {
        let c = [1u8, 0];
        let x = [1i32, 2, 3, 4];
        let y = [9i32];
        let mut out = vec![0; 4];
        map_ternary(
            &Serial,
            (&c[..], &[2][..]),
            (&x[..], &[2, 2][..]),
            (&y[..], &[][..]),
            &mut out,
            &[2, 2],
            |c, x, y| {
                if *c != 0 {
                    *x
                } else {
                    *y
                }
            },
        )
        .unwrap();
        assert_eq!(out, vec![1, 9, 3, 9]);
    }

    #[test]
    fn bad_shapes_error() {
        let mut out = vec![0; 6];
        assert!(map_binary(
            &Serial,
            &[1; 6],
            &[2, 3],
            &[1; 2],
            &[2],
            &mut out,
            &[2, 3],
            |x: &i32, y: &i32| x + y
        )
        .is_err());
        assert!(map_binary(
            &Serial,
            &[1; 5],
            &[2, 3],
            &[1; 3],
            &[3],
            &mut out,
            &[2, 3],
            |x: &i32, y: &i32| x + y
        )
        .is_err());
    }
}
