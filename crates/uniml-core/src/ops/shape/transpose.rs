//! `Transpose`. The permutation is first simplified (size-1 axes dropped,
//! axes that stay adjacent merged), so most real transposes become a copy,
//! a (batched) 2-D transpose — e.g. NCHW↔NHWC is `[N, C, HW] → [N, HW, C]` —
//! or a copy of contiguous rows. 2-D transposes use cache-blocked tiles.

use uniml_data::{bail, Result, SymbolicShape, Tensor, TensorView};

use super::{dtype_of, fold_small, numel, Data, PAR_GRAIN};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::strides;
use crate::parallel::{par_chunks_mut, Parallelism};

/// `Transpose`: output axis `i` is input axis `perm[i]`; `None` reverses the axes.
#[derive(Debug, Clone, Default)]
pub struct Transpose {
    pub perm: Option<Vec<usize>>,
}

impl Transpose {
    /// The permutation for a rank, validated.
    pub fn perm_for(&self, rank: usize) -> Result<Vec<usize>> {
        match &self.perm {
            None => Ok((0..rank).rev().collect()),
            Some(p) => {
                let mut seen = vec![false; rank];
                if p.len() != rank {
                    bail!(
                        "Transpose: perm {p:?} has {} entries, the input has rank {rank}",
                        p.len()
                    );
                }
                for &a in p {
                    if a >= rank || seen[a] {
                        bail!("Transpose: perm {p:?} is not a permutation of 0..{rank}");
                    }
                    seen[a] = true;
                }
                Ok(p.clone())
            }
        }
    }
}

/// Drops size-1 axes and merges axes that stay adjacent: returns the reduced
/// input shape and permutation describing the same data movement.
pub fn simplify(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Output order as input axes, without size-1 axes.
    let order: Vec<usize> = perm.iter().copied().filter(|&a| shape[a] != 1).collect();
    // Group runs of consecutive input axes.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &a in &order {
        match groups.last_mut() {
            Some(g) if g.last().is_some_and(|&l| l + 1 == a) => g.push(a),
            _ => groups.push(vec![a]),
        }
    }
    // New input axes: groups sorted by first input axis.
    let mut by_input: Vec<usize> = (0..groups.len()).collect();
    by_input.sort_by_key(|&g| groups[g][0]);
    let new_shape: Vec<usize> = by_input
        .iter()
        .map(|&g| groups[g].iter().map(|&a| shape[a]).product())
        .collect();
    let mut pos = vec![0; groups.len()];
    for (i, &g) in by_input.iter().enumerate() {
        pos[g] = i;
    }
    (new_shape, pos)
}

/// `dst[r * dst_stride + l] = src[r + l * src_stride]` for `r < rows`, `l < cols`:
/// one tile of a 2-D transpose. 4-byte elements use SSE2 4×4 transposes on
/// x86-64; other types 8×8 scalar micro-tiles.
///
/// # Safety
/// Every index above must be in bounds of the buffers behind `src` and `dst`.
#[inline]
unsafe fn tile<T: Copy>(
    src: *const T,
    src_stride: usize,
    dst: *mut T,
    dst_stride: usize,
    rows: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of::<T>() == 4 {
        // SAFETY: T is plain old data of 4 bytes; its bits move as u32.
        return tile_sse_u32(
            src as *const u32,
            src_stride,
            dst as *mut u32,
            dst_stride,
            rows,
            cols,
        );
    }
    tile_scalar(src, src_stride, dst, dst_stride, rows, cols)
}

