//! `Resize` (opsets 10–19) and `Upsample` (7, 9): nearest / (bi,tri)linear /
//! cubic resampling with every coordinate transformation mode, scales or
//! sizes, `axes`, `keep_aspect_ratio_policy` and antialiasing.
//!
//! The builder maps each opset's input layout onto the optional input slots
//! below (`roi_input`, `scales_input`, `sizes_input`) or constant `scales`.
//! Tap tables follow the ONNX reference exactly; the resampling runs in f32,
//! one axis at a time.

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::resize_kernels::{apply_axis, axis_table, CoordMode, Interp};
use super::{f32_data, with_f32_output};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{norm_axis, read_i64s};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AspectPolicy {
    #[default]
    Stretch,
    NotLarger,
    NotSmaller,
}

#[derive(Debug, Clone)]
pub struct Resize {
    pub interp: Interp,
    pub keep_aspect: AspectPolicy,
    /// Axes the scales/sizes/roi refer to (all axes when None).
    pub axes: Option<Vec<i64>>,
    pub roi_input: Option<usize>,
    pub scales_input: Option<usize>,
    pub sizes_input: Option<usize>,
    /// Scales fixed by an attribute (Upsample-7).
    pub const_scales: Option<Vec<f32>>,
    /// Reported name ("Resize" or "Upsample").
    pub op_name: &'static str,
}

/// Scales, sizes and roi as read from the node's inputs (each optional).
type Params = (Option<Vec<f32>>, Option<Vec<i64>>, Option<Vec<f32>>);

/// Per-axis plan: output size, scale and roi.
struct Plan {
    out: Vec<usize>,
    scales: Vec<f64>,
    roi: Vec<(f64, f64)>,
}

impl Resize {
    fn axes(&self, rank: usize) -> Result<Vec<usize>> {
        match &self.axes {
            None => Ok((0..rank).collect()),
            Some(a) => {
                let v: Vec<usize> = a
                    .iter()
                    .map(|&x| norm_axis(x, rank))
                    .collect::<Result<_>>()?;
                let mut s = v.clone();
                s.sort_unstable();
                s.dedup();
                ensure!(
                    s.len() == v.len(),
                    "{} axes {a:?} repeat an axis",
                    self.op_name
                );
                Ok(v)
            }
        }
    }

    fn plan(
        &self,
        xs: &[usize],
        scales: Option<&[f32]>,
        sizes: Option<&[i64]>,
        roi: Option<&[f32]>,
    ) -> Result<Plan> {
        let r = xs.len();
        let axes = self.axes(r)?;
        let na = axes.len();
        let mut out = xs.to_vec();
        let mut sc = vec![1f64; r];
        let mut ro = vec![(0f64, 1f64); r];
        if let Some(roi) = roi.filter(|v| !v.is_empty()) {
            ensure!(
                roi.len() == 2 * na,
                "{} roi has {} values, expected {}",
                self.op_name,
                roi.len(),
                2 * na
            );
            for (i, &a) in axes.iter().enumerate() {
                ro[a] = (roi[i] as f64, roi[na + i] as f64);
            }
        }
        match (
            sizes.filter(|s| !s.is_empty()),
            scales.filter(|s| !s.is_empty()),
        ) {
            (Some(sz), _) => {
                ensure!(
                    sz.len() == na,
                    "{} sizes has {} values, expected {na}",
                    self.op_name,
                    sz.len()
                );
                for (i, &a) in axes.iter().enumerate() {
                    ensure!(
                        sz[i] >= 0,
                        "{} sizes must be non-negative, got {sz:?}",
                        self.op_name
                    );
                    out[a] = sz[i] as usize;
                    ensure!(
                        xs[a] > 0 || out[a] == 0,
                        "{} cannot resize an empty axis {a} to {}",
                        self.op_name,
                        out[a]
                    );
                    sc[a] = if xs[a] == 0 {
                        1.0
                    } else {
                        out[a] as f64 / xs[a] as f64
                    };
                }
                if self.keep_aspect != AspectPolicy::Stretch {
                    let it = axes.iter().map(|&a| sc[a]);
                    let s = if self.keep_aspect == AspectPolicy::NotLarger {
                        it.fold(f64::INFINITY, f64::min)
                    } else {
                        it.fold(f64::NEG_INFINITY, f64::max)
                    };
                    for &a in &axes {
                        sc[a] = s;
                        out[a] = (s * xs[a] as f64 + 0.5) as usize;
                    }
                }
            }
            (None, Some(s)) => {
                ensure!(
                    s.len() == na,
                    "{} scales has {} values, expected {na}",
                    self.op_name,
                    s.len()
                );
                for (i, &a) in axes.iter().enumerate() {
                    ensure!(
                        s[i] > 0.0 && s[i].is_finite(),
                        "{} scales must be positive, got {s:?}",
                        self.op_name
                    );
                    sc[a] = s[i] as f64;
                    out[a] = (s[i] as f64 * xs[a] as f64) as usize;
                }
            }
            (None, None) => bail!("{} needs either scales or sizes", self.op_name),
        }
        Ok(Plan {
            out,
            scales: sc,
            roi: ro,
        })
    }

