//! `DeformConv` (opsets 19, 22): 2-D deformable convolution. Each kernel tap
//! of each output position reads `X` at its regular position plus a learned
//! `(dy, dx)` offset (per offset group), by bilinear interpolation with zeros
//! outside the image, optionally scaled by `mask`; the samples are then
//! contracted with `W` like a grouped convolution (im2col + GEMM).
//!
//! Shapes: `X [N, C, H, W]`, `W [OC, C/group, kH, kW]`,
//! `offset [N, offset_group·kH·kW·2, oH, oW]` (pairs `(dy, dx)` per tap),
//! optional `B [OC]`, optional `mask [N, offset_group·kH·kW, oH, oW]`.

use uniml_data::{bail, ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{dispatch_float, with_output, Float};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone)]
pub struct DeformConv {
    /// `[dH, dW]`; empty means 1s.
    pub dilations: Vec<usize>,
    pub group: usize,
    /// `[kH, kW]`; empty means from `W`.
    pub kernel_shape: Vec<usize>,
    pub offset_group: usize,
    /// `[top, left, bottom, right]`; empty means 0s.
    pub pads: Vec<usize>,
    /// `[sH, sW]`; empty means 1s.
    pub strides: Vec<usize>,
}

/// Resolved sizes of one call.
#[derive(Debug, Clone, Copy)]
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    pt: usize,
    pl: usize,
}

fn pick(v: &[usize], i: usize, default: usize) -> usize {
    v.get(i).copied().unwrap_or(default)
}

impl DeformConv {
    fn out_dim(&self, len: usize, k: usize, axis: usize) -> Option<usize> {
        let d = pick(&self.dilations, axis, 1);
        let s = pick(&self.strides, axis, 1).max(1);
        let pad = pick(&self.pads, axis, 0) + pick(&self.pads, axis + 2, 0);
        let span = k.checked_sub(1)? * d + 1;
        (len + pad).checked_sub(span).map(|v| v / s + 1)
    }

    fn geometry(&self, xs: &[usize], ws: &[usize], os: &[usize]) -> Result<Geo> {
        ensure!(
            xs.len() == 4,
            "DeformConv supports 2-D inputs X [N, C, H, W] only, got {xs:?}"
        );
        ensure!(
            ws.len() == 4,
            "DeformConv: W must be [OC, C/group, kH, kW], got {ws:?}"
        );
        let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
        let (oc, kh, kw) = (ws[0], ws[2], ws[3]);
        if !self.kernel_shape.is_empty() {
            ensure!(
                self.kernel_shape == [kh, kw],
                "DeformConv: kernel_shape {:?} differs from W's {:?}",
                self.kernel_shape,
                &ws[2..]
            );
        }
        let g = self.group.max(1);
        ensure!(
            ws[1] * g == c && oc % g == 0,
            "DeformConv: W {ws:?} does not match C = {c} with group = {g}"
        );
        let og = self.offset_group.max(1);
        ensure!(
            c % og == 0,
            "DeformConv: C = {c} is not divisible by offset_group = {og}"
        );
        let (oh, ow) = match (self.out_dim(h, kh, 0), self.out_dim(w, kw, 1)) {
            (Some(a), Some(b)) => (a, b),
            _ => bail!("DeformConv: kernel {kh}x{kw} (with dilations and pads) does not fit the {h}x{w} input"),
        };
        ensure!(
            os == [n, og * kh * kw * 2, oh, ow],
            "DeformConv: offset must be [{n}, {}, {oh}, {ow}], got {os:?}",
            og * kh * kw * 2
        );
        Ok(Geo {
            n,
            c,
            h,
            w,
            oc,
            kh,
            kw,
            oh,
            ow,
            sh: pick(&self.strides, 0, 1).max(1),
            sw: pick(&self.strides, 1, 1).max(1),
            dh: pick(&self.dilations, 0, 1),
            dw: pick(&self.dilations, 1, 1),
            pt: pick(&self.pads, 0, 0),
            pl: pick(&self.pads, 1, 0),
        })
    }
}

