//! Depthwise convolution over stride-phased, zero-padded copies of the
//! input plane, for the cases where the row-tiled kernel of `depthwise`
//! wastes most of its work: stride 2 (two masked loads and a permute per tap
//! and tile) and small planes with large kernels (a 7-column output row
//! fills 7 of 16 lanes).
//!
//! Per channel the padded input is split into `S × S` phase planes
//! (`phase[py][px][i][j] = xpad[i·S + py][j·S + px]`), each `wq` columns wide
//! with `wq = ow + (k − 1)/S`. Output `(oh, ow)` is then computed at flat
//! index `q = oh·wq + ow`, and tap `(kh, kw)` reads its phase plane at
//! `q + (kh/S)·wq + kw/S`: a plain unaligned load, the same shift for every
//! lane. The `wq − ow` columns past each output row are computed and dropped;
//! a 7×7 output with a 5×5 kernel at stride 2 uses 49 of 64 lanes (the row
//! kernel: 7 of 16, with twice the loads). Building the phase planes costs one
//! masked load and store per 16 values (two loads and two permutes for stride
//! 2), once per channel. AVX-512 only (selected at run time; the module is
//! compiled for x86-64 only).

use super::depthwise::Geo2;
use super::FusedActivation;

/// The kernel for this geometry and activation, if the CPU has AVX-512F and
/// the case is one this kernel is chosen for (stride 2, or a 5×5/7×7 kernel
/// on output rows of at most 8 columns at stride 1; square undilated 3/5/7
/// kernels; activation None/Relu/Clip).
pub(crate) fn pick(g: &Geo2, act: FusedActivation) -> Option<PhaseKernel> {
    avx512::pick(g, act)
}

/// A picked kernel: runs one channel (`x` one input plane, `w` its `k × k`
/// weights, `out` one output plane) with `scratch` as working memory.
#[derive(Clone, Copy)]
pub(crate) struct PhaseKernel {
    f: avx512::ChannelFn,
    lo: f32,
    hi: f32,
    /// The scratch layout of the geometry `pick` was given.
    lay: Layout,
}

impl PhaseKernel {
    /// Runs one channel of the geometry given to [`pick`].
    pub(crate) fn run(&self, g: &Geo2, x: &[f32], w: &[f32], bias: f32, out: &mut [f32], scratch: &mut Vec<f32>) {
        let s = super::scratch_slice(scratch, self.lay.total());
        // SAFETY: `pick` checked the CPU features and the geometry; `s`
        // holds the layout's phase planes and flat output.
        unsafe { (self.f)(g, &self.lay, x, w, bias, self.lo, self.hi, out, s) }
    }
}

/// Where the phase planes and the flat output live in the scratch buffer.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Phase plane width and row count.
    wq: usize,
    hq: usize,
    /// Flat outputs computed (whole vectors).
    nq: usize,
    /// Floats per phase plane: every row, plus what the last block's
    /// farthest tap reads past them.
    plane: usize,
    phases: usize,
}

/// Lanes per vector, vectors per accumulator block.
const L: usize = 16;
const NV: usize = 4;

impl Layout {
    fn new(g: &Geo2) -> Layout {
        let reach = (g.kh - 1) / g.sh;
        let (wq, hq) = (g.ow + reach, g.oh + reach);
        let nq = (g.oh * wq).next_multiple_of(L);
        let plane = (hq * wq).max(nq + reach * wq + reach).next_multiple_of(L) + L;
        Layout { wq, hq, nq, plane, phases: g.sh * g.sh }
    }

    fn total(&self) -> usize {
        self.phases * self.plane + self.nq
    }
}

mod avx512 {
    use std::arch::x86_64::*;

    use super::{FusedActivation, Geo2, Layout, PhaseKernel, L, NV};
    use crate::ops::nn::depthwise::lanes_in_row;

    /// `(geometry, layout, input plane, weights, bias, clamp lo, clamp hi,
    /// output plane, scratch)`.
    pub(super) type ChannelFn = unsafe fn(&Geo2, &Layout, &[f32], &[f32], f32, f32, f32, &mut [f32], &mut [f32]);

    pub(super) fn pick(g: &Geo2, act: FusedActivation) -> Option<PhaseKernel> {
        if !(std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")) {
            return None;
        }
        if g.dh != 1 || g.dw != 1 || g.kh != g.kw || g.sh != g.sw || g.h == 0 || g.w == 0 || g.oh == 0 || g.ow == 0 {
            return None;
        }
        // At stride 1 the row kernel needs no copy and reuses each loaded
        // row for several output rows; measured (EfficientNet-Lite0's
        // layers) it stays faster except for 5×5 and 7×7 kernels on maps of
        // at most 8 columns (7×7: 0.12–0.15 vs 0.14–0.20 ms; 3×3 there and
        // 14×14 maps: slower or level).
        if g.sh == 1 && (g.kh < 5 || g.ow > 8) {
            return None;
        }
        let (lo, hi) = act.clamp_bounds()?;
        let f: ChannelFn = match (g.kh, g.sh) {
            (3, 1) => channel::<3, 1>,
            (3, 2) => channel::<3, 2>,
            (5, 1) => channel::<5, 1>,
            (5, 2) => channel::<5, 2>,
            (7, 1) => channel::<7, 1>,
            (7, 2) => channel::<7, 2>,
            _ => return None,
        };
        Some(PhaseKernel { f, lo, hi, lay: Layout::new(g) })
    }

