//! Direct convolution with output channels as the vector lanes (AVX-512).
//!
//! im2col + GEMM puts output pixels on the GEMM's 32-wide column panels: a
//! 7×7 map (49 pixels) fills two panels at 77%, a 14×14 one (196) seven at
//! 88%, and a 3×3 conv also gathers im2col into those panels first. Here the
//! roles are swapped: each accumulator holds 16 output channels of one output
//! pixel, a tile is `P ≤ 12` pixels of one output row (or two rows of up
//! to 7) × 32 channels (up to 28 accumulators), and every tap `(c, ky, kx)`
//! is one load of 32 packed weights against the tile's input values,
//! broadcast straight from the (padded) NCHW input. No im2col is built, any pixel count fills the lanes, and
//! rows are split into even tiles. The tile is transposed to NCHW at the
//! store (16×16 in registers), where the residual and a Relu/Clip are
//! applied; other activations run as a pass over the stored rows.

use std::cell::RefCell;

#[cfg(target_arch = "x86_64")]
use super::conv_implicit::{pad_plane, tap_offsets};
use super::depthwise::Geo2;
use super::FusedActivation;
use crate::parallel::Parallelism;
#[cfg(target_arch = "x86_64")]
use crate::parallel::SyncPtr;

/// Output channels per weight block (two vectors of 16).
pub(crate) const OB: usize = 32;
/// Most output pixels per tile: 2·12 accumulators, 2 weights and a
/// broadcast fill 27 of the 32 vector registers.
#[cfg(target_arch = "x86_64")]
const PMAX: usize = 12;
/// Most pixels per row of a two-row tile (2·2·7 accumulators).
#[cfg(target_arch = "x86_64")]
const PAIR_COLS: usize = 7;

/// Conv weights `[m][k]` (`k = c·kh·kw`) packed as `[⌈m/OB⌉][k][OB]`,
/// output channels zero-padded to whole blocks.
#[derive(Debug)]
pub struct OcPack {
    // Read by the x86-64 kernels only (never built elsewhere: `available`).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    data: Vec<f32>,
    m: usize,
    k: usize,
}

impl OcPack {
    pub fn new(w: &[f32], m: usize, k: usize) -> Option<OcPack> {
        if w.len() != m * k || m == 0 || k == 0 {
            return None;
        }
        let blocks = m.div_ceil(OB);
        let mut data = vec![0.0; blocks * k * OB];
        for (oc, row) in w.chunks_exact(k).enumerate() {
            let (b, j) = (oc / OB, oc % OB);
            for (t, &v) in row.iter().enumerate() {
                data[(b * k + t) * OB + j] = v;
            }
        }
        Some(OcPack { data, m, k })
    }

    /// Output channels.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// The GEMM depth `c·kh·kw`.
    pub fn cols(&self) -> usize {
        self.k
    }
}

/// Whether this CPU runs the kernel (AVX-512) for a width stride of `sw`.
pub(crate) fn available(sw: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (sw == 1 || sw == 2) && std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = sw;
        false
    }
}

/// Whether the kernel is expected to beat the other paths on this
/// ungrouped conv (measured on EfficientNet-Lite0's, MobileNetV2's and
/// ResNet-50's layers, `ops::nn::bench`): not for an RGB stem (the
/// few-channel direct kernel), not where the last channel block would be
/// mostly padding (40 outputs fill 40 of 64 lanes), and not for a GEMM
/// depth under 64, where the tile's transposed store costs more than the
/// GEMM loses to its panels (16 → 96 channels at 112×112: 6% slower here,
/// 80 → 480 at 14×14: 11% faster).
pub(crate) fn prefers(g: &Geo2, c: usize, m: usize) -> bool {
    let k = c * g.kh * g.kw;
    let lanes = m.div_ceil(OB) * OB;
    c > super::conv_direct::MAX_CHANNELS
        && 4 * m >= 3 * lanes
        && k >= 64
        && available(g.sw)
}