/// Scalar version of [`tile`] in 8×8 micro-tiles. Same safety contract.
#[inline]
unsafe fn tile_scalar<T: Copy>(
    src: *const T,
    src_stride: usize,
    dst: *mut T,
    dst_stride: usize,
    rows: usize,
    cols: usize,
) {
    const M: usize = 8;
    let mut l0 = 0;
    while l0 < cols {
        let lc = M.min(cols - l0);
        let mut r0 = 0;
        while r0 < rows {
            let rc = M.min(rows - r0);
            if lc == M && rc == M {
                for i in 0..M {
                    let s = src.add(r0 + (l0 + i) * src_stride);
                    let d = dst.add(r0 * dst_stride + l0 + i);
                    for j in 0..M {
                        *d.add(j * dst_stride) = *s.add(j);
                    }
                }
            } else {
                for i in 0..lc {
                    let s = src.add(r0 + (l0 + i) * src_stride);
                    let d = dst.add(r0 * dst_stride + l0 + i);
                    for j in 0..rc {
                        *d.add(j * dst_stride) = *s.add(j);
                    }
                }
            }
            r0 += M;
        }
        l0 += M;
    }
}

/// SSE2 version of [`tile`] for 4-byte elements (SSE2 is baseline on x86-64).
/// Same safety contract.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn tile_sse_u32(
    src: *const u32,
    ss: usize,
    dst: *mut u32,
    ds: usize,
    rows: usize,
    cols: usize,
) {
    use std::arch::x86_64::*;
    let mut l0 = 0;
    while l0 + 4 <= cols {
        let mut r0 = 0;
        while r0 + 4 <= rows {
            let a = _mm_loadu_si128(src.add(r0 + l0 * ss) as *const __m128i);
            let b = _mm_loadu_si128(src.add(r0 + (l0 + 1) * ss) as *const __m128i);
            let c = _mm_loadu_si128(src.add(r0 + (l0 + 2) * ss) as *const __m128i);
            let d = _mm_loadu_si128(src.add(r0 + (l0 + 3) * ss) as *const __m128i);
            let t0 = _mm_unpacklo_epi32(a, b);
            let t1 = _mm_unpacklo_epi32(c, d);
            let t2 = _mm_unpackhi_epi32(a, b);
            let t3 = _mm_unpackhi_epi32(c, d);
            _mm_storeu_si128(
                dst.add(r0 * ds + l0) as *mut __m128i,
                _mm_unpacklo_epi64(t0, t1),
            );
            _mm_storeu_si128(
                dst.add((r0 + 1) * ds + l0) as *mut __m128i,
                _mm_unpackhi_epi64(t0, t1),
            );
            _mm_storeu_si128(
                dst.add((r0 + 2) * ds + l0) as *mut __m128i,
                _mm_unpacklo_epi64(t2, t3),
            );
            _mm_storeu_si128(
                dst.add((r0 + 3) * ds + l0) as *mut __m128i,
                _mm_unpackhi_epi64(t2, t3),
            );
            r0 += 4;
        }
        for r in r0..rows {
            for i in 0..4 {
                *dst.add(r * ds + l0 + i) = *src.add(r + (l0 + i) * ss);
            }
        }
        l0 += 4;
    }
    for l in l0..cols {
        for r in 0..rows {
            *dst.add(r * ds + l) = *src.add(r + l * ss);
        }
    }
}

/// Output rows transposed together: enough to read whole cache lines of the
/// source, few enough that the written rows stay within the write buffers.
/// When there are few rows in all (`n_rows <= 64`), all go together so each
/// source row is read once.
fn group_rows(row_len: usize, n_rows: usize) -> usize {
    if n_rows <= 64 {
        return n_rows.max(1);
    }
    match row_len {
        0..=15 => 64,
        16..=255 => 32,
        _ => 16,
    }
}

