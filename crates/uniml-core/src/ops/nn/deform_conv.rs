//! `DeformConv` (opset 19, 2-D): each kernel tap samples the input at its
//! regular position plus a learned offset (bilinear, zero outside), scaled
//! by an optional mask; implemented as a deformable im2col + GEMM per group.

use uniml_data::{ensure, Result, Tensor, TensorView};

use super::gemm_glue::{gemm, Epi, Mat};
use super::padding::attr_or;
use super::{float_data, with_f32_output};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Default)]
pub struct DeformConv {
    pub kernel_shape: Option<Vec<usize>>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<usize>,
    pub group: usize,
    pub offset_group: usize,
}

/// Bilinear sample of `plane` (`h × w`) at real coordinates, zero outside.
#[inline]
fn bilinear(plane: &[f32], h: usize, w: usize, y: f32, x: f32) -> f32 {
    let (y0, x0) = (y.floor(), x.floor());
    let (dy, dx) = (y - y0, x - x0);
    let (y0, x0) = (y0 as i64, x0 as i64);
    let at = |yy: i64, xx: i64| {
        if yy >= 0 && yy < h as i64 && xx >= 0 && xx < w as i64 {
            plane[yy as usize * w + xx as usize]
        } else {
            0.0
        }
    };
    (1.0 - dy) * ((1.0 - dx) * at(y0, x0) + dx * at(y0, x0 + 1))
        + dy * ((1.0 - dx) * at(y0 + 1, x0) + dx * at(y0 + 1, x0 + 1))
}

impl Op for DeformConv {
    fn name(&self) -> &'static str {
        "DeformConv"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let w = inputs.get(1).copied().cloned().unwrap_or_default();
        let off = inputs.get(2).copied().cloned().unwrap_or_default();
        let shape = match (&x.shape, &w.shape, &off.shape) {
            (Some(xs), Some(ws), Some(os))
                if xs.rank() == 4 && os.rank() == 4 && ws.rank() == 4 =>
            {
                Some(uniml_data::SymbolicShape(vec![
                    xs.0[0].clone(),
                    ws.0[0].clone(),
                    os.0[2].clone(),
                    os.0[3].clone(),
                ]))
            }
            _ => None,
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
            konst: None,
            is_sequence: false,
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "DeformConv")?;
        let w = input(inputs, 1, "DeformConv")?;
        let off = input(inputs, 2, "DeformConv")?;
        let bias = inputs.get(3).and_then(|b| b.as_ref());
        let mask = inputs.get(4).and_then(|b| b.as_ref());
        let (xs, ws, os) = (x.shape(), w.shape(), off.shape());
        ensure!(
            xs.len() == 4 && ws.len() == 4 && os.len() == 4,
            "DeformConv supports 2-D inputs only (X {xs:?}, W {ws:?}, offset {os:?})"
        );
        let (group, og) = (self.group.max(1), self.offset_group.max(1));
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
        let (m, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
        if let Some(k) = &self.kernel_shape {
            ensure!(
                k.as_slice() == &ws[2..],
                "kernel_shape {k:?} does not match weight shape {ws:?}"
            );
        }
        ensure!(
            c == cg * group && m % group == 0,
            "DeformConv: X has {c} channels, W {ws:?} with group {group}"
        );
        ensure!(
            c % og == 0,
            "DeformConv: {c} channels not divisible by offset_group {og}"
        );
        let st = attr_or(&self.strides, 2, 1, "strides")?;
        let dl = attr_or(&self.dilations, 2, 1, "dilations")?;
        let pads = if self.pads.is_empty() {
            vec![0; 4]
        } else {
            self.pads.clone()
        };
        ensure!(pads.len() == 4, "pads must have 4 values, got {pads:?}");
        let span = |i: usize, k: usize| -> Result<usize> {
            let total = xs[2 + i] + pads[i] + pads[2 + i];
            let dk = (k - 1) * dl[i] + 1;
            ensure!(
                total >= dk,
                "DeformConv: padded input smaller than the kernel"
            );
            Ok((total - dk) / st[i] + 1)
        };
        let (oh, ow) = (span(0, kh)?, span(1, kw)?);
        ensure!(
            os[0] == n && os[1] == og * kh * kw * 2 && os[2] == oh && os[3] == ow,
            "DeformConv offset shape {os:?} should be [{n}, {}, {oh}, {ow}]",
            og * kh * kw * 2
        );
        if let Some(mk) = mask {
            ensure!(
                mk.shape() == [n, og * kh * kw, oh, ow],
                "DeformConv mask shape {:?} should be [{n}, {}, {oh}, {ow}]",
                mk.shape(),
                og * kh * kw
            );
        }
        if let Some(b) = bias {
            ensure!(
                b.len() == m,
                "DeformConv bias has {} values, expected {m}",
                b.len()
            );
        }
        let xd = float_data(x, "X")?;
        let wdat = float_data(w, "W")?;
        let offd = float_data(off, "offset")?;
        let maskd = match mask {
            Some(mk) => Some(float_data(mk, "mask")?),
            None => None,
        };
        let bd = match bias {
            Some(b) => Some(float_data(b, "B")?),
            None => None,
        };
        let (mg, ksz, osz) = (m / group, kh * kw, oh * ow);
        let cpo = c / og;
        let y = with_f32_output(ctx, x.dtype(), &[n, m, oh, ow], |_, out| {
            let mut cols = vec![0f32; cg * ksz * osz];
            for b in 0..n {
                for g in 0..group {
                    for ci in 0..cg {
                        let ch = g * cg + ci;
                        let o_g = ch / cpo;
                        let plane = &xd[(b * c + ch) * h * wd..(b * c + ch + 1) * h * wd];
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let k = ky * kw + kx;
                                let row = &mut cols[(ci * ksz + k) * osz..(ci * ksz + k + 1) * osz];
                                let obase = ((b * og + o_g) * ksz + k) * 2;
                                for i in 0..oh {
                                    for j in 0..ow {
                                        let p = i * ow + j;
                                        let dy = offd[(obase * oh + i) * ow + j];
                                        let dx = offd[((obase + 1) * oh + i) * ow + j];
                                        let yy =
                                            (i * st[0] + ky * dl[0]) as f32 - pads[0] as f32 + dy;
                                        let xx =
                                            (j * st[1] + kx * dl[1]) as f32 - pads[1] as f32 + dx;
                                        let mv = maskd.as_ref().map_or(1.0, |mk| {
                                            mk[((b * og + o_g) * ksz + k) * osz + p]
                                        });
                                        row[p] = mv * bilinear(plane, h, wd, yy, xx);
                                    }
                                }
                            }
                        }
                    }
                    let og_out = &mut out[(b * m + g * mg) * osz..(b * m + (g + 1) * mg) * osz];
                    let a = Mat::new(
                        &wdat[g * mg * cg * ksz..(g + 1) * mg * cg * ksz],
                        mg,
                        cg * ksz,
                    );
                    let epi = Epi {
                        bias_row: bd.as_deref().map(|v| &v[g * mg..(g + 1) * mg]),
                        ..Default::default()
                    };
                    gemm(
                        mg,
                        osz,
                        cg * ksz,
                        a,
                        Mat::new(&cols, cg * ksz, osz),
                        og_out,
                        osz,
                        &epi,
                    );
                }
            }
            Ok(())
        })?;
        Ok(vec![y])
    }
    crate::op_as_any!();
}
