//! f32 convolution kernels: pointwise GEMM, depthwise direct, im2col + GEMM.

use uniml_data::{bail, Result};

use super::conv_implicit::{applies as implicit_applies, conv_implicit};
use super::conv_ocvec::{conv_ocvec, OcPack};
use super::depthwise::{depthwise_channels, Geo2};
use super::gemm_glue::{col_tile, par_gemm_cols, par_gemm_fill_b, split_rows, ARef, Epi, Mat, PackedA};
use super::padding::Geometry;
use super::FusedActivation;
use crate::parallel::{par_chunks_mut, Parallelism};

/// Resolved shape of one Conv application.
#[derive(Clone, Debug)]
pub struct ConvShape {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub group: usize,
    pub geo: Geometry,
}

/// Conv weights packed per group as `M/group × (C/group · kernel)` GEMM operands.
#[derive(Debug)]
pub struct ConvPack {
    groups: Vec<PackedA>,
    k: usize,
    /// The weights for the output-channel-vector kernel, instead of
    /// `groups` (ungrouped 2-D convs where [`prefers_ocvec`]).
    ocvec: Option<OcPack>,
}

impl ConvPack {
    /// With `ocvec` (2-D weights `[m, c, kh, kw]`, see [`prefers_ocvec`])
    /// the weights are packed for the output-channel-vector kernel instead
    /// of the GEMM, where this CPU has that kernel.
    pub fn new(w: &[f32], m: usize, k: usize, group: usize, ocvec: bool) -> Option<ConvPack> {
        if group == 0 || m % group != 0 || w.len() != m * k {
            return None;
        }
        let mg = m / group;
        if mg == 1 && group > 1 {
            return None; // depthwise-like: the direct kernel reads the raw weights
        }
        if ocvec && group == 1 && super::conv_ocvec::available(1) {
            let ocvec = OcPack::new(w, m, k)?;
            return Some(ConvPack { groups: Vec::new(), k, ocvec: Some(ocvec) });
        }
        let groups = (0..group)
            .map(|g| PackedA::pack(Mat::new(&w[g * mg * k..(g + 1) * mg * k], mg, k)))
            .collect();
        Some(ConvPack { groups, k, ocvec: None })
    }
}

impl Geo2 {
    fn from(g: &Geometry) -> Option<Geo2> {
        match g.input.len() {
            1 => Some(Geo2 {
                h: 1,
                w: g.input[0],
                kh: 1,
                kw: g.kernel[0],
                oh: 1,
                ow: g.output[0],
                sh: 1,
                sw: g.strides[0],
                dh: 1,
                dw: g.dilations[0],
                ph: 0,
                pw: g.pad_begin[0] as i64,
            }),
            2 => Some(Geo2 {
                h: g.input[0],
                w: g.input[1],
                kh: g.kernel[0],
                kw: g.kernel[1],
                oh: g.output[0],
                ow: g.output[1],
                sh: g.strides[0],
                sw: g.strides[1],
                dh: g.dilations[0],
                dw: g.dilations[1],
                ph: g.pad_begin[0] as i64,
                pw: g.pad_begin[1] as i64,
            }),
            _ => None,
        }
    }
}

/// Range `[lo, hi)` of output positions `o` in `o0..o0+len` whose input
/// position `o*s + off` lies in `0..size`, relative to `o0`.
#[inline]
fn valid_range(o0: usize, len: usize, s: usize, off: i64, size: usize) -> (usize, usize) {
    let s = s as i64;
    let o0 = o0 as i64;
    // o*s + off >= 0  <=>  o >= ceil(-off / s)
    let first = if off >= 0 { 0 } else { (-off + s - 1) / s };
    // o*s + off <= size-1  <=>  o <= floor((size-1-off) / s)
    let last_incl = size as i64 - 1 - off;
    let end = if last_incl < 0 { 0 } else { last_incl / s + 1 };
    let lo = (first - o0).clamp(0, len as i64) as usize;
    let hi = (end - o0).clamp(lo as i64, len as i64) as usize;
    (lo, hi)
}