/// Tiled transpose where the input's innermost axis (stride 1) becomes the
/// output's second-to-last axis: output rows of length `L` (last axis, source
/// stride `os[last]`) are produced in groups (see [`group_rows`]) along that axis.
/// `out_shape`/`os` are the output dims and their source strides.
fn transpose_tiled<T: Copy + Send + Sync>(
    par: &dyn Parallelism,
    src: &[T],
    out_shape: &[usize],
    os: &[usize],
    dst: &mut [T],
) {
    let rank = out_shape.len();
    let (nj, nl) = (out_shape[rank - 2], out_shape[rank - 1]);
    let bs = group_rows(nl, nj);
    let sl = os[rank - 1];
    if nj == 0 || nl == 0 || dst.is_empty() {
        return;
    }
    // The largest source offset any output element reads must be in bounds.
    let max_off: usize = out_shape.iter().zip(os).map(|(&d, &s)| (d - 1) * s).sum();
    if max_off >= src.len() || dst.len() != numel(out_shape) {
        return;
    }
    let outer = &out_shape[..rank - 2];
    let outer_st = &os[..rank - 2];
    let rows_per_task = (PAR_GRAIN / nl).max(1).div_ceil(bs) * bs;
    par_chunks_mut(par, dst, rows_per_task * nl, &|t, chunk| {
        let row0 = t * rows_per_task;
        let nrows = chunk.len() / nl;
        let mut r = 0;
        while r < nrows {
            let g = row0 + r;
            let (mut q, oj) = (g / nj, g % nj);
            let mut base = 0;
            for a in (0..rank - 2).rev() {
                base += (q % outer[a]) * outer_st[a];
                q /= outer[a];
            }
            let cnt = bs.min(nrows - r).min(nj - oj);
            // SAFETY: rows r..r+cnt of the chunk exist; source offsets are
            // bounded by `max_off`, checked above.
            unsafe {
                tile(
                    src.as_ptr().add(base + oj),
                    sl,
                    chunk.as_mut_ptr().add(r * nl),
                    nl,
                    cnt,
                    nl,
                );
            }
            r += cnt;
        }
    });
}

