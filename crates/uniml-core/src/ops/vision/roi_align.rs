//! `RoiAlign` (opsets 10, 16): pools each region of interest of `X [N, C, H, W]`
//! into `[output_height, output_width]` bins by averaging (or taking the
//! maximum of) bilinear samples on a regular grid of `sampling_ratio²` points
//! per bin (adaptive `ceil(roi_size / output_size)` when `sampling_ratio = 0`).
//!
//! `half_pixel` (the opset-16 default) shifts ROI coordinates by −0.5 pixel;
//! `output_half_pixel` (opset 10 behaviour) does not and forces ROIs to be at
//! least 1×1. Max mode takes the maximum of the *weighted* corner values, as
//! the ONNX reference and onnxruntime do.

use uniml_data::{bail, ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{dispatch_float, with_output, Float};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoiPool {
    Avg,
    Max,
}

#[derive(Debug, Clone)]
pub struct RoiAlign {
    pub mode: RoiPool,
    pub output_height: usize,
    pub output_width: usize,
    pub sampling_ratio: usize,
    pub spatial_scale: f32,
    /// `coordinate_transformation_mode == "half_pixel"`.
    pub half_pixel: bool,
}

/// One bilinear sample: four flat offsets into the H×W plane and their weights.
#[derive(Clone, Copy, Default)]
struct Sample<F> {
    pos: [usize; 4],
    w: [F; 4],
}

impl Op for RoiAlign {
    fn name(&self) -> &'static str {
        "RoiAlign"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let rois = inputs
            .get(1)
            .and_then(|f| f.shape.as_ref())
            .map(|s| s.0.first().cloned().unwrap_or(Dim::Unknown));
        let c = x
            .shape
            .as_ref()
            .and_then(|s| s.0.get(1).cloned())
            .unwrap_or(Dim::Unknown);
        let shape = SymbolicShape(vec![
            rois.unwrap_or(Dim::Unknown),
            c,
            Dim::Known(self.output_height),
            Dim::Known(self.output_width),
        ]);
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(shape),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = "RoiAlign";
        let x = input(inputs, 0, op)?;
        let rois = input(inputs, 1, op)?;
        let bi = input(inputs, 2, op)?;
        let xs = x.shape();
        ensure!(xs.len() == 4, "{op}: X must be [N, C, H, W], got {xs:?}");
        ensure!(
            rois.shape().len() == 2 && rois.shape()[1] == 4,
            "{op}: rois must be [num_rois, 4], got {:?}",
            rois.shape()
        );
        let num_rois = rois.shape()[0];
        ensure!(
            bi.shape() == [num_rois],
            "{op}: batch_indices must be [{num_rois}], got {:?}",
            bi.shape()
        );
        ensure!(
            rois.dtype() == x.dtype(),
            "{op}: rois dtype {} differs from X dtype {}",
            rois.dtype(),
            x.dtype()
        );
        let batch = crate::ops::util::read_i64s(bi)?;
        for &b in &batch {
            ensure!(
                b >= 0 && (b as usize) < xs[0],
                "{op}: batch index {b} is out of range for batch size {}",
                xs[0]
            );
        }
        let out_shape = [num_rois, xs[1], self.output_height, self.output_width];
        let y = dispatch_float!(x.dtype(), F => {
            let xd = F::load(x)?;
            let rd = F::load(rois)?;
            with_output::<F>(ctx, x.dtype(), &out_shape, |ctx, out| {
                self.run::<F>(ctx, &xd, xs, &rd, &batch, out)
            })?
        }, _ => bail!("{op}: X must be a float tensor, got {}", x.dtype()));
        Ok(vec![y])
    }

    crate::op_as_any!();
}

/// Samples of one bin above this are refused (they would need gigabytes).
const MAX_BIN_SAMPLES: usize = 1 << 22;

/// Per-ROI sampling geometry.
#[derive(Clone, Copy)]
struct RoiGeo<F> {
    start_h: F,
    start_w: F,
    bin_h: F,
    bin_w: F,
    grid_h: usize,
    grid_w: usize,
}