/// Whether [`conv_f32`] runs this conv with the output-channel-vector
/// kernel ([`super::conv_ocvec`]), given its weights packed for it: 2-D
/// ungrouped convs, batch items one at a time (small maps too: there the
/// kernel's tiles need no batching to fill their lanes).
pub fn prefers_ocvec(s: &ConvShape) -> bool {
    s.group == 1
        && s.geo.input.len() == 2
        && Geo2::from(&s.geo).is_some_and(|g| super::conv_ocvec::prefers(&g, s.c, s.m))
}

/// Runs the convolution; `out` is `[n, m, out_spatial...]`: with
/// `accumulate`, `out = act(conv + bias + out)` (a residual already in
/// `out`), else `out = act(conv + bias)` over any previous contents.
#[allow(clippy::too_many_arguments)]
pub fn conv_f32(
    par: &dyn Parallelism,
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    pack: Option<&ConvPack>,
    bias: Option<&[f32]>,
    act: FusedActivation,
    accumulate: bool,
    out: &mut [f32],
) -> Result<()> {
    let g = &s.geo;
    let isz: usize = g.input.iter().product();
    let osz: usize = g.output.iter().product();
    let ksz: usize = g.kernel.iter().product();
    let (cg, mg) = (s.c / s.group, s.m / s.group);
    let kdim = cg * ksz;
    if x.len() != s.n * s.c * isz || w.len() != s.m * kdim || out.len() != s.n * s.m * osz {
        bail!("internal: Conv buffer sizes do not match the shapes");
    }
    if let Some(b) = bias {
        if b.len() != s.m {
            bail!("Conv bias has {} values, expected {}", b.len(), s.m);
        }
    }
    if osz == 0 || s.n == 0 || s.m == 0 {
        return Ok(());
    }
    // The direct kernels below write their results (the output-channel-
    // vector one also adds a residual); other accumulating products take
    // the GEMM paths, whose epilogue adds what `out` holds.
    let ocpack = pack.and_then(|p| p.ocvec.as_ref()).filter(|p| p.rows() == s.m && p.cols() == kdim);
    let pack = pack.filter(|p| p.groups.len() == s.group && p.k == kdim);
    let g2 = Geo2::from(g);
    if cg == 1 && mg == 1 && !accumulate {
        if let Some(g2) = g2 {
            for b in 0..s.n {
                depthwise_2d(
                    par,
                    &g2,
                    &x[b * s.c * isz..(b + 1) * s.c * isz],
                    w,
                    bias,
                    act,
                    &mut out[b * s.m * osz..(b + 1) * s.m * osz],
                );
            }
            return Ok(());
        }
    }
    if let (Some(oc), Some(g2)) = (ocpack, g2) {
        if prefers_ocvec(s) {
            let mut done = true;
            for b in 0..s.n {
                done = done
                    && conv_ocvec(
                        par,
                        &g2,
                        s.c,
                        &x[b * s.c * isz..(b + 1) * s.c * isz],
                        oc,
                        bias,
                        act,
                        accumulate,
                        &mut out[b * s.m * osz..(b + 1) * s.m * osz],
                    );
            }
            if done {
                return Ok(());
            }
        }
    }
    if s.n > 1 && s.group == 1 && osz < FEW_PIXELS && !accumulate {
        if let Some(g2) = g2 {
            conv_batched(par, s, &g2, x, w, pack, bias, act, out);
            return Ok(());
        }
    }
    if let (Some(p), Some(g2), false) = (pack, g2, accumulate) {
        // Few input channels go to the direct kernel below instead.
        if s.group == 1 && s.c > super::conv_direct::MAX_CHANNELS && implicit_applies(&p.groups[0], &g2, s.c) {
            for b in 0..s.n {
                conv_implicit(
                    par,
                    &p.groups[0],
                    &g2,
                    s.c,
                    &x[b * s.c * isz..(b + 1) * s.c * isz],
                    bias,
                    act,
                    &mut out[b * s.m * osz..(b + 1) * s.m * osz],
                );
            }
            return Ok(());
        }
    }
    if s.group == 1 && s.c <= super::conv_direct::MAX_CHANNELS && !accumulate {
        if let Some(g2) = g2 {
            let mut done = true;
            for b in 0..s.n {
                done = done
                    && super::conv_direct::conv_few_channels(
                        par,
                        &g2,
                        s.c,
                        &x[b * s.c * isz..(b + 1) * s.c * isz],
                        w,
                        bias,
                        act,
                        &mut out[b * s.m * osz..(b + 1) * s.m * osz],
                    );
            }
            if done {
                return Ok(());
            }
        }
    }
    let pointwise = g.kernel.iter().all(|&k| k == 1)
        && g.strides.iter().all(|&v| v == 1)
        && g.pad_begin.iter().chain(&g.pad_end).all(|&p| p == 0);
    let threads = par.threads();
    // Few columns: split the output channels across threads (splitting rows
    // also where the weights outweigh the activation, e.g. ResNet's 14×14
    // stage, measured no faster).
    let rows_path = split_rows(par, mg, osz);
    for b in 0..s.n {
        for gi in 0..s.group {
            let xg = &x[(b * s.c + gi * cg) * isz..(b * s.c + (gi + 1) * cg) * isz];
            let og = &mut out[(b * s.m + gi * mg) * osz..(b * s.m + (gi + 1) * mg) * osz];
            let wg = Mat::new(&w[gi * mg * kdim..(gi + 1) * mg * kdim], mg, kdim);
            let epi = Epi {
                bias_row: bias.map(|v| &v[gi * mg..(gi + 1) * mg]),
                act,
                accumulate,
                ..Default::default()
            };
            // Every element of the tile is written (values or padding zeros).
            let fill = |j0: usize, n: usize, buf: &mut Vec<f32>| {
                let buf = super::scratch_slice(buf, kdim * n);
                match g2 {
                    Some(g2) => im2col_2d(xg, 0, &g2, j0, n, buf),
                    None => im2col_nd(xg, cg, g, j0, n, buf),
                }
            };
            if rows_path {
                super::with_scratch(|buf| {
                    let b = if pointwise {
                        Mat::new(xg, cg, osz)
                    } else if let Some(g2) = g2 {
                        // The whole im2col matrix, its rows filled in parallel.
                        let buf = super::scratch_slice(buf, kdim * osz);
                        let per = kdim.div_ceil(threads * 4).max(1);
                        par_chunks_mut(par, buf, per * osz, &|t, rows| {
                            im2col_2d(xg, t * per, &g2, 0, osz, rows)
                        });
                        Mat::new(buf, kdim, osz)
                    } else {
                        fill(0, osz, buf);
                        Mat::new(buf, kdim, osz)
                    };
                    let a = match pack {
                        Some(p) => ARef::Packed(&p.groups[gi]),
                        None => ARef::Plain(wg),
                    };
                    a.par_gemm_rows(par, b, og, &epi);
                });
                continue;
            }
            let tile = col_tile(par, mg, osz, kdim);
            if let (Some(p), Some(g2), false) = (pack, g2, pointwise) {
                // im2col gathered block by block straight into the GEMM's panels.
                let fill = Im2col { x: xg, g: g2 };
                par_gemm_fill_b(par, &p.groups[gi], osz, og, &epi, tile, &fill);
                continue;
            }
            let a = match pack {
                Some(p) => ARef::Packed(&p.groups[gi]),
                None => ARef::Plain(wg),
            };
            if pointwise {
                par_gemm_cols(par, a, osz, kdim, og, &epi, tile, &|j0, n, _buf| {
                    Some(Mat::with_stride(&xg[j0..], cg, n, osz))
                });
            } else {
                par_gemm_cols(par, a, osz, kdim, og, &epi, tile, &|j0, n, buf| {
                    fill(j0, n, buf);
                    None
                });
            }
        }
    }
    Ok(())
}