impl Op for DeformConv {
    fn name(&self) -> &'static str {
        "DeformConv"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let n = x
            .shape
            .as_ref()
            .and_then(|s| s.0.first().cloned())
            .unwrap_or(Dim::Unknown);
        let oc = inputs
            .get(1)
            .and_then(|f| f.shape.as_ref())
            .and_then(|s| s.0.first().cloned())
            .unwrap_or(Dim::Unknown);
        let spatial = inputs
            .get(2)
            .and_then(|f| f.shape.as_ref())
            .filter(|s| s.rank() == 4);
        let (oh, ow) = match spatial {
            Some(s) => (s.0[2].clone(), s.0[3].clone()),
            None => (Dim::Unknown, Dim::Unknown),
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(SymbolicShape(vec![n, oc, oh, ow])),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = "DeformConv";
        let x = input(inputs, 0, op)?;
        let wt = input(inputs, 1, op)?;
        let off = input(inputs, 2, op)?;
        let bias = inputs.get(3).and_then(|v| v.as_ref());
        let mask = inputs.get(4).and_then(|v| v.as_ref());
        let g = self.geometry(x.shape(), wt.shape(), off.shape())?;
        if let Some(b) = bias {
            ensure!(
                b.shape() == [g.oc],
                "{op}: B must be [{}], got {:?}",
                g.oc,
                b.shape()
            );
        }
        let og = self.offset_group.max(1);
        if let Some(m) = mask {
            ensure!(
                m.shape() == [g.n, og * g.kh * g.kw, g.oh, g.ow],
                "{op}: mask must be [{}, {}, {}, {}], got {:?}",
                g.n,
                og * g.kh * g.kw,
                g.oh,
                g.ow,
                m.shape()
            );
        }
        let out_shape = [g.n, g.oc, g.oh, g.ow];
        let y = dispatch_float!(x.dtype(), F => {
            let xd = F::load(x)?;
            let wd = F::load(wt)?;
            let od = F::load(off)?;
            let bd = match bias { Some(b) => Some(F::load(b)?), None => None };
            let md = match mask { Some(m) => Some(F::load(m)?), None => None };
            with_output::<F>(ctx, x.dtype(), &out_shape, |ctx, out| {
                self.run::<F>(ctx, g, &xd, &wd, &od, bd.as_deref(), md.as_deref(), out)
            })?
        }, _ => bail!("{op}: X must be a float tensor, got {}", x.dtype()));
        Ok(vec![y])
    }

    crate::op_as_any!();
}

impl DeformConv {
    #[allow(clippy::too_many_arguments)]
    fn run<F: Float>(
        &self,
        ctx: &EvalCtx,
        g: Geo,
        x: &[F],
        wt: &[F],
        off: &[F],
        bias: Option<&[F]>,
        mask: Option<&[F]>,
        out: &mut [F],
    ) -> Result<()> {
        let taps = g.kh * g.kw;
        let p = g.oh * g.ow;
        let og = self.offset_group.max(1);
        let c_per_og = g.c / og;
        let groups = self.group.max(1);
        let cg = g.c / groups;
        let ocg = g.oc / groups;
        let k = cg * taps;
        if p == 0 || g.oc == 0 {
            return Ok(());
        }
        let Some(col_len) = g.c.checked_mul(taps).and_then(|v| v.checked_mul(p)) else {
            bail!(
                "DeformConv: the {}x{taps}x{p} sample matrix is too large",
                g.c
            );
        };
        let mut col = vec![F::ZERO; col_len];
        for n in 0..g.n {
            // im2col with deformed bilinear samples: row (ic, i, j), column (oy, ox).
            par_chunks_mut(ctx.par, &mut col, taps * p, &|ic, rows| {
                let xp = &x[(n * g.c + ic) * g.h * g.w..(n * g.c + ic + 1) * g.h * g.w];
                let ogi = ic / c_per_og;
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let tap = i * g.kw + j;
                        let oy_ch = ((n * og + ogi) * taps + tap) * 2;
                        let offy = &off[oy_ch * p..(oy_ch + 1) * p];
                        let offx = &off[(oy_ch + 1) * p..(oy_ch + 2) * p];
                        let m = mask.map(|m| {
                            let ch = (n * og + ogi) * taps + tap;
                            &m[ch * p..(ch + 1) * p]
                        });
                        let row = &mut rows[tap * p..(tap + 1) * p];
                        for oy in 0..g.oh {
                            let base_h = (oy * g.sh + i * g.dh) as f64 - g.pt as f64;
                            for ox in 0..g.ow {
                                let q = oy * g.ow + ox;
                                let base_w = (ox * g.sw + j * g.dw) as f64 - g.pl as f64;
                                let yy = F::from_f64(base_h) + offy[q];
                                let xx = F::from_f64(base_w) + offx[q];
                                let mut v = bilinear_zeros(xp, g.h, g.w, yy, xx);
                                if let Some(m) = m {
                                    v = v * m[q];
                                }
                                row[q] = v;
                            }
                        }
                    }
                }
            });
            let yb = &mut out[n * g.oc * p..(n + 1) * g.oc * p];
            for gi in 0..groups {
                let a = &wt[gi * ocg * k..(gi + 1) * ocg * k];
                let b = &col[gi * k * p..(gi + 1) * k * p];
                let c = &mut yb[gi * ocg * p..(gi + 1) * ocg * p];
                matmul(ocg, p, k, a, b, c);
            }
            if let Some(bias) = bias {
                for (o, plane) in yb.chunks_exact_mut(p).enumerate() {
                    let bv = bias[o];
                    plane.iter_mut().for_each(|v| *v += bv);
                }
            }
        }
        Ok(())
    }
}

