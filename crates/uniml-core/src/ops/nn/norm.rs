//! Normalisations over trailing or chosen axes: `InstanceNormalization`,
//! `LayerNormalization`, `GroupNormalization`, `RMSNormalization`,
//! `MeanVarianceNormalization`. Statistics are accumulated in f64.

use uniml_data::{ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{float_data, with_f32_output};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{broadcast_strides, norm_axis};
use crate::parallel::par_chunks_mut;

/// `param` (shape `ps`) broadcast (numpy rules, unidirectional) to `target`.
pub(crate) fn expand_to(
    param: &[f32],
    ps: &[usize],
    target: &[usize],
    what: &str,
) -> Result<Vec<f32>> {
    ensure!(
        ps.len() <= target.len(),
        "{what} of shape {ps:?} does not broadcast to {target:?}"
    );
    let off = target.len() - ps.len();
    for (i, &d) in ps.iter().enumerate() {
        ensure!(
            d == 1 || d == target[off + i],
            "{what} of shape {ps:?} does not broadcast to {target:?}"
        );
    }
    if ps.iter().product::<usize>() == target.iter().product::<usize>() {
        return Ok(param.to_vec());
    }
    let st = broadcast_strides(ps, target);
    let n: usize = target.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; target.len()];
    let mut off_e = 0usize;
    for _ in 0..n {
        out.push(param[off_e]);
        for d in (0..target.len()).rev() {
            idx[d] += 1;
            off_e += st[d];
            if idx[d] < target[d] {
                break;
            }
            off_e -= st[d] * target[d];
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// A per-element affine parameter of a row-normalisation: either one value
/// per column (repeated for every row) or a full-size tensor.
enum Affine {
    None,
    PerCol(Vec<f32>),
    Full(Vec<f32>),
}

impl Affine {
    fn new(t: Option<&TensorView>, shape: &[usize], axis: usize, what: &str) -> Result<Affine> {
        let Some(t) = t else { return Ok(Affine::None) };
        let d = float_data(t, what)?;
        let ps = t.shape();
        let tail = &shape[axis..];
        // Leading dims of the parameter beyond the normalised shape must be 1.
        let lead = ps.len().saturating_sub(tail.len());
        if ps[..lead].iter().all(|&x| x == 1) {
            if let Ok(v) = expand_to(&d, &ps[lead..], tail, what) {
                return Ok(Affine::PerCol(v));
            }
        }
        Ok(Affine::Full(expand_to(&d, ps, shape, what)?))
    }
    #[inline]
    fn slice(&self, row: usize, cols: usize) -> Option<&[f32]> {
        match self {
            Affine::None => None,
            Affine::PerCol(v) => Some(v),
            Affine::Full(v) => Some(&v[row * cols..(row + 1) * cols]),
        }
    }
}

/// Mean and (biased) variance of `v`: f32 sums in 16 independent lanes (they
/// vectorise; one f64 chain did not) over chunks of at most 1024 values,
/// the chunk sums added in f64, so long rows keep their precision.
#[inline(always)]
fn mean_var(v: &[f32]) -> (f64, f64) {
    #[inline(always)]
    fn sum(v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
        const LANES: usize = 16;
        let mut total = 0f64;
        for chunk in v.chunks(1024) {
            let mut acc = [0f32; LANES];
            let mut it = chunk.chunks_exact(LANES);
            for b in &mut it {
                for (a, &x) in acc.iter_mut().zip(b) {
                    *a += f(x);
                }
            }
            let tail: f32 = it.remainder().iter().map(|&x| f(x)).sum();
            total += (acc.iter().sum::<f32>() + tail) as f64;
        }
        total
    }
    let n = v.len().max(1) as f64;
    let mean = sum(v, |x| x) / n;
    let m = mean as f32;
    let var = sum(v, |x| (x - m) * (x - m)) / n;
    (mean, var)
}

fn same_fact(inputs: &[&Fact]) -> Fact {
    let x = inputs.first().copied().cloned().unwrap_or_default();
    Fact {
        dtype: x.dtype,
        shape: x.shape,
        konst: None,
        is_sequence: false,
    }
}

/// `f(row, x_row, y_row)`.
type RowFn<'a> = dyn Fn(usize, &[f32], &mut [f32]) + Sync + 'a;

/// Row-wise normalisation driver: `x` as `rows × cols`, `f(row, x_row, y_row)`.
fn per_row(
    ctx: &mut EvalCtx,
    x: &TensorView,
    rows: usize,
    cols: usize,
    f: &RowFn<'_>,
) -> Result<Tensor> {
    let xd = float_data(x, "X")?;
    with_f32_output(ctx, x.dtype(), x.shape(), |ctx, out| {
        if cols == 0 || rows == 0 {
            return Ok(());
        }
        let per = super::per_task(ctx.par, rows, cols * 4);
        par_chunks_mut(ctx.par, out, per * cols, &|t, chunk| {
            for (i, yr) in chunk.chunks_mut(cols).enumerate() {
                let r = t * per + i;
                f(r, &xd[r * cols..(r + 1) * cols], yr);
            }
        });
        Ok(())
    })
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct InstanceNorm {
    pub epsilon: f32,
}

impl Op for InstanceNorm {
    fn name(&self) -> &'static str {
        "InstanceNormalization"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![same_fact(inputs)])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "InstanceNormalization")?;
        let s = input(inputs, 1, "InstanceNormalization")?;
        let b = input(inputs, 2, "InstanceNormalization")?;
        let xs = x.shape();
        ensure!(
            xs.len() >= 2,
            "InstanceNormalization input must have rank >= 2, got {xs:?}"
        );
        let c = xs[1];
        ensure!(
            s.len() == c && b.len() == c,
            "InstanceNormalization scale/B must have {c} values, got {} and {}",
            s.len(),
            b.len()
        );
        let (sd, bd) = (float_data(s, "scale")?, float_data(b, "B")?);
        let rows = xs[0] * c;
        let cols: usize = xs[2..].iter().product();
        let eps = self.epsilon as f64;
        let y = per_row(ctx, x, rows, cols, &|r, xr, yr| {
            let (mean, var) = mean_var(xr);
            let ch = r % c;
            let a = sd[ch] as f64 / (var + eps).sqrt();
            let (a, m, bb) = (a as f32, mean as f32, bd[ch]);
            for (y, &v) in yr.iter_mut().zip(xr) {
                *y = (v - m) * a + bb;
            }
        })?;
        Ok(vec![y])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub axis: i64,
    pub epsilon: f32,
}

impl Op for LayerNorm {
    fn name(&self) -> &'static str {
        "LayerNormalization"
    }
    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let x = same_fact(inputs);
        let mut out = vec![x.clone()];
        let stat_shape = match &x.shape {
            Some(s) => {
                let a = norm_axis(self.axis, s.rank())?;
                let mut d = s.0.clone();
                d[a..].iter_mut().for_each(|v| *v = Dim::Known(1));
                Some(SymbolicShape(d))
            }
            None => None,
        };
        for _ in 1..n.min(3) {
            out.push(Fact {
                dtype: x.dtype,
                shape: stat_shape.clone(),
                konst: None,
                is_sequence: false,
            });
        }
        Ok(out)
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "LayerNormalization")?;
        let xs = x.shape().to_vec();
        ensure!(
            !xs.is_empty(),
            "LayerNormalization input must have rank >= 1"
        );
        let axis = norm_axis(self.axis, xs.len())?;
        let rows: usize = xs[..axis].iter().product();
        let cols: usize = xs[axis..].iter().product();
        let scale = Affine::new(
            Some(input(inputs, 1, "LayerNormalization")?),
            &xs,
            axis,
            "Scale",
        )?;
        let bias = Affine::new(inputs.get(2).and_then(|b| b.as_ref()), &xs, axis, "B")?;
        let eps = self.epsilon as f64;
        let stats = std::sync::Mutex::new(vec![(0f32, 0f32); rows]);
        let y = per_row(ctx, x, rows, cols, &|r, xr, yr| {
            crate::ops::wide::wide(
                #[inline(always)]
                || {
                    let (mean, var) = mean_var(xr);
                    let inv = 1.0 / (var + eps).sqrt();
                    let (m, inv) = (mean as f32, inv as f32);
                    let (s, b) = (scale.slice(r, cols), bias.slice(r, cols));
                    match (s, b) {
                        (Some(s), Some(b)) => {
                            for ((y, &v), (&s, &b)) in yr.iter_mut().zip(xr).zip(s.iter().zip(b)) {
                                *y = (v - m) * inv * s + b;
                            }
                        }
                        (Some(s), None) => {
                            for ((y, &v), &s) in yr.iter_mut().zip(xr).zip(s) {
                                *y = (v - m) * inv * s;
                            }
                        }
                        _ => {
                            for (y, &v) in yr.iter_mut().zip(xr) {
                                *y = (v - m) * inv;
                            }
                        }
                    }
                    if let Ok(mut st) = stats.lock() {
                        st[r] = (m, inv);
                    }
                },
            )
        })?;
        let st = stats.into_inner().unwrap_or_default();
        let mut ss = xs.clone();
        ss[axis..].iter_mut().for_each(|d| *d = 1);
        let mean: Vec<f32> = st.iter().map(|p| p.0).collect();
        let inv: Vec<f32> = st.iter().map(|p| p.1).collect();
        let mk = |ctx: &mut EvalCtx, v: &[f32]| {
            with_f32_output(ctx, x.dtype(), &ss, |_, o| {
                o.copy_from_slice(v);
                Ok(())
            })
        };
        let m = mk(ctx, &mean)?;
        let i = mk(ctx, &inv)?;
        Ok(vec![y, m, i])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct GroupNorm {
    pub num_groups: usize,
    pub epsilon: f32,
    /// Opset 18: scale and bias hold one value per group (else per channel).
    pub per_group_params: bool,
}

impl Op for GroupNorm {
    fn name(&self) -> &'static str {
        "GroupNormalization"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![same_fact(inputs)])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "GroupNormalization")?;
        let s = input(inputs, 1, "GroupNormalization")?;
        let b = input(inputs, 2, "GroupNormalization")?;
        let xs = x.shape();
        ensure!(
            xs.len() >= 2,
            "GroupNormalization input must have rank >= 2, got {xs:?}"
        );
        let (c, g) = (xs[1], self.num_groups);
        ensure!(
            g > 0 && c % g == 0,
            "GroupNormalization: {c} channels are not divisible into {g} groups"
        );
        let want = if self.per_group_params { g } else { c };
        ensure!(
            s.len() == want && b.len() == want,
            "GroupNormalization scale/bias must have {want} values, got {} and {}",
            s.len(),
            b.len()
        );
        let (sd, bd) = (float_data(s, "scale")?, float_data(b, "bias")?);
        let cpg = c / g;
        let plane: usize = xs[2..].iter().product();
        let rows = xs[0] * g;
        let cols = cpg * plane;
        let eps = self.epsilon as f64;
        let per_group = self.per_group_params;
        let y = per_row(ctx, x, rows, cols, &|r, xr, yr| {
            let (mean, var) = mean_var(xr);
            let inv = (1.0 / (var + eps).sqrt()) as f32;
            let m = mean as f32;
            let gi = r % g;
            for (ci, (yc, xc)) in yr
                .chunks_mut(plane.max(1))
                .zip(xr.chunks(plane.max(1)))
                .enumerate()
            {
                let p = if per_group { gi } else { gi * cpg + ci };
                let (sc, bb) = (sd[p], bd[p]);
                for (y, &v) in yc.iter_mut().zip(xc) {
                    *y = (v - m) * inv * sc + bb;
                }
            }
        })?;
        Ok(vec![y])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub axis: i64,
    pub epsilon: f32,
}

