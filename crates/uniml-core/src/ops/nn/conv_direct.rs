//! Direct convolution for few input channels (the RGB stem of a CNN).
//!
//! With 3 input channels im2col + GEMM is a poor fit: the GEMM depth is only
//! `3·k·k` (27 for a 3×3 stem), so the microkernel spends as long loading and
//! storing its C tile as multiplying, and the im2col buffer is 9× the input.
//! Here each input vector (16 output columns of one tap of one input channel,
//! a masked load straight from the input row, de-interleaved by one permute
//! for stride 2) feeds the accumulators of 16 output channels, each FMA
//! reading its weight as an embedded broadcast; bias and a Relu/Clip
//! activation are applied in registers. Parallel tasks are bands of output
//! rows over all channels, so a band's input rows are read from cache once
//! per channel block. AVX-512 only (selected at run time); other CPUs keep
//! im2col + GEMM.

use super::depthwise::Geo2;
use super::FusedActivation;
use crate::parallel::Parallelism;
#[cfg(target_arch = "x86_64")]
use crate::parallel::SyncPtr;

/// Most input channels taken by the direct kernel.
pub(crate) const MAX_CHANNELS: usize = 4;
/// Output channels per block of accumulators: 16 accumulators of 16 columns
/// each, with the weight broadcasts folded into the FMAs (8 channels × 2
/// column tiles needed separate broadcasts and ran at half the speed).
#[cfg(target_arch = "x86_64")]
const OC: usize = 16;
/// Output rows per parallel task.
#[cfg(target_arch = "x86_64")]
const BAND_ROWS: usize = 8;

