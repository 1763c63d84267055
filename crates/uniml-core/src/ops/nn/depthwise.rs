//! Direct depthwise 2-D convolution (one input and one output channel per
//! group), the hot spot of mobile CNNs.
//!
//! Per channel the input is copied once into a zero-padded, stride-phased
//! scratch plane (`phase[p][j] = xpad[j·s + p]`), so that every kernel tap
//! reads a contiguous run of the scratch row whatever the stride or dilation.
//! Outputs are then accumulated in registers: tiles of 4 output rows × 8
//! columns (four independent accumulation chains), written once. On x86-64
//! the kernel is compiled a second time for AVX2+FMA and picked at run time.
//!
//! With AVX-512 (strides 1 and 2, undilated 3×3/5×5/7×7 kernels) there is no
//! scratch plane: each tap is a masked load straight from the input row (the
//! mask zeroes the padding lanes, and masked-off lanes never touch memory),
//! stride 2 de-interleaves two loads with one permute, and a Relu/Clip
//! activation is applied in registers before the single store.

use super::FusedActivation;

/// 2-D geometry (1-D convs use a unit height).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geo2 {
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub ph: i64,
    pub pw: i64,
}

const TW: usize = 8;
const TR: usize = 4;

/// Scratch layout for one channel.
struct Layout {
    /// Padded rows needed.
    rows: usize,
    /// Width of one phase row.
    wq: usize,
}

fn layout(g: &Geo2) -> Layout {
    let rows = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    let tiles = g.ow.div_ceil(TW);
    let max_off = ((g.kw - 1) * g.dw) / g.sw;
    Layout {
        rows,
        wq: tiles * TW + max_off + 1,
    }
}

/// Fills the padded, phased copy of one input plane.
fn fill_scratch(g: &Geo2, l: &Layout, x: &[f32], s: &mut [f32]) {
    let sw = g.sw;
    for r in 0..l.rows {
        let ih = r as i64 - g.ph;
        let row = &mut s[r * sw * l.wq..(r + 1) * sw * l.wq];
        if ih < 0 || ih >= g.h as i64 {
            row.fill(0.0);
            continue;
        }
        let xr = &x[ih as usize * g.w..(ih as usize + 1) * g.w];
        if sw == 1 {
            // Padded column c holds x[c - pw].
            let lead = (g.pw.max(0) as usize).min(l.wq);
            row[..lead].fill(0.0);
            let start = (-g.pw).max(0) as usize; // first input column used
            let n = g.w.saturating_sub(start).min(l.wq - lead);
            row[lead..lead + n].copy_from_slice(&xr[start..start + n]);
            row[lead + n..].fill(0.0);
        } else {
            for p in 0..sw {
                let ph = &mut row[p * l.wq..(p + 1) * l.wq];
                // Valid j: 0 <= j*sw + p - pw < w.
                let lo_num = g.pw - p as i64;
                let lo = if lo_num <= 0 {
                    0
                } else {
                    (lo_num as usize).div_ceil(sw)
                };
                let hi_num = g.w as i64 + g.pw - p as i64; // j*sw < hi_num
                let hi = if hi_num <= 0 {
                    0
                } else {
                    (hi_num as usize).div_ceil(sw)
                };
                let (lo, hi) = (lo.min(l.wq), hi.min(l.wq).max(lo.min(l.wq)));
                ph[..lo].fill(0.0);
                ph[hi..].fill(0.0);
                if hi > lo {
                    let first = (lo * sw + p) as i64 - g.pw;
                    let src = &xr[first as usize..];
                    for (v, &x) in ph[lo..hi].iter_mut().zip(src.iter().step_by(sw)) {
                        *v = x;
                    }
                }
            }
        }
    }
}

