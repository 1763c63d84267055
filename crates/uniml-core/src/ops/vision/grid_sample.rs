//! `GridSample` (opsets 16, 20, 22): samples `X [N, C, D1..Dr]` at the
//! normalised coordinates of `grid [N, O1..Or, r]` (last axis in reversed
//! order: x = innermost dim first), giving `Y [N, C, O1..Or]`.
//!
//! Opset 16 is 2-D only with modes `bilinear`/`nearest`/`bicubic`; opset 20+
//! is N-D with `linear`/`nearest`/`cubic` (the builder maps both spellings to
//! [`GridMode`]). Follows the ONNX reference exactly: coordinates are
//! de-normalised (`align_corners`), rounded half-to-even for `nearest`, moved
//! inside the image for `border`/`reflection`, and interpolated separably
//! (tensor product of 1-D weights) with per-tap padding (`zeros`: outside taps
//! read 0, `border`: clamped, `reflection`: mirrored). Cubic uses Keys' kernel
//! with `a = −0.75`.

use uniml_data::{bail, ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{dispatch_float, with_output, Float};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridMode {
    Linear,
    Nearest,
    Cubic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridPadding {
    Zeros,
    Border,
    Reflection,
}

#[derive(Debug, Clone)]
pub struct GridSample {
    pub mode: GridMode,
    pub padding: GridPadding,
    pub align_corners: bool,
}

impl Op for GridSample {
    fn name(&self) -> &'static str {
        "GridSample"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let grid = inputs.get(1).and_then(|f| f.shape.as_ref());
        let shape = match (x.shape.as_ref(), grid) {
            (Some(xs), Some(gs)) => {
                ensure!(
                    xs.rank() >= 3 && gs.rank() == xs.rank(),
                    "GridSample: X [N, C, D1..Dr] and grid [N, O1..Or, r] must have the same rank >= 3, got {} and {}",
                    xs.rank(),
                    gs.rank()
                );
                let mut d = vec![xs.0[0].clone(), xs.0[1].clone()];
                d.extend(gs.0[1..gs.rank() - 1].iter().cloned());
                Some(SymbolicShape(d))
            }
            (Some(xs), None) => Some(SymbolicShape(vec![Dim::Unknown; xs.rank()])),
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
        let op = "GridSample";
        let x = input(inputs, 0, op)?;
        let grid = input(inputs, 1, op)?;
        let (xs, gs) = (x.shape(), grid.shape());
        ensure!(xs.len() >= 3, "{op}: X must be [N, C, D1, ...], got {xs:?}");
        let r = xs.len() - 2;
        ensure!(
            gs.len() == r + 2 && gs[0] == xs[0] && gs[r + 1] == r,
            "{op}: grid must be [{}, O1..O{r}, {r}] for X of shape {xs:?}, got {gs:?}",
            xs[0]
        );
        ensure!(
            grid.dtype().is_float(),
            "{op}: grid must be a float tensor, got {}",
            grid.dtype()
        );
        let mut out_shape = vec![xs[0], xs[1]];
        out_shape.extend_from_slice(&gs[1..r + 1]);
        let y = dispatch_float!(x.dtype(), F => {
            let xd = F::load(x)?;
            let gd = F::load(grid)?;
            with_output::<F>(ctx, x.dtype(), &out_shape, |ctx, out| {
                self.run::<F>(ctx, &xd, xs, &gd, out);
                Ok(())
            })?
        }, _ => bail!("{op}: X must be a float tensor, got {}", x.dtype()));
        Ok(vec![y])
    }

    crate::op_as_any!();
}

/// Up to four taps of one dimension: index into the dim (None = zero padding) and weight.
#[derive(Clone, Copy)]
struct Taps<F> {
    n: usize,
    idx: [Option<usize>; 4],
    w: [F; 4],
}

impl GridSample {
    fn denormalize<F: Float>(&self, v: F, len: usize) -> F {
        let two = F::from_f64(2.0);
        if self.align_corners {
            (v + F::ONE) / two * F::from_usize(len.saturating_sub(1))
        } else {
            ((v + F::ONE) * F::from_usize(len) - F::ONE) / two
        }
    }

    /// `[min, max]` of valid coordinates along a dim of length `len`.
    fn borders<F: Float>(&self, len: usize) -> (F, F) {
        if self.align_corners {
            (F::ZERO, F::from_usize(len) - F::ONE)
        } else {
            (-F::from_f64(0.5), F::from_usize(len) - F::from_f64(0.5))
        }
    }

    /// The dim index read for integer tap position `i` under the padding mode.
    fn tap_index<F: Float>(&self, i: i64, len: usize, lo: F, hi: F) -> Option<usize> {
        let last = len as i64 - 1;
        match self.padding {
            GridPadding::Zeros => (i >= 0 && i <= last).then_some(i as usize),
            GridPadding::Border => Some(i.clamp(0, last.max(0)) as usize),
            GridPadding::Reflection => {
                let v = reflect(F::from_f64(i as f64), lo, hi).to_i64();
                Some(v.clamp(0, last.max(0)) as usize)
            }
        }
    }

    fn taps<F: Float>(&self, g: F, len: usize) -> Taps<F> {
        let (lo, hi) = self.borders::<F>(len);
        let mut x = self.denormalize(g, len);
        if self.mode == GridMode::Nearest {
            x = x.rint();
        }
        if x < lo || x > hi {
            match self.padding {
                GridPadding::Border => {
                    let top = F::from_usize(len.saturating_sub(1));
                    x = if x < F::ZERO {
                        F::ZERO
                    } else if x > top {
                        top
                    } else {
                        x
                    };
                }
                GridPadding::Reflection => x = reflect(x, lo, hi),
                GridPadding::Zeros => {}
            }
        }
        let mut t = Taps {
            n: 0,
            idx: [None; 4],
            w: [F::ZERO; 4],
        };
        match self.mode {
            GridMode::Nearest => {
                t.n = 1;
                t.idx[0] = self.tap_index(x.to_i64(), len, lo, hi);
                t.w[0] = F::ONE;
            }
            GridMode::Linear => {
                let x0 = x.floor();
                let f = x - x0;
                let i0 = x0.to_i64();
                t.n = 2;
                t.idx = [
                    self.tap_index(i0, len, lo, hi),
                    self.tap_index(i0.saturating_add(1), len, lo, hi),
                    None,
                    None,
                ];
                t.w[0] = F::ONE - f;
                t.w[1] = f;
            }
            GridMode::Cubic => {
                let x0 = x.floor();
                let i0 = x0.to_i64();
                t.n = 4;
                t.w = cubic_coeffs(x - x0);
                for k in 0..4 {
                    t.idx[k] = self.tap_index(i0.saturating_add(k as i64 - 1), len, lo, hi);
                }
            }
        }
        t
    }

    fn run<F: Float>(&self, ctx: &EvalCtx, x: &[F], xs: &[usize], grid: &[F], out: &mut [F]) {
        let r = xs.len() - 2;
        let c = xs[1];
        let dims = &xs[2..];
        let in_plane: usize = dims.iter().product();
        let out_plane = if c == 0 {
            0
        } else {
            out.len() / (xs[0] * c).max(1)
        };
        if out_plane == 0 {
            return;
        }
        let in_strides = crate::ops::util::strides(dims);
        par_chunks_mut(ctx.par, out, out_plane, &|plane, yp| {
            let (n, ch) = (plane / c, plane % c);
            let xp = &x[(n * c + ch) * in_plane..(n * c + ch + 1) * in_plane];
            let gp = &grid[n * out_plane * r..(n + 1) * out_plane * r];
            let mut taps: Vec<Taps<F>> = Vec::with_capacity(r);
            let mut odo = vec![0usize; r];
            for (p, y) in yp.iter_mut().enumerate() {
                let g = &gp[p * r..(p + 1) * r];
                taps.clear();
                // grid holds (x, y, z, ...): innermost dim first.
                for d in 0..r {
                    taps.push(self.taps(g[r - 1 - d], dims[d]));
                }
                // Tensor product of the per-dim taps.
                odo.iter_mut().for_each(|o| *o = 0);
                let mut acc = F::ZERO;
                'outer: loop {
                    let mut w = F::ONE;
                    let mut off = 0usize;
                    let mut zero = false;
                    for d in 0..r {
                        let t = &taps[d];
                        w = w * t.w[odo[d]];
                        match t.idx[odo[d]] {
                            Some(i) => off += i * in_strides[d],
                            None => zero = true,
                        }
                    }
                    if !zero {
                        acc += w * xp[off];
                    }
                    for d in (0..r).rev() {
                        odo[d] += 1;
                        if odo[d] < taps[d].n {
                            continue 'outer;
                        }
                        odo[d] = 0;
                    }
                    break;
                }
                *y = acc;
            }
        });
    }
}

/// Reflects `x` into `[lo, hi]` by mirroring at the nearer border repeatedly.
fn reflect<F: Float>(x: F, lo: F, hi: F) -> F {
    let range = hi - lo;
    if range.partial_cmp(&F::ZERO) != Some(std::cmp::Ordering::Greater) {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / range).floor();
        let rem = dx - n * range;
        if n.to_i64() % 2 == 0 {
            lo + rem
        } else {
            hi - rem
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / range).floor();
        let rem = dx - n * range;
        if n.to_i64() % 2 == 0 {
            hi - rem
        } else {
            lo + rem
        }
    } else {
        x
    }
}

