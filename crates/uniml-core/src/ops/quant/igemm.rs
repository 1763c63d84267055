//! Integer GEMM: `C[m×n] (i32) = A[m×k] · B[k×n]` with `i16` operands
//! (zero points already subtracted) and wrapping `i32` accumulation.
//!
//! Operands are stored in "k-pair" form so the inner loop is the
//! `a0·b0 + a1·b1` widening pattern that compilers turn into `pmaddwd`
//! (x86) / `i32x4.dot_i16x8_s` (wasm simd):
//! - A: row `i` holds `2·kp` values from `a[i·lda]` (`kp = ceil(k / 2)`; an
//!   odd `k` is padded with a zero column).
//! - B: pair-row `p` (rows `2p` and `2p+1` of B, interleaved) holds `2·n`
//!   values from `b[p·ldb]`: `b[p·ldb + 2j + r] = B[2p + r][j]` (zero row pad).
//!
//! The loop is blocked over 4 rows × [`NC`] columns × [`KC`] pairs; tiles run
//! in parallel. On x86-64 the same loop is also compiled with AVX2 enabled and
//! picked at run time.

use uniml_data::{bail, Result};

use crate::parallel::{Parallelism, SyncPtr};

/// Columns per tile.
pub const NC: usize = 256;
/// k-pairs per cache block.
pub const KC: usize = 128;

/// Number of k-pairs for an inner dimension `k`.
pub fn kpairs(k: usize) -> usize {
    k.div_ceil(2)
}

/// Stores a k-pair operand row: `dst[2·kk + ...]`, i.e. A rows are plain rows
/// padded to even length. Fills `dst` (length `2·kpairs(k)`) from `src` (length `k`).
pub fn fill_a_row(dst: &mut [i16], src: impl Iterator<Item = i16>) {
    let mut n = 0;
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s;
        n += 1;
    }
    dst[n..].iter_mut().for_each(|d| *d = 0);
}

/// Shared read-only arguments of one GEMM.
struct Args<'a> {
    kp: usize,
    a: &'a [i16],
    lda: usize,
    b: &'a [i16],
    ldb: usize,
    c: SyncPtr<i32>,
    ldc: usize,
}

/// `C = A · B` in k-pair form (see the module docs). `C` rows start at `i·ldc`
/// and are overwritten on columns `0..n`.
#[allow(clippy::too_many_arguments)]
pub fn igemm(
    par: &dyn Parallelism,
    m: usize,
    kp: usize,
    n: usize,
    a: &[i16],
    lda: usize,
    b: &[i16],
    ldb: usize,
    c: &mut [i32],
    ldc: usize,
) -> Result<()> {
    igemm_with(par, pick_tile_fn(), m, kp, n, a, lda, b, ldb, c, ldc)
}

#[allow(clippy::too_many_arguments)]
fn igemm_with(
    par: &dyn Parallelism,
    tile_fn: TileFn,
    m: usize,
    kp: usize,
    n: usize,
    a: &[i16],
    lda: usize,
    b: &[i16],
    ldb: usize,
    c: &mut [i32],
    ldc: usize,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let fits = |len: usize, rows: usize, ld: usize, w: usize| {
        rows == 0 || ld >= w && (rows - 1) * ld + w <= len
    };
    if !fits(a.len(), m, lda, 2 * kp) || !fits(b.len(), kp, ldb, 2 * n) || !fits(c.len(), m, ldc, n)
    {
        bail!("internal: integer GEMM operands too small for {m}x{kp}x{n}");
    }
    let args = Args {
        kp,
        a,
        lda,
        b,
        ldb,
        c: SyncPtr(c.as_mut_ptr()),
        ldc,
    };
    let col_tiles = n.div_ceil(NC);
    let threads = par.threads();
    let work = m * n * kp.max(1);
    let mc = if threads <= 1 || work < (1 << 16) {
        m
    } else {
        // Enough row blocks for ~2 tasks per thread, in multiples of 4 rows.
        let row_tasks = (2 * threads).div_ceil(col_tiles).max(1);
        (m.div_ceil(row_tasks).div_ceil(4) * 4).clamp(4, 64)
    };
    let row_tiles = m.div_ceil(mc);
    let tasks = row_tiles * col_tiles;
    let run = |t: usize| {
        let (ri, ci) = (t / col_tiles, t % col_tiles);
        let (i0, j0) = (ri * mc, ci * NC);
        let (i1, j1) = ((i0 + mc).min(m), (j0 + NC).min(n));
        // SAFETY: the bounds were checked above; tiles are disjoint
        // (rows i0..i1 × columns j0..j1 of C) and `c` outlives the call.
        unsafe { tile_fn(&args, i0, i1, j0, j1) }
    };
    if tasks <= 1 || threads <= 1 {
        (0..tasks).for_each(run);
    } else {
        par.for_each(tasks, &run);
    }
    Ok(())
}