impl Op for RmsNorm {
    fn name(&self) -> &'static str {
        "RMSNormalization"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![same_fact(inputs)])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "RMSNormalization")?;
        let xs = x.shape().to_vec();
        ensure!(!xs.is_empty(), "RMSNormalization input must have rank >= 1");
        let axis = norm_axis(self.axis, xs.len())?;
        let rows: usize = xs[..axis].iter().product();
        let cols: usize = xs[axis..].iter().product();
        let scale = Affine::new(
            Some(input(inputs, 1, "RMSNormalization")?),
            &xs,
            axis,
            "scale",
        )?;
        let eps = self.epsilon as f64;
        let y = per_row(ctx, x, rows, cols, &|r, xr, yr| {
            let ms = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / cols.max(1) as f64;
            let inv = (1.0 / (ms + eps).sqrt()) as f32;
            match scale.slice(r, cols) {
                Some(s) => yr
                    .iter_mut()
                    .zip(xr)
                    .zip(s)
                    .for_each(|((y, &v), &s)| *y = v * inv * s),
                None => yr.iter_mut().zip(xr).for_each(|(y, &v)| *y = v * inv),
            }
        })?;
        Ok(vec![y])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct MeanVarianceNorm {
    /// Axes to normalise over (may be negative).
    pub axes: Vec<i64>,
}