/// Batch items with fewer output pixels than this share one GEMM.
const FEW_PIXELS: usize = 64;
/// Most im2col values gathered at once by [`conv_batched`] (16 MiB).
const BATCHED_COLS_CAP: usize = 1 << 22;

/// Ungrouped 2-D conv of several batch items with few output pixels each
/// (1-D audio frames, small late feature maps): one GEMM whose columns are
/// batch × pixels, so the microkernel gets whole panels instead of a few
/// columns per item, then the `[m, batch·pixels]` product is scattered to
/// `[batch, m, pixels]`.
#[allow(clippy::too_many_arguments)]
fn conv_batched(
    par: &dyn Parallelism,
    s: &ConvShape,
    g: &Geo2,
    x: &[f32],
    w: &[f32],
    pack: Option<&ConvPack>,
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    let (isz, osz) = (g.h * g.w, g.oh * g.ow);
    let kdim = s.c * g.kh * g.kw;
    let per = (BATCHED_COLS_CAP / (kdim * osz).max(1)).clamp(1, s.n);
    let epi = Epi {
        bias_row: bias,
        act,
        ..Default::default()
    };
    for b0 in (0..s.n).step_by(per) {
        let nb = per.min(s.n - b0);
        let cols = nb * osz;
        super::with_scratch(|bbuf| {
            super::with_scratch(|cbuf| {
                // Transposed (a row of taps per output pixel): each channel's
                // taps are a contiguous run of the input, copied whole.
                let bt = super::scratch_slice(bbuf, cols * kdim);
                for b in 0..nb {
                    let xb = &x[(b0 + b) * s.c * isz..(b0 + b + 1) * s.c * isz];
                    im2col_t_2d(xb, s.c, g, &mut bt[b * osz * kdim..(b + 1) * osz * kdim]);
                }
                let cm = super::scratch_slice(cbuf, s.m * cols);
                let bmat = Mat::new(bt, cols, kdim).t();
                let a = match pack {
                    Some(p) => ARef::Packed(&p.groups[0]),
                    None => ARef::Plain(Mat::new(w, s.m, kdim)),
                };
                if split_rows(par, s.m, cols) {
                    a.par_gemm_rows(par, bmat, cm, &epi);
                } else {
                    let tile = col_tile(par, s.m, cols, kdim);
                    par_gemm_cols(par, a, cols, kdim, cm, &epi, tile, &|j0, n, _| Some(bmat.cols_range(j0, n)));
                }
                for b in 0..nb {
                    let ob = &mut out[(b0 + b) * s.m * osz..(b0 + b + 1) * s.m * osz];
                    for (mi, orow) in ob.chunks_exact_mut(osz).enumerate() {
                        orow.copy_from_slice(&cm[mi * cols + b * osz..mi * cols + (b + 1) * osz]);
                    }
                }
            })
        });
    }
}