    /// Fills the `S × S` phase planes of one input plane (zero padding
    /// included), 16 phase columns at a time.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn fill_phases<const S: usize>(g: &Geo2, lay: &Layout, x: &[f32], s: *mut f32) {
        let xp = x.as_ptr();
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for py in 0..S {
            for i in 0..lay.hq {
                let r = (i * S + py) as i64 - g.ph;
                let inside = r >= 0 && r < g.h as i64;
                let row = xp.wrapping_offset(r as isize * g.w as isize);
                let mut j0 = 0;
                while j0 < lay.wq {
                    // Stores run up to 15 floats past the row; the next row
                    // (written later) or the plane's slack takes them.
                    let dst0 = s.add(py * S * lay.plane + i * lay.wq + j0);
                    if !inside {
                        for px in 0..S {
                            _mm512_storeu_ps(dst0.add(px * lay.plane), _mm512_setzero_ps());
                        }
                    } else if S == 1 {
                        let c0 = j0 as i64 - g.pw;
                        // Masked-off lanes are not accessed (wrapping pointer).
                        let v = _mm512_maskz_loadu_ps(lanes_in_row(c0, g.w), row.wrapping_offset(c0 as isize));
                        _mm512_storeu_ps(dst0, v);
                    } else {
                        let c0 = (2 * j0) as i64 - g.pw;
                        let a = _mm512_maskz_loadu_ps(lanes_in_row(c0, g.w), row.wrapping_offset(c0 as isize));
                        let b = _mm512_maskz_loadu_ps(lanes_in_row(c0 + L as i64, g.w), row.wrapping_offset(c0 as isize + L as isize));
                        _mm512_storeu_ps(dst0, _mm512_permutex2var_ps(a, even, b));
                        _mm512_storeu_ps(dst0.add(lay.plane), _mm512_permutex2var_ps(a, odd, b));
                    }
                    j0 += L;
                }
            }
        }
    }

    /// One channel: `out = clamp(conv(x, w) + bias, lo, hi)`; `max(lo, v)` /
    /// `min(hi, v)` return `v` when it is NaN, like the scalar path.
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn channel<const K: usize, const S: usize>(
        g: &Geo2,
        lay: &Layout,
        x: &[f32],
        w: &[f32],
        bias: f32,
        lo: f32,
        hi: f32,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        debug_assert!(x.len() == g.h * g.w && w.len() == K * K && out.len() == g.oh * g.ow);
        debug_assert!(scratch.len() >= lay.total());
        let s = scratch.as_mut_ptr();
        fill_phases::<S>(g, lay, x, s);
        let flat = s.add(lay.phases * lay.plane);
        let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let wp = w.as_ptr();
        // Blocks of NV vectors, then the last 1–3 vectors as one block.
        let vecs = lay.nq / L;
        let mut v0 = 0;
        while v0 + NV <= vecs {
            block::<K, S, NV>(lay, s, wp, bias, vlo, vhi, flat, v0 * L);
            v0 += NV;
        }
        match vecs - v0 {
            1 => block::<K, S, 1>(lay, s, wp, bias, vlo, vhi, flat, v0 * L),
            2 => block::<K, S, 2>(lay, s, wp, bias, vlo, vhi, flat, v0 * L),
            3 => block::<K, S, 3>(lay, s, wp, bias, vlo, vhi, flat, v0 * L),
            _ => {}
        }
        // Output rows out of the flat rows (masked copies: rows are short).
        let op = out.as_mut_ptr();
        for oh in 0..g.oh {
            let mut j = 0;
            while j < g.ow {
                let m = (((1u32 << L.min(g.ow - j)) - 1) & 0xffff) as __mmask16;
                let v = _mm512_maskz_loadu_ps(m, flat.add(oh * lay.wq + j));
                _mm512_mask_storeu_ps(op.add(oh * g.ow + j), m, v);
                j += L;
            }
        }
    }

    /// Flat outputs `q0 .. q0 + B·16`, clamped, into `flat`.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn block<const K: usize, const S: usize, const B: usize>(
        lay: &Layout,
        s: *const f32,
        wp: *const f32,
        bias: f32,
        vlo: __m512,
        vhi: __m512,
        flat: *mut f32,
        q0: usize,
    ) {
        let mut acc = [_mm512_set1_ps(bias); B];
        for kh in 0..K {
            for kw in 0..K {
                let phase = (kh % S) * S + kw % S;
                let src = s.add(phase * lay.plane + q0 + (kh / S) * lay.wq + kw / S);
                let wv = _mm512_set1_ps(*wp.add(kh * K + kw));
                for v in 0..B {
                    acc[v] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(src.add(v * L)), acc[v]);
                }
            }
        }
        for v in 0..B {
            _mm512_storeu_ps(flat.add(q0 + v * L), _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc[v])));
        }
    }
}
