//! Stride-1 2-D convolution with few output channels as one GEMM per kernel
//! tap, reading a zero-padded copy of the input in place (no im2col).
//!
//! With few output channels (DenseNet's 3×3 convs have 32) each im2col value
//! feeds only `M` multiply-adds, so gathering and packing im2col costs about
//! as much as the product. Instead the input is copied once into a padded
//! plane `xp[c][Hp][Wp]`, and the output is computed over the padded grid
//! (`OH × Wp` pixels, of which the last `Wp − OW` of each row are discarded):
//! there, tap `(ky, kx)` reads channel `c`'s pixels `j` at
//! `xp[c·Hp·Wp + ky·dh·Wp + kx·dw + j]` — a row-major `C × OH·Wp` matrix
//! with row stride `Hp·Wp`, shifted per tap. So
//! `Y = Σ_taps W[:, :, ky, kx] · shift(xp)`, `kh·kw` accumulating GEMMs
//! whose B the linalg microkernel reads straight from `xp` (in blocks of
//! [`uniml_linalg::in_place_b_rows`] rows of A, up to two of them), no
//! packing of B at all.

use core::ops::Range;

use super::depthwise::Geo2;
use super::gemm_glue::{gemm_packed_a_block, Epi, Mat, PackedA};
use super::FusedActivation;
use crate::parallel::{par_chunks_mut, Parallelism, SyncPtr};

/// Most output channels for the tap path (48 rows of A per block with
/// AVX-512, fewer with smaller microtiles; linalg packs B for more).
pub fn taps_max_m() -> usize {
    2 * uniml_linalg::in_place_b_rows()
}
/// Grid columns per task: 8 panels of 32, whose `C × cols` B regions and
/// `M × cols` C tile stay in L2 across the taps.
const COL_TILE: usize = 256;

/// Fewest input channels (the depth of each tap's GEMM) for the tap path:
/// below it the `kh·kw` passes over C cost more than im2col saves
/// (SqueezeNet's 3×3 expand convs over 16 channels ran ~25% slower).
const TAPS_MIN_C: usize = 32;

/// The weights `[M, C, kh, kw]` as one packed `M × C` operand per tap.
#[derive(Debug)]
pub struct TapPack {
    taps: Vec<PackedA>,
}

impl TapPack {
    pub fn new(w: &[f32], m: usize, c: usize, kh: usize, kw: usize) -> Option<TapPack> {
        let ntaps = kh * kw;
        if m == 0 || m > taps_max_m() || c < TAPS_MIN_C || ntaps < 2 || w.len() != m * c * ntaps {
            return None;
        }
        let mut wt = vec![0f32; m * c];
        let taps = (0..ntaps)
            .map(|t| {
                for (i, v) in wt.iter_mut().enumerate() {
                    *v = w[i * ntaps + t];
                }
                PackedA::pack(Mat::new(&wt, m, c))
            })
            .collect();
        Some(TapPack { taps })
    }
}

/// Whether [`conv_taps`] runs this geometry: stride 1, no cropping at the
/// start, the packed weights' taps and `c` input channels.
pub fn applies(t: &TapPack, g: &Geo2, c: usize) -> bool {
    g.sh == 1
        && g.sw == 1
        && g.ph >= 0
        && g.pw >= 0
        && g.oh > 0
        && g.ow > 0
        && t.taps.len() == g.kh * g.kw
        && t.taps.first().is_some_and(|p| p.cols() == c)
}

/// One batch item: `out [M, OH·OW] = act(conv(x [C, H·W]) + bias)`.
#[allow(clippy::too_many_arguments)]
pub fn conv_taps(
    par: &dyn Parallelism,
    t: &TapPack,
    g: &Geo2,
    c: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    let m = t.taps[0].rows();
    let (ph, pw) = (g.ph.max(0) as usize, g.pw.max(0) as usize);
    let wp = (g.ow - 1) + (g.kw - 1) * g.dw + 1;
    let hp = (g.oh - 1) + (g.kh - 1) * g.dh + 1;
    let plane = hp * wp;
    let grid = g.oh * wp;
    // A grid row's last taps run up to `(kw−1)·dw` values past its plane.
    let slack = (g.kw - 1) * g.dw + 1;
    super::with_scratch(|xbuf| {
        super::with_scratch(|cbuf| {
            let xp = super::scratch_slice(xbuf, c * plane + slack);
            par_chunks_mut(par, &mut xp[..c * plane], plane, &|ci, dst| {
                pad_plane(&x[ci * g.h * g.w..(ci + 1) * g.h * g.w], g, ph, pw, wp, dst)
            });
            let xp = &*xp;
            let cgrid = super::scratch_slice(cbuf, m * grid);
            let base = SyncPtr(cgrid.as_mut_ptr());
            let tasks = grid.div_ceil(COL_TILE);
            par.for_each(tasks, &|task| {
                let cols = task * COL_TILE..((task + 1) * COL_TILE).min(grid);
                // SAFETY: each task writes only its column range of the
                // `m × grid` C, which `cgrid` holds; ranges are disjoint.
                unsafe { tile(t, g, wp, plane, xp, c, base.get(), grid, bias, act, cols) };
            });
            let cgrid = &*cgrid;
            let osz = g.oh * g.ow;
            par_chunks_mut(par, out, osz, &|mi, orow| {
                for (oy, dst) in orow.chunks_exact_mut(g.ow).enumerate() {
                    let src = mi * grid + oy * wp;
                    dst.copy_from_slice(&cgrid[src..src + g.ow]);
                }
            });
        })
    });
}

/// Columns `cols` of the `m × grid` C: every tap's GEMM, accumulating, with
/// the bias and activation on the last.
///
/// # Safety
/// `c` holds `m × ldc` floats, and nothing else accesses columns `cols`.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    t: &TapPack,
    g: &Geo2,
    wp: usize,
    plane: usize,
    xp: &[f32],
    ch: usize,
    c: *mut f32,
    ldc: usize,
    bias: Option<&[f32]>,
    act: FusedActivation,
    cols: Range<usize>,
) {
    let m = t.taps[0].rows();
    let last = t.taps.len() - 1;
    for (ti, pa) in t.taps.iter().enumerate() {
        let (ky, kx) = (ti / g.kw, ti % g.kw);
        let shift = ky * g.dh * wp + kx * g.dw;
        // C's row stride is the grid width: B is `ch × ldc`.
        let b = Mat::with_stride(&xp[shift..], ch, ldc, plane);
        let epi = Epi {
            bias_row: if ti == last { bias } else { None },
            act: if ti == last { act } else { FusedActivation::None },
            accumulate: ti > 0,
            ..Default::default()
        };
        let block = uniml_linalg::in_place_b_rows();
        for r0 in (0..m).step_by(block) {
            gemm_packed_a_block(pa, b, c, ldc, &epi, r0..(r0 + block).min(m), cols.clone());
        }
    }
}

/// The zero-padded `hp × wp` plane of one input channel.
fn pad_plane(x: &[f32], g: &Geo2, ph: usize, pw: usize, wp: usize, dst: &mut [f32]) {
    // Negative leading pads (cropping) never come here: see [`applies`].
    for (r, row) in dst.chunks_exact_mut(wp).enumerate() {
        let ih = r as i64 - ph as i64;
        if ih < 0 || ih >= g.h as i64 {
            row.fill(0.0);
            continue;
        }
        let lead = pw.min(wp);
        let n = g.w.min(wp - lead);
        row[..lead].fill(0.0);
        row[lead..lead + n].copy_from_slice(&x[ih as usize * g.w..ih as usize * g.w + n]);
        row[lead + n..].fill(0.0);
    }
}
