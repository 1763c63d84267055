//! `Conv`: N-D grouped, strided, dilated, padded convolution with optional
//! bias and a fused activation.
//!
//! f32 fast paths (2-D, 1-D mapped to 2-D): 1×1 stride-1 unpadded convs are a
//! GEMM straight on the NCHW input; depthwise convs (group == C == M) use a
//! direct kernel; everything else is im2col over column tiles + GEMM. 3-D and
//! up use a generic im2col. Constant weights are packed once, when the
//! graph is final (see the module docs of [`super`]).
//!
//! Graph passes: set [`Conv::activation`] to fuse a following activation;
//! fold a following `BatchNormalization` into the constant weights with
//! [`fold_batchnorm`].

use std::sync::Arc;

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::conv_kernels::{conv_f32, prefers_ocvec, ConvPack, ConvShape};
use super::gemm_glue::WeightCache;
use super::padding::Window;
use super::{f32_data, float_data, with_f32_output_overwritten, FusedActivation};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::Parallelism;

#[derive(Debug, Clone, Default)]
pub struct Conv {
    /// Spatial kernel dims if given on the node (checked against the weights).
    pub kernel_shape: Option<Vec<usize>>,
    pub window: Window,
    pub group: usize,
    /// Applied after the bias (and the residual).
    pub activation: FusedActivation,
    /// Input 3 is a residual `Z` of the output's shape, added before the
    /// activation: `Y = act(conv(X, W) + B + Z)` (set by
    /// `passes::fuse_conv_residual`, CPU only). `Z`'s buffer becomes `Y`'s
    /// when `Z` dies here.
    pub residual: bool,
    /// Packed constant weights (filled by `pack_constants` or [`Conv::prepack`]).
    pub packed: WeightCache<ConvPack>,
}

impl Conv {
    pub fn new(kernel_shape: Option<Vec<usize>>, window: Window, group: usize) -> Conv {
        Conv {
            kernel_shape,
            window,
            group: group.max(1),
            ..Default::default()
        }
    }

    /// Packs constant weights for the GEMM now (call again after rewriting them).
    pub fn prepack(&self, weight: &Arc<Tensor>) {
        let group = self.group.max(1);
        self.packed.ensure(weight, |w| pack_weights(w, group, false));
    }

    /// Packs constant weights for the kernel that runs an input of shape
    /// `x_shape`: the GEMM's panels, or the output-channel-vector kernel's
    /// blocks where that kernel is chosen (one layout only: weights are
    /// not held twice).
    pub fn prepack_for_input(&self, weight: &Arc<Tensor>, x_shape: &[usize]) {
        let ocvec = conv_shape(self, x_shape, weight.shape()).is_ok_and(|(s, _)| prefers_ocvec(&s));
        let group = self.group.max(1);
        self.packed.ensure(weight, |w| pack_weights(w, group, ocvec));
    }

    /// The output shape for input and weight shapes `xs`, `ws`.
    pub(crate) fn output_shape(&self, xs: &[usize], ws: &[usize]) -> Result<Vec<usize>> {
        Ok(conv_shape(self, xs, ws)?.1)
    }

    /// The convolution of `inputs` (X, W, optional B) as f32 into `out`
    /// (the output's size; every element written, or added to when
    /// `accumulate`). The bias, packed weights and activation as in `eval`.
    pub(crate) fn compute_into(
        &self,
        par: &dyn Parallelism,
        inputs: &[Option<TensorView>],
        accumulate: bool,
        out: &mut [f32],
    ) -> Result<()> {
        let x = input(inputs, 0, "Conv")?;
        let w = input(inputs, 1, "Conv")?;
        let (shape, out_shape) = conv_shape(self, x.shape(), w.shape())?;
        ensure!(
            out.len() == out_shape.iter().product::<usize>(),
            "internal: Conv output buffer of {} values for shape {out_shape:?}",
            out.len()
        );
        let xd = float_data(x, "Conv input X")?;
        let wd = float_data(w, "Conv weight W")?;
        let bd = match inputs.get(2).and_then(|b| b.as_ref()) {
            Some(b) => {
                ensure!(
                    b.len() == shape.m,
                    "Conv bias has {} values, expected {}",
                    b.len(),
                    shape.m
                );
                Some(float_data(b, "Conv bias B")?)
            }
            None => None,
        };
        let cached = if w.dtype() == DType::F32 {
            self.packed.get(w)
        } else {
            None
        };
        let pack = cached.as_ref().map(|p| &p.packed);
        conv_f32(par, &shape, &xd, &wd, pack, bd.as_deref(), self.activation, accumulate, out)
    }
}