type TileFn = unsafe fn(&Args, usize, usize, usize, usize);

fn pick_tile_fn() -> TileFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            return tile_avx2;
        }
    }
    tile_portable
}

/// # Safety
/// `i0..i1 × j0..j1` must be inside C (as checked by [`igemm`]) and not
/// written concurrently by anyone else.
unsafe fn tile_portable(t: &Args, i0: usize, i1: usize, j0: usize, j1: usize) {
    tile(t, i0, i1, j0, j1)
}

/// # Safety
/// As [`tile_portable`]; also requires AVX2 (checked by [`pick_tile_fn`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(t: &Args, i0: usize, i1: usize, j0: usize, j1: usize) {
    let nc = j1 - j0;
    let n16 = nc / 16 * 16;
    if t.kp == 0 || n16 == 0 || i1 - i0 < 4 {
        return tile(t, i0, i1, j0, j1);
    }
    // SAFETY (caller): row r of the tile is c[r·ldc + j0 .. + nc], inside C and exclusively ours.
    let row = |r: usize, a: usize, b: usize| unsafe {
        std::slice::from_raw_parts_mut(t.c.get().add(r * t.ldc + j0 + a), b - a)
    };
    let mut p0 = 0;
    while p0 < t.kp {
        let p1 = (p0 + KC).min(t.kp);
        let first = p0 == 0;
        let mut i = i0;
        while i + 4 <= i1 {
            for j in (0..n16).step_by(16) {
                micro_4x16_avx2(t, i, j0 + j, p0, p1, first);
            }
            if n16 < nc {
                let rows = [
                    row(i, n16, nc),
                    row(i + 1, n16, nc),
                    row(i + 2, n16, nc),
                    row(i + 3, n16, nc),
                ];
                kernel4(t, rows, i, j0 + n16, p0, p1, first);
            }
            i += 4;
        }
        while i < i1 {
            kernel1(t, row(i, 0, nc), i, j0, p0, p1, first);
            i += 1;
        }
        p0 = p1;
    }
}

/// `C[i..i+4, j..j+16] (+)= A[i..i+4, pairs p0..p1] · B[pairs p0..p1, j..j+16]`
/// with `vpmaddwd`: each i32 lane gets `a0·b0 + a1·b1` of one k-pair.
///
/// # Safety
/// AVX2 must be available; rows `i..i+4`, columns `j..j+16` and pairs
/// `p0..p1` must be inside the operands checked by [`igemm`], and the C block
/// not written concurrently.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn micro_4x16_avx2(t: &Args, i: usize, j: usize, p0: usize, p1: usize, first: bool) {
    use std::arch::x86_64::*;
    let cp = |r: usize| t.c.get().add((i + r) * t.ldc + j) as *mut __m256i;
    let mut acc = [[_mm256_setzero_si256(); 2]; 4];
    if !first {
        for (r, a) in acc.iter_mut().enumerate() {
            a[0] = _mm256_loadu_si256(cp(r));
            a[1] = _mm256_loadu_si256(cp(r).add(1));
        }
    }
    let (ap, bp) = (t.a.as_ptr(), t.b.as_ptr());
    for p in p0..p1 {
        let brow = bp.add(p * t.ldb + 2 * j) as *const __m256i;
        let b0 = _mm256_loadu_si256(brow);
        let b1 = _mm256_loadu_si256(brow.add(1));
        for (r, a) in acc.iter_mut().enumerate() {
            // The pair (a[2p], a[2p+1]) as one i32, broadcast.
            let pair =
                _mm256_set1_epi32((ap.add((i + r) * t.lda + 2 * p) as *const i32).read_unaligned());
            a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(pair, b0));
            a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(pair, b1));
        }
    }
    for (r, a) in acc.iter().enumerate() {
        _mm256_storeu_si256(cp(r), a[0]);
        _mm256_storeu_si256(cp(r).add(1), a[1]);
    }
}

