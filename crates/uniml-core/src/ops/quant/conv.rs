//! `ConvInteger` and `QLinearConv`: N-D grouped, strided, dilated, padded
//! convolution of (u)int8 tensors with zero points (per tensor for x; per
//! tensor or per output channel for w), i32 accumulation.
//!
//! Zero points are subtracted first (so padding contributes 0, as the ONNX
//! reference does), then each (batch, group) is im2col (in the GEMM's k-pair
//! form, over column tiles) + integer GEMM. Geometry (`auto_pad`, pads,
//! strides, dilations) comes from the nn family's [`Window`].

use std::sync::Mutex;

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::igemm::{fill_a_row, igemm, kpairs, NC};
use super::matmul::{qlinear_out_dtype, single};
use super::requant::{requantize, Mult};
use super::{read_scales, read_zero_points};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::nn::padding::{Geometry, Window};
use crate::parallel::{par_chunks_mut, Parallelism, Serial};

/// Attributes shared by both integer convolutions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntConvAttrs {
    /// Spatial kernel dims if given on the node (checked against the weights).
    pub kernel_shape: Option<Vec<usize>>,
    pub window: Window,
    pub group: usize,
}

/// Resolved shapes of one integer convolution.
struct Shape {
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    geo: Geometry,
    out: Vec<usize>,
}

impl IntConvAttrs {
    fn output_shape(&self, x: &Fact, w: &Fact) -> Result<Option<SymbolicShape>> {
        let (Some(xs), Some(ws)) = (&x.shape, &w.shape) else {
            return Ok(None);
        };
        ensure!(
            xs.rank() >= 3,
            "input must have rank >= 3 (N, C, spatial...), got {xs}"
        );
        ensure!(
            ws.rank() == xs.rank(),
            "weight rank {} differs from input rank {}",
            ws.rank(),
            xs.rank()
        );
        let kernel: Option<Vec<usize>> = match &self.kernel_shape {
            Some(k) => Some(k.clone()),
            None => ws.0[2..].iter().map(Dim::known).collect(),
        };
        let mut dims = vec![xs.0[0].clone(), ws.0[0].clone()];
        match kernel {
            Some(k) if k.len() == xs.rank() - 2 => {
                dims.extend(self.window.output_dims(&xs.0[2..], &k))
            }
            _ => dims.extend((2..xs.rank()).map(|_| Dim::Unknown)),
        }
        Ok(Some(SymbolicShape(dims)))
    }