impl Op for MeanVarianceNorm {
    fn name(&self) -> &'static str {
        "MeanVarianceNormalization"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![same_fact(inputs)])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "MeanVarianceNormalization")?;
        let xs = x.shape().to_vec();
        let mut reduce = vec![false; xs.len()];
        for &a in &self.axes {
            reduce[norm_axis(a, xs.len())?] = true;
        }
        // Group index of each element: its position over the kept dims.
        let kept: Vec<usize> = xs
            .iter()
            .zip(&reduce)
            .map(|(&d, &r)| if r { 1 } else { d })
            .collect();
        let groups: usize = kept.iter().product();
        let gst = broadcast_strides(&kept, &xs);
        let n: usize = xs.iter().product();
        let xd = float_data(x, "X")?;
        let mut gid = Vec::with_capacity(n);
        let mut idx = vec![0usize; xs.len()];
        let mut off = 0usize;
        for _ in 0..n {
            gid.push(off);
            for d in (0..xs.len()).rev() {
                idx[d] += 1;
                off += gst[d];
                if idx[d] < xs[d] {
                    break;
                }
                off -= gst[d] * xs[d];
                idx[d] = 0;
            }
        }
        let mut sum = vec![0f64; groups];
        let mut sq = vec![0f64; groups];
        let mut cnt = vec![0usize; groups];
        for (&g, &v) in gid.iter().zip(xd.iter()) {
            sum[g] += v as f64;
            sq[g] += v as f64 * v as f64;
            cnt[g] += 1;
        }
        let stats: Vec<(f32, f32)> = (0..groups)
            .map(|g| {
                let c = cnt[g].max(1) as f64;
                let mean = sum[g] / c;
                let var = (sq[g] / c - mean * mean).max(0.0);
                (mean as f32, (var.sqrt() + 1e-9) as f32)
            })
            .collect();
        let y = with_f32_output(ctx, x.dtype(), &xs, |_, out| {
            for ((o, &v), &g) in out.iter_mut().zip(xd.iter()).zip(&gid) {
                *o = (v - stats[g].0) / stats[g].1;
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
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn layer_norm_with_stats() {
        let x = t(&[2, 3], &[1., 2., 3., 2., 4., 6.]);
        let s = t(&[3], &[1., 2., 1.]);
        let b = t(&[3], &[0., 0., 1.]);
        let y = run(
            &LayerNorm {
                axis: -1,
                epsilon: 0.0,
            },
            &[Some(&x), Some(&s), Some(&b)],
        )
        .unwrap();
        let k = (1.5f32).sqrt();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[-k, 0., 1. + k, -k, 0., 1. + k],
            1e-5,
        );
        assert_eq!(y[1].shape(), &[2, 1]);
        assert_close(y[1].as_slice::<f32>().unwrap(), &[2., 4.], 1e-6);
        assert_close(
            y[2].as_slice::<f32>().unwrap(),
            &[(1.5f32).sqrt(), (1.5f32 / 4.0).sqrt()],
            1e-5,
        );
        assert!(run(
            &LayerNorm {
                axis: 2,
                epsilon: 0.0
            },
            &[Some(&x), Some(&s), None]
        )
        .is_err());
    }

    #[test]
    fn instance_group_rms_mvn() {
        let x = t(&[1, 2, 2], &[1., 3., 5., 9.]);
        let one = t(&[2], &[1., 1.]);
        let zero = t(&[2], &[0., 0.]);
        let y = run(
            &InstanceNorm { epsilon: 0.0 },
            &[Some(&x), Some(&one), Some(&zero)],
        )
        .unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[-1., 1., -1., 1.], 1e-6);
        let y = run(
            &GroupNorm {
                num_groups: 2,
                epsilon: 0.0,
                per_group_params: false,
            },
            &[Some(&x), Some(&one), Some(&zero)],
        )
        .unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[-1., 1., -1., 1.], 1e-6);
        let g1 = t(&[1], &[2.]);
        let b1 = t(&[1], &[1.]);
        let y = run(
            &GroupNorm {
                num_groups: 1,
                epsilon: 0.0,
                per_group_params: true,
            },
            &[Some(&x), Some(&g1), Some(&b1)],
        )
        .unwrap();
        let (m, sd) = (
            4.5f32,
            (((3.5f32 * 3.5) + 1.5 * 1.5 + 0.5 * 0.5 + 4.5 * 4.5) / 4.0).sqrt(),
        );
        let want: Vec<f32> = [1f32, 3., 5., 9.]
            .iter()
            .map(|v| (v - m) / sd * 2.0 + 1.0)
            .collect();
        assert_close(y[0].as_slice::<f32>().unwrap(), &want, 1e-5);
        let y = run(
            &RmsNorm {
                axis: -1,
                epsilon: 0.0,
            },
            &[Some(&t(&[2], &[3., 4.])), Some(&t(&[1], &[1.]))],
        )
        .unwrap();
        let r = (12.5f32).sqrt();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[3. / r, 4. / r], 1e-6);
        let y = run(&MeanVarianceNorm { axes: vec![0, 2] }, &[Some(&x)]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[-1., 1., -1., 1.], 1e-6);
    }
}