fn pack_weights(w: &Tensor, group: usize, ocvec: bool) -> Option<ConvPack> {
    if w.dtype() != DType::F32 || w.rank() < 3 {
        return None;
    }
    let s = w.shape();
    let m = s[0];
    if group == 0 || m % group != 0 {
        return None;
    }
    // Depthwise weights are used directly.
    let k: usize = s[1..].iter().product();
    ConvPack::new(w.as_slice::<f32>().ok()?, m, k, group, ocvec && w.rank() == 4)
}

/// Folds `y = scale * conv(x) + shift` (per output channel) into conv weights
/// and bias: returns `(weight * scale[m], bias * scale + shift)` as f32 tensors.
pub fn fold_batchnorm(
    weight: &Tensor,
    bias: Option<&Tensor>,
    scale: &[f32],
    shift: &[f32],
) -> Result<(Tensor, Tensor)> {
    ensure!(weight.rank() >= 1, "conv weight must have rank >= 1");
    let m = weight.shape()[0];
    ensure!(
        scale.len() == m && shift.len() == m,
        "batchnorm has {} channels, conv has {m} outputs",
        scale.len()
    );
    let w = f32_data(&weight.view())?;
    let per = w.len().checked_div(m).unwrap_or(0);
    let mut nw = w.into_owned();
    for (co, chunk) in nw.chunks_mut(per.max(1)).enumerate().take(m) {
        chunk.iter_mut().for_each(|v| *v *= scale[co]);
    }
    let b = match bias {
        Some(b) => f32_data(&b.view())?.into_owned(),
        None => vec![0.0; m],
    };
    ensure!(
        b.len() == m,
        "conv bias has {} values, expected {m}",
        b.len()
    );
    let nb: Vec<f32> = (0..m).map(|i| b[i] * scale[i] + shift[i]).collect();
    Ok((
        Tensor::from_vec(weight.shape(), nw)?,
        Tensor::from_vec(&[m], nb)?,
    ))
}