    fn shape(&self, xs: &[usize], ws: &[usize]) -> Result<Shape> {
        ensure!(
            xs.len() >= 3,
            "input must have rank >= 3 (N, C, spatial...), got shape {xs:?}"
        );
        ensure!(
            ws.len() == xs.len(),
            "weight shape {ws:?} must have the input's rank {}",
            xs.len()
        );
        let group = self.group.max(1);
        let (n, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
        ensure!(
            c == cg * group,
            "input has {c} channels but weight {ws:?} with group {group} expects {}",
            cg * group
        );
        ensure!(
            m % group == 0,
            "{m} output channels are not divisible by group {group}"
        );
        if let Some(k) = &self.kernel_shape {
            ensure!(
                k.as_slice() == &ws[2..],
                "kernel_shape {k:?} does not match weight shape {ws:?}"
            );
        }
        let geo = self.window.resolve(&xs[2..], &ws[2..])?;
        let mut out = vec![n, m];
        out.extend_from_slice(&geo.output);
        Ok(Shape {
            n,
            c,
            m,
            group,
            geo,
            out,
        })
    }
}

fn check_8bit(t: &TensorView, what: &str) -> Result<()> {
    ensure!(
        matches!(t.dtype(), DType::U8 | DType::I8),
        "{what} must be int8 or uint8, got {}",
        t.dtype()
    );
    Ok(())
}

/// Zero points of `t`'s operand: checked dtype, `len` values (1 = per tensor; else `allowed`).
fn zero_points(
    z: Option<&TensorView>,
    dtype: DType,
    allowed: usize,
    what: &str,
) -> Result<Vec<i32>> {
    let Some(z) = z else { return Ok(vec![0]) };
    ensure!(
        z.dtype() == dtype,
        "{what} has dtype {}, expected {dtype} like its operand",
        z.dtype()
    );
    let v = read_zero_points(z, what)?;
    ensure!(
        v.len() == 1 || v.len() == allowed && z.shape().len() == 1,
        "{what} must be a scalar or hold {allowed} values, got shape {:?}",
        z.shape()
    );
    Ok(v)
}

fn to_i16(t: &TensorView, zp: i32) -> Result<Vec<i16>> {
    Ok(match t.dtype() {
        DType::U8 => t
            .as_slice::<u8>()?
            .iter()
            .map(|&v| (v as i32 - zp) as i16)
            .collect(),
        DType::I8 => t
            .as_slice::<i8>()?
            .iter()
            .map(|&v| (v as i32 - zp) as i16)
            .collect(),
        other => bail!("expected int8 or uint8, got {other}"),
    })
}

/// The integer convolution `(x - x_zp) * (w - w_zp)` into an i32 tensor from the pool.
fn int_conv(
    ctx: &mut EvalCtx,
    attrs: &IntConvAttrs,
    x: &TensorView,
    x_zp: Option<&TensorView>,
    w: &TensorView,
    w_zp: Option<&TensorView>,
) -> Result<(Shape, Tensor)> {
    check_8bit(x, "input x")?;
    check_8bit(w, "weight w")?;
    let s = attrs.shape(x.shape(), w.shape())?;
    let xz = zero_points(x_zp, x.dtype(), 1, "x_zero_point")?;
    let wz = zero_points(w_zp, w.dtype(), s.m, "w_zero_point")?;
    let xd = to_i16(x, xz[0])?;
    let g = &s.geo;
    let (isz, osz, ksz): (usize, usize, usize) = (
        g.input.iter().product(),
        g.output.iter().product(),
        g.kernel.iter().product(),
    );
    let (cg, mg) = (s.c / s.group, s.m / s.group);
    let kdim = cg * ksz;
    let kp = kpairs(kdim);
    let lda = 2 * kp;
    // Weights minus zero points, rows padded to an even length.
    let mut wp = vec![0i16; s.m * lda];
    macro_rules! pack_w {
        ($t:ty) => {{
            let wd = w.as_slice::<$t>()?;
            for (co, dst) in wp.chunks_mut(lda.max(1)).enumerate().take(s.m) {
                let z = wz[if wz.len() == 1 { 0 } else { co }];
                fill_a_row(
                    dst,
                    wd[co * kdim..(co + 1) * kdim]
                        .iter()
                        .map(|&v| (v as i32 - z) as i16),
                );
            }
        }};
    }
    match w.dtype() {
        DType::U8 => pack_w!(u8),
        _ => pack_w!(i8),
    }
    let mut out = ctx.alloc(DType::I32, &s.out)?;
    if osz == 0 || s.n == 0 || s.m == 0 {
        return Ok((s, out));
    }
    let cols = Im2Col::new(g);
    // Column tiles of whole GEMM tiles, keeping the packed columns near 1 MiB.
    let tile = ((1usize << 19) / lda.max(1)).div_ceil(NC).max(1) * NC;
    let tile = tile.min(osz);
    // One (batch, group): im2col over column tiles + GEMM into `og` (its `mg` output planes).
    let run_group =
        |par: &dyn Parallelism, t: usize, og: &mut [i32], buf: &mut Vec<i16>| -> Result<()> {
            let (b, gi) = (t / s.group, t % s.group);
            let xg = &xd[(b * s.c + gi * cg) * isz..(b * s.c + (gi + 1) * cg) * isz];
            let wg = &wp[gi * mg * lda..(gi + 1) * mg * lda];
            for j0 in (0..osz).step_by(tile) {
                let tw = tile.min(osz - j0);
                buf.resize(kp * 2 * tw, 0);
                let bt = &mut buf[..kp * 2 * tw];
                cols.fill(par, xg, kdim, j0, tw, bt);
                igemm(par, mg, kp, tw, wg, lda, bt, 2 * tw, &mut og[j0..], osz)?;
            }
            Ok(())
        };
    let od = out.as_slice_mut::<i32>()?;
    let threads = ctx.par.threads();
    if threads > 1 && s.n * s.group >= 2 * threads && mg < 32 {
        // Many small groups (depthwise and the like): one task per (batch, group).
        let err = Mutex::new(None);
        par_chunks_mut(ctx.par, od, mg * osz, &|t, og| {
            if let Err(e) = run_group(&Serial, t, og, &mut Vec::new()) {
                if let Ok(mut slot) = err.lock() {
                    *slot = Some(e);
                }
            }
        });
        if let Some(e) = err.into_inner().ok().flatten() {
            return Err(e);
        }
    } else {
        let mut buf = Vec::new();
        for (t, og) in od.chunks_mut(mg * osz).enumerate() {
            run_group(ctx.par, t, og, &mut buf)?;
        }
    }
    Ok((s, out))
}

/// im2col in k-pair form for one (batch, group) slice of the input.
struct Im2Col<'g> {
    g: &'g Geometry,
    /// Input strides of the spatial dims.
    istride: Vec<usize>,
    isz: usize,
    ksz: usize,
}

