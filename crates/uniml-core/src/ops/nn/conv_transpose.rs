//! `ConvTranspose`: GEMM (`Wᵀ · X` per group, constant weights packed once)
//! followed by col2im scatter-add into the bias-initialised output.
//!
//! Padding follows the ONNX reference: with `auto_pad` SAME_* and no `pads`,
//! the total padding `s·(in-1) + output_padding + dk - out` (out = `output_shape`
//! or `in·s`) is split with the smaller half at the start for SAME_UPPER;
//! otherwise `pads` (default 0) are used and `output_shape`, when given, fixes
//! the output size.

use std::sync::Arc;

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::gemm_glue::{col_tile, par_gemm_cols, ARef, Epi, Mat, PackedA, WeightCache};
use super::padding::{attr_or, AutoPad};
use super::{float_data, with_f32_output, FusedActivation};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Default)]
pub struct ConvTranspose {
    pub kernel_shape: Option<Vec<usize>>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Explicit pads `[begin..., end...]` (None when absent on the node).
    pub pads: Option<Vec<usize>>,
    pub output_padding: Vec<usize>,
    /// Spatial output shape, if given.
    pub output_shape: Option<Vec<usize>>,
    pub auto_pad: AutoPad,
    pub group: usize,
    pub activation: FusedActivation,
    /// Per-group packed `Wᵀ` (filled by `pack_constants` or [`ConvTranspose::prepack`]).
    pub packed: WeightCache<Vec<PackedA>>,
}

/// Resolved ConvTranspose geometry (pads may be negative).
#[derive(Debug, Clone)]
struct TGeo {
    input: Vec<usize>,
    kernel: Vec<usize>,
    output: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pad_begin: Vec<i64>,
}

impl ConvTranspose {
    pub fn prepack(&self, weight: &Arc<Tensor>) {
        let group = self.group.max(1);
        self.packed.ensure(weight, |w| {
            if w.dtype() != DType::F32 || w.rank() < 3 || w.shape()[0] % group != 0 {
                return None;
            }
            let c = w.shape()[0];
            let cg = c / group;
            let mk: usize = w.shape()[1..].iter().product();
            let d = w.as_slice::<f32>().ok()?;
            Some(
                (0..group)
                    .map(|g| {
                        PackedA::pack(Mat::new(&d[g * cg * mk..(g + 1) * cg * mk], cg, mk).t())
                    })
                    .collect(),
            )
        });
    }

    fn geometry(&self, input: &[usize], kernel: &[usize]) -> Result<TGeo> {
        let n = input.len();
        ensure!(
            kernel.len() == n,
            "ConvTranspose kernel has {} dims, input has {n} spatial dims",
            kernel.len()
        );
        let strides = attr_or(&self.strides, n, 1, "strides")?;
        let dilations = attr_or(&self.dilations, n, 1, "dilations")?;
        let op = if self.output_padding.is_empty() {
            vec![0; n]
        } else {
            self.output_padding.clone()
        };
        ensure!(
            op.len() == n,
            "output_padding has {} values, expected {n}",
            op.len()
        );
        let out_shape = match &self.output_shape {
            Some(s) if s.len() == n => Some(s.clone()),
            Some(s) if s.len() == n + 2 => Some(s[2..].to_vec()),
            Some(s) => bail!("output_shape {s:?} does not match {n} spatial dims"),
            None => None,
        };
        let mut output = vec![0; n];
        let mut pad_begin = vec![0i64; n];
        let same =
            matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) && self.pads.is_none();
        for i in 0..n {
            let dk = ((kernel[i] - 1) * dilations[i] + 1) as i64;
            let full = strides[i] as i64 * (input[i] as i64 - 1) + op[i] as i64 + dk;
            if same {
                let target = out_shape
                    .as_ref()
                    .map(|s| s[i])
                    .unwrap_or(input[i] * strides[i]);
                let total = full - target as i64;
                pad_begin[i] = if self.auto_pad == AutoPad::SameUpper {
                    total.div_euclid(2)
                } else {
                    total - total.div_euclid(2)
                };
                output[i] = target;
            } else {
                let pads = match &self.pads {
                    Some(p) => {
                        ensure!(
                            p.len() == 2 * n,
                            "pads has {} values, expected {}",
                            p.len(),
                            2 * n
                        );
                        p.clone()
                    }
                    None => vec![0; 2 * n],
                };
                pad_begin[i] = pads[i] as i64;
                output[i] = match &out_shape {
                    Some(s) => s[i],
                    None => {
                        let o = full - (pads[i] + pads[n + i]) as i64;
                        ensure!(
                            o >= 0,
                            "ConvTranspose output size along spatial dim {i} would be negative"
                        );
                        o as usize
                    }
                };
            }
        }
        Ok(TGeo {
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            output,
            strides,
            dilations,
            pad_begin,
        })
    }
}