impl RoiAlign {
    fn roi_geometry<F: Float>(&self, r: &[F]) -> Result<RoiGeo<F>> {
        let scale = F::from_f64(self.spatial_scale as f64);
        let offset = if self.half_pixel {
            F::from_f64(0.5)
        } else {
            F::ZERO
        };
        let (sw, sh) = (r[0] * scale - offset, r[1] * scale - offset);
        let (ew, eh) = (r[2] * scale - offset, r[3] * scale - offset);
        let (mut rw, mut rh) = (ew - sw, eh - sh);
        if !self.half_pixel {
            // Force malformed ROIs to be 1x1.
            rw = if rw > F::ONE { rw } else { F::ONE };
            rh = if rh > F::ONE { rh } else { F::ONE };
        }
        let (ph, pw) = (self.output_height.max(1), self.output_width.max(1));
        let grid = |size: F, pooled: usize| -> usize {
            if self.sampling_ratio > 0 {
                self.sampling_ratio
            } else {
                (size / F::from_usize(pooled)).ceil().to_i64().max(0) as usize
            }
        };
        let (grid_h, grid_w) = (grid(rh, ph), grid(rw, pw));
        ensure!(
            grid_h.checked_mul(grid_w).is_some_and(|n| n <= MAX_BIN_SAMPLES),
            "RoiAlign: ROI {r:?} needs a {grid_h}x{grid_w} sampling grid per bin, more than {MAX_BIN_SAMPLES} samples"
        );
        Ok(RoiGeo {
            start_h: sh,
            start_w: sw,
            bin_h: rh / F::from_usize(ph),
            bin_w: rw / F::from_usize(pw),
            grid_h,
            grid_w,
        })
    }

    fn run<F: Float>(
        &self,
        ctx: &EvalCtx,
        x: &[F],
        xs: &[usize],
        rois: &[F],
        batch: &[i64],
        out: &mut [F],
    ) -> Result<()> {
        let (c, h, w) = (xs[1], xs[2], xs[3]);
        let (ph, pw) = (self.output_height, self.output_width);
        let plane = ph * pw;
        if plane == 0 || c == 0 || out.is_empty() {
            return Ok(());
        }
        let geos = rois
            .chunks_exact(4)
            .map(|r| self.roi_geometry(r))
            .collect::<Result<Vec<_>>>()?;
        let (hf, wf) = (F::from_usize(h), F::from_usize(w));
        let half = F::from_f64(0.5);
        // One task per ROI; each bin's samples are computed once and shared by all channels.
        par_chunks_mut(ctx.par, out, c * plane, &|n, yb| {
            let g = geos[n];
            let (gh, gw) = (g.grid_h, g.grid_w);
            let count = F::from_usize((gh * gw).max(1));
            let mut samples = Vec::with_capacity(gh * gw);
            let b = batch[n] as usize;
            for py in 0..ph {
                for px in 0..pw {
                    samples.clear();
                    for iy in 0..gh {
                        let yy = g.start_h
                            + F::from_usize(py) * g.bin_h
                            + (F::from_usize(iy) + half) * g.bin_h / F::from_usize(gh);
                        for ix in 0..gw {
                            let xx = g.start_w
                                + F::from_usize(px) * g.bin_w
                                + (F::from_usize(ix) + half) * g.bin_w / F::from_usize(gw);
                            samples.push(bilinear_sample(yy, xx, h, w, hf, wf));
                        }
                    }
                    let bin = py * pw + px;
                    for ch in 0..c {
                        let xp = &x[(b * c + ch) * h * w..(b * c + ch + 1) * h * w];
                        yb[ch * plane + bin] = self.pool(&samples, xp, count);
                    }
                }
            }
        });
        Ok(())
    }

    #[inline]
    fn pool<F: Float>(&self, samples: &[Sample<F>], xp: &[F], count: F) -> F {
        match self.mode {
            RoiPool::Avg => {
                let mut acc = F::ZERO;
                for s in samples {
                    acc += s.w[0] * xp[s.pos[0]]
                        + s.w[1] * xp[s.pos[1]]
                        + s.w[2] * xp[s.pos[2]]
                        + s.w[3] * xp[s.pos[3]];
                }
                acc / count
            }
            RoiPool::Max => {
                let mut acc: Option<F> = None;
                for s in samples {
                    let mut v = s.w[0] * xp[s.pos[0]];
                    for k in 1..4 {
                        let t = s.w[k] * xp[s.pos[k]];
                        if t > v {
                            v = t;
                        }
                    }
                    acc = Some(match acc {
                        Some(a) if a >= v => a,
                        _ => v,
                    });
                }
                acc.unwrap_or(F::ZERO)
            }
        }
    }
}