/// Any permutation: walks output rows, copying the innermost axis as a run
/// (contiguous when it is also the input's innermost axis).
fn transpose_general<T: Data>(
    par: &dyn Parallelism,
    src: &[T],
    shape: &[usize],
    perm: &[usize],
    dst: &mut [T],
) {
    let rank = shape.len();
    let st = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let os: Vec<usize> = perm.iter().map(|&a| st[a]).collect();
    let len = out_shape[rank - 1];
    let step = os[rank - 1];
    if len == 0 || dst.is_empty() {
        return;
    }
    let outer = &out_shape[..rank - 1];
    let rows_per_task = (PAR_GRAIN / len).max(1);
    par_chunks_mut(par, dst, rows_per_task * len, &|t, chunk| {
        let mut idx = vec![0usize; rank - 1];
        let mut r = t * rows_per_task;
        for a in (0..rank - 1).rev() {
            idx[a] = r % outer[a];
            r /= outer[a];
        }
        for row in chunk.chunks_mut(len) {
            let base: usize = idx.iter().zip(&os).map(|(i, s)| i * s).sum();
            if step == 1 {
                row.clone_from_slice(&src[base..base + len]);
            } else {
                for (j, d) in row.iter_mut().enumerate() {
                    *d = src[base + j * step].clone();
                }
            }
            for a in (0..rank - 1).rev() {
                idx[a] += 1;
                if idx[a] < outer[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    });
}

/// Transposes `src` (shape `shape`) by `perm` into `dst`, for any element type.
pub(crate) fn transpose_into<T: Data>(
    par: &dyn Parallelism,
    src: &[T],
    shape: &[usize],
    perm: &[usize],
    dst: &mut [T],
) {
    if dst.is_empty() {
        return;
    }
    let (s, p) = simplify(shape, perm);
    if s.len() <= 1 {
        dst.clone_from_slice(src);
    } else {
        transpose_general(par, src, &s, &p, dst);
    }
}

/// Transposes plain-old-data: contiguous row copies, tiled 2-D transposes
/// (which cover NCHW↔NHWC and last-two-axes swaps), or a strided walk.
pub(crate) fn transpose_pod<T: Data + Copy>(
    par: &dyn Parallelism,
    src: &[T],
    shape: &[usize],
    perm: &[usize],
    dst: &mut [T],
) {
    if dst.is_empty() {
        return;
    }
    let (s, p) = simplify(shape, perm);
    let rank = s.len();
    if rank <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    // Output position of the input's innermost (contiguous) axis.
    let j = p.iter().position(|&a| a == rank - 1).unwrap_or(rank - 1);
    if j == rank - 1 {
        transpose_general(par, src, &s, &p, dst);
        return;
    }
    let st = strides(&s);
    let out_shape: Vec<usize> = p.iter().map(|&a| s[a]).collect();
    let os: Vec<usize> = p.iter().map(|&a| st[a]).collect();
    if j == rank - 2 {
        transpose_tiled(par, src, &out_shape, &os, dst);
    } else {
        transpose_tiled_strided(par, src, &out_shape, &os, j, dst);
    }
}

/// Tiled transpose where the input's innermost axis lands on output axis
/// `j < rank - 2`: 2-D tiles between output axes `j` and the last, with the
/// other axes walked outside (in parallel over output axis 0 when `j > 0`).
fn transpose_tiled_strided<T: Copy + Send + Sync>(
    par: &dyn Parallelism,
    src: &[T],
    out_shape: &[usize],
    os: &[usize],
    j: usize,
    dst: &mut [T],
) {
    let rank = out_shape.len();
    let ost = strides(out_shape);
    let (nj, nl, sl) = (out_shape[j], out_shape[rank - 1], os[rank - 1]);
    let bs = group_rows(nl, nj);
    let max_off: usize = out_shape.iter().zip(os).map(|(&d, &s)| (d - 1) * s).sum();
    if dst.is_empty() || max_off >= src.len() || dst.len() != numel(out_shape) {
        return;
    }
    // Axes walked by the odometer inside one chunk.
    let first = usize::from(j > 0);
    let others: Vec<usize> = (first..rank - 1).filter(|&a| a != j).collect();
    let chunk_len = if j > 0 { ost[0] } else { dst.len() };
    par_chunks_mut(par, dst, chunk_len, &|c, chunk| {
        let src_base0 = if j > 0 { c * os[0] } else { 0 };
        let mut idx = vec![0usize; others.len()];
        loop {
            let sb = src_base0
                + others
                    .iter()
                    .zip(&idx)
                    .map(|(&a, &i)| i * os[a])
                    .sum::<usize>();
            let db: usize = others.iter().zip(&idx).map(|(&a, &i)| i * ost[a]).sum();
            let mut oj = 0;
            while oj < nj {
                let cnt = bs.min(nj - oj);
                // SAFETY: source offsets are bounded by `max_off` (checked
                // above); destination offsets stay inside this chunk, which
                // holds every output index with this axis-0 coordinate.
                unsafe {
                    tile(
                        src.as_ptr().add(sb + oj),
                        sl,
                        chunk.as_mut_ptr().add(db + oj * ost[j]),
                        ost[j],
                        cnt,
                        nl,
                    );
                }
                oj += cnt;
            }
            // Odometer over the other axes.
            let mut k = others.len();
            loop {
                if k == 0 {
                    return;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < out_shape[others[k]] {
                    break;
                }
                idx[k] = 0;
            }
        }
    });
}

impl Op for Transpose {
    fn name(&self) -> &'static str {
        "Transpose"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let shape = match inputs.first().and_then(|f| f.shape.as_ref()) {
            Some(s) => {
                let p = self.perm_for(s.rank())?;
                Some(SymbolicShape(p.iter().map(|&a| s.0[a].clone()).collect()))
            }
            None => self
                .perm
                .as_ref()
                .map(|p| SymbolicShape(vec![uniml_data::Dim::Unknown; p.len()])),
        };
        let fact = Fact {
            dtype: dtype_of(inputs, 0),
            shape,
            ..Fact::default()
        };
        Ok(fold_small(self, inputs, vec![fact]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Transpose")?;
        let perm = self.perm_for(x.shape().len())?;
        let out_shape: Vec<usize> = perm.iter().map(|&a| x.shape()[a]).collect();
        // Every element is written (a permutation of the input's).
        let mut out = ctx.alloc_overwritten(x.dtype(), &out_shape)?;
        debug_assert_eq!(numel(&out_shape), x.len());
        crate::dispatch_pod!(x.dtype(), T => transpose_pod::<T>(ctx.par, T::src(x)?, x.shape(), &perm, T::dst(&mut out)?),
            _ => transpose_into::<String>(ctx.par, x.as_strings()?, x.shape(), &perm, out.as_strings_mut()?));
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Serial;

    /// Naive reference transpose.
    fn naive(src: &[u32], shape: &[usize], perm: &[usize]) -> Vec<u32> {
        let st = strides(shape);
        let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        let n = numel(&out_shape);
        let ost = strides(&out_shape);
        (0..n)
            .map(|o| {
                let mut off = 0;
                for (i, &p) in perm.iter().enumerate() {
                    off += (o / ost[i]) % out_shape[i] * st[p];
                }
                src[off]
            })
            .collect()
    }

    fn perms(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = vec![];
        for p in perms(n - 1) {
            for i in 0..n {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn simplify_merges_nchw_to_nhwc() {
        assert_eq!(
            simplify(&[2, 3, 4, 5], &[0, 2, 3, 1]),
            (vec![2, 3, 20], vec![0, 2, 1])
        );
        assert_eq!(simplify(&[1, 3, 4], &[2, 1, 0]), (vec![3, 4], vec![1, 0]));
        assert_eq!(simplify(&[2, 3], &[0, 1]), (vec![6], vec![0]));
    }

    #[test]
    fn all_permutations_match_naive() {
        for shape in [
            vec![2, 3, 4, 5],
            vec![1, 3, 1, 5],
            vec![33, 40, 3],
            vec![3, 70, 65],
        ] {
            let n = numel(&shape);
            let src: Vec<u32> = (0..n as u32).collect();
            for p in perms(shape.len()) {
                let mut dst = vec![0u32; n];
                transpose_pod(&Serial, &src, &shape, &p, &mut dst);
                assert_eq!(dst, naive(&src, &shape, &p), "shape {shape:?} perm {p:?}");
                let strs: Vec<String> = src.iter().map(|v| v.to_string()).collect();
                let mut sdst = vec![String::new(); n];
                transpose_into(&Serial, &strs, &shape, &p, &mut sdst);
                assert!(sdst.iter().zip(&dst).all(|(a, b)| *a == b.to_string()));
            }
        }
    }

    #[test]
    fn other_widths_take_the_scalar_tiles() {
        let shape = [3, 37, 41];
        let src: Vec<u64> = (0..numel(&shape) as u64).collect();
        let src32: Vec<u32> = src.iter().map(|&v| v as u32).collect();
        let want = naive(&src32, &shape, &[0, 2, 1]);
        let mut dst = vec![0u64; src.len()];
        transpose_pod(&Serial, &src, &shape, &[0, 2, 1], &mut dst);
        assert!(dst.iter().zip(&want).all(|(&a, &b)| a as u32 == b));
        let src8: Vec<u8> = src.iter().map(|&v| v as u8).collect();
        let mut dst8 = vec![0u8; src.len()];
        transpose_pod(&Serial, &src8, &shape, &[0, 2, 1], &mut dst8);
        assert!(dst8.iter().zip(&want).all(|(&a, &b)| a == b as u8));
    }

    #[test]
    fn bad_perm_is_an_error() {
        assert!(Transpose {
            perm: Some(vec![0, 0])
        }
        .perm_for(2)
        .is_err());
        assert!(Transpose {
            perm: Some(vec![0])
        }
        .perm_for(2)
        .is_err());
        assert_eq!(Transpose { perm: None }.perm_for(3).unwrap(), vec![2, 1, 0]);
    }
}
