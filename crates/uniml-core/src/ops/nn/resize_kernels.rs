//! Separable resampling: per output axis, a table of source taps (clamped
//! indices and weights) computed exactly like the ONNX reference (f64
//! coordinates), then applied one axis at a time in f32.

use uniml_data::Result;

use crate::parallel::{par_chunks_mut, Parallelism};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    /// Opset < 11 Resize and Upsample: floor when upsampling, ceil when downsampling.
    Simple,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InterpMode {
    Nearest(NearestMode),
    Linear,
    Cubic { a: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordMode {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
    /// Opset 11 `tf_half_pixel_for_nn`: `(y + 0.5) / scale`.
    TfHalfPixelForNn,
}

/// Resampling parameters shared by every axis.
#[derive(Debug, Clone, Copy)]
pub struct Interp {
    pub mode: InterpMode,
    pub coord: CoordMode,
    pub exclude_outside: bool,
    pub antialias: bool,
    pub extrapolation_value: f32,
}

/// Taps of one axis: `n` (index, weight) pairs per output position.
#[derive(Debug, Clone)]
pub struct AxisTable {
    pub n: usize,
    pub idx: Vec<usize>,
    pub w: Vec<f32>,
    /// Output positions to fill with the extrapolation value (tf_crop_and_resize).
    pub extrapolate: Vec<bool>,
}

fn cubic_coeffs(r: f64, a: f64) -> Vec<f64> {
    let s = 1.0 - r;
    vec![
        ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
        ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
        ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
        ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
    ]
}

fn coeffs(p: &Interp, ratio: f64, scale: f64) -> Vec<f64> {
    match p.mode {
        InterpMode::Nearest(m) => {
            if ratio == 1.0 {
                return vec![0.0, 1.0];
            }
            let right = match m {
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
                NearestMode::Simple => scale < 1.0,
            };
            if right {
                vec![0.0, 1.0]
            } else {
                vec![1.0, 0.0]
            }
        }
        InterpMode::Linear if p.antialias => {
            let sc = scale.min(1.0);
            let start = (-1.0 / sc).floor() as i64 + 1;
            let fp = 2 - 2 * start;
            let c: Vec<f64> = (start..start + fp)
                .map(|i| (1.0 - ((i as f64 - ratio) * sc).abs()).clamp(0.0, 1.0))
                .collect();
            let s: f64 = c.iter().sum();
            c.into_iter().map(|v| v / s).collect()
        }
        InterpMode::Linear => vec![1.0 - ratio, ratio],
        InterpMode::Cubic { a } if p.antialias => {
            let a = a as f64;
            let sc = scale.min(1.0);
            let f = |x: f64| {
                let x = x.abs();
                let (x2, x3) = (x * x, x * x * x);
                if x <= 1.0 {
                    (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                } else if x < 2.0 {
                    a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                } else {
                    0.0
                }
            };
            let i_start = (-2.0 / sc).floor() as i64 + 1;
            let i_end = 2 - i_start;
            let c: Vec<f64> = (i_start..i_end)
                .map(|i| f(sc * (i as f64 - ratio)))
                .collect();
            let s: f64 = c.iter().sum();
            c.into_iter().map(|v| v / s).collect()
        }
        InterpMode::Cubic { a } => cubic_coeffs(ratio, a as f64),
    }
}

/// Builds the taps of one axis (`input` → `output` positions at `scale`,
/// `roi` = (start, end) for tf_crop_and_resize).
pub fn axis_table(
    p: &Interp,
    input: usize,
    output: usize,
    scale: f64,
    roi: (f64, f64),
) -> AxisTable {
    let out_w = scale * input as f64;
    let in_w = input as f64;
    let mut t = AxisTable {
        n: 0,
        idx: vec![],
        w: vec![],
        extrapolate: vec![false; output],
    };
    for y in 0..output {
        let yf = y as f64;
        let x = match p.coord {
            CoordMode::AlignCorners => {
                if out_w == 1.0 {
                    0.0
                } else {
                    yf * (in_w - 1.0) / (out_w - 1.0)
                }
            }
            CoordMode::Asymmetric => yf / scale,
            CoordMode::TfHalfPixelForNn => (yf + 0.5) / scale,
            CoordMode::TfCropAndResize => {
                let x = if out_w == 1.0 {
                    (roi.1 - roi.0) * (in_w - 1.0) / 2.0
                } else {
                    yf * (roi.1 - roi.0) * (in_w - 1.0) / (out_w - 1.0)
                };
                x + roi.0 * (in_w - 1.0)
            }
            CoordMode::PytorchHalfPixel => {
                if out_w == 1.0 {
                    -0.5
                } else {
                    (yf + 0.5) / scale - 0.5
                }
            }
            CoordMode::HalfPixel => (yf + 0.5) / scale - 0.5,
            CoordMode::HalfPixelSymmetric => {
                let adj = output as f64 / out_w;
                let offset = in_w / 2.0 * (1.0 - adj);
                offset + (yf + 0.5) / scale - 0.5
            }
        };
        if p.coord == CoordMode::TfCropAndResize && (x < 0.0 || x > in_w - 1.0) {
            t.extrapolate[y] = true;
        }
        let xi = x.floor();
        let ratio = if x == xi { 1.0 } else { x - xi };
        let mut c = coeffs(p, ratio, scale);
        let n = c.len();
        if t.n == 0 {
            t.n = n;
        }
        // Window start, as in the reference's `_get_neighbor_idxes` (ties to the smaller index).
        let pad = n.div_ceil(2) as f64;
        let xp = x + pad;
        let pp = xp.floor();
        let frac = xp - pp;
        let half = (n / 2) as i64;
        let offset = if n % 2 == 0 {
            if frac == 0.0 {
                -half
            } else {
                -half + 1
            }
        } else {
            let base = -(((n - 1) / 2) as i64);
            if frac <= 0.5 {
                base
            } else {
                base + 1
            }
        };
        let start = pp as i64 + offset - pad as i64;
        if p.exclude_outside {
            for (i, cv) in c.iter_mut().enumerate() {
                let ix = start + i as i64;
                if ix < 0 || ix >= input as i64 {
                    *cv = 0.0;
                }
            }
            let s: f64 = c.iter().sum();
            let s = if s == 0.0 { 1.0 } else { s };
            c.iter_mut().for_each(|v| *v /= s);
        }
        for (i, &cv) in c.iter().enumerate().take(t.n) {
            let ix = (start + i as i64).clamp(0, input as i64 - 1).max(0) as usize;
            t.idx.push(ix);
            t.w.push(cv as f32);
        }
        // (Every position of an axis has the same tap count.)
        for _ in n..t.n {
            t.idx.push(0);
            t.w.push(0.0);
        }
    }
    t
}

/// Resamples `x` (shape `shape`) along `axis` with `t`, giving `out`
/// (shape with `shape[axis]` replaced by the table's output size).
pub fn apply_axis(
    par: &dyn Parallelism,
    x: &[f32],
    shape: &[usize],
    axis: usize,
    t: &AxisTable,
    extrap: f32,
    out: &mut [f32],
) -> Result<()> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let (nin, nout) = (shape[axis], t.extrapolate.len());
    let block = nout * inner;
    if block == 0 || outer == 0 {
        return Ok(());
    }
    let n = t.n;
    let any_extrap = t.extrapolate.iter().any(|&e| e);
    // Taps as structure of arrays: tap k of output y at [k * nout + y].
    let mut idx = vec![0usize; n * nout];
    let mut wts = vec![0f32; n * nout];
    for y in 0..nout {
        for k in 0..n {
            idx[k * nout + y] = t.idx[y * n + k];
            wts[k * nout + y] = t.w[y * n + k];
        }
    }
    // An exact 2× linear upsampling along the innermost axis (half-pixel
    // centres; FPN-style decoders such as selfie_segmentation's): output
    // `y` reads `x[(y−1)/2]` and the next value, except at the clamped
    // ends. Its loop reads consecutive pairs, which vectorises, instead of
    // gathering through the index table.
    let doubled = inner == 1
        && n == 2
        && nin >= 2
        && nout == 2 * nin
        && (1..nout - 1).all(|y| idx[y] == (y - 1) / 2 && idx[nout + y] == (y - 1) / 2 + 1);
    let per = super::per_task(par, outer, block * n);
    par_chunks_mut(par, out, per * block, &|task, chunk| {
        for (i, ob) in chunk.chunks_mut(block).enumerate() {
            let o = task * per + i;
            let xb = &x[o * nin * inner..(o + 1) * nin * inner];
            if doubled {
                let (w0, w1) = (&wts[..nout], &wts[nout..2 * nout]);
                for y in [0, nout - 1] {
                    ob[y] = w0[y] * xb[idx[y]] + w1[y] * xb[idx[nout + y]];
                }
                // Outputs 2j+1 and 2j+2 from x[j] and x[j+1]: the same sums
                // as the table loop below.
                let pairs = ob[1..nout - 1].chunks_exact_mut(2).zip(w0[1..].chunks_exact(2).zip(w1[1..].chunks_exact(2)));
                for ((o, (wa, wb)), xs) in pairs.zip(xb.windows(2)) {
                    o[0] = wa[0] * xs[0] + wb[0] * xs[1];
                    o[1] = wa[1] * xs[0] + wb[1] * xs[1];
                }
            } else if inner == 1 && n == 2 {
                let (i0, i1) = (&idx[..nout], &idx[nout..2 * nout]);
                let (w0, w1) = (&wts[..nout], &wts[nout..2 * nout]);
                for ((o, (&a, &b)), (&wa, &wb)) in
                    ob.iter_mut().zip(i0.iter().zip(i1)).zip(w0.iter().zip(w1))
                {
                    *o = wa * xb[a] + wb * xb[b];
                }
            } else if inner == 1 {
                // A gather along the innermost axis.
                for k in 0..n {
                    let (ix, w) = (
                        &idx[k * nout..(k + 1) * nout],
                        &wts[k * nout..(k + 1) * nout],
                    );
                    if k == 0 {
                        for ((o, &i), &w) in ob.iter_mut().zip(ix).zip(w) {
                            *o = w * xb[i];
                        }
                    } else {
                        for ((o, &i), &w) in ob.iter_mut().zip(ix).zip(w) {
                            *o += w * xb[i];
                        }
                    }
                }
            } else {
                for y in 0..nout {
                    let orow = &mut ob[y * inner..(y + 1) * inner];
                    let mut first = true;
                    for k in 0..n {
                        let (ix, w) = (idx[k * nout + y], wts[k * nout + y]);
                        if w == 0.0 && !(first && k + 1 == n) {
                            continue;
                        }
                        let src = &xb[ix * inner..(ix + 1) * inner];
                        if first {
                            orow.iter_mut().zip(src).for_each(|(o, &v)| *o = w * v);
                            first = false;
                        } else {
                            orow.iter_mut().zip(src).for_each(|(o, &v)| *o += w * v);
                        }
                    }
                    if first {
                        orow.fill(0.0);
                    }
                }
            }
            if any_extrap {
                for y in 0..nout {
                    if t.extrapolate[y] {
                        ob[y * inner..(y + 1) * inner].fill(extrap);
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::rand_vec;
    use crate::parallel::Serial;

    /// 2× linear upsampling along the innermost axis (the pair loop) and a
    /// 3× one (the table loop) against the taps applied one by one.
    #[test]
    fn innermost_axis_matches_the_taps() {
        let p = Interp { mode: InterpMode::Linear, coord: CoordMode::HalfPixel, exclude_outside: false, antialias: false, extrapolation_value: 0.0 };
        for (nin, scale) in [(2usize, 2usize), (3, 2), (8, 2), (17, 2), (5, 3)] {
            let t = axis_table(&p, nin, nin * scale, scale as f64, (0.0, 1.0));
            assert_eq!(t.n, 2);
            let rows = 3;
            let x = rand_vec(rows * nin, nin as u64);
            let mut out = vec![f32::NAN; rows * nin * scale];
            apply_axis(&Serial, &x, &[rows, nin], 1, &t, 0.0, &mut out).unwrap();
            for r in 0..rows {
                for y in 0..nin * scale {
                    let xs = &x[r * nin..(r + 1) * nin];
                    let want = t.w[2 * y] * xs[t.idx[2 * y]] + t.w[2 * y + 1] * xs[t.idx[2 * y + 1]];
                    assert_eq!(out[r * nin * scale + y], want, "nin {nin} scale {scale} row {r} y {y}");
                }
            }
        }
    }
}