/// `a += w·src` over one tile: fused multiply-adds in wasm builds with relaxed SIMD (the
/// browser package's relaxed builds), where plain simd128 needs a multiply and a dependent add.
#[inline(always)]
fn mul_add_tile(a: &mut [f32; TW], w: f32, src: &[f32; TW]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    {
        use core::arch::wasm32::{f32x4_relaxed_madd, f32x4_splat, v128};
        let wv = f32x4_splat(w);
        for (ac, sc) in a.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
            // SAFETY: both chunks are 4 floats (16 bytes); unaligned v128 access is allowed.
            unsafe {
                let pa = ac.as_mut_ptr() as *mut v128;
                let x = (sc.as_ptr() as *const v128).read_unaligned();
                pa.write_unaligned(f32x4_relaxed_madd(wv, x, pa.read_unaligned()));
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    for i in 0..TW {
        a[i] += w * src[i];
    }
}

/// Output rows `oh0..oh0+R`, all column tiles.
#[inline(always)]
fn rows_block<const R: usize>(
    g: &Geo2,
    l: &Layout,
    s: &[f32],
    w: &[f32],
    bias: f32,
    oh0: usize,
    out: &mut [f32],
) {
    let sw = g.sw;
    let mut t0 = 0;
    while t0 < g.ow {
        let mut acc = [[bias; TW]; R];
        for kh in 0..g.kh {
            for kw in 0..g.kw {
                let wv = w[kh * g.kw + kw];
                let d = kw * g.dw;
                let (phase, off) = (d % sw, d / sw);
                for (r, a) in acc.iter_mut().enumerate() {
                    let pr = (oh0 + r) * g.sh + kh * g.dh;
                    let base = (pr * sw + phase) * l.wq + off + t0;
                    let src: &[f32; TW] = s[base..base + TW].try_into().expect("tile in scratch");
                    mul_add_tile(a, wv, src);
                }
            }
        }
        let n = TW.min(g.ow - t0);
        for (r, a) in acc.iter().enumerate() {
            let o = (oh0 + r) * g.ow + t0;
            out[o..o + n].copy_from_slice(&a[..n]);
        }
        t0 += TW;
    }
}

fn channel(g: &Geo2, x: &[f32], w: &[f32], bias: f32, out: &mut [f32], scratch: &mut Vec<f32>) {
    let l = layout(g);
    let need = l.rows * g.sw * l.wq;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    fill_scratch(g, &l, x, scratch);
    let mut oh = 0;
    while oh + TR <= g.oh {
        rows_block::<TR>(g, &l, scratch, w, bias, oh, out);
        oh += TR;
    }
    while oh < g.oh {
        rows_block::<1>(g, &l, scratch, w, bias, oh, out);
        oh += 1;
    }
}

fn channel_portable(
    g: &Geo2,
    x: &[f32],
    w: &[f32],
    bias: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    channel(g, x, w, bias, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn channel_avx2(
    g: &Geo2,
    x: &[f32],
    w: &[f32],
    bias: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let l = layout(g);
    let need = l.rows * g.sw * l.wq + 2 * l.wq + 16;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    if g.sw <= 2 {
        avx2::fill_scratch(g, &l, x, scratch);
    } else {
        fill_scratch(g, &l, x, scratch);
    }
    // Up to 8 independent accumulator chains: 8 rows x 1 tile, or 4 rows x 2 tiles.
    let wide = g.ow > TW;
    let rmax = if wide { 4 } else { 8 };
    let k = if g.dh == 1 && g.dw == 1 && g.kh == g.kw {
        g.kh
    } else {
        0
    };
    let mut oh = 0;
    while oh < g.oh {
        let rows = rmax.min(g.oh - oh);
        match (wide, k, g.sw.min(3) * (g.sw == g.sh) as usize) {
            (true, 3, 1) => {
                avx2::rows_block_k::<4, 2, 3, 1>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (true, 3, 2) => {
                avx2::rows_block_k::<4, 2, 3, 2>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (true, 5, 1) => {
                avx2::rows_block_k::<4, 2, 5, 1>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (true, 5, 2) => {
                avx2::rows_block_k::<4, 2, 5, 2>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (false, 3, 1) => {
                avx2::rows_block_k::<8, 1, 3, 1>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (false, 3, 2) => {
                avx2::rows_block_k::<8, 1, 3, 2>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (false, 5, 1) => {
                avx2::rows_block_k::<8, 1, 5, 1>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (false, 5, 2) => {
                avx2::rows_block_k::<8, 1, 5, 2>(g, &l, scratch, w, bias, oh, rows, out)
            }
            (true, ..) => avx2::rows_block::<4, 2>(g, &l, scratch, w, bias, oh, rows, out),
            (false, ..) => avx2::rows_block::<8, 1>(g, &l, scratch, w, bias, oh, rows, out),
        }
        oh += rows;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Geo2, Layout, TW};

    /// Lanes `0..n` set (n <= 8).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mask(n: usize) -> __m256i {
        const M: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        _mm256_loadu_si256(M.as_ptr().add(8 - n.min(8)) as *const __m256i)
    }

    /// `dst[..n] = src[..n]` without a libc call (rows here are short).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn copy(dst: *mut f32, src: *const f32, n: usize) {
        let mut i = 0;
        while i + TW <= n {
            _mm256_storeu_ps(dst.add(i), _mm256_loadu_ps(src.add(i)));
            i += TW;
        }
        if i < n {
            let m = mask(n - i);
            _mm256_maskstore_ps(dst.add(i), m, _mm256_maskload_ps(src.add(i), m));
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn zero(dst: *mut f32, n: usize) {
        let z = _mm256_setzero_ps();
        let mut i = 0;
        while i + TW <= n {
            _mm256_storeu_ps(dst.add(i), z);
            i += TW;
        }
        if i < n {
            _mm256_maskstore_ps(dst.add(i), mask(n - i), z);
        }
    }

    /// Zero-padded copy of input row `ih` (or zeros) into `dst[..len]`, with
    /// padded column `c` holding `x[c - pw]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn padded_row(g: &Geo2, x: &[f32], ih: i64, dst: *mut f32, len: usize) {
        if ih < 0 || ih >= g.h as i64 {
            zero(dst, len);
            return;
        }
        let lead = (g.pw.max(0) as usize).min(len);
        let n = g.w.min(len - lead);
        zero(dst, lead);
        copy(dst.add(lead), x.as_ptr().add(ih as usize * g.w), n);
        zero(dst.add(lead + n), len - lead - n);
    }

    /// The padded, phased scratch plane (see `fill_scratch`) for strides 1
    /// and 2; `s` must hold the plane plus `2 * wq + 16` floats of row buffer.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fill_scratch(g: &Geo2, l: &Layout, x: &[f32], s: &mut [f32]) {
        let plane = l.rows * g.sw * l.wq;
        debug_assert!(s.len() >= plane + 2 * l.wq + 16);
        let sp = s.as_mut_ptr();
        if g.sw == 1 {
            for r in 0..l.rows {
                padded_row(g, x, r as i64 - g.ph, sp.add(r * l.wq), l.wq);
            }
            return;
        }
        let buf = sp.add(plane);
        let blen = 2 * l.wq + 16;
        for r in 0..l.rows {
            padded_row(g, x, r as i64 - g.ph, buf, blen);
            let even = sp.add(r * 2 * l.wq);
            let odd = even.add(l.wq);
            let mut j = 0;
            while j + TW <= l.wq {
                // SAFETY: 2*(j+8) <= 2*wq < blen.
                let a = _mm256_loadu_ps(buf.add(2 * j));
                let b = _mm256_loadu_ps(buf.add(2 * j + 8));
                let e = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
                let o = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
                let e =
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(e)));
                let o =
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(o)));
                _mm256_storeu_ps(even.add(j), e);
                _mm256_storeu_ps(odd.add(j), o);
                j += TW;
            }
            while j < l.wq {
                *even.add(j) = *buf.add(2 * j);
                *odd.add(j) = *buf.add(2 * j + 1);
                j += 1;
            }
        }
    }

    /// [`rows_block`] with a `K × K` undilated kernel and stride `S` known at
    /// compile time: one weight broadcast feeds all `R × C` accumulators.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::needless_range_loop)]
    pub(super) unsafe fn rows_block_k<
        const R: usize,
        const C: usize,
        const K: usize,
        const S: usize,
    >(
        g: &Geo2,
        l: &Layout,
        s: &[f32],
        w: &[f32],
        bias: f32,
        oh0: usize,
        rows: usize,
        out: &mut [f32],
    ) {
        debug_assert!(g.sw == S && g.sh == S && w.len() >= K * K);
        let sp = s.as_ptr();
        let wp = w.as_ptr();
        let mut t0 = 0;
        while t0 < g.ow {
            let cols = C.min(g.ow.div_ceil(TW) - t0 / TW);
            let mut acc = [[_mm256_set1_ps(bias); C]; R];
            for kh in 0..K {
                // Start of padded row (oh0 + r)·S + kh, phase 0, at this tile.
                let mut rowp = [sp; R];
                for (r, p) in rowp.iter_mut().enumerate() {
                    let pr = (oh0 + r.min(rows - 1)) * S + kh;
                    *p = sp.add(pr * S * l.wq + t0);
                }
                for kw in 0..K {
                    let wv = _mm256_set1_ps(*wp.add(kh * K + kw));
                    let off = (kw % S) * l.wq + kw / S;
                    for r in 0..R {
                        if r < rows {
                            for c in 0..C {
                                if c < cols {
                                    // SAFETY: the scratch layout covers every tap of every tile.
                                    let v = _mm256_loadu_ps(rowp[r].add(off + c * TW));
                                    acc[r][c] = _mm256_fmadd_ps(wv, v, acc[r][c]);
                                }
                            }
                        }
                    }
                }
            }
            store::<R, C>(g, &acc, rows, cols, oh0, t0, out);
            t0 += C * TW;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn store<const R: usize, const C: usize>(
        g: &Geo2,
        acc: &[[__m256; C]; R],
        rows: usize,
        cols: usize,
        oh0: usize,
        t0: usize,
        out: &mut [f32],
    ) {
        for (r, a) in acc.iter().enumerate().take(rows) {
            for (c, v) in a.iter().enumerate().take(cols) {
                let col = t0 + c * TW;
                let n = TW.min(g.ow - col);
                let o = (oh0 + r) * g.ow + col;
                let dst = out[o..o + n].as_mut_ptr();
                if n == TW {
                    _mm256_storeu_ps(dst, *v);
                } else {
                    _mm256_maskstore_ps(dst, mask(n), *v);
                }
            }
        }
    }

    /// Output rows `oh0..oh0+R`, `C` column tiles of 8 at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows_block<const R: usize, const C: usize>(
        g: &Geo2,
        l: &Layout,
        s: &[f32],
        w: &[f32],
        bias: f32,
        oh0: usize,
        rows: usize,
        out: &mut [f32],
    ) {
        let sw = g.sw;
        let sp = s.as_ptr();
        let mut t0 = 0;
        while t0 < g.ow {
            let cols = C.min(g.ow.div_ceil(TW) - t0 / TW);
            let mut acc = [[_mm256_set1_ps(bias); C]; R];
            for kh in 0..g.kh {
                for kw in 0..g.kw {
                    let wv = _mm256_set1_ps(w[kh * g.kw + kw]);
                    let d = kw * g.dw;
                    let (phase, off) = (d % sw, d / sw);
                    for (r, a) in acc.iter_mut().enumerate().take(rows) {
                        let pr = (oh0 + r) * g.sh + kh * g.dh;
                        let base = (pr * sw + phase) * l.wq + off + t0;
                        for (c, v) in a.iter_mut().enumerate().take(cols) {
                            debug_assert!(base + c * TW + TW <= s.len());
                            // SAFETY: the scratch layout covers every tap of every tile (see `layout`).
                            *v = _mm256_fmadd_ps(wv, _mm256_loadu_ps(sp.add(base + c * TW)), *v);
                        }
                    }
                }
            }
            store::<R, C>(g, &acc, rows, cols, oh0, t0, out);
            t0 += C * TW;
        }
    }
}

type ChannelFn = fn(&Geo2, &[f32], &[f32], f32, &mut [f32], &mut Vec<f32>);

fn pick() -> ChannelFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features the function needs were just detected.
            return |g, x, w, b, o, s| unsafe { channel_avx2(g, x, w, b, o, s) };
        }
    }
    channel_portable
}

/// Depthwise conv of `out.len() / (oh·ow)` consecutive channels (`x`, `w`,
/// `bias` start at the first of them), then bias and activation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn depthwise_channels(
    g: &Geo2,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (isz, osz, ksz) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    if osz == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = super::depthwise_phase::pick(g, act) {
        for (c, o) in out.chunks_mut(osz).enumerate() {
            let b = bias.map_or(0.0, |b| b[c]);
            kernel.run(g, &x[c * isz..(c + 1) * isz], &w[c * ksz..(c + 1) * ksz], b, o, scratch);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(direct) = avx512::pick(g, act) {
        for (c, o) in out.chunks_mut(osz).enumerate() {
            let b = bias.map_or(0.0, |b| b[c]);
            // SAFETY: `pick` checked the CPU features and the geometry;
            // the slices are one channel's input, weights and output.
            unsafe { direct(g, &x[c * isz..(c + 1) * isz], &w[c * ksz..(c + 1) * ksz], b, o) };
        }
        return;
    }
    let f = pick();
    for (c, o) in out.chunks_mut(osz).enumerate() {
        let b = bias.map_or(0.0, |b| b[c]);
        f(
            g,
            &x[c * isz..(c + 1) * isz],
            &w[c * ksz..(c + 1) * ksz],
            b,
            o,
            scratch,
        );
        act.apply_slice(o);
    }
}

/// Lanes `i` of a 16-lane load at column `start` with `0 <= start + i < w`
/// (the load mask of a tap that may hang over the edge of an input row).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn lanes_in_row(start: i64, w: usize) -> u16 {
    const L: i64 = 16;
    let w = w as i64;
    if start >= w || start + L <= 0 {
        return 0;
    }
    let skip = (-start).max(0) as u32;
    let end = (w - start).min(L) as u32;
    let upto: u32 = if end >= 16 { 0xFFFF } else { (1u32 << end) - 1 };
    (upto & (0xFFFFu32 << skip)) as u16
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! Scratch-free depthwise kernel for AVX-512 (see the module docs).
    use std::arch::x86_64::*;

    use super::{lanes_in_row, FusedActivation, Geo2};

    const L: usize = 16;

    /// One channel: `out = clamp(conv(x, w) + bias, lo, hi)`.
    pub(super) type DirectFn = unsafe fn(&Geo2, &[f32], &[f32], f32, &mut [f32]);

    /// The direct kernel for this geometry and activation, if the CPU has
    /// AVX-512F and the case is covered (strides 1/2, undilated square 3/5/7
    /// kernels, activation None/Relu/Clip).
    pub(super) fn pick(g: &Geo2, act: FusedActivation) -> Option<DirectFn> {
        if !(std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")) {
            return None;
        }
        if g.dh != 1 || g.dw != 1 || g.kh != g.kw || g.sh != g.sw || g.h == 0 || g.w == 0 {
            return None;
        }
        let (lo, hi) = act.clamp_bounds()?;
        // The clamp bounds ride in the function choice: only these three shapes exist.
        let f: DirectFn = match (g.kh, g.sw, lo == f32::NEG_INFINITY, hi == f32::INFINITY) {
            (3, 1, true, true) => channel::<3, 1, 0>,
            (3, 2, true, true) => channel::<3, 2, 0>,
            (5, 1, true, true) => channel::<5, 1, 0>,
            (5, 2, true, true) => channel::<5, 2, 0>,
            (7, 1, true, true) => channel::<7, 1, 0>,
            (7, 2, true, true) => channel::<7, 2, 0>,
            (3, 1, false, true) if lo == 0.0 => channel::<3, 1, 1>,
            (3, 2, false, true) if lo == 0.0 => channel::<3, 2, 1>,
            (5, 1, false, true) if lo == 0.0 => channel::<5, 1, 1>,
            (5, 2, false, true) if lo == 0.0 => channel::<5, 2, 1>,
            (7, 1, false, true) if lo == 0.0 => channel::<7, 1, 1>,
            (7, 2, false, true) if lo == 0.0 => channel::<7, 2, 1>,
            (3, 1, false, false) if (lo, hi) == (0.0, 6.0) => channel::<3, 1, 6>,
            (3, 2, false, false) if (lo, hi) == (0.0, 6.0) => channel::<3, 2, 6>,
            (5, 1, false, false) if (lo, hi) == (0.0, 6.0) => channel::<5, 1, 6>,
            (5, 2, false, false) if (lo, hi) == (0.0, 6.0) => channel::<5, 2, 6>,
            (7, 1, false, false) if (lo, hi) == (0.0, 6.0) => channel::<7, 1, 6>,
            (7, 2, false, false) if (lo, hi) == (0.0, 6.0) => channel::<7, 2, 6>,
            _ => return None,
        };
        Some(f)
    }

    /// `ACT`: 0 none, 1 Relu, 6 Relu6 (Clip 0..6), applied before the store.
    /// `max(lo, v)` / `min(hi, v)` return `v` when it is NaN, like the scalar path.
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn channel<const K: usize, const S: usize, const ACT: u32>(
        g: &Geo2,
        x: &[f32],
        w: &[f32],
        bias: f32,
        out: &mut [f32],
    ) {
        debug_assert!(x.len() == g.h * g.w && w.len() == K * K && out.len() == g.oh * g.ow);
        let tiles = g.ow.div_ceil(L);
        if tiles >= 2 {
            rows_by_tap::<K, S, ACT, 4, 2>(g, x, w, bias, out)
        } else {
            rows::<K, S, ACT, 8, 1>(g, x, w, bias, out)
        }
    }

    /// Load masks and start columns of one block's `C` column tiles (from
    /// output column `t0`) for each tap column: second halves for stride 2;
    /// tiles past `cols` get empty masks (no memory access).
    struct TileLoads<const K: usize, const C: usize> {
        m0: [[__mmask16; K]; C],
        m1: [[__mmask16; K]; C],
        start: [[isize; K]; C],
    }

    impl<const K: usize, const C: usize> TileLoads<K, C> {
        #[inline(always)]
        fn new<const S: usize>(g: &Geo2, t0: usize, cols: usize) -> Self {
            let mut t = TileLoads { m0: [[0; K]; C], m1: [[0; K]; C], start: [[0; K]; C] };
            for c in 0..cols {
                for kw in 0..K {
                    let s0 = ((t0 + c * L) * S + kw) as i64 - g.pw;
                    t.start[c][kw] = s0 as isize;
                    t.m0[c][kw] = lanes_in_row(s0, g.w);
                    if S == 2 {
                        t.m1[c][kw] = lanes_in_row(s0 + L as i64, g.w);
                    }
                }
            }
            t
        }

        /// Tap column `kw` of tile `c` from input row `row`, zero outside it
        /// (masked-off lanes are not accessed, so the pointer may point
        /// outside the row: wrapping arithmetic); stride 2 de-interleaves two
        /// loads with `even`.
        #[inline]
        #[target_feature(enable = "avx512f,fma")]
        unsafe fn load<const S: usize>(&self, row: *const f32, c: usize, kw: usize, even: __m512i) -> __m512 {
            let p = row.wrapping_offset(self.start[c][kw]);
            if S == 1 {
                _mm512_maskz_loadu_ps(self.m0[c][kw], p)
            } else {
                let a = _mm512_maskz_loadu_ps(self.m0[c][kw], p);
                let b = _mm512_maskz_loadu_ps(self.m1[c][kw], p.wrapping_add(L));
                _mm512_permutex2var_ps(a, even, b)
            }
        }
    }

    /// The `[lo, hi]` clamp of activation `ACT` (0 none, 1 Relu, 6 Relu6).
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn bounds_of<const ACT: u32>() -> (__m512, __m512) {
        match ACT {
            1 => (_mm512_setzero_ps(), _mm512_set1_ps(f32::INFINITY)),
            6 => (_mm512_setzero_ps(), _mm512_set1_ps(6.0)),
            _ => (_mm512_set1_ps(f32::NEG_INFINITY), _mm512_set1_ps(f32::INFINITY)),
        }
    }

    /// Clamps (for `ACT != 0`) and stores a block's `nrows × cols` vectors
    /// at output row `oh0`, column `t0` (a masked store for a partial tile).
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn store_block<const ACT: u32, const R: usize, const C: usize>(
        g: &Geo2,
        acc: &[[__m512; C]; R],
        nrows: usize,
        cols: usize,
        oh0: usize,
        t0: usize,
        (lo, hi): (__m512, __m512),
        op: *mut f32,
    ) {
        for (r, row) in acc.iter().enumerate().take(nrows) {
            for (c, &v) in row.iter().enumerate().take(cols) {
                let col = t0 + c * L;
                let n = L.min(g.ow - col);
                let v = if ACT != 0 { _mm512_min_ps(hi, _mm512_max_ps(lo, v)) } else { v };
                let dst = op.add((oh0 + r) * g.ow + col);
                if n == L {
                    _mm512_storeu_ps(dst, v);
                } else {
                    _mm512_mask_storeu_ps(dst, ((1u32 << n) - 1) as __mmask16, v);
                }
            }
        }
    }

    /// Output rows in blocks of `R`, column tiles of `C × 16`, input row by
    /// input row (each loaded vector feeds every output row it covers): for
    /// narrow maps (one tile per row), where it saves most loads.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn rows<const K: usize, const S: usize, const ACT: u32, const R: usize, const C: usize>(
        g: &Geo2,
        x: &[f32],
        w: &[f32],
        bias: f32,
        out: &mut [f32],
    ) {
        let xp = x.as_ptr();
        let op = out.as_mut_ptr();
        let mut wv = [_mm512_setzero_ps(); 49];
        for t in 0..K * K {
            wv[t] = _mm512_set1_ps(w[t]);
        }
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let bounds = bounds_of::<ACT>();
        let mut t0 = 0;
        while t0 < g.ow {
            let cols = C.min((g.ow - t0).div_ceil(L));
            let tl = TileLoads::<K, C>::new::<S>(g, t0, cols);
            let mut oh0 = 0;
            while oh0 < g.oh {
                let nrows = R.min(g.oh - oh0);
                let mut acc = [[_mm512_set1_ps(bias); C]; R];
                // Input-row-major: each loaded input vector feeds every output
                // row of the block whose kernel window covers it (`kh = q - r·S`),
                // so a row is loaded once per block instead of once per tap row.
                for q in 0..(R - 1) * S + K {
                    let ih = (oh0 * S + q) as i64 - g.ph;
                    if ih < 0 || ih >= g.h as i64 || q >= (nrows - 1) * S + K {
                        continue;
                    }
                    let row = xp.add(ih as usize * g.w);
                    for kw in 0..K {
                        for c in 0..C {
                            if c >= cols {
                                break;
                            }
                            let v = tl.load::<S>(row, c, kw, even);
                            for r in 0..R {
                                if q >= r * S && q - r * S < K && r < nrows {
                                    let kh = q - r * S;
                                    acc[r][c] = _mm512_fmadd_ps(wv[kh * K + kw], v, acc[r][c]);
                                }
                            }
                        }
                    }
                }
                store_block::<ACT, R, C>(g, &acc, nrows, cols, oh0, t0, bounds, op);
                oh0 += R;
            }
            t0 += C * L;
        }
    }

    /// Output rows in blocks of `R`, column tiles of `C × 16`, tap by tap:
    /// for rows of two or more tiles, where the row-major order of [`rows`]
    /// keeps too many vectors live to stay in registers.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn rows_by_tap<const K: usize, const S: usize, const ACT: u32, const R: usize, const C: usize>(
        g: &Geo2,
        x: &[f32],
        w: &[f32],
        bias: f32,
        out: &mut [f32],
    ) {
        let xp = x.as_ptr();
        let wp = w.as_ptr();
        let op = out.as_mut_ptr();
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let bounds = bounds_of::<ACT>();
        let mut t0 = 0;
        while t0 < g.ow {
            let cols = C.min((g.ow - t0).div_ceil(L));
            let tl = TileLoads::<K, C>::new::<S>(g, t0, cols);
            let mut oh0 = 0;
            while oh0 < g.oh {
                let nrows = R.min(g.oh - oh0);
                let mut acc = [[_mm512_set1_ps(bias); C]; R];
                // `kh` is a loop, the rest (R·K·C taps) unrolls with the
                // accumulators in registers; a tap's weight is broadcast
                // where it is used (hoisting a kernel row's measured slower).
                // Rows outside the input (or past the block's last output
                // row) are skipped.
                for kh in 0..K {
                    for r in 0..R {
                        let ih = ((oh0 + r) * S + kh) as i64 - g.ph;
                        if r >= nrows || ih < 0 || ih >= g.h as i64 {
                            continue;
                        }
                        let row = xp.add(ih as usize * g.w);
                        for kw in 0..K {
                            let wt = _mm512_set1_ps(*wp.add(kh * K + kw));
                            for c in 0..C {
                                acc[r][c] = _mm512_fmadd_ps(wt, tl.load::<S>(row, c, kw, even), acc[r][c]);
                            }
                        }
                    }
                }
                store_block::<ACT, R, C>(g, &acc, nrows, cols, oh0, t0, bounds, op);
                oh0 += R;
            }
            t0 += C * L;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, rand_vec};

    /// `depthwise_channels` (the AVX-512 direct and phase-plane kernels where
    /// the CPU has them) against the portable scratch kernel + the scalar
    /// activation.
    #[test]
    fn direct_kernels_match_portable() {
        let acts = [
            FusedActivation::None,
            FusedActivation::Relu,
            FusedActivation::Clip { min: 0.0, max: 6.0 },
            FusedActivation::Clip { min: -0.5, max: 0.5 },
        ];
        for &(h, w, k, s, p) in &[
            (9usize, 11usize, 3usize, 1usize, 1i64),
            (112, 112, 3, 1, 1),
            (112, 112, 3, 2, 1),
            (113, 75, 3, 2, 1),
            (14, 14, 5, 1, 2),
            (15, 33, 5, 2, 2),
            (7, 7, 3, 1, 1),
            (7, 7, 7, 1, 3),
            (20, 40, 7, 2, 3),
            (5, 50, 3, 1, 0),
            (1, 17, 3, 1, 1),
            (4, 4, 5, 2, 0),
            (7, 7, 5, 1, 2),
            (14, 14, 5, 2, 2),
            (2, 9, 5, 2, 2),
            (40, 3, 3, 2, 1),
        ] {
            let pu = p as usize;
            if h + 2 * pu < k || w + 2 * pu < k {
                continue;
            }
            let oh = (h + 2 * p as usize - k) / s + 1;
            let ow = (w + 2 * p as usize - k) / s + 1;
            let g = Geo2 { h, w, kh: k, kw: k, oh, ow, sh: s, sw: s, dh: 1, dw: 1, ph: p, pw: p };
            let chans = 3;
            let mut x = rand_vec(chans * h * w, 7);
            x[1] = f32::NAN;
            let wt = rand_vec(chans * k * k, 8);
            let bias = rand_vec(chans, 9);
            for act in acts {
                let mut want = vec![0f32; chans * oh * ow];
                let mut sc = Vec::new();
                for c in 0..chans {
                    let o = &mut want[c * oh * ow..(c + 1) * oh * ow];
                    channel_portable(&g, &x[c * h * w..(c + 1) * h * w], &wt[c * k * k..(c + 1) * k * k], bias[c], o, &mut sc);
                    act.apply_slice(o);
                }
                let mut got = vec![-1f32; chans * oh * ow];
                depthwise_channels(&g, &x, &wt, Some(&bias), act, &mut got, &mut sc);
                for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                    assert!(
                        (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                        "{h}x{w} k{k} s{s} p{p} {act:?}: element {i}: want {a}, got {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn portable_matches_dispatched() {
        for &(h, w, k, s, d, p) in &[
            (9usize, 11usize, 3usize, 1usize, 1usize, 1i64),
            (12, 7, 5, 2, 1, 2),
            (6, 6, 3, 3, 2, 0),
            (10, 20, 4, 2, 3, 3),
            (14, 14, 5, 1, 1, 2),
            (7, 7, 5, 1, 1, 2),
            (28, 28, 3, 2, 1, 1),
            (56, 56, 5, 2, 1, 2),
            (7, 7, 3, 1, 1, 1),
        ] {
            let oh = (h + 2 * p as usize - (k - 1) * d - 1) / s + 1;
            let ow = (w + 2 * p as usize - (k - 1) * d - 1) / s + 1;
            let g = Geo2 {
                h,
                w,
                kh: k,
                kw: k,
                oh,
                ow,
                sh: s,
                sw: s,
                dh: d,
                dw: d,
                ph: p,
                pw: p,
            };
            let x = rand_vec(h * w, 1);
            let wt = rand_vec(k * k, 2);
            let (mut a, mut b) = (vec![0f32; oh * ow], vec![0f32; oh * ow]);
            let mut sc = Vec::new();
            channel_portable(&g, &x, &wt, 0.5, &mut a, &mut sc);
            pick()(&g, &x, &wt, 0.5, &mut b, &mut sc);
            assert_close(&a, &b, 1e-5);
        }
    }
}