/// Keys cubic convolution weights (a = −0.75) for taps at −1, 0, 1, 2 around
/// the fractional offset `t` in [0, 1).
fn cubic_coeffs<F: Float>(t: F) -> [F; 4] {
    let a = F::from_f64(-0.75);
    let (one, two, three, four, five, eight) = (
        F::ONE,
        F::from_f64(2.0),
        F::from_f64(3.0),
        F::from_f64(4.0),
        F::from_f64(5.0),
        F::from_f64(8.0),
    );
    let x = t.abs();
    let far = |d: F| ((a * d - five * a) * d + eight * a) * d - four * a;
    let near = |d: F| ((a + two) * d - (a + three)) * d * d + one;
    [far(x + one), near(x), near(one - x), far(two - x)]
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run, t};
    use super::*;

    fn gs(mode: GridMode, padding: GridPadding, align_corners: bool) -> GridSample {
        GridSample {
            mode,
            padding,
            align_corners,
        }
    }

    #[test]
    fn onnx_examples_2d() {
        // From the ONNX operator tests (X = arange(6) as [1, 1, 3, 2]).
        let x = t(&[1, 1, 3, 2], &[0., 1., 2., 3., 4., 5.]);
        let grid = t(
            &[1, 2, 4, 2],
            &[
                -1.0, -1.0, -0.5, -0.5, -0.2, -0.2, 0.0, 0.0, 0.0, 0.0, -0.2, -0.2, 0.5, 0.5, 1.0,
                1.0,
            ],
        );
        let y = run(
            &gs(GridMode::Linear, GridPadding::Zeros, false),
            &[Some(&x), Some(&grid)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 2, 4]);
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[0.0, 0.5, 1.7, 2.5, 2.5, 1.7, 4.5, 1.25],
            1e-5,
        );
        let y = run(
            &gs(GridMode::Nearest, GridPadding::Zeros, false),
            &[Some(&x), Some(&grid)],
        )
        .unwrap();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[0., 0., 2., 2., 2., 2., 5., 0.],
            1e-6,
        );
        let y = run(
            &gs(GridMode::Cubic, GridPadding::Zeros, false),
            &[Some(&x), Some(&grid)],
        )
        .unwrap();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[
                -0.1406, 0.3828, 1.7556, 2.9688, 2.9688, 1.7556, 5.1445, 1.3906,
            ],
            1e-4,
        );
        let far = t(
            &[1, 2, 4, 2],
            &[
                -10., -10., -5., -5., -0.2, -0.2, 10., 10., 10., 10., -0.2, -0.2, 5., 5., 10., 10.,
            ],
        );
        let y = run(
            &gs(GridMode::Linear, GridPadding::Border, false),
            &[Some(&x), Some(&far)],
        )
        .unwrap();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[0., 0., 1.7, 5., 5., 1.7, 5., 5.],
            1e-5,
        );
        let y = run(
            &gs(GridMode::Linear, GridPadding::Reflection, false),
            &[Some(&x), Some(&far)],
        )
        .unwrap();
        assert_close(
            y[0].as_slice::<f32>().unwrap(),
            &[2.5, 0., 1.7, 2.5, 2.5, 1.7, 5., 2.5],
            1e-5,
        );
    }

    #[test]
    fn align_corners_volumetric_and_errors() {
        let x = t(&[1, 1, 2, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        // Corners and the centre, align_corners = 1.
        let grid = t(&[1, 1, 1, 3, 3], &[-1., -1., -1., 1., 1., 1., 0., 0., 0.]);
        let y = run(
            &gs(GridMode::Linear, GridPadding::Zeros, true),
            &[Some(&x), Some(&grid)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 1, 1, 3]);
        assert_close(y[0].as_slice::<f32>().unwrap(), &[1., 8., 4.5], 1e-6);
        let bad = t(&[1, 1, 1, 3, 2], &[0.; 6]);
        assert!(run(
            &gs(GridMode::Linear, GridPadding::Zeros, true),
            &[Some(&x), Some(&bad)]
        )
        .is_err());
    }
}