impl<'g> Im2Col<'g> {
    fn new(g: &'g Geometry) -> Self {
        let nd = g.input.len();
        let mut istride = vec![1usize; nd];
        for d in (0..nd.saturating_sub(1)).rev() {
            istride[d] = istride[d + 1] * g.input[d + 1];
        }
        Im2Col {
            g,
            istride,
            isz: g.input.iter().product(),
            ksz: g.kernel.iter().product(),
        }
    }

    /// Fills `buf` (`kpairs(kdim)` pair-rows of `2·tw`) with the patches of output
    /// positions `j0..j0+tw`; row `kk = ci·ksz + kernel offset`.
    fn fill(
        &self,
        par: &dyn Parallelism,
        x: &[i16],
        kdim: usize,
        j0: usize,
        tw: usize,
        buf: &mut [i16],
    ) {
        let pairs_per_task = (1usize << 14).div_ceil(2 * tw).max(1);
        par_chunks_mut(par, buf, pairs_per_task * 2 * tw, &|t, chunk| {
            // The pair's two rows, extracted contiguously, then interleaved.
            let (mut r0, mut r1) = (vec![0i16; tw], vec![0i16; tw]);
            for (pi, prow) in chunk.chunks_mut(2 * tw).enumerate() {
                let p = t * pairs_per_task + pi;
                for (r, tmp) in [&mut r0, &mut r1].into_iter().enumerate() {
                    let kk = 2 * p + r;
                    if kk < kdim {
                        self.row(x, kk, j0, tmp);
                    } else {
                        tmp.fill(0);
                    }
                }
                for ((d, &a), &b) in prow.chunks_exact_mut(2).zip(&r0).zip(&r1) {
                    d[0] = a;
                    d[1] = b;
                }
            }
        });
    }

    /// One im2col row (input channel `kk / ksz`, kernel offset `kk % ksz`)
    /// for output positions `j0..j0 + dst.len()`.
    fn row(&self, x: &[i16], kk: usize, j0: usize, dst: &mut [i16]) {
        let g = self.g;
        let tw = dst.len();
        let nd = g.input.len();
        let last = nd - 1;
        let (ci, mut kr) = (kk / self.ksz, kk % self.ksz);
        // Kernel coordinates of this row.
        let mut kc = [0usize; 8];
        let mut kc_big = vec![];
        let kcs: &mut [usize] = if nd <= 8 {
            &mut kc[..nd]
        } else {
            kc_big.resize(nd, 0);
            &mut kc_big
        };
        for d in (0..nd).rev() {
            kcs[d] = kr % g.kernel[d];
            kr /= g.kernel[d];
        }
        let plane = &x[ci * self.isz..(ci + 1) * self.isz];
        let (ow, s, iw) = (g.output[last], g.strides[last], g.input[last] as i64);
        let koff = (kcs[last] * g.dilations[last]) as i64 - g.pad_begin[last] as i64;
        let mut j = 0;
        while j < tw {
            let pos = j0 + j;
            let (outer, o0) = (pos / ow, pos % ow);
            let run = (ow - o0).min(tw - j);
            // Offset of the input row for this outer output index, if inside the input.
            let mut base: Option<usize> = Some(0);
            let mut rem = outer;
            for d in (0..last).rev() {
                let od = rem % g.output[d];
                rem /= g.output[d];
                let i =
                    (od * g.strides[d] + kcs[d] * g.dilations[d]) as i64 - g.pad_begin[d] as i64;
                base = match base {
                    Some(b) if i >= 0 && i < g.input[d] as i64 => {
                        Some(b + i as usize * self.istride[d])
                    }
                    _ => None,
                };
            }
            let out = &mut dst[j..j + run];
            match base {
                None => out.fill(0),
                Some(b) => {
                    let src = &plane[b..b + iw as usize];
                    // Positions q with 0 <= first + q·s < iw are inside the input row.
                    let si = s as i64;
                    let first = (o0 * s) as i64 + koff;
                    let lo = if first >= 0 {
                        0
                    } else {
                        ((-first + si - 1) / si) as usize
                    }
                    .min(run);
                    let hi = if iw - 1 - first < 0 {
                        0
                    } else {
                        ((iw - 1 - first) / si + 1) as usize
                    }
                    .clamp(lo, run);
                    out[..lo].fill(0);
                    out[hi..].fill(0);
                    if hi > lo {
                        let i0 = (first + (lo as i64) * si) as usize;
                        if s == 1 {
                            out[lo..hi].copy_from_slice(&src[i0..i0 + (hi - lo)]);
                        } else {
                            for (o, q) in out[lo..hi].iter_mut().zip((i0..).step_by(s)) {
                                *o = src[q];
                            }
                        }
                    }
                }
            }
            j += run;
        }
    }
}