/// The transposed im2col matrix (`oh·ow × c·kh·kw`) of one batch item:
/// row `j` holds the taps of output pixel `j`, channel by channel.
fn im2col_t_2d(x: &[f32], c: usize, g: &Geo2, dst: &mut [f32]) {
    let plane = g.h * g.w;
    let kdim = c * g.kh * g.kw;
    for (j, row) in dst.chunks_exact_mut(kdim).enumerate() {
        let (oh, ow) = (j / g.ow, j % g.ow);
        let iw0 = (ow * g.sw) as i64 - g.pw;
        let inside = g.dw == 1 && iw0 >= 0 && iw0 as usize + g.kw <= g.w;
        for (ci, taps) in row.chunks_exact_mut(g.kh * g.kw).enumerate() {
            for (kh, seg) in taps.chunks_exact_mut(g.kw).enumerate() {
                let ih = (oh * g.sh + kh * g.dh) as i64 - g.ph;
                if ih < 0 || ih >= g.h as i64 {
                    seg.fill(0.0);
                    continue;
                }
                let xr = &x[ci * plane + ih as usize * g.w..ci * plane + (ih as usize + 1) * g.w];
                if inside {
                    seg.copy_from_slice(&xr[iw0 as usize..iw0 as usize + g.kw]);
                } else {
                    for (t, d) in seg.iter_mut().enumerate() {
                        let iw = iw0 + (t * g.dw) as i64;
                        *d = if iw >= 0 && iw < g.w as i64 { xr[iw as usize] } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Fills `buf` (rows `r0..` of the `cg·kh·kw × n` im2col matrix, as many as
/// it holds, row-major) with im2col columns for output pixels `j0..j0+n`
/// (pixels in row-major output order).
fn im2col_2d(x: &[f32], r0: usize, g: &Geo2, j0: usize, n: usize, buf: &mut [f32]) {
    let plane = g.h * g.w;
    for (r, row) in buf.chunks_exact_mut(n).enumerate().map(|(i, row)| (r0 + i, row)) {
        let (ci, kh, kw) = (r / (g.kh * g.kw), r / g.kw % g.kh, r % g.kw);
        let xp = &x[ci * plane..(ci + 1) * plane];
        let (mut oh, mut ow0) = (j0 / g.ow, j0 % g.ow);
        let mut j = 0;
        while j < n {
            let span = (g.ow - ow0).min(n - j);
            tap_span(xp, g, kh, kw, oh, ow0, &mut row[j..j + span]);
            j += span;
            (oh, ow0) = (oh + 1, 0);
        }
    }
}

/// `dst[t]` = input value under tap `(kh, kw)` for output pixel
/// `(oh, ow0 + t)` of one channel plane `xp` (zero in the padding); the
/// pixels lie in one output row.
#[inline(always)]
fn tap_span(xp: &[f32], g: &Geo2, kh: usize, kw: usize, oh: usize, ow0: usize, dst: &mut [f32]) {
    let ih = (oh * g.sh + kh * g.dh) as i64 - g.ph;
    if ih < 0 || ih >= g.h as i64 {
        dst.fill(0.0);
        return;
    }
    let xr = &xp[ih as usize * g.w..(ih as usize + 1) * g.w];
    let off_w = (kw * g.dw) as i64 - g.pw;
    let len = dst.len();
    let (lo, hi) = if g.sw == 1 {
        // Without the divisions of the general case: pixel t reads column
        // ow0 + t + off_w, inside the row for t in [-(ow0+off_w), w-(ow0+off_w)).
        let first = ow0 as i64 + off_w;
        let lo = (-first).clamp(0, len as i64) as usize;
        (
            lo,
            (g.w as i64 - first).clamp(lo as i64, len as i64) as usize,
        )
    } else {
        valid_range(ow0, len, g.sw, off_w, g.w)
    };
    dst[..lo].fill(0.0);
    dst[hi..].fill(0.0);
    if hi > lo {
        let start = (((ow0 + lo) * g.sw) as i64 + off_w) as usize;
        if g.sw == 1 {
            // An inline loop, not a `memmove` call: spans are short (≤ nr).
            for (d, &v) in dst[lo..hi].iter_mut().zip(&xr[start..start + (hi - lo)]) {
                *d = v;
            }
        } else {
            for (d, &v) in dst[lo..hi].iter_mut().zip(xr[start..].iter().step_by(g.sw)) {
                *d = v;
            }
        }
    }
}

/// The im2col matrix of one group (`cg·kh·kw × oh·ow`) as a GEMM operand
/// packed block by block from the input: never stored whole, and each value
/// is written once, into the panel the microkernel reads (im2col into a
/// buffer and then packing it wrote and read every value twice more).
struct Im2col<'a> {
    x: &'a [f32],
    g: Geo2,
}

impl uniml_linalg::PackB for Im2col<'_> {
    fn pack(&self, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        let g = &self.g;
        let (taps, plane) = (g.kh * g.kw, g.h * g.w);
        let tail = nc % nr;
        for p in 0..kc {
            let r = p0 + p;
            let (ci, kh, kw) = (r / taps, r / g.kw % g.kh, r % g.kw);
            let xp = &self.x[ci * plane..(ci + 1) * plane];
            // Spans that stay within one output row and one panel.
            let (mut oh, mut ow0) = (j0 / g.ow, j0 % g.ow);
            let (mut q, mut lane) = (0, 0);
            let mut j = 0;
            while j < nc {
                let span = (g.ow - ow0).min(nc - j).min(nr - lane);
                let at = q * kc * nr + p * nr + lane;
                tap_span(xp, g, kh, kw, oh, ow0, &mut dst[at..at + span]);
                j += span;
                ow0 += span;
                if ow0 == g.ow {
                    (oh, ow0) = (oh + 1, 0);
                }
                lane += span;
                if lane == nr {
                    (q, lane) = (q + 1, 0);
                }
            }
            if tail != 0 {
                let at = (nc / nr) * kc * nr + p * nr;
                dst[at + tail..at + nr].fill(0.0);
            }
        }
    }
}

/// Generic N-D im2col (3-D convs and up).
fn im2col_nd(x: &[f32], cg: usize, g: &Geometry, j0: usize, n: usize, buf: &mut [f32]) {
    let nd = g.input.len();
    let ksz: usize = g.kernel.iter().product();
    let isz: usize = g.input.iter().product();
    let mut ki = vec![0usize; nd];
    let mut oi = vec![0usize; nd];
    for r in 0..cg * ksz {
        let ci = r / ksz;
        let mut rem = r % ksz;
        for d in (0..nd).rev() {
            ki[d] = rem % g.kernel[d];
            rem /= g.kernel[d];
        }
        let mut rem = j0;
        for d in (0..nd).rev() {
            oi[d] = rem % g.output[d];
            rem /= g.output[d];
        }
        let row = &mut buf[r * n..(r + 1) * n];
        for v in row.iter_mut() {
            let mut off = 0usize;
            let mut inside = true;
            for d in 0..nd {
                let p =
                    (oi[d] * g.strides[d] + ki[d] * g.dilations[d]) as i64 - g.pad_begin[d] as i64;
                if p < 0 || p >= g.input[d] as i64 {
                    inside = false;
                    break;
                }
                off = off * g.input[d] + p as usize;
            }
            *v = if inside { x[ci * isz + off] } else { 0.0 };
            for d in (0..nd).rev() {
                oi[d] += 1;
                if oi[d] < g.output[d] {
                    break;
                }
                oi[d] = 0;
            }
        }
    }
}

/// Depthwise conv (one input and one output channel per group), one batch item.
fn depthwise_2d(
    par: &dyn Parallelism,
    g: &Geo2,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    let osz = g.oh * g.ow;
    let isz = g.h * g.w;
    let ksz = g.kh * g.kw;
    let c = out.len() / osz.max(1);
    let per_task = super::per_task(par, c, osz * ksz * 2);
    par_chunks_mut(par, out, per_task * osz, &|t, chunk| {
        let c0 = t * per_task;
        let nc = chunk.len() / osz;
        super::with_scratch(|scratch| {
            depthwise_channels(
                g,
                &x[c0 * isz..(c0 + nc) * isz],
                &w[c0 * ksz..(c0 + nc) * ksz],
                bias.map(|b| &b[c0..c0 + nc]),
                act,
                chunk,
                scratch,
            )
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn valid_ranges() {
        // s=1, off=-1, size 4, outputs 0..5: valid o in 1..5
        assert_eq!(valid_range(0, 5, 1, -1, 4), (1, 5));
        // s=2, off=-1: o*2-1 in 0..4 => o in 1..=2
        assert_eq!(valid_range(0, 4, 2, -1, 4), (1, 3));
        assert_eq!(valid_range(2, 2, 2, -1, 4), (0, 1));
        assert_eq!(valid_range(0, 3, 1, 10, 4), (0, 0));
    }
}