impl Op for Conv {
    fn name(&self) -> &'static str {
        "Conv"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let w = inputs.get(1).copied().cloned().unwrap_or_default();
        let shape = match (&x.shape, &w.shape) {
            (Some(xs), Some(ws)) => {
                ensure!(
                    xs.rank() >= 3,
                    "Conv input must have rank >= 3 (N, C, spatial...), got {xs}"
                );
                ensure!(
                    ws.rank() == xs.rank(),
                    "Conv weight rank {} differs from input rank {}",
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
                    _ => dims.extend(std::iter::repeat_n(Dim::Unknown, xs.rank() - 2)),
                }
                Some(SymbolicShape(dims))
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
        let x = input(inputs, 0, "Conv")?;
        let w = input(inputs, 1, "Conv")?;
        let out_shape = conv_shape(self, x.shape(), w.shape())?.1;
        if self.residual {
            let mut y = residual_output(
                ctx,
                inputs.get(3).and_then(|z| z.as_ref()),
                x.dtype(),
                &out_shape,
            )?;
            self.compute_into(ctx.par, inputs, true, y.as_slice_mut::<f32>()?)?;
            return Ok(vec![y]);
        }
        // Every output element is written (values, or zeros where empty).
        let y = with_f32_output_overwritten(ctx, x.dtype(), &out_shape, |ctx, out| {
            self.compute_into(ctx.par, inputs, false, out)
        })?;
        Ok(vec![y])
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        if let Some(k) = inputs.get(1).and_then(|f| f.konst.as_ref()) {
            match inputs.first().and_then(|x| x.shape.as_ref()).and_then(packing_shape) {
                Some(xs) => self.prepack_for_input(k, &xs),
                None => self.prepack(k),
            }
        }
    }

    fn output_reuses_input(&self) -> Option<usize> {
        self.residual.then_some(3)
    }

    crate::op_as_any!();
}

/// The input shape the weights are packed for: the declared one, where
/// every dim but the batch is known (the kernel choice does not depend on
/// the batch).
fn packing_shape(x: &SymbolicShape) -> Option<Vec<usize>> {
    let (batch, rest) = x.0.split_first()?;
    let mut dims = vec![batch.known().unwrap_or(1)];
    for d in rest {
        dims.push(d.known()?);
    }
    Some(dims)
}

/// The output buffer of a residual Conv, holding `Z`: `Z`'s own buffer when
/// the executor donated it, else a copy.
fn residual_output(
    ctx: &mut EvalCtx,
    z: Option<&TensorView>,
    xdt: DType,
    out_shape: &[usize],
) -> Result<Tensor> {
    ensure!(
        xdt == DType::F32,
        "Conv with a fused residual needs f32 input, got {xdt}"
    );
    let check = |dt: DType, s: &[usize]| -> Result<()> {
        ensure!(
            dt == DType::F32 && s == out_shape,
            "Conv residual input is {dt} {s:?}, expected f32 {out_shape:?} (the output's shape)"
        );
        Ok(())
    };
    if let Some(z) = z {
        check(z.dtype(), z.shape())?;
        let mut y = ctx.alloc_overwritten(DType::F32, out_shape)?;
        y.as_slice_mut::<f32>()?
            .copy_from_slice(z.as_slice::<f32>()?);
        return Ok(y);
    }
    match ctx.take_donated() {
        Some(t) => {
            check(t.dtype(), t.shape())?;
            Ok(t)
        }
        None => bail!("Conv residual input (input 3) is missing"),
    }
}

/// Validates input/weight shapes and resolves the geometry.
pub(crate) fn conv_shape(op: &Conv, xs: &[usize], ws: &[usize]) -> Result<(ConvShape, Vec<usize>)> {
    ensure!(
        xs.len() >= 3,
        "Conv input must have rank >= 3 (N, C, spatial...), got shape {xs:?}"
    );
    ensure!(
        ws.len() == xs.len(),
        "Conv weight shape {ws:?} must have the input's rank {}",
        xs.len()
    );
    let group = op.group.max(1);
    let (n, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
    if c != cg * group {
        bail!(
            "Conv input has {c} channels but weight {ws:?} with group {group} expects {}",
            cg * group
        );
    }
    if m % group != 0 {
        bail!("Conv has {m} output channels, not divisible by group {group}");
    }
    let kernel = &ws[2..];
    if let Some(k) = &op.kernel_shape {
        ensure!(
            k.as_slice() == kernel,
            "kernel_shape {k:?} does not match weight shape {ws:?}"
        );
    }
    let geo = op.window.resolve(&xs[2..], kernel)?;
    let mut out = vec![n, m];
    out.extend_from_slice(&geo.output);
    Ok((
        ConvShape {
            n,
            c,
            m,
            group,
            geo,
        },
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::padding::AutoPad;
    use crate::ops::nn::test_util::{assert_close, rand_vec, run, run_with, t, FakePar};
    use crate::parallel::Serial;
    use proptest::prelude::*;

    /// Direct N-D convolution from the definition.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        xs: &[usize],
        x: &[f32],
        ws: &[usize],
        w: &[f32],
        b: Option<&[f32]>,
        group: usize,
        win: &Window,
    ) -> (Vec<usize>, Vec<f32>) {
        let geo = win.resolve(&xs[2..], &ws[2..]).unwrap();
        let (n, c, m) = (xs[0], xs[1], ws[0]);
        let (cg, mg) = (c / group, m / group);
        let nd = xs.len() - 2;
        let osz: usize = geo.output.iter().product();
        let isz: usize = xs[2..].iter().product();
        let ksz: usize = ws[2..].iter().product();
        let mut out = vec![0f32; n * m * osz];
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
                    let mut acc = b.map(|b| b[co]).unwrap_or(0.0);
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
                                if p < 0 || p >= xs[2 + d] as i64 {
                                    ok = false;
                                }
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

    #[allow(clippy::too_many_arguments)]
    fn check(
        xs: &[usize],
        ws: &[usize],
        group: usize,
        win: Window,
        bias: bool,
        seed: u64,
        prepack: bool,
    ) {
        let x = rand_vec(xs.iter().product(), seed);
        let w = rand_vec(ws.iter().product(), seed + 1);
        let b = rand_vec(ws[0], seed + 2);
        let (os, want) = naive(xs, &x, ws, &w, bias.then_some(&b[..]), group, &win);
        let op = Conv::new(None, win, group);
        let wt = Arc::new(t(ws, &w));
        if prepack {
            op.prepack(&wt);
        }
        let xt = t(xs, &x);
        let bt = t(&[ws[0]], &b);
        let got = run(&op, &[Some(&xt), Some(&wt), bias.then_some(&bt)]).unwrap();
        assert_eq!(got[0].shape(), &os[..]);
        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-4);
        let got = run_with(&FakePar, &op, &[Some(&xt), Some(&wt), bias.then_some(&bt)]).unwrap();
        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-4);
        if prepack {
            // Packed for this input's geometry (the output-channel-vector
            // kernel's layout where it is chosen), and for another geometry
            // (a layout the run may not use: the unpacked weights then).
            let other = [1, xs[1], 56, 56];
            for pack_shape in [xs, &other[..xs.len().min(4)]] {
                let op = Conv::new(None, op.window.clone(), group);
                op.prepack_for_input(&wt, pack_shape);
                for par in [&Serial as &dyn Parallelism, &FakePar] {
                    let got = run_with(par, &op, &[Some(&xt), Some(&wt), bias.then_some(&bt)]).unwrap();
                    assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-4);
                }
            }
        }
    }

    #[test]
    fn fast_paths_match_naive() {
        let pads = |p: usize| Window {
            pads: vec![p; 4],
            ..Default::default()
        };
        // 1x1 stride 1
        check(
            &[2, 8, 5, 6],
            &[12, 8, 1, 1],
            1,
            Window::default(),
            true,
            1,
            true,
        );
        check(
            &[1, 8, 5, 6],
            &[12, 4, 1, 1],
            2,
            Window::default(),
            false,
            2,
            false,
        );
        // Batch items with few output pixels share one GEMM (1-D frames,
        // silero-like; 24 output channels take the row split at 2 threads).
        let frames = Window {
            strides: vec![16],
            ..Default::default()
        };
        check(&[6, 1, 72], &[24, 1, 32], 1, frames, true, 21, true);
        let same = Window {
            pads: vec![1, 1],
            ..Default::default()
        };
        check(&[5, 20, 3], &[24, 20, 3], 1, same, true, 22, false);
        // Stride 1, more than 4 input channels, at most 96 output channels:
        // the implicit-im2col GEMM over the padded input (packed weights
        // only), in one or two row blocks, one or several column tasks (the
        // 20×20 grid is 440 columns), with dilation and uneven pads.
        check(&[1, 8, 9, 11], &[12, 8, 3, 3], 1, pads(1), true, 5, true);
        // Output channels as vector lanes (x86-64 with AVX-512): 3×3 with a
        // partial channel block, batch 2; 1×1 over a flat map; stride 2.
        check(&[2, 16, 9, 9], &[56, 16, 3, 3], 1, pads(1), true, 30, true);
        check(&[1, 160, 7, 7], &[64, 160, 1, 1], 1, Window::default(), true, 31, true);
        let s2 = Window {
            strides: vec![2, 2],
            pads: vec![1; 4],
            ..Default::default()
        };
        check(&[1, 24, 13, 14], &[32, 24, 3, 3], 1, s2, false, 32, true);
        check(&[2, 40, 20, 20], &[90, 40, 3, 3], 1, pads(1), true, 6, true);
        check(&[1, 33, 12, 12], &[40, 33, 5, 5], 1, Window::default(), false, 7, true);
        check(
            &[2, 6, 10, 7],
            &[7, 6, 3, 2],
            1,
            Window {
                dilations: vec![2, 2],
                pads: vec![2, 0, 1, 1],
                ..Default::default()
            },
            true,
            8,
            true,
        );
        // Enough columns for whole panels per thread plus a leftover that
        // the 4-thread split cuts by rows: 1×1 (B read as a view), and 3×3
        // with more than 96 output channels (im2col filled into the panels).
        check(&[1, 16, 10, 20], &[100, 16, 1, 1], 1, Window::default(), true, 9, true);
        check(&[1, 8, 15, 15], &[100, 8, 3, 3], 1, pads(1), true, 10, true);
        check(&[1, 8, 15, 15], &[100, 8, 3, 3], 1, pads(1), false, 11, false);
        // depthwise
        check(&[1, 6, 9, 7], &[6, 1, 3, 3], 6, pads(1), true, 3, true);
        check(
            &[2, 4, 9, 8],
            &[4, 1, 5, 5],
            4,
            Window {
                strides: vec![2, 2],
                pads: vec![2, 1, 2, 2],
                ..Default::default()
            },
            true,
            4,
            false,
        );
        check(
            &[1, 3, 10, 10],
            &[3, 1, 3, 3],
            3,
            Window {
                dilations: vec![2, 3],
                pads: vec![2; 4],
                ..Default::default()
            },
            false,
            5,
            true,
        );
        // general, grouped, dilated, strided, padded
        check(&[2, 3, 11, 9], &[5, 3, 3, 3], 1, pads(1), true, 6, true);
        check(
            &[1, 4, 8, 8],
            &[6, 2, 3, 2],
            2,
            Window {
                strides: vec![2, 1],
                pads: vec![1, 0, 2, 1],
                ..Default::default()
            },
            true,
            7,
            true,
        );
        check(
            &[1, 2, 9, 9],
            &[3, 2, 3, 3],
            1,
            Window {
                dilations: vec![2, 2],
                auto_pad: AutoPad::SameUpper,
                ..Default::default()
            },
            true,
            8,
            false,
        );
        check(
            &[1, 4, 7, 7],
            &[4, 1, 3, 3],
            2 * 2,
            Window {
                auto_pad: AutoPad::SameLower,
                strides: vec![2, 2],
                ..Default::default()
            },
            true,
            9,
            true,
        );
        // 1-D and 3-D
        check(
            &[2, 3, 10],
            &[4, 3, 3],
            1,
            Window {
                strides: vec![2],
                pads: vec![1, 2],
                ..Default::default()
            },
            true,
            10,
            true,
        );
        check(
            &[1, 2, 4, 5, 6],
            &[3, 2, 2, 3, 2],
            1,
            Window {
                pads: vec![1, 0, 1, 0, 1, 1],
                ..Default::default()
            },
            true,
            11,
            true,
        );
        // big enough for the parallel column and row splits
        check(
            &[1, 8, 40, 40],
            &[16, 8, 1, 1],
            1,
            Window::default(),
            true,
            13,
            true,
        );
        check(&[1, 8, 30, 30], &[16, 4, 3, 3], 2, pads(1), true, 14, true);
        check(
            &[1, 64, 5, 5],
            &[64, 64, 1, 1],
            1,
            Window::default(),
            true,
            15,
            true,
        );
        check(&[1, 32, 5, 5], &[48, 32, 3, 3], 1, pads(1), true, 16, false);
        check(
            &[1, 32, 20, 20],
            &[32, 1, 3, 3],
            32,
            pads(1),
            true,
            17,
            false,
        );
        // 1x1 strided
        check(
            &[1, 3, 7, 7],
            &[5, 3, 1, 1],
            1,
            Window {
                strides: vec![2, 2],
                ..Default::default()
            },
            true,
            12,
            true,
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_convs_match_naive(
            n in 1usize..3, cg in 1usize..4, mg in 1usize..4, group in 1usize..4,
            h in 1usize..9, w in 1usize..9, kh in 1usize..4, kw in 1usize..4,
            sh in 1usize..3, sw in 1usize..3, dh in 1usize..3, dw in 1usize..3,
            p in proptest::collection::vec(0usize..3, 4), depthwise in any::<bool>(), seed in 0u64..1000, prepack in any::<bool>(),
        ) {
            let (cg, mg) = if depthwise { (1, 1) } else { (cg, mg) };
            let win = Window { strides: vec![sh, sw], dilations: vec![dh, dw], pads: p, ..Default::default() };
            let xs = [n, cg * group, h, w];
            let ws = [mg * group, cg, kh, kw];
            prop_assume!(win.resolve(&xs[2..], &ws[2..]).is_ok());
            check(&xs, &ws, group, win, seed % 2 == 0, seed, prepack);
        }
    }

    /// Stride-2 im2col rows wider than one B panel (32 columns) and the
    /// stem kernel's two 16-column tiles, with padding cutting both ends.
    #[test]
    fn wide_stride_two_rows_match_naive() {
        for (w, pads) in [(70usize, vec![1, 1, 1, 1]), (67, vec![0, 2, 1, 0]), (40, vec![0, 0, 0, 0])] {
            for c in [3, 5] {
                let win = Window { strides: vec![2, 2], pads: pads.clone(), ..Default::default() };
                check(&[1, c, 5, w], &[4, c, 3, 3], 1, win, true, w as u64, false);
            }
        }
    }

    #[test]
    fn errors_not_panics() {
        let op = Conv::new(None, Window::default(), 1);
        let x = t(&[1, 3, 4, 4], &[0.0; 48]);
        let w = t(&[2, 2, 3, 3], &[0.0; 36]);
        assert!(run(&op, &[Some(&x), Some(&w), None]).is_err());
        let w = t(&[2, 3, 5, 5], &[0.0; 150]);
        assert!(run(&op, &[Some(&x), Some(&w), None]).is_err());
        let xi = Tensor::from_slice(&[1, 3, 1, 1], &[1i32, 2, 3]).unwrap();
        let w = t(&[1, 3, 1, 1], &[0.0; 3]);
        assert!(run(&op, &[Some(&xi), Some(&w), None]).is_err());
    }

    #[test]
    fn fold_batchnorm_scales_channels() {
        let w = t(&[2, 1, 1, 1], &[1.0, 2.0]);
        let b = t(&[2], &[0.5, -1.0]);
        let (nw, nb) = fold_batchnorm(&w, Some(&b), &[2.0, 3.0], &[1.0, 0.0]).unwrap();
        assert_eq!(nw.as_slice::<f32>().unwrap(), &[2.0, 6.0]);
        assert_eq!(nb.as_slice::<f32>().unwrap(), &[2.0, -3.0]);
    }
}