    fn const_inputs(&self, inputs: &[&Fact]) -> Result<Option<Params>> {
        let get = |i: Option<usize>| -> Result<Option<Option<Tensor>>> {
            match i {
                None => Ok(Some(None)),
                Some(i) => match inputs.get(i) {
                    None => Ok(Some(None)),
                    Some(f) => match &f.konst {
                        Some(k) => Ok(Some(Some((**k).clone()))),
                        None if f.dtype.is_none() && f.shape.is_none() => Ok(Some(None)),
                        None => Ok(None),
                    },
                },
            }
        };
        let (Some(s), Some(z), Some(r)) = (
            get(self.scales_input)?,
            get(self.sizes_input)?,
            get(self.roi_input)?,
        ) else {
            return Ok(None);
        };
        let scales = match (&self.const_scales, s) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(t)) => Some(f32_data(&t.view())?.into_owned()),
            _ => None,
        };
        let sizes = match z {
            Some(t) => Some(read_i64s(&t.view())?),
            None => None,
        };
        let roi = match r {
            Some(t) => Some(f32_data(&t.view())?.into_owned()),
            None => None,
        };
        Ok(Some((scales, sizes, roi)))
    }
}

impl Op for Resize {
    fn name(&self) -> &'static str {
        self.op_name
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = match &x.shape {
            Some(xs) => {
                let known = xs.concrete();
                let params = self.const_inputs(inputs)?;
                match (known, params) {
                    (Some(k), Some((s, z, r))) => {
                        match self.plan(&k, s.as_deref(), z.as_deref(), r.as_deref()) {
                            Ok(p) => Some(SymbolicShape::known(&p.out)),
                            Err(_) => Some(SymbolicShape(vec![Dim::Unknown; xs.rank()])),
                        }
                    }
                    _ => Some(SymbolicShape(vec![Dim::Unknown; xs.rank()])),
                }
            }
            None => None,
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, self.op_name)?;
        let opt = |i: Option<usize>| i.and_then(|i| inputs.get(i)).and_then(|t| t.as_ref());
        let scales = match (&self.const_scales, opt(self.scales_input)) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(t)) => Some(f32_data(t)?.into_owned()),
            _ => None,
        };
        let sizes = match opt(self.sizes_input) {
            Some(t) => Some(read_i64s(t)?),
            None => None,
        };
        let roi = match opt(self.roi_input) {
            Some(t) => Some(f32_data(t)?.into_owned()),
            None => None,
        };
        let xs = x.shape().to_vec();
        let p = self.plan(&xs, scales.as_deref(), sizes.as_deref(), roi.as_deref())?;
        if matches!(x.dtype(), DType::String | DType::Bool) {
            bail!("{} does not support {} inputs", self.op_name, x.dtype());
        }
        let xd = f32_data(x)?;
        let interp = self.interp;
        let y = with_f32_output(ctx, x.dtype(), &p.out, |ctx, out| {
            let mut cur_shape = xs.clone();
            let mut cur: Vec<f32> = Vec::new();
            let mut first = true;
            let mut axes: Vec<usize> = (0..xs.len())
                .filter(|&a| {
                    !(p.out[a] == xs[a]
                        && (p.scales[a] - 1.0).abs() < 1e-9
                        && (interp.coord != CoordMode::TfCropAndResize || p.roi[a] == (0.0, 1.0)))
                })
                .collect();
            // Separable passes commute; do the shrinking ones first and the
            // innermost axis (a gather, not a vector loop) while it is smallest.
            if interp.coord != CoordMode::TfCropAndResize {
                let last = xs.len() - 1;
                axes.sort_by_key(|&a| (p.out[a] >= xs[a], a != last, a));
            }
            if axes.is_empty() {
                out.copy_from_slice(&xd);
                return Ok(());
            }
            for (i, &a) in axes.iter().enumerate() {
                let t = axis_table(&interp, xs[a], p.out[a], p.scales[a], p.roi[a]);
                let mut next_shape = cur_shape.clone();
                next_shape[a] = p.out[a];
                let src: &[f32] = if first { &xd } else { &cur };
                if i + 1 == axes.len() {
                    apply_axis(
                        ctx.par,
                        src,
                        &cur_shape,
                        a,
                        &t,
                        interp.extrapolation_value,
                        out,
                    )?;
                } else {
                    let mut buf = vec![0f32; next_shape.iter().product()];
                    apply_axis(
                        ctx.par,
                        src,
                        &cur_shape,
                        a,
                        &t,
                        interp.extrapolation_value,
                        &mut buf,
                    )?;
                    cur = buf;
                }
                first = false;
                cur_shape = next_shape;
            }
            Ok(())
        })?;
        Ok(vec![y])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::resize_kernels::{InterpMode, NearestMode};
    use crate::ops::nn::test_util::{assert_close, run, t};

    fn op(mode: InterpMode, coord: CoordMode) -> Resize {
        Resize {
            interp: Interp {
                mode,
                coord,
                exclude_outside: false,
                antialias: false,
                extrapolation_value: 0.0,
            },
            keep_aspect: AspectPolicy::Stretch,
            axes: None,
            roi_input: Some(1),
            scales_input: Some(2),
            sizes_input: Some(3),
            const_scales: None,
            op_name: "Resize",
        }
    }

    #[test]
    fn nearest_and_linear() {
        let x = t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
        let scales = t(&[4], &[1., 1., 2., 2.]);
        let y = run(
            &op(
                InterpMode::Nearest(NearestMode::RoundPreferFloor),
                CoordMode::Asymmetric,
            ),
            &[Some(&x), None, Some(&scales), None],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 4, 4]);
        assert_eq!(
            y[0].as_slice::<f32>().unwrap(),
            &[1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]
        );
        let y = run(
            &op(InterpMode::Linear, CoordMode::HalfPixel),
            &[Some(&x), None, Some(&scales), None],
        )
        .unwrap();
        // Reference values of test_resize_upsample_scales_linear.
        let want = [
            1., 1.25, 1.75, 2., 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3., 3.25, 3.75, 4.,
        ];
        assert_close(y[0].as_slice::<f32>().unwrap(), &want, 1e-6);
        let sizes = Tensor::from_slice(&[4], &[1i64, 1, 1, 3]).unwrap();
        let y = run(
            &op(InterpMode::Linear, CoordMode::AlignCorners),
            &[Some(&x), None, None, Some(&sizes)],
        )
        .unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[1., 1.5, 2.], 1e-6);
        assert!(run(
            &op(InterpMode::Linear, CoordMode::AlignCorners),
            &[Some(&x), None, None, None]
        )
        .is_err());
    }

    #[test]
    fn cubic_matches_reference() {
        // test_resize_upsample_scales_cubic, first output row.
        let x: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let xt = t(&[1, 1, 4, 4], &x);
        let scales = t(&[4], &[1., 1., 2., 2.]);
        let y = run(
            &op(InterpMode::Cubic { a: -0.75 }, CoordMode::HalfPixel),
            &[Some(&xt), None, Some(&scales), None],
        )
        .unwrap();
        let want = [
            0.47265625f32,
            0.76953125,
            1.24609375,
            1.875,
            2.28125,
            2.91015625,
            3.38671875,
            3.68359375,
        ];
        assert_close(&y[0].as_slice::<f32>().unwrap()[..8], &want, 1e-5);
    }
}