impl Op for ConvTranspose {
    fn name(&self) -> &'static str {
        "ConvTranspose"
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        if let Some(k) = inputs.get(1).and_then(|f| f.konst.as_ref()) {
            self.prepack(k);
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let w = inputs.get(1).copied().cloned().unwrap_or_default();
        let shape = match (&x.shape, &w.shape) {
            (Some(xs), Some(ws)) => {
                ensure!(
                    xs.rank() >= 3 && ws.rank() == xs.rank(),
                    "ConvTranspose input {xs} and weight {ws} must have the same rank >= 3"
                );
                let m = match ws.0[1].known() {
                    Some(v) => Dim::Known(v * self.group.max(1)),
                    None => Dim::Unknown,
                };
                let kernel: Option<Vec<usize>> = match &self.kernel_shape {
                    Some(k) => Some(k.clone()),
                    None => ws.0[2..].iter().map(Dim::known).collect(),
                };
                let spatial: Option<Vec<usize>> = xs.0[2..].iter().map(Dim::known).collect();
                let mut d = vec![xs.0[0].clone(), m];
                match (spatial, kernel) {
                    (Some(s), Some(k)) => match self.geometry(&s, &k) {
                        Ok(g) => d.extend(g.output.into_iter().map(Dim::Known)),
                        Err(_) => d.extend(std::iter::repeat_n(Dim::Unknown, xs.rank() - 2)),
                    },
                    _ => d.extend(std::iter::repeat_n(Dim::Unknown, xs.rank() - 2)),
                }
                Some(SymbolicShape(d))
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
        let x = input(inputs, 0, "ConvTranspose")?;
        let w = input(inputs, 1, "ConvTranspose")?;
        let bias = inputs.get(2).and_then(|b| b.as_ref());
        let (xs, ws) = (x.shape(), w.shape());
        ensure!(
            xs.len() >= 3 && ws.len() == xs.len(),
            "ConvTranspose input {xs:?} and weight {ws:?} must have the same rank >= 3"
        );
        let group = self.group.max(1);
        let (n, c) = (xs[0], xs[1]);
        ensure!(
            ws[0] == c,
            "ConvTranspose weight {ws:?} must have {c} input channels first"
        );
        ensure!(
            c % group == 0,
            "ConvTranspose: {c} input channels not divisible by group {group}"
        );
        let (cg, mg) = (c / group, ws[1]);
        let m = mg * group;
        let kernel = &ws[2..];
        if let Some(k) = &self.kernel_shape {
            ensure!(
                k.as_slice() == kernel,
                "kernel_shape {k:?} does not match weight shape {ws:?}"
            );
        }
        let geo = self.geometry(&xs[2..], kernel)?;
        let mut out_shape = vec![n, m];
        out_shape.extend_from_slice(&geo.output);
        let bd = match bias {
            Some(b) => {
                ensure!(
                    b.len() == m,
                    "ConvTranspose bias has {} values, expected {m}",
                    b.len()
                );
                Some(float_data(b, "B")?)
            }
            None => None,
        };
        let xd = float_data(x, "X")?;
        let wd = float_data(w, "W")?;
        let cached = if w.dtype() == DType::F32 {
            self.packed.get(w)
        } else {
            None
        };
        let act = self.activation;
        let pin: usize = geo.input.iter().product();
        let pout: usize = geo.output.iter().product();
        let ksz: usize = kernel.iter().product();
        let rows = mg * ksz;
        let y = with_f32_output(ctx, x.dtype(), &out_shape, |ctx, out| {
            if pout == 0 || n == 0 || m == 0 {
                return Ok(());
            }
            super::with_scratch(|cols_buf| {
                // Fully written by each GEMM (no accumulation) before col2im reads it.
                let cols = super::scratch_slice(cols_buf, rows * pin);
                for b in 0..n {
                    for g in 0..group {
                        let xg = &xd[(b * c + g * cg) * pin..(b * c + (g + 1) * cg) * pin];
                        let a = match cached.as_ref().and_then(|p| p.packed.get(g)) {
                            Some(p) => ARef::Packed(p),
                            None => ARef::Plain(
                                Mat::new(&wd[g * cg * rows..(g + 1) * cg * rows], cg, rows).t(),
                            ),
                        };
                        let tile = col_tile(ctx.par, rows, pin, cg);
                        par_gemm_cols(
                            ctx.par,
                            a,
                            pin,
                            cg,
                            cols,
                            &Epi::default(),
                            tile,
                            &|j0, nn, _| Some(Mat::with_stride(&xg[j0..], cg, nn, pin)),
                        );
                        let og = &mut out[(b * m + g * mg) * pout..(b * m + (g + 1) * mg) * pout];
                        let cols = &*cols;
                        let geo = &geo;
                        let bd = &bd;
                        super::par_planes(ctx.par, og, pout, ksz * pin + pout, &|mo, o| {
                            o.fill(bd.as_ref().map(|v| v[g * mg + mo]).unwrap_or(0.0));
                            col2im(geo, &cols[mo * ksz * pin..(mo + 1) * ksz * pin], o);
                            act.apply_slice(o);
                        });
                    }
                }
            });
            Ok(())
        })?;
        Ok(vec![y])
    }

    crate::op_as_any!();
}

/// Scatter-adds one output channel's columns (`ksz × pin`) into `out`.
fn col2im(g: &TGeo, cols: &[f32], out: &mut [f32]) {
    let nd = g.input.len();
    let pin: usize = g.input.iter().product();
    let ksz: usize = g.kernel.iter().product();
    let last = nd - 1;
    let (win, wout, sw, dw, pw) = (
        g.input[last],
        g.output[last],
        g.strides[last],
        g.dilations[last],
        g.pad_begin[last],
    );
    let outer_in = pin / win.max(1);
    let mut kidx = vec![0usize; nd];
    let mut iidx = vec![0usize; nd];
    for k in 0..ksz {
        let mut r = k;
        for d in (0..nd).rev() {
            kidx[d] = r % g.kernel[d];
            r /= g.kernel[d];
        }
        let off_w = (kidx[last] * dw) as i64 - pw;
        // Valid input columns: 0 <= iw*sw + off_w < wout.
        let lo = if off_w >= 0 {
            0
        } else {
            ((-off_w) as usize).div_ceil(sw)
        };
        let hi = if (wout as i64) - off_w <= 0 {
            0
        } else {
            (((wout as i64 - off_w - 1) / sw as i64) + 1) as usize
        };
        let hi = hi.min(win);
        let crow = &cols[k * pin..(k + 1) * pin];
        for o in 0..outer_in {
            // Decode the outer input index (all dims but the last).
            let mut r = o;
            for d in (0..last).rev() {
                iidx[d] = r % g.input[d];
                r /= g.input[d];
            }
            let mut base = 0usize;
            let mut inside = true;
            for d in 0..last {
                let p = (iidx[d] * g.strides[d] + kidx[d] * g.dilations[d]) as i64 - g.pad_begin[d];
                if p < 0 || p >= g.output[d] as i64 {
                    inside = false;
                    break;
                }
                base = base * g.output[d] + p as usize;
            }
            if !inside || hi <= lo {
                continue;
            }
            let src = &crow[o * win..(o + 1) * win];
            let dst = &mut out[base * wout..(base + 1) * wout];
            let start = (lo * sw) as i64 + off_w;
            let start = start as usize;
            if sw == 1 {
                for (d, &s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                    *d += s;
                }
            } else {
                for (t, &s) in src[lo..hi].iter().enumerate() {
                    dst[start + t * sw] += s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, rand_vec, run, run_with, t, FakePar};

    /// Direct definition: every input pixel scatters `x * w` into the output.
    fn naive(
        op: &ConvTranspose,
        xs: &[usize],
        x: &[f32],
        ws: &[usize],
        w: &[f32],
        b: &[f32],
    ) -> (Vec<usize>, Vec<f32>) {
        let geo = op.geometry(&xs[2..], &ws[2..]).unwrap();
        let group = op.group.max(1);
        let (n, c, mg) = (xs[0], xs[1], ws[1]);
        let (cg, m) = (c / group, mg * group);
        let nd = xs.len() - 2;
        let pin: usize = geo.input.iter().product();
        let pout: usize = geo.output.iter().product();
        let ksz: usize = ws[2..].iter().product();
        let mut out = vec![0f32; n * m * pout];
        for bi in 0..n {
            for co in 0..m {
                for p in 0..pout {
                    out[(bi * m + co) * pout + p] = b[co];
                }
            }
            for ci in 0..c {
                let g = ci / cg;
                for p in 0..pin {
                    let mut ii = vec![0; nd];
                    let mut r = p;
                    for d in (0..nd).rev() {
                        ii[d] = r % geo.input[d];
                        r /= geo.input[d];
                    }
                    for mo in 0..mg {
                        for k in 0..ksz {
                            let mut ki = vec![0; nd];
                            let mut r = k;
                            for d in (0..nd).rev() {
                                ki[d] = r % geo.kernel[d];
                                r /= geo.kernel[d];
                            }
                            let mut off = 0usize;
                            let mut ok = true;
                            for d in 0..nd {
                                let q = (ii[d] * geo.strides[d] + ki[d] * geo.dilations[d]) as i64
                                    - geo.pad_begin[d];
                                if q < 0 || q >= geo.output[d] as i64 {
                                    ok = false;
                                }
                                off = off * geo.output[d] + q.max(0) as usize;
                            }
                            if ok {
                                out[(bi * m + g * mg + mo) * pout + off] +=
                                    x[(bi * c + ci) * pin + p] * w[(ci * mg + mo) * ksz + k];
                            }
                        }
                    }
                }
            }
        }
        let mut os = vec![n, m];
        os.extend(&geo.output);
        (os, out)
    }

    fn check(op: ConvTranspose, xs: &[usize], ws: &[usize], want_shape: Option<&[usize]>) {
        let x = rand_vec(xs.iter().product(), 1);
        let w = rand_vec(ws.iter().product(), 2);
        let m = ws[1] * op.group.max(1);
        let b = rand_vec(m, 3);
        let (os, want) = naive(&op, xs, &x, ws, &w, &b);
        if let Some(s) = want_shape {
            assert_eq!(os, s);
        }
        let wt = Arc::new(t(ws, &w));
        let (xt, bt) = (t(xs, &x), t(&[m], &b));
        let got = run(&op, &[Some(&xt), Some(&wt), Some(&bt)]).unwrap();
        assert_eq!(got[0].shape(), &os[..]);
        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-4);
        op.prepack(&wt);
        let got = run_with(&FakePar, &op, &[Some(&xt), Some(&wt), Some(&bt)]).unwrap();
        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-4);
    }

    #[test]
    fn conv_transpose_variants() {
        let base = ConvTranspose {
            group: 1,
            ..Default::default()
        };
        check(
            base.clone(),
            &[1, 1, 3, 3],
            &[1, 2, 3, 3],
            Some(&[1, 2, 5, 5]),
        );
        check(
            ConvTranspose {
                strides: vec![2, 2],
                ..base.clone()
            },
            &[2, 3, 4, 5],
            &[3, 4, 2, 2],
            Some(&[2, 4, 8, 10]),
        );
        check(
            ConvTranspose {
                strides: vec![3, 2],
                output_shape: Some(vec![10, 8]),
                ..base.clone()
            },
            &[1, 1, 3, 3],
            &[1, 2, 3, 3],
            Some(&[1, 2, 10, 8]),
        );
        check(
            ConvTranspose {
                strides: vec![3, 2],
                output_padding: vec![1, 1],
                ..base.clone()
            },
            &[1, 1, 3, 3],
            &[1, 2, 3, 3],
            Some(&[1, 2, 10, 8]),
        );
        check(
            ConvTranspose {
                strides: vec![2, 2],
                auto_pad: AutoPad::SameUpper,
                ..base.clone()
            },
            &[1, 1, 3, 3],
            &[1, 2, 3, 3],
            Some(&[1, 2, 6, 6]),
        );
        check(
            ConvTranspose {
                strides: vec![3, 2],
                pads: Some(vec![1, 2, 1, 2]),
                ..base.clone()
            },
            &[1, 1, 3, 3],
            &[1, 2, 3, 3],
            Some(&[1, 2, 7, 3]),
        );
        check(
            ConvTranspose {
                dilations: vec![2, 2],
                ..base.clone()
            },
            &[1, 1, 3, 3],
            &[1, 1, 2, 2],
            Some(&[1, 1, 5, 5]),
        );
        check(
            ConvTranspose {
                group: 2,
                ..base.clone()
            },
            &[1, 4, 3, 3],
            &[4, 3, 3, 3],
            Some(&[1, 6, 5, 5]),
        );
        check(
            ConvTranspose {
                strides: vec![2],
                ..base.clone()
            },
            &[1, 2, 5],
            &[2, 3, 3],
            Some(&[1, 3, 11]),
        );
        check(
            base.clone(),
            &[1, 1, 3, 4, 5],
            &[1, 2, 3, 3, 3],
            Some(&[1, 2, 5, 6, 7]),
        );
    }
}