fn bilinear_sample<F: Float>(y: F, x: F, h: usize, w: usize, hf: F, wf: F) -> Sample<F> {
    let neg1 = -F::ONE;
    if y < neg1 || y > hf || x < neg1 || x > wf || h == 0 || w == 0 {
        return Sample {
            pos: [0; 4],
            w: [F::ZERO; 4],
        };
    }
    let mut y = if y > F::ZERO { y } else { F::ZERO };
    let mut x = if x > F::ZERO { x } else { F::ZERO };
    let mut y_low = y.to_i64() as usize;
    let mut x_low = x.to_i64() as usize;
    let y_high;
    let x_high;
    if y_low >= h - 1 {
        y_low = h - 1;
        y_high = h - 1;
        y = F::from_usize(y_low);
    } else {
        y_high = y_low + 1;
    }
    if x_low >= w - 1 {
        x_low = w - 1;
        x_high = w - 1;
        x = F::from_usize(x_low);
    } else {
        x_high = x_low + 1;
    }
    let ly = y - F::from_usize(y_low);
    let lx = x - F::from_usize(x_low);
    let (hy, hx) = (F::ONE - ly, F::ONE - lx);
    Sample {
        pos: [
            y_low * w + x_low,
            y_low * w + x_high,
            y_high * w + x_low,
            y_high * w + x_high,
        ],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run, t};
    use super::*;

    fn op(mode: RoiPool, half_pixel: bool) -> RoiAlign {
        RoiAlign {
            mode,
            output_height: 2,
            output_width: 2,
            sampling_ratio: 1,
            spatial_scale: 1.0,
            half_pixel,
        }
    }

    #[test]
    fn samples_bin_centres() {
        // 4x4 ramp x[i, j] = 4i + j; ROI covering [0, 4) x [0, 4), one sample per bin.
        let x = t(
            &[1, 1, 4, 4],
            &(0..16).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let rois = t(&[1, 4], &[0.0, 0.0, 4.0, 4.0]);
        let bi = Tensor::from_slice(&[1], &[0i64]).unwrap();
        // output_half_pixel: bin centres at (1, 1), (1, 3), (3, 1), (3, 3) → 4y + x.
        let y = run(
            &op(RoiPool::Avg, false),
            &[Some(&x), Some(&rois), Some(&bi)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 2, 2]);
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[5.0, 7.0, 13.0, 15.0],
            1e-6,
        );
        // half_pixel: centres shift by -0.5.
        let y = run(&op(RoiPool::Avg, true), &[Some(&x), Some(&rois), Some(&bi)]).unwrap();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[2.5, 4.5, 10.5, 12.5],
            1e-6,
        );
        let bad = Tensor::from_slice(&[1], &[3i64]).unwrap();
        assert!(run(
            &op(RoiPool::Avg, true),
            &[Some(&x), Some(&rois), Some(&bad)]
        )
        .is_err());
    }

    #[test]
    fn max_mode_takes_weighted_corner_max() {
        let x = t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let rois = t(&[1, 4], &[0.0, 0.0, 1.0, 1.0]);
        let bi = Tensor::from_slice(&[1], &[0i64]).unwrap();
        let o = RoiAlign {
            mode: RoiPool::Max,
            output_height: 1,
            output_width: 1,
            sampling_ratio: 1,
            spatial_scale: 1.0,
            half_pixel: false,
        };
        let y = run(&o, &[Some(&x), Some(&rois), Some(&bi)]).unwrap();
        // sample at (0.5, 0.5): weights 0.25 each → max(0.25, 0.5, 0.75, 1.0).
        assert_close(y[0].as_slice::<f32>().unwrap(), &[1.0], 1e-6);
    }
}