/// One tile of C, blocked over k-pairs.
#[inline(always)]
unsafe fn tile(t: &Args, i0: usize, i1: usize, j0: usize, j1: usize) {
    let nc = j1 - j0;
    // SAFETY (caller): row r of the tile is c[r·ldc + j0 .. + nc], inside C and exclusively ours.
    let row =
        |r: usize| unsafe { std::slice::from_raw_parts_mut(t.c.get().add(r * t.ldc + j0), nc) };
    if t.kp == 0 {
        (i0..i1).for_each(|r| row(r).fill(0));
        return;
    }
    let mut p0 = 0;
    while p0 < t.kp {
        let p1 = (p0 + KC).min(t.kp);
        let first = p0 == 0;
        let mut i = i0;
        while i + 4 <= i1 {
            let (c0, c1, c2, c3) = (row(i), row(i + 1), row(i + 2), row(i + 3));
            kernel4(t, [c0, c1, c2, c3], i, j0, p0, p1, first);
            i += 4;
        }
        while i < i1 {
            kernel1(t, row(i), i, j0, p0, p1, first);
            i += 1;
        }
        p0 = p1;
    }
}

#[inline(always)]
fn kernel4(t: &Args, c: [&mut [i32]; 4], i: usize, j0: usize, p0: usize, p1: usize, first: bool) {
    let nc = c[0].len();
    let [c0, c1, c2, c3] = c;
    let (c0, c1, c2, c3) = (&mut c0[..nc], &mut c1[..nc], &mut c2[..nc], &mut c3[..nc]);
    if first {
        c0.fill(0);
        c1.fill(0);
        c2.fill(0);
        c3.fill(0);
    }
    let ar = |r: usize, p: usize| {
        let o = (i + r) * t.lda + 2 * p;
        (t.a[o] as i32, t.a[o + 1] as i32)
    };
    for p in p0..p1 {
        let b = &t.b[p * t.ldb + 2 * j0..p * t.ldb + 2 * (j0 + nc)];
        let (x0, y0) = ar(0, p);
        let (x1, y1) = ar(1, p);
        let (x2, y2) = ar(2, p);
        let (x3, y3) = ar(3, p);
        for j in 0..nc {
            let (b0, b1) = (b[2 * j] as i32, b[2 * j + 1] as i32);
            c0[j] = c0[j].wrapping_add(x0.wrapping_mul(b0).wrapping_add(y0.wrapping_mul(b1)));
            c1[j] = c1[j].wrapping_add(x1.wrapping_mul(b0).wrapping_add(y1.wrapping_mul(b1)));
            c2[j] = c2[j].wrapping_add(x2.wrapping_mul(b0).wrapping_add(y2.wrapping_mul(b1)));
            c3[j] = c3[j].wrapping_add(x3.wrapping_mul(b0).wrapping_add(y3.wrapping_mul(b1)));
        }
    }
}

#[inline(always)]
fn kernel1(t: &Args, c: &mut [i32], i: usize, j0: usize, p0: usize, p1: usize, first: bool) {
    let nc = c.len();
    if first {
        c.fill(0);
    }
    for p in p0..p1 {
        let b = &t.b[p * t.ldb + 2 * j0..p * t.ldb + 2 * (j0 + nc)];
        let o = i * t.lda + 2 * p;
        let (x, y) = (t.a[o] as i32, t.a[o + 1] as i32);
        for j in 0..nc {
            let (b0, b1) = (b[2 * j] as i32, b[2 * j + 1] as i32);
            c[j] = c[j].wrapping_add(x.wrapping_mul(b0).wrapping_add(y.wrapping_mul(b1)));
        }
    }
}