/// `c[m×n] = a[m×k] · b[k×n]` (row-major); f32 goes through the GEMM library.
fn matmul<F: Float>(m: usize, n: usize, k: usize, a: &[F], b: &[F], c: &mut [F]) {
    if F::DTYPE == uniml_data::DType::F32 {
        let (a32, b32): (&[f32], &[f32]) = (bytemuck::cast_slice(a), bytemuck::cast_slice(b));
        let c32: &mut [f32] = bytemuck::cast_slice_mut(c);
        uniml_linalg::sgemm(
            m,
            n,
            k,
            1.0,
            uniml_linalg::MatRef::new(a32, m, k),
            uniml_linalg::MatRef::new(b32, k, n),
            0.0,
            c32,
            n,
        );
        return;
    }
    for i in 0..m {
        let ci = &mut c[i * n..(i + 1) * n];
        ci.iter_mut().for_each(|v| *v = F::ZERO);
        for kk in 0..k {
            let av = a[i * k + kk];
            let br = &b[kk * n..(kk + 1) * n];
            for (cv, &bv) in ci.iter_mut().zip(br) {
                *cv += av * bv;
            }
        }
    }
}

/// Bilinear sample of an `h×w` plane at `(y, x)`, reading 0 outside.
#[inline]
fn bilinear_zeros<F: Float>(plane: &[F], h: usize, w: usize, y: F, x: F) -> F {
    let (y0f, x0f) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0f, x - x0f);
    let (y0, x0) = (y0f.to_i64(), x0f.to_i64());
    let at = |yy: i64, xx: i64| -> F {
        if yy >= 0 && (yy as usize) < h && xx >= 0 && (xx as usize) < w {
            plane[yy as usize * w + xx as usize]
        } else {
            F::ZERO
        }
    };
    let (y1, x1) = (y0.saturating_add(1), x0.saturating_add(1));
    let top = at(y0, x0) * (F::ONE - fx) + at(y0, x1) * fx;
    let bottom = at(y1, x0) * (F::ONE - fx) + at(y1, x1) * fx;
    top * (F::ONE - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run, t};
    use super::*;

    fn op(offset_group: usize) -> DeformConv {
        DeformConv {
            dilations: vec![],
            group: 1,
            kernel_shape: vec![2, 2],
            offset_group,
            pads: vec![0; 4],
            strides: vec![],
        }
    }

    #[test]
    fn onnx_example_with_mask_and_bias() {
        let x = t(&[1, 1, 3, 3], &(0..9).map(|v| v as f32).collect::<Vec<_>>());
        let w = t(&[1, 1, 2, 2], &[1.0; 4]);
        let mut offv = vec![0.0f32; 32];
        offv[0] = 0.5; // channel 0 = tap (0, 0) dy, at output (0, 0)
        offv[4 * 2 + 1] = -0.1; // channel 2 = tap (0, 1) dy, at output (0, 1)
        let off = t(&[1, 8, 2, 2], &offv);
        let b = t(&[1], &[1.0]);
        let mask = t(&[1, 4, 2, 2], &[1.0; 16]);
        let y = run(
            &op(1),
            &[Some(&x), Some(&w), Some(&off), Some(&b), Some(&mask)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 2, 2]);
        // Output (0,0): taps at (0.5,0), (0,1), (1,0), (1,1) → 1.5 + 1 + 3 + 4 + bias 1 = 10.5.
        // Output (0,1): tap (0,1) reads (-0.1, 2) → 0.9·2 = 1.8; the others read
        // (0,1), (1,1), (1,2) → 1 + 4 + 5; total 11.8 + bias 1.
        let got = y[0].as_slice::<f32>().unwrap();
        assert_close(&got[..2], &[10.5, 12.8], 1e-5);
        assert_close(
            &got[2..],
            &[3. + 4. + 6. + 7. + 1., 4. + 5. + 7. + 8. + 1.],
            1e-5,
        );
        let bad_off = t(&[1, 4, 2, 2], &[0.0; 16]);
        assert!(run(&op(1), &[Some(&x), Some(&w), Some(&bad_off)]).is_err());
    }
}