/// `ConvInteger` (opset 10): `conv(x - x_zero_point, w - w_zero_point)` as int32.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvInteger(pub IntConvAttrs);

impl Op for ConvInteger {
    fn name(&self) -> &'static str {
        "ConvInteger"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let get = |i: usize| inputs.get(i).copied().cloned().unwrap_or_default();
        Ok(vec![Fact {
            dtype: Some(DType::I32),
            shape: self.0.output_shape(&get(0), &get(1))?,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "ConvInteger")?;
        let w = input(inputs, 1, "ConvInteger")?;
        let opt = |i: usize| inputs.get(i).and_then(|t| t.as_ref());
        let (_, y) = int_conv(ctx, &self.0, x, opt(2), w, opt(3))?;
        Ok(vec![y])
    }

    crate::op_as_any!();
}

/// `QLinearConv` (opset 10): the integer convolution plus int32 bias,
/// requantized: `y = saturate(rint((acc + B) · x_scale · w_scale / y_scale) + y_zero_point)`,
/// per output channel when `w_scale` is 1-D. The multiplier is f32, the product f64.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QLinearConv(pub IntConvAttrs);

impl Op for QLinearConv {
    fn name(&self) -> &'static str {
        "QLinearConv"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let get = |i: usize| inputs.get(i).copied().cloned().unwrap_or_default();
        let dtype = qlinear_out_dtype(get(7).dtype, get(0).dtype)?;
        Ok(vec![Fact {
            dtype,
            shape: self.0.output_shape(&get(0), &get(3))?,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        const OP: &str = "QLinearConv";
        let opt = |i: usize| inputs.get(i).and_then(|t| t.as_ref());
        let (x, x_s, w, w_s, y_s) = (
            input(inputs, 0, OP)?,
            input(inputs, 1, OP)?,
            input(inputs, 3, OP)?,
            input(inputs, 4, OP)?,
            input(inputs, 6, OP)?,
        );
        let y_zp = opt(7);
        let out_dt =
            qlinear_out_dtype(y_zp.map(|z| z.dtype()), Some(x.dtype()))?.unwrap_or(DType::U8);
        let xs = single(&read_scales(x_s, "x_scale", false)?, "x_scale")?;
        let ys = single(&read_scales(y_s, "y_scale", false)?, "y_scale")?;
        let yz = match y_zp {
            Some(z) => single(&read_zero_points(z, "y_zero_point")?, "y_zero_point")? as f64,
            None => 0.0,
        };
        let (s, mut acc) = int_conv(ctx, &self.0, x, opt(2), w, opt(5))?;
        let ws = read_scales(w_s, "w_scale", false)?;
        ensure!(
            ws.len() == 1 || ws.len() == s.m,
            "w_scale must be a scalar or hold {} values, got {}",
            s.m,
            ws.len()
        );
        let mult: Vec<f64> = (0..s.m)
            .map(|co| (xs * ws[if ws.len() == 1 { 0 } else { co }] / ys) as f64)
            .collect();
        let osz: usize = s.geo.output.iter().product();
        if let Some(b) = opt(8) {
            ensure!(
                b.dtype() == DType::I32,
                "bias B must be int32, got {}",
                b.dtype()
            );
            let bias = b.as_slice::<i32>()?;
            ensure!(
                bias.len() == s.m,
                "bias B has {} values, expected {}",
                bias.len(),
                s.m
            );
            for (r, plane) in acc
                .as_slice_mut::<i32>()?
                .chunks_mut(osz.max(1))
                .enumerate()
            {
                let b = bias[r % s.m];
                plane.iter_mut().for_each(|v| *v = v.wrapping_add(b));
            }
        }
        let mut y = ctx.alloc(out_dt, &s.out)?;
        requantize(
            ctx,
            &mut y,
            acc.as_slice::<i32>()?,
            Mult::PerRow {
                row: osz,
                vals: &mult,
            },
            yz,
        )?;
        ctx.release(acc);
        Ok(vec![y])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::padding::AutoPad;
    use crate::ops::nn::test_util::{run, run_with, FakePar};
    use crate::parallel::{Parallelism, Serial};

    /// Direct N-D integer convolution from the definition (inputs already centered).
    fn naive(
        xs: &[usize],
        x: &[i32],
        ws: &[usize],
        w: &[i32],
        group: usize,
        win: &Window,
    ) -> (Vec<usize>, Vec<i32>) {
        let geo = win.resolve(&xs[2..], &ws[2..]).unwrap();
        let (n, c, m) = (xs[0], xs[1], ws[0]);
        let (cg, mg) = (c / group, m / group);
        let nd = xs.len() - 2;
        let osz: usize = geo.output.iter().product();
        let isz: usize = xs[2..].iter().product();
        let ksz: usize = ws[2..].iter().product();
        let mut out = vec![0i32; n * m * osz];
        for bi in 0..n {
            for co in 0..m {
                let g = co / mg;
                for o in 0..osz {
                    let mut oi = vec![0; nd];
                    let mut r = o;
                    for d in (0..nd).rev() {
                        oi[d] = r % geo.output[d];
                        r /= geo.output[d];
                    }
                    let mut acc = 0i32;
                    for ci in 0..cg {
                        for kk in 0..ksz {
                            let mut ki = vec![0; nd];
                            let mut r = kk;
                            for d in (0..nd).rev() {
                                ki[d] = r % ws[2 + d];
                                r /= ws[2 + d];
                            }
                            let mut off = 0usize;
                            let mut ok = true;
                            for d in 0..nd {
                                let p = (oi[d] * geo.strides[d] + ki[d] * geo.dilations[d]) as i64
                                    - geo.pad_begin[d] as i64;
                                ok &= p >= 0 && p < xs[2 + d] as i64;
                                off = off * xs[2 + d] + p.max(0) as usize;
                            }
                            if ok {
                                acc += x[(bi * c + g * cg + ci) * isz + off]
                                    * w[(co * cg + ci) * ksz + kk];
                            }
                        }
                    }
                    out[(bi * m + co) * osz + o] = acc;
                }
            }
        }
        let mut os = vec![n, m];
        os.extend(&geo.output);
        (os, out)
    }

    fn check(xs: &[usize], ws: &[usize], group: usize, win: Window, seed: usize) {
        let nx: usize = xs.iter().product();
        let nw: usize = ws.iter().product();
        let xv: Vec<u8> = (0..nx).map(|i| ((i * 31 + seed * 7) % 256) as u8).collect();
        let wv: Vec<i8> = (0..nw)
            .map(|i| ((i * 57 + seed) % 256) as u8 as i8)
            .collect();
        let xz = (seed * 13 % 256) as u8;
        let wz: Vec<i8> = (0..ws[0]).map(|i| (i as i8).wrapping_mul(5)).collect();
        let per = ws[1..].iter().product::<usize>();
        let xc: Vec<i32> = xv.iter().map(|&v| v as i32 - xz as i32).collect();
        let wc: Vec<i32> = wv
            .iter()
            .enumerate()
            .map(|(i, &v)| v as i32 - wz[i / per] as i32)
            .collect();
        let (os, want) = naive(xs, &xc, ws, &wc, group, &win);
        let op = ConvInteger(IntConvAttrs {
            kernel_shape: None,
            window: win,
            group,
        });
        let inputs = [
            Tensor::from_slice(xs, &xv).unwrap(),
            Tensor::from_slice(ws, &wv).unwrap(),
            Tensor::scalar(xz),
            Tensor::from_slice(&[ws[0]], &wz).unwrap(),
        ];
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        for par in [&Serial as &dyn Parallelism, &FakePar] {
            let y = run_with(par, &op, &refs).unwrap();
            assert_eq!(y[0].shape(), &os[..]);
            assert_eq!(
                y[0].as_slice::<i32>().unwrap(),
                &want[..],
                "x {xs:?} w {ws:?} group {group}"
            );
        }
    }

    #[test]
    fn matches_naive() {
        let pads = |p: usize, nd: usize| Window {
            pads: vec![p; 2 * nd],
            ..Default::default()
        };
        check(&[1, 1, 3, 3], &[1, 1, 2, 2], 1, Window::default(), 0);
        check(&[2, 3, 5, 6], &[4, 3, 3, 3], 1, pads(1, 2), 1);
        check(
            &[1, 4, 9, 8],
            &[6, 2, 3, 2],
            2,
            Window {
                strides: vec![2, 1],
                dilations: vec![1, 2],
                pads: vec![1, 0, 2, 1],
                ..Default::default()
            },
            2,
        );
        check(
            &[1, 6, 7, 7],
            &[6, 1, 3, 3],
            6,
            Window {
                auto_pad: AutoPad::SameUpper,
                strides: vec![2, 2],
                ..Default::default()
            },
            3,
        );
        check(&[1, 3, 7, 7], &[5, 3, 1, 1], 1, Window::default(), 4);
        check(
            &[2, 3, 11],
            &[4, 3, 3],
            1,
            Window {
                strides: vec![2],
                pads: vec![1, 2],
                ..Default::default()
            },
            5,
        );
        check(
            &[1, 2, 4, 5, 6],
            &[3, 2, 2, 3, 2],
            1,
            Window {
                pads: vec![1, 0, 1, 0, 1, 1],
                dilations: vec![2, 1, 1],
                ..Default::default()
            },
            6,
        );
        // Pads wider than the kernel reach, strides and dilations on the innermost dim.
        check(
            &[1, 2, 5, 7],
            &[2, 2, 2, 3],
            1,
            Window {
                strides: vec![2, 3],
                dilations: vec![2, 2],
                pads: vec![3, 4, 2, 5],
                ..Default::default()
            },
            9,
        );
        check(
            &[2, 2, 9],
            &[4, 1, 2],
            2,
            Window {
                strides: vec![4],
                dilations: vec![3],
                pads: vec![5, 6],
                ..Default::default()
            },
            10,
        );
        // Enough (batch, group) pairs for one task each.
        check(&[2, 8, 6, 6], &[8, 1, 3, 3], 8, pads(1, 2), 11);
        check(&[3, 6, 5, 4], &[9, 2, 2, 2], 3, Window::default(), 12);
        // Several column tiles and a k-dim above one GEMM block.
        check(&[1, 32, 24, 30], &[8, 32, 3, 3], 1, pads(1, 2), 7);
        check(&[1, 3, 40, 40], &[2, 3, 1, 1], 1, Window::default(), 8);
    }

    #[test]
    fn conv_integer_onnx_example() {
        let x = Tensor::from_slice(&[1, 1, 3, 3], &[2u8, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        let w = Tensor::from_slice(&[1, 1, 2, 2], &[1u8, 1, 1, 1]).unwrap();
        let op = ConvInteger(IntConvAttrs {
            group: 1,
            window: Window {
                pads: vec![1; 4],
                ..Default::default()
            },
            kernel_shape: None,
        });
        let y = run(&op, &[Some(&x), Some(&w), Some(&Tensor::scalar(1u8)), None]).unwrap();
        assert_eq!(
            y[0].as_slice::<i32>().unwrap(),
            &[1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9]
        );
        // Errors, not panics.
        assert!(run(
            &op,
            &[
                Some(&x),
                Some(&Tensor::from_slice(&[1, 2, 2, 2], &[1u8; 8]).unwrap()),
                None,
                None
            ]
        )
        .is_err());
        assert!(run(&op, &[Some(&x), Some(&w), Some(&Tensor::scalar(1i8)), None]).is_err());
        assert!(run(
            &op,
            &[
                Some(&x),
                Some(&w),
                Some(&Tensor::from_slice(&[2], &[1u8, 2]).unwrap()),
                None
            ]
        )
        .is_err());
        let xf = Tensor::from_slice(&[1, 1, 3, 3], &[0f32; 9]).unwrap();
        assert!(run(&op, &[Some(&xf), Some(&w), None, None]).is_err());
    }

    #[test]
    fn qlinear_conv_onnx_example() {
        let xv: [u8; 49] = [
            255, 174, 162, 25, 203, 168, 58, 15, 59, 237, 95, 129, 0, 64, 56, 242, 153, 221, 168,
            12, 166, 232, 178, 186, 195, 237, 162, 237, 188, 39, 124, 77, 80, 102, 43, 127, 230,
            21, 83, 41, 40, 134, 255, 154, 92, 141, 42, 148, 247,
        ];
        let inputs = [
            Tensor::from_slice(&[1, 1, 7, 7], &xv).unwrap(),
            Tensor::scalar(0.003_692_047_f32),
            Tensor::scalar(132u8),
            Tensor::from_slice(&[1, 1, 1, 1], &[0u8]).unwrap(),
            Tensor::from_slice(&[1], &[0.001_727_945_8_f32]).unwrap(),
            Tensor::from_slice(&[1], &[255u8]).unwrap(),
            Tensor::scalar(0.001_626_812_6_f32),
            Tensor::scalar(123u8),
        ];
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let y = run(
            &QLinearConv(IntConvAttrs {
                group: 1,
                ..Default::default()
            }),
            &refs,
        )
        .unwrap();
        let want: [u8; 49] = [
            0, 81, 93, 230, 52, 87, 197, 240, 196, 18, 160, 126, 255, 191, 199, 13, 102, 34, 87,
            243, 89, 23, 77, 69, 60, 18, 93, 18, 67, 216, 131, 178, 175, 153, 212, 128, 25, 234,
            172, 214, 215, 121, 0, 101, 163, 114, 213, 107, 8,
        ];
        assert_eq!(y[0].as_slice::<u8>().unwrap(), &want);
    }

    #[test]
    fn qlinear_conv_per_channel_with_bias() {
        let xs = [1usize, 2, 4, 4];
        let ws = [3usize, 2, 3, 3];
        let xv: Vec<i8> = (0..32).map(|i| (i as i8).wrapping_mul(11)).collect();
        let wv: Vec<i8> = (0..54).map(|i| (i as i8).wrapping_mul(7)).collect();
        let win = Window {
            pads: vec![1; 4],
            ..Default::default()
        };
        let xc: Vec<i32> = xv.iter().map(|&v| v as i32 - 2).collect();
        let wz = [0i8, 1, -1];
        let wc: Vec<i32> = wv
            .iter()
            .enumerate()
            .map(|(i, &v)| v as i32 - wz[i / 18] as i32)
            .collect();
        let (os, acc) = naive(&xs, &xc, &ws, &wc, 1, &win);
        let (xsc, wsc, ysc) = (0.02f32, [0.01f32, 0.03, 0.05], 0.5f32);
        let bias = [100i32, -200, 300];
        let want: Vec<i8> = acc
            .iter()
            .enumerate()
            .map(|(e, &a)| {
                let co = (e / 16) % 3;
                let mult = (xsc * wsc[co] / ysc) as f64;
                (((a + bias[co]) as f64 * mult).round_ties_even() + 3.0).clamp(-128.0, 127.0) as i8
            })
            .collect();
        let inputs = [
            Tensor::from_slice(&xs, &xv).unwrap(),
            Tensor::scalar(xsc),
            Tensor::scalar(2i8),
            Tensor::from_slice(&ws, &wv).unwrap(),
            Tensor::from_slice(&[3], &wsc).unwrap(),
            Tensor::from_slice(&[3], &wz).unwrap(),
            Tensor::scalar(ysc),
            Tensor::scalar(3i8),
            Tensor::from_slice(&[3], &bias).unwrap(),
        ];
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let op = QLinearConv(IntConvAttrs {
            group: 1,
            window: win,
            kernel_shape: Some(vec![3, 3]),
        });
        let y = run(&op, &refs).unwrap();
        assert_eq!(y[0].shape(), &os[..]);
        assert_eq!(y[0].as_slice::<i8>().unwrap(), &want[..]);
        let f = op
            .output_facts(
                &[
                    &Fact::new(DType::I8, SymbolicShape::known(&xs)),
                    &Fact::unknown(),
                    &Fact::unknown(),
                    &Fact::new(DType::I8, SymbolicShape::known(&ws)),
                ],
                1,
            )
            .unwrap();
        assert_eq!(f[0].shape, Some(SymbolicShape::known(&os)));
        assert_eq!(f[0].dtype, Some(DType::I8));
    }
}