thread_local! {
    /// Tap offsets into the (padded) input, reused between calls.
    static OFFSETS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// One batch item: `out [m, oh·ow] = act(conv(x [c, h·w]) + bias (+ out))`,
/// `out` holding a residual to add when `accumulate`. Returns `false`
/// (nothing written) when this CPU or geometry is not covered.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_ocvec(
    par: &dyn Parallelism,
    g: &Geo2,
    c: usize,
    x: &[f32],
    pack: &OcPack,
    bias: Option<&[f32]>,
    act: FusedActivation,
    accumulate: bool,
    out: &mut [f32],
) -> bool {
    let osz = g.oh * g.ow;
    if !available(g.sw)
        || osz == 0
        || pack.k != c * g.kh * g.kw
        || x.len() != c * g.h * g.w
        || out.len() != pack.m * osz
        || bias.is_some_and(|b| b.len() != pack.m)
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        run(par, g, c, x, pack, bias, act, accumulate, out);
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (par, act, accumulate);
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn run(
    par: &dyn Parallelism,
    g: &Geo2,
    c: usize,
    x: &[f32],
    pack: &OcPack,
    bias: Option<&[f32]>,
    act: FusedActivation,
    accumulate: bool,
    out: &mut [f32],
) {
    let osz = g.oh * g.ow;
    let m = pack.m;
    // The input region the taps read: rows `0..hp`, columns `0..wp` of the
    // padded input.
    let hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    let wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    let in_place = g.ph == 0 && g.pw == 0 && hp <= g.h && wp <= g.w;
    // A 1×1 stride-1 conv over the whole input reads each row's pixels
    // contiguously: one "row" of all `oh·ow` pixels, tiled as such.
    let flat = in_place && g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ow == g.w;
    let (rows, cols) = if flat { (1, osz) } else { (g.oh, g.ow) };
    let (lo, hi, rest) = match act.clamp_bounds() {
        Some((lo, hi)) => (lo, hi, FusedActivation::None),
        None => (f32::NEG_INFINITY, f32::INFINITY, act),
    };
    let blocks = m.div_ceil(OB);
    let tiles = cols.div_ceil(PMAX);
    // Rows of at most PAIR_COLS pixels go two at a time (one tile of
    // 2 × 2·cols accumulators), so that a 7-pixel row does not run with
    // 14 accumulators per weight load.
    let pair = !flat && cols <= PAIR_COLS && rows >= 2;
    let kernels = avx512::kernels(g.sw);
    super::with_scratch(|pbuf| {
        let (xs, plane, row_stride): (&[f32], usize, usize) = if in_place {
            (x, g.h * g.w, g.w)
        } else {
            let xp = super::scratch_slice(pbuf, c * hp * wp);
            for (ci, plane) in xp.chunks_exact_mut(hp * wp).enumerate() {
                pad_plane(g, &x[ci * g.h * g.w..(ci + 1) * g.h * g.w], wp, plane);
            }
            (&*xp, hp * wp, wp)
        };
        OFFSETS.with(|offs| {
            let mut offs = offs.borrow_mut();
            tap_offsets(&mut offs, g, c, plane, row_stride);
            let offs = &offs[..];
            let out_ptr = SyncPtr(out.as_mut_ptr());
            // Tasks: a channel block × a band of rows (of tiles when the map
            // is one flat row); bands only where the blocks alone would leave
            // threads idle.
            let threads = par.threads();
            let units = if flat { tiles } else { rows };
            let bands = if threads <= 1 { 1 } else { (4 * threads).div_ceil(blocks).clamp(1, units) };
            let mut band_units = units.div_ceil(bands);
            if pair {
                band_units = band_units.next_multiple_of(2);
            }
            let bands = units.div_ceil(band_units);
            let task = |i: usize| {
                let (b, band) = (i / bands, i % bands);
                let (u0, u1) = (band * band_units, ((band + 1) * band_units).min(units));
                let (r0, r1, t0, t1) = if flat { (0, 1, u0, u1) } else { (u0, u1, 0, tiles) };
                let n = OB.min(m - b * OB);
                let wb = &pack.data[b * pack.k * OB..(b + 1) * pack.k * OB];
                // The block's biases, zero past the last channel.
                let bb: [f32; OB] = std::array::from_fn(|j| bias.and_then(|v| v.get(b * OB + j).copied()).unwrap_or(0.0));
                let mut r = r0;
                while r < r1 {
                    let nr = if pair && r + 1 < r1 { 2 } else { 1 };
                    // Even tiles: the first `cols % tiles` get one more.
                    let mut col = t0 * (cols / tiles) + t0.min(cols % tiles);
                    for ti in t0..t1 {
                        let p = cols / tiles + usize::from(ti < cols % tiles);
                        let (src, dst_off) = if flat {
                            (col, col)
                        } else {
                            (r * g.sh * row_stride + col * g.sw, r * g.ow + col)
                        };
                        let kernel = if nr == 2 { kernels.two_rows[p - 1] } else { kernels.one_row[p - 1] };
                        // SAFETY: the kernels exist only with AVX-512 (checked
                        // by `available`); the taps of pixels `col..col + p`
                        // of rows `r..r + nr` stay inside `xs` (the padded
                        // region covers every tap of every output pixel);
                        // this task alone writes channels `b·OB..b·OB + n` of
                        // its rows.
                        unsafe {
                            let dst = out_ptr.get().add(b * OB * osz + dst_off);
                            kernel(
                                xs.as_ptr().add(src),
                                offs,
                                wb.as_ptr(),
                                bb.as_ptr(),
                                (lo, hi),
                                n,
                                accumulate,
                                dst,
                                (osz, g.sh * row_stride, g.ow),
                            );
                            if rest != FusedActivation::None {
                                for j in 0..n {
                                    for rr in 0..nr {
                                        let d = dst.add(j * osz + rr * g.ow);
                                        rest.apply_slice(std::slice::from_raw_parts_mut(d, p));
                                    }
                                }
                            }
                        }
                        col += p;
                    }
                    r += nr;
                }
            };
            if threads <= 1 || blocks * bands <= 1 {
                (0..blocks * bands).for_each(task);
            } else {
                par.for_each(blocks * bands, &task);
            }
        });
    });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{OB, PAIR_COLS, PMAX};

    /// `(first tap's input of the tile's first pixel, tap offsets, the
    /// block's weights [k][OB], the block's OB biases, (clamp lo, clamp hi),
    /// channels to store, accumulate, the output of channel 0 at the tile's
    /// first pixel, (plane size, input row step, output row step))`.
    pub(super) type TileFn =
        unsafe fn(*const f32, &[usize], *const f32, *const f32, (f32, f32), usize, bool, *mut f32, (usize, usize, usize));

    /// Tile kernels by pixels per row − 1: one row of up to PMAX pixels, or
    /// two rows of up to PAIR_COLS.
    pub(super) struct Kernels {
        pub one_row: [TileFn; PMAX],
        pub two_rows: [TileFn; PAIR_COLS],
    }

    macro_rules! kernels {
        ($s:literal) => {
            Kernels {
                one_row: [
                    tile::<1, $s, 1>, tile::<2, $s, 1>, tile::<3, $s, 1>, tile::<4, $s, 1>,
                    tile::<5, $s, 1>, tile::<6, $s, 1>, tile::<7, $s, 1>, tile::<8, $s, 1>,
                    tile::<9, $s, 1>, tile::<10, $s, 1>, tile::<11, $s, 1>, tile::<12, $s, 1>,
                ],
                two_rows: [
                    tile::<1, $s, 2>, tile::<2, $s, 2>, tile::<3, $s, 2>, tile::<4, $s, 2>,
                    tile::<5, $s, 2>, tile::<6, $s, 2>, tile::<7, $s, 2>,
                ],
            }
        };
    }

    /// The kernels for a width stride of 1 or 2.
    pub(super) fn kernels(sw: usize) -> Kernels {
        if sw == 2 {
            kernels!(2)
        } else {
            kernels!(1)
        }
    }

    #[target_feature(enable = "avx512f,fma")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn tile<const P: usize, const S: usize, const R: usize>(
        xb: *const f32,
        offs: &[usize],
        wb: *const f32,
        bias: *const f32,
        (lo, hi): (f32, f32),
        n: usize,
        accumulate: bool,
        dst: *mut f32,
        (osz, in_row, out_row): (usize, usize, usize),
    ) {
        let mut a0 = [[_mm512_loadu_ps(bias); P]; R];
        let mut a1 = [[_mm512_loadu_ps(bias.add(16)); P]; R];
        let mut wp = wb;
        for &o in offs {
            let w0 = _mm512_loadu_ps(wp);
            let w1 = _mm512_loadu_ps(wp.add(16));
            for r in 0..R {
                let xp = xb.add(o + r * in_row);
                for p in 0..P {
                    let v = _mm512_set1_ps(*xp.add(p * S));
                    a0[r][p] = _mm512_fmadd_ps(v, w0, a0[r][p]);
                    a1[r][p] = _mm512_fmadd_ps(v, w1, a1[r][p]);
                }
            }
            wp = wp.add(OB);
        }
        // Transposed in registers, 16 channels at a time: the tile's
        // pixels (lane `r·P + p` is pixel `p` of row `r`) become the lanes
        // of one vector per channel.
        let row_mask = |r: usize| (((1u32 << P) - 1) << (r * P)) as __mmask16;
        // Row `r`'s lanes start at lane `r·P`: its store address is offset back by that.
        let row_dst = |d: *mut f32, r: usize| d.wrapping_add(r * out_row).wrapping_sub(r * P);
        let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let clamp = lo != f32::NEG_INFINITY || hi != f32::INFINITY;
        for (half, acc) in [&a0, &a1].into_iter().enumerate() {
            let j0 = half * 16;
            if j0 >= n {
                break;
            }
            let mut m = [_mm512_setzero_ps(); 16];
            for r in 0..R {
                for p in 0..P {
                    m[r * P + p] = acc[r][p];
                }
            }
            let cols = transpose16(m);
            for (j, &col) in cols.iter().enumerate().take(n - j0) {
                let mut v = col;
                let d = dst.add((j0 + j) * osz);
                if accumulate {
                    let mut z = _mm512_setzero_ps();
                    for r in 0..R {
                        z = _mm512_mask_loadu_ps(z, row_mask(r), row_dst(d, r));
                    }
                    v = _mm512_add_ps(v, z);
                }
                if clamp {
                    // max/min return the second operand for NaN: NaN stays.
                    v = _mm512_min_ps(vhi, _mm512_max_ps(vlo, v));
                }
                for r in 0..R {
                    _mm512_mask_storeu_ps(row_dst(d, r), row_mask(r), v);
                }
            }
        }
    }

    /// The 16×16 transpose: lane `i` of output `j` is lane `j` of input `i`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        let mut t = [_mm512_setzero_ps(); 16];
        // Pairs of rows interleaved within each 128-bit lane.
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // Groups of four rows: each 128-bit lane holds one column's 4 values.
        let mut u = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
        }
        // 128-bit lanes gathered across the groups of four rows.
        for i in 0..2 {
            for k in 0..4 {
                t[8 * i + k] = _mm512_shuffle_f32x4::<0x88>(u[8 * i + k], u[8 * i + 4 + k]);
                t[8 * i + 4 + k] = _mm512_shuffle_f32x4::<0xDD>(u[8 * i + k], u[8 * i + 4 + k]);
            }
        }
        let mut out = [_mm512_setzero_ps(); 16];
        for k in 0..8 {
            out[k] = _mm512_shuffle_f32x4::<0x88>(t[k], t[k + 8]);
            out[k + 8] = _mm512_shuffle_f32x4::<0xDD>(t[k], t[k + 8]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{rand_vec, FakePar};

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transpose16_transposes() {
        if !available(1) {
            return;
        }
        use std::arch::x86_64::*;
        // SAFETY: AVX-512 checked above.
        unsafe {
            let mut rows = [_mm512_setzero_ps(); 16];
            for (i, r) in rows.iter_mut().enumerate() {
                let v: [f32; 16] = std::array::from_fn(|j| (i * 16 + j) as f32);
                *r = _mm512_loadu_ps(v.as_ptr());
            }
            let out = avx512::transpose16(rows);
            for (j, o) in out.iter().enumerate() {
                let mut got = [0f32; 16];
                _mm512_storeu_ps(got.as_mut_ptr(), *o);
                let want: [f32; 16] = std::array::from_fn(|i| (i * 16 + j) as f32);
                assert_eq!(got, want, "column {j}");
            }
        }
    }
    use crate::parallel::Serial;

    #[allow(clippy::too_many_arguments)]
    fn naive(g: &Geo2, c: usize, m: usize, x: &[f32], w: &[f32], bias: &[f32], res: &[f32], act: FusedActivation) -> Vec<f32> {
        let mut y = vec![0f32; m * g.oh * g.ow];
        for mo in 0..m {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = bias[mo] as f64 + res[(mo * g.oh + oy) * g.ow + ox] as f64;
                    for ci in 0..c {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.sh + ky * g.dh) as i64 - g.ph;
                                let ix = (ox * g.sw + kx * g.dw) as i64 - g.pw;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                    acc += x[(ci * g.h + iy as usize) * g.w + ix as usize] as f64
                                        * w[((mo * c + ci) * g.kh + ky) * g.kw + kx] as f64;
                                }
                            }
                        }
                    }
                    y[(mo * g.oh + oy) * g.ow + ox] = act.apply(acc as f32);
                }
            }
        }
        y
    }

    /// Against a plain convolution in f64: flat 1×1 tiles, padded 3×3 at
    /// strides 1 and 2, two-row tiles (7 and 3 columns, an odd row count),
    /// dilation, a partial channel block, uneven row tiles, with and without
    /// a residual, serially and as bands over a 4-thread pool.
    #[test]
    fn matches_naive_convolution() {
        // (c, m, h, w, k, stride, pad, dilation)
        for &(c, m, h, w, k, s, p, d) in &[
            (40usize, 64usize, 7usize, 7usize, 1usize, 1usize, 0i64, 1usize),
            (16, 24, 6, 30, 1, 1, 0, 1),
            (16, 48, 9, 13, 3, 1, 1, 1),
            (16, 32, 14, 14, 3, 2, 1, 1),
            (24, 40, 7, 7, 3, 1, 1, 1),
            (8, 32, 5, 3, 3, 1, 1, 1),
            (8, 36, 11, 29, 3, 1, 2, 2),
            (12, 32, 10, 27, 1, 2, 0, 1),
            (6, 32, 6, 6, 3, 1, 0, 1),
        ] {
            let oh = (h + 2 * p as usize - (k - 1) * d - 1) / s + 1;
            let ow = (w + 2 * p as usize - (k - 1) * d - 1) / s + 1;
            let g = Geo2 { h, w, kh: k, kw: k, oh, ow, sh: s, sw: s, dh: d, dw: d, ph: p, pw: p };
            let x = rand_vec(c * h * w, 3);
            let wt = rand_vec(m * c * k * k, 4);
            let bias = rand_vec(m, 5);
            let res = rand_vec(m * oh * ow, 6);
            let pack = OcPack::new(&wt, m, c * k * k).unwrap();
            let acts = [FusedActivation::None, FusedActivation::Relu, FusedActivation::HardSwish];
            for act in acts {
                for accumulate in [false, true] {
                    let zeros = vec![0f32; m * oh * ow];
                    let want = naive(&g, c, m, &x, &wt, &bias, if accumulate { &res } else { &zeros }, act);
                    for par in [&Serial as &dyn Parallelism, &FakePar] {
                        let mut got = if accumulate { res.clone() } else { vec![f32::NAN; m * oh * ow] };
                        if !conv_ocvec(par, &g, c, &x, &pack, Some(&bias), act, accumulate, &mut got) {
                            return; // no AVX-512 here: nothing to check
                        }
                        for (i, (&v, &e)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (v - e).abs() <= 1e-4 * (1.0 + e.abs()),
                                "c{c} m{m} {h}x{w} k{k} s{s} p{p} d{d} {act:?} acc {accumulate} at {i}: {v} vs {e}"
                            );
                        }
                    }
                }
            }
        }
    }
}