/// Packs a row-major `k×n` matrix given by `get(kk, j)` into k-pair form
/// (`kpairs(k)` pair-rows of `2·n` values).
pub fn pack_b(k: usize, n: usize, dst: &mut [i16], get: impl Fn(usize, usize) -> i16) {
    for p in 0..kpairs(k) {
        let row = &mut dst[p * 2 * n..(p + 1) * 2 * n];
        for r in 0..2 {
            let kk = 2 * p + r;
            if kk < k {
                for j in 0..n {
                    row[2 * j + r] = get(kk, j);
                }
            } else {
                for j in 0..n {
                    row[2 * j + r] = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::FakePar;
    use crate::parallel::Serial;

    fn naive(m: usize, k: usize, n: usize, a: &[i16], b: &[i16]) -> Vec<i32> {
        let mut c = vec![0i32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|q| a[i * k + q] as i32 * b[q * n + j] as i32)
                    .fold(0i32, |s, v| s.wrapping_add(v));
            }
        }
        c
    }

    fn check(m: usize, k: usize, n: usize, par: &dyn Parallelism) {
        let a: Vec<i16> = (0..m * k)
            .map(|i| ((i * 7919 + 13) % 511) as i16 - 255)
            .collect();
        let b: Vec<i16> = (0..k * n)
            .map(|i| ((i * 104_729 + 7) % 511) as i16 - 255)
            .collect();
        let kp = kpairs(k);
        let mut ap = vec![0i16; m * 2 * kp];
        for i in 0..m {
            fill_a_row(
                &mut ap[i * 2 * kp..(i + 1) * 2 * kp],
                a[i * k..(i + 1) * k].iter().copied(),
            );
        }
        let mut bp = vec![7i16; kp * 2 * n];
        pack_b(k, n, &mut bp, |q, j| b[q * n + j]);
        // Wider C rows (ldc > n) and garbage in C must not matter.
        let ldc = n + 3;
        let want = naive(m, k, n, &a, &b);
        // The dispatched kernel (AVX2 where available) and the portable one.
        for tile_fn in [pick_tile_fn(), tile_portable as TileFn] {
            let mut c = vec![-1i32; m * ldc];
            igemm_with(par, tile_fn, m, kp, n, &ap, 2 * kp, &bp, 2 * n, &mut c, ldc).unwrap();
            for i in 0..m {
                assert_eq!(
                    &c[i * ldc..i * ldc + n],
                    &want[i * n..(i + 1) * n],
                    "row {i} of {m}x{k}x{n}"
                );
                assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == -1));
            }
        }
    }

    #[test]
    fn matches_naive() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (4, 4, 4),
            (9, 3, 300),
            (17, 301, 33),
            (64, 257, 513),
            (5, 0, 3),
            (70, 64, 600),
            (8, 16, 16),
            (6, 300, 40),
        ] {
            check(m, k, n, &Serial);
            check(m, k, n, &FakePar);
        }
    }

    #[test]
    fn accumulation_wraps_without_panicking() {
        // 3 products of 2^30 each (k odd: one zero pad) wrap to -2^30, in every kernel.
        let (m, k, n) = (4, 3, 16);
        let kp = kpairs(k);
        let mut a = vec![0i16; m * 2 * kp];
        for i in 0..m {
            fill_a_row(
                &mut a[i * 2 * kp..(i + 1) * 2 * kp],
                (0..k).map(|_| i16::MIN),
            );
        }
        let mut b = vec![0i16; kp * 2 * n];
        pack_b(k, n, &mut b, |_, _| i16::MIN);
        for tile_fn in [pick_tile_fn(), tile_portable as TileFn] {
            let mut c = vec![0i32; m * n];
            igemm_with(&Serial, tile_fn, m, kp, n, &a, 2 * kp, &b, 2 * n, &mut c, n).unwrap();
            assert!(c.iter().all(|&v| v == 3i32.wrapping_mul(1 << 30)));
        }
        let mut c = vec![0i32; 1];
        assert!(igemm(&Serial, 2, 2, 1, &a, 4, &b, 2, &mut c, 1).is_err());
    }
}
