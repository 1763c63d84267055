//! Stride-1 2-D convolution with few output channels as an implicit-im2col
//! GEMM: the microkernel reads the taps straight from a zero-padded copy of
//! the input (no im2col gathered or packed).
//!
//! With few output channels each im2col value feeds only `M` multiply-adds,
//! so gathering and packing im2col costs about as much as the product
//! (DenseNet's 3×3 convs have 32 outputs, SqueezeNet's first expand convs
//! 64). Instead the input is copied once into a padded plane `xp[c][Hp][Wp]`
//! and the output is computed over the padded grid (`OH × Wp` pixels, of
//! which the last `Wp − OW` of each row are discarded): there, the im2col
//! row of tap `(c, ky, kx)` is `xp[c·Hp·Wp + ky·dh·Wp + kx·dw ..]`, a
//! contiguous run, so B is given to linalg as one offset per row
//! ([`uniml_linalg::sgemm_packed_a_offs_b_ptr`]) and read in place, in row
//! blocks of at most [`uniml_linalg::in_place_b_rows`] output channels.

use std::cell::RefCell;

use super::depthwise::Geo2;
use super::gemm_glue::{gemm_packed_a_offs_block, Epi, PackedA};
use super::FusedActivation;
use crate::parallel::{par_chunks_mut, Parallelism, SyncPtr};

/// Grid columns per task: 8 panels of 32, whose `K × cols` B region and
/// `M × cols` C tile stay in L2.
const COL_TILE: usize = 256;

thread_local! {
    /// The B row offsets (reused: no allocation per run).
    static OFFSETS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Most output channels for the implicit path: two in-place row blocks
/// (96 with AVX-512). Up to 11 blocks measured the same on SqueezeNet and
/// ResNet-50 (within noise), so the path stays where it clearly wins.
pub fn max_outputs() -> usize {
    2 * uniml_linalg::in_place_b_rows()
}

/// Whether [`conv_implicit`] runs this geometry with weights packed as
/// `m × c·kh·kw`: a kernel larger than 1×1 (those are a GEMM on the input
/// itself), stride 1, no cropping at the start, few outputs, and a linalg
/// kernel that reads B in place (AVX-512; where B would be packed, the path
/// is unmeasured against im2col, so im2col stays).
pub fn applies(w: &PackedA, g: &Geo2, c: usize) -> bool {
    uniml_linalg::reads_offs_b_in_place()
        && g.kh * g.kw > 1
        && g.sh == 1
        && g.sw == 1
        && g.ph >= 0
        && g.pw >= 0
        && g.oh > 0
        && g.ow > 0
        && w.rows() <= max_outputs()
        && w.cols() == c * g.kh * g.kw
}

/// One batch item: `out [M, OH·OW] = act(conv(x [C, H·W]) + bias)`.
#[allow(clippy::too_many_arguments)]
pub fn conv_implicit(
    par: &dyn Parallelism,
    w: &PackedA,
    g: &Geo2,
    c: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    let m = w.rows();
    let wp = (g.ow - 1) + (g.kw - 1) * g.dw + 1;
    let hp = (g.oh - 1) + (g.kh - 1) * g.dh + 1;
    let plane = hp * wp;
    let grid = g.oh * wp;
    // A grid row's last taps run up to `(kw−1)·dw` values past its plane.
    let slack = (g.kw - 1) * g.dw;
    OFFSETS.with(|offs| {
        let mut offs = offs.borrow_mut();
        tap_offsets(&mut offs, g, c, plane, wp);
        let offs = &offs[..];
        super::with_scratch(|xbuf| {
            super::with_scratch(|cbuf| {
                let xp = super::scratch_slice(xbuf, c * plane + slack);
                par_chunks_mut(par, &mut xp[..c * plane], plane, &|ci, dst| {
                    pad_plane(g, &x[ci * g.h * g.w..(ci + 1) * g.h * g.w], wp, dst)
                });
                let xp = &*xp;
                let cgrid = super::scratch_slice(cbuf, m * grid);
                let base = SyncPtr(cgrid.as_mut_ptr());
                let epi = Epi {
                    bias_row: bias,
                    act,
                    ..Default::default()
                };
                let block = uniml_linalg::in_place_b_rows();
                par.for_each(grid.div_ceil(COL_TILE), &|task| {
                    let cols = task * COL_TILE..((task + 1) * COL_TILE).min(grid);
                    for r0 in (0..m).step_by(block) {
                        // SAFETY: each task writes only its column range of the
                        // `m × grid` C, which `cgrid` holds; ranges are disjoint.
                        unsafe {
                            gemm_packed_a_offs_block(w, grid, xp, offs, base.get(), grid, &epi, r0..(r0 + block).min(m), cols.clone())
                        };
                    }
                });
                let cgrid = &*cgrid;
                par_chunks_mut(par, out, g.oh * g.ow, &|mi, orow| {
                    for (oy, dst) in orow.chunks_exact_mut(g.ow).enumerate() {
                        let src = mi * grid + oy * wp;
                        dst.copy_from_slice(&cgrid[src..src + g.ow]);
                    }
                });
            })
        })
    })
}

/// Rows `0..hp` (`hp = dst.len() / wp`), columns `0..wp` of one zero-padded
/// input channel `x [h][w]`: input row `r − ph`, column `col − pw` (negative
/// pads crop).
pub(super) fn pad_plane(g: &Geo2, x: &[f32], wp: usize, dst: &mut [f32]) {
    // Columns of the padded row that come from the input.
    let c0 = g.pw.clamp(0, wp as i64) as usize;
    let c1 = (g.pw + g.w as i64).clamp(c0 as i64, wp as i64) as usize;
    let skip = (c0 as i64 - g.pw) as usize;
    for (r, row) in dst.chunks_exact_mut(wp).enumerate() {
        let ih = r as i64 - g.ph;
        if ih < 0 || ih >= g.h as i64 {
            row.fill(0.0);
            continue;
        }
        let src = &x[ih as usize * g.w..];
        row[..c0].fill(0.0);
        row[c0..c1].copy_from_slice(&src[skip..skip + (c1 - c0)]);
        row[c1..].fill(0.0);
    }
}

/// Fills `offs` with the input offset of every tap `(c, ky, kx)` (in that
/// order) from a pixel's first tap, in an input of `plane` values per
/// channel and `row_stride` per row.
pub(super) fn tap_offsets(offs: &mut Vec<usize>, g: &Geo2, c: usize, plane: usize, row_stride: usize) {
    offs.clear();
    for ci in 0..c {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                offs.push(ci * plane + ky * g.dh * row_stride + kx * g.dw);
            }
        }
    }
}