/// Runs the direct kernel if this CPU and geometry allow it: `x` is one
/// batch item `[c, h, w]`, `w` the weights `[m, c, k, k]`, `out` `[m, oh, ow]`.
/// Returns `false` (nothing written) when the case is not covered.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_few_channels(
    par: &dyn Parallelism,
    g: &Geo2,
    c: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let Some(f) = avx512::pick(g, c) else { return false };
        let osz = g.oh * g.ow;
        let m = out.len() / osz.max(1);
        if osz == 0 || x.len() != c * g.h * g.w || w.len() != m * c * g.kh * g.kw {
            return false;
        }
        // Activations other than Relu/Clip run as a vectorised pass afterwards.
        let (lo, hi, rest) = match act.clamp_bounds() {
            Some((lo, hi)) => (lo, hi, FusedActivation::None),
            None => (f32::NEG_INFINITY, f32::INFINITY, act),
        };
        let kk = c * g.kh * g.kw;
        let blocks = m.div_ceil(OC);
        let out_ptr = SyncPtr(out.as_mut_ptr());
        super::with_scratch(|buf| {
            // Weights `[block][c·k·k][OC]`, then biases `[block][OC]`,
            // zero-padded to whole blocks of OC channels: packed once, read
            // by every band.
            let packed = super::scratch_slice(buf, blocks * OC * (kk + 1));
            packed.fill(0.0);
            let (wpk, bpk) = packed.split_at_mut(blocks * OC * kk);
            for oc in 0..m {
                let (blk, j) = (oc / OC, oc % OC);
                for t in 0..kk {
                    wpk[(blk * kk + t) * OC + j] = w[oc * kk + t];
                }
                bpk[blk * OC + j] = bias.map_or(0.0, |b| b[oc]);
            }
            let (wpk, bpk) = (&*wpk, &*bpk);
            // Tasks are bands of output rows covering every channel block, so
            // the input rows a band reads stay in cache while each block's
            // weights pass over them (a task per channel block streamed the
            // whole input from L3 once per block).
            let bands = g.oh.div_ceil(BAND_ROWS);
            let band = |bi: usize| {
                let (oh0, oh1) = (bi * BAND_ROWS, ((bi + 1) * BAND_ROWS).min(g.oh));
                for blk in 0..blocks {
                    let m0 = blk * OC;
                    let n = OC.min(m - m0);
                    let wb = &wpk[blk * kk * OC..(blk + 1) * kk * OC];
                    let bb = bpk[m0..].first_chunk::<OC>().expect("a bias block of OC channels");
                    // SAFETY: `pick` checked the CPU features and the geometry;
                    // this task alone writes rows `oh0..oh1` of planes
                    // `m0..m0 + n` of `out` (`m` planes of `osz`), and `wb`
                    // holds `kk × OC` weights.
                    unsafe {
                        let planes = out_ptr.get().add(m0 * osz);
                        f(g, c, x, wb, bb, lo, hi, n, planes, oh0, oh1);
                        for oc in 0..n {
                            let rows = std::slice::from_raw_parts_mut(planes.add(oc * osz + oh0 * g.ow), (oh1 - oh0) * g.ow);
                            rest.apply_slice(rows);
                        }
                    }
                }
            };
            if par.threads() <= 1 || bands <= 1 {
                (0..bands).for_each(band);
            } else {
                par.for_each(bands, &band);
            }
        });
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (par, g, c, x, w, bias, act, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Geo2, MAX_CHANNELS, OC};
    use crate::ops::nn::depthwise::lanes_in_row;

    const L: usize = 16;

    /// `(geometry, channels, input, block weights [c·k·k][OC], block bias,
    /// clamp lo, clamp hi, channels to store, the block's first output plane,
    /// first and end output row)`.
    pub(super) type BlockFn =
        unsafe fn(&Geo2, usize, &[f32], &[f32], &[f32; OC], f32, f32, usize, *mut f32, usize, usize);

    pub(super) fn pick(g: &Geo2, c: usize) -> Option<BlockFn> {
        if !(std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")) {
            return None;
        }
        if c == 0 || c > MAX_CHANNELS || g.dh != 1 || g.dw != 1 || g.kh != g.kw || g.sh != g.sw {
            return None;
        }
        Some(match (g.kh, g.sw) {
            (3, 1) => block::<3, 1>,
            (3, 2) => block::<3, 2>,
            (5, 1) => block::<5, 1>,
            (5, 2) => block::<5, 2>,
            (7, 1) => block::<7, 1>,
            (7, 2) => block::<7, 2>,
            _ => return None,
        })
    }

    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn block<const K: usize, const S: usize>(
        g: &Geo2,
        c: usize,
        x: &[f32],
        wb: &[f32],
        bb: &[f32; OC],
        lo: f32,
        hi: f32,
        n: usize,
        op: *mut f32,
        oh0: usize,
        oh1: usize,
    ) {
        let plane = g.h * g.w;
        let osz = g.oh * g.ow;
        let xp = x.as_ptr();
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let clamp = lo != f32::NEG_INFINITY || hi != f32::INFINITY;
        for oh in oh0..oh1 {
            let mut col = 0;
            while col < g.ow {
                // Input lanes of each tap that fall inside the row.
                let mut m0 = [0 as __mmask16; K];
                let mut m1 = [0 as __mmask16; K];
                let mut start = [0i64; K];
                for kw in 0..K {
                    let s0 = (col * S + kw) as i64 - g.pw;
                    start[kw] = s0;
                    m0[kw] = lanes_in_row(s0, g.w);
                    if S == 2 {
                        m1[kw] = lanes_in_row(s0 + L as i64, g.w);
                    }
                }
                let mut acc = [_mm512_setzero_ps(); OC];
                for oc in 0..OC {
                    acc[oc] = _mm512_set1_ps(bb[oc]);
                }
                for ci in 0..c {
                    for kh in 0..K {
                        let ih = (oh * S + kh) as i64 - g.ph;
                        if ih < 0 || ih >= g.h as i64 {
                            continue;
                        }
                        let row = xp.add(ci * plane + ih as usize * g.w);
                        for kw in 0..K {
                            let wrow = wb.as_ptr().add(((ci * K + kh) * K + kw) * OC);
                            // Masked-off lanes are not accessed (wrapping pointer).
                            let p = row.wrapping_offset(start[kw] as isize);
                            let v = if S == 1 {
                                _mm512_maskz_loadu_ps(m0[kw], p)
                            } else {
                                let a = _mm512_maskz_loadu_ps(m0[kw], p);
                                let b = _mm512_maskz_loadu_ps(m1[kw], p.wrapping_add(L));
                                _mm512_permutex2var_ps(a, even, b)
                            };
                            for oc in 0..OC {
                                acc[oc] = _mm512_fmadd_ps(_mm512_set1_ps(*wrow.add(oc)), v, acc[oc]);
                            }
                        }
                    }
                }
                let cnt = L.min(g.ow - col);
                for oc in 0..n {
                    let mut r = acc[oc];
                    if clamp {
                        // max/min return the second operand for NaN: NaN stays.
                        r = _mm512_min_ps(vhi, _mm512_max_ps(vlo, r));
                    }
                    let dst = op.add(oc * osz + oh * g.ow + col);
                    if cnt == L {
                        _mm512_storeu_ps(dst, r);
                    } else {
                        _mm512_mask_storeu_ps(dst, ((1u32 << cnt) - 1) as __mmask16, r);
                    }
                }
                col += L;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{rand_vec, FakePar};
    use crate::parallel::Serial;

    /// Against a plain 6-loop convolution in f64, serially and split into
    /// row bands (more than one band and a partial last channel block).
    #[test]
    fn matches_naive_convolution() {
        for &(c, m, h, w, k, s, p) in &[
            (3usize, 32usize, 33usize, 35usize, 3usize, 2usize, 1i64),
            (3, 16, 20, 40, 3, 1, 1),
            (1, 5, 9, 9, 5, 2, 2),
            (4, 12, 17, 70, 7, 2, 3),
            (2, 8, 6, 6, 3, 1, 0),
            (3, 9, 7, 7, 7, 1, 3),
            (3, 37, 40, 21, 3, 1, 1),
        ] {
            let oh = (h + 2 * p as usize - k) / s + 1;
            let ow = (w + 2 * p as usize - k) / s + 1;
            let g = Geo2 { h, w, kh: k, kw: k, oh, ow, sh: s, sw: s, dh: 1, dw: 1, ph: p, pw: p };
            let x = rand_vec(c * h * w, 3);
            let wt = rand_vec(m * c * k * k, 4);
            let bias = rand_vec(m, 5);
            let acts = [FusedActivation::None, FusedActivation::Clip { min: 0.0, max: 6.0 }, FusedActivation::HardSwish];
            for (act, par) in acts.into_iter().flat_map(|a| [(a, &Serial as &dyn Parallelism), (a, &FakePar)]) {
                let mut got = vec![f32::NAN; m * oh * ow];
                if !conv_few_channels(par, &g, c, &x, &wt, Some(&bias), act, &mut got) {
                    return; // no AVX-512 here: nothing to check
                }
                for mo in 0..m {
                    for y in 0..oh {
                        for xo in 0..ow {
                            let mut acc = bias[mo] as f64;
                            for ci in 0..c {
                                for kh in 0..k {
                                    for kw in 0..k {
                                        let iy = (y * s + kh) as i64 - p;
                                        let ix = (xo * s + kw) as i64 - p;
                                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                            acc += x[(ci * h + iy as usize) * w + ix as usize] as f64
                                                * wt[((mo * c + ci) * k + kh) * k + kw] as f64;
                                        }
                                    }
                                }
                            }
                            let want = act.apply(acc as f32);
                            let v = got[(mo * oh + y) * ow + xo];
                            assert!((v - want).abs() <= 1e-4 * (1.0 + want.abs()), "c{c} m{m} {h}x{w} k{k} s{s} {act:?} at ({mo},{y},{xo}): {v} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
