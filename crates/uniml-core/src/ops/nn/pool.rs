//! `MaxPool` (with optional `Indices`), `AveragePool` and `LpPool` over 1 to 3
//! spatial dims (lower ranks run as 3-D with unit leading dims).

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::padding::{Geometry, Window};
use super::{f32_data, with_f32_output_overwritten};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::wide::wide;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PoolKind {
    Max,
    Average { count_include_pad: bool },
    Lp { p: f32 },
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub kind: PoolKind,
    pub kernel_shape: Vec<usize>,
    pub window: Window,
    /// MaxPool `Indices` layout: 0 row-major, 1 column-major.
    pub storage_order: i64,
    /// Whether the node wants the `Indices` output (MaxPool only).
    pub with_indices: bool,
}

impl Op for Pool {
    fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "MaxPool",
            PoolKind::Average { .. } => "AveragePool",
            PoolKind::Lp { .. } => "LpPool",
        }
    }

    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = match &x.shape {
            Some(xs) => {
                ensure!(
                    xs.rank() == self.kernel_shape.len() + 2,
                    "{} input rank {} does not match kernel_shape {:?}",
                    self.name(),
                    xs.rank(),
                    self.kernel_shape
                );
                let mut d = xs.0[..2].to_vec();
                d.extend(self.window.output_dims(&xs.0[2..], &self.kernel_shape));
                Some(SymbolicShape(d))
            }
            None => None,
        };
        let mut out = vec![Fact {
            dtype: x.dtype,
            shape: shape.clone(),
            konst: None,
            is_sequence: false,
        }];
        if n > 1 {
            out.push(Fact {
                dtype: Some(DType::I64),
                shape,
                konst: None,
                is_sequence: false,
            });
        }
        Ok(out)
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, self.name())?;
        let xs = x.shape();
        let nd = self.kernel_shape.len();
        ensure!(
            xs.len() == nd + 2,
            "{} input shape {xs:?} does not match kernel_shape {:?}",
            self.name(),
            self.kernel_shape
        );
        ensure!(
            (1..=3).contains(&nd),
            "{} supports 1 to 3 spatial dims, got {nd}",
            self.name()
        );
        match (self.kind, x.dtype()) {
            (_, d) if d.is_float() => {}
            (PoolKind::Max, DType::I8 | DType::U8) => {}
            (_, d) => bail!("{} does not support {d} inputs", self.name()),
        }
        let geo = self.window.resolve(&xs[2..], &self.kernel_shape)?;
        let mut out_shape = xs[..2].to_vec();
        out_shape.extend_from_slice(&geo.output);
        let xd = f32_data(x)?;
        let planes = xs[0] * xs[1];
        let tabs = Tabs::new(&geo);
        let kind = self.kind;
        let osz: usize = geo.output.iter().product();
        let isz: usize = geo.input.iter().product();
        let mut idx = if self.with_indices {
            Some(vec![0i64; planes * osz])
        } else {
            None
        };
        // Every output element is written (a window with no taps gives 0).
        let y = with_f32_output_overwritten(ctx, x.dtype(), &out_shape, |ctx, out| {
            if osz == 0 {
                return Ok(());
            }
            match idx.as_mut() {
                None => super::par_planes(
                    ctx.par,
                    out,
                    osz,
                    osz * self.kernel_shape.iter().product::<usize>(),
                    &|p, o| {
                        pool_plane(kind, &tabs, &xd[p * isz..(p + 1) * isz], o, None);
                    },
                ),
                Some(iv) => {
                    for (p, (o, ix)) in out.chunks_mut(osz).zip(iv.chunks_mut(osz)).enumerate() {
                        pool_plane(kind, &tabs, &xd[p * isz..(p + 1) * isz], o, Some(ix));
                        // Indices are flat over the whole input tensor.
                        let base = (p * isz) as i64;
                        ix.iter_mut().for_each(|v| *v += base);
                    }
                }
            }
            Ok(())
        })?;
        let mut res = vec![y];
        if let Some(mut iv) = idx {
            if self.storage_order == 1 {
                column_major_indices(&mut iv, &geo.input, isz);
            }
            res.push(Tensor::from_vec(&out_shape, iv)?);
        }
        Ok(res)
    }

    crate::op_as_any!();
}

/// Rewrites row-major in-plane offsets as column-major ones.
fn column_major_indices(iv: &mut [i64], input: &[usize], isz: usize) {
    for v in iv.iter_mut() {
        let base = *v / isz.max(1) as i64 * isz as i64;
        let mut r = (*v - base) as usize;
        let mut coords = vec![0usize; input.len()];
        for d in (0..input.len()).rev() {
            coords[d] = r % input[d];
            r /= input[d];
        }
        let mut off = 0usize;
        for d in (0..input.len()).rev() {
            off = off * input[d] + coords[d];
        }
        *v = base + off as i64;
    }
}

/// Per spatial dim (padded to 3 dims), per output position: the valid kernel
/// taps `[lo, hi)`, the first input position, and the tap count inside the padding.
#[derive(Debug, Clone)]
struct DimTab {
    size: usize,
    out: usize,
    dil: usize,
    /// Kernel size and stride.
    k: usize,
    stride: usize,
    lo: Vec<usize>,
    hi: Vec<usize>,
    start: Vec<i64>,
    padded_count: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Tabs([DimTab; 3]);

impl Tabs {
    fn new(g: &Geometry) -> Tabs {
        let nd = g.input.len();
        let mk = |d: Option<usize>| -> DimTab {
            let Some(d) = d else {
                return DimTab {
                    size: 1,
                    out: 1,
                    dil: 1,
                    k: 1,
                    stride: 1,
                    lo: vec![0],
                    hi: vec![1],
                    start: vec![0],
                    padded_count: vec![1],
                };
            };
            let (size, k, s, dil, pb, pe) = (
                g.input[d],
                g.kernel[d],
                g.strides[d],
                g.dilations[d],
                g.pad_begin[d] as i64,
                g.pad_end[d] as i64,
            );
            let mut t = DimTab {
                size,
                out: g.output[d],
                dil,
                k,
                stride: s,
                lo: vec![],
                hi: vec![],
                start: vec![],
                padded_count: vec![],
            };
            for o in 0..g.output[d] {
                let start = (o * s) as i64 - pb;
                let taps = |lo_pos: i64, hi_pos: i64| {
                    let (mut a, mut b) = (k, 0);
                    for kk in 0..k {
                        let p = start + (kk * dil) as i64;
                        if p >= lo_pos && p < hi_pos {
                            a = a.min(kk);
                            b = b.max(kk + 1);
                        }
                    }
                    if b < a {
                        (0, 0)
                    } else {
                        (a, b)
                    }
                };
                let (lo, hi) = taps(0, size as i64);
                let (plo, phi) = taps(-pb, size as i64 + pe);
                t.lo.push(lo);
                t.hi.push(hi);
                t.start.push(start);
                t.padded_count.push(phi - plo);
            }
            t
        };
        let off = 3 - nd;
        Tabs([0, 1, 2].map(|i| mk(if i < off { None } else { Some(i - off) })))
    }
}

fn pool_plane(kind: PoolKind, t: &Tabs, x: &[f32], out: &mut [f32], idx: Option<&mut [i64]>) {
    // 1-D/2-D max and average pools without dilation go row by row (below).
    let separable = t.0[0].out == 1 && t.0[0].size == 1 && t.0[1].dil == 1 && t.0[2].dil == 1;
    match (kind, &idx) {
        (PoolKind::Max, None) if separable => {
            return super::with_scratch(|row| wide(#[inline(always)] || pool_rows(t, x, out, row, MaxValue)))
        }
        (PoolKind::Average { count_include_pad }, _) if separable => {
            return super::with_scratch(|row| wide(#[inline(always)] || pool_rows(t, x, out, row, Mean { count_include_pad })))
        }
        _ => {}
    }
    // One monomorphised loop nest per reduction: the per-tap `match` on the
    // kind is resolved at compile time, not per element.
    match (kind, idx) {
        (PoolKind::Max, None) => pool_loops(t, x, out, None, MaxValue),
        (PoolKind::Max, Some(ix)) => pool_loops(t, x, out, Some(ix), MaxIndex),
        (PoolKind::Average { count_include_pad }, _) => pool_loops(t, x, out, None, Mean { count_include_pad }),
        (PoolKind::Lp { p }, _) => pool_loops(t, x, out, None, LpNorm { p }),
    }
}

/// A pooling reduction over the valid taps of one window.
trait Reduce: Copy {
    type Acc: Copy;
    fn init(&self) -> Self::Acc;
    fn tap(&self, acc: &mut Self::Acc, v: f32, at: usize);
    /// The window's value; `taps` valid taps, `padded` taps counting the padding.
    fn finish(&self, acc: Self::Acc, taps: usize, padded: usize) -> (f32, i64);
}

#[derive(Clone, Copy)]
struct MaxValue;
impl Reduce for MaxValue {
    /// (best, any tap seen): the first tap is taken as is (a NaN there stays).
    type Acc = (f32, bool);
    fn init(&self) -> (f32, bool) {
        (f32::NEG_INFINITY, false)
    }
    #[inline(always)]
    fn tap(&self, acc: &mut (f32, bool), v: f32, _at: usize) {
        if v > acc.0 || !acc.1 {
            *acc = (v, true);
        }
    }
    fn finish(&self, acc: (f32, bool), _taps: usize, _padded: usize) -> (f32, i64) {
        (if acc.1 { acc.0 } else { 0.0 }, 0)
    }
}

#[derive(Clone, Copy)]
struct MaxIndex;
impl Reduce for MaxIndex {
    type Acc = (f32, i64);
    fn init(&self) -> (f32, i64) {
        (f32::NEG_INFINITY, -1)
    }
    #[inline(always)]
    fn tap(&self, acc: &mut (f32, i64), v: f32, at: usize) {
        if v > acc.0 || acc.1 < 0 {
            *acc = (v, at as i64);
        }
    }
    fn finish(&self, acc: (f32, i64), _taps: usize, _padded: usize) -> (f32, i64) {
        if acc.1 < 0 {
            (0.0, 0)
        } else {
            acc
        }
    }
}

#[derive(Clone, Copy)]
struct Mean {
    count_include_pad: bool,
}
impl Reduce for Mean {
    type Acc = f32;
    fn init(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn tap(&self, acc: &mut f32, v: f32, _at: usize) {
        *acc += v;
    }
    fn finish(&self, acc: f32, taps: usize, padded: usize) -> (f32, i64) {
        let d = if self.count_include_pad { padded } else { taps };
        (if d == 0 { 0.0 } else { acc / d as f32 }, 0)
    }
}

#[derive(Clone, Copy)]
struct LpNorm {
    p: f32,
}
impl Reduce for LpNorm {
    type Acc = f32;
    fn init(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn tap(&self, acc: &mut f32, v: f32, _at: usize) {
        *acc += if self.p == 2.0 { v * v } else { v.abs().powf(self.p) };
    }
    fn finish(&self, acc: f32, _taps: usize, _padded: usize) -> (f32, i64) {
        (if self.p == 2.0 { acc.sqrt() } else { acc.powf(1.0 / self.p) }, 0)
    }
}

/// A pooling reduction done row by row (max, sum): values combine pairwise,
/// the padding is a neutral value.
trait RowReduce: Copy {
    /// Padding value that never changes a result.
    const PAD: f32;
    /// Whether [`RowReduce::finish`] changes a window with taps (averages divide).
    const NEEDS_FINISH: bool;
    fn combine(a: f32, v: f32) -> f32;
    /// `dst[j] = combine(a[j], b[j])` (vectorised by the compiler; `dst` is
    /// never an input, else `max` becomes a conditional store per lane).
    #[inline(always)]
    fn combine_rows(dst: &mut [f32], a: &[f32], b: &[f32]) {
        for ((d, &x), &v) in dst.iter_mut().zip(a).zip(b) {
            *d = Self::combine(x, v);
        }
    }
    /// The output from a window's combined value, `taps` valid taps and
    /// `padded` taps counting the padding.
    fn finish(&self, v: f32, taps: usize, padded: usize) -> f32;
}

impl RowReduce for MaxValue {
    const PAD: f32 = f32::NEG_INFINITY;
    const NEEDS_FINISH: bool = false;
    /// Same rule as `tap` (a later NaN never replaces the best value), in a
    /// form the compiler turns into packed max instructions.
    #[inline(always)]
    fn combine(a: f32, v: f32) -> f32 {
        if v > a {
            v
        } else {
            a
        }
    }
    fn finish(&self, v: f32, taps: usize, _padded: usize) -> f32 {
        if taps == 0 {
            0.0
        } else {
            v
        }
    }
}

impl RowReduce for Mean {
    const PAD: f32 = 0.0;
    const NEEDS_FINISH: bool = true;
    #[inline(always)]
    fn combine(a: f32, v: f32) -> f32 {
        a + v
    }
    fn finish(&self, v: f32, taps: usize, padded: usize) -> f32 {
        let d = if self.count_include_pad { padded } else { taps };
        if d == 0 {
            0.0
        } else {
            v / d as f32
        }
    }
}

/// A 1-D/2-D pool without dilation, in two passes per output row: the valid
/// input rows of its window combined elementwise into a padded `row`
/// (vectorised), then each output's horizontal window reduced from it with
/// no bounds or padding checks. The per-output loop nest of [`pool_loops`]
/// reads every input value `kh·kw/(sh·sw)` times through branchy scalar code.
#[inline(always)]
fn pool_rows<R: RowReduce>(t: &Tabs, x: &[f32], out: &mut [f32], row: &mut Vec<f32>, r: R) {
    let [_, b, c] = &t.0;
    if c.out == 0 {
        return;
    }
    // Window `oc` covers row[off0 + oc·stride ..][..k], padding included.
    let pad0 = (-c.start[0]).max(0) as usize;
    let off0 = (c.start[0] + pad0 as i64) as usize;
    let len = (off0 + (c.out - 1) * c.stride + c.k).max(pad0 + c.size);
    // Sliding windows at every position from the first window's start
    // (stride 1), of which every `stride`-th is an output.
    let slide = (c.out - 1) * c.stride + 1;
    // The padded row, then two rows for ping-ponging the passes.
    let spare_len = c.size.max(slide);
    let (row, rest) = super::scratch_slice(row, len + 2 * spare_len).split_at_mut(len);
    let (h0, h1) = rest.split_at_mut(spare_len);
    row[..pad0].fill(R::PAD);
    row[pad0 + c.size..].fill(R::PAD);
    let xrow = |i: usize| &x[i * c.size..(i + 1) * c.size];
    let all_taps = (0..c.out).all(|oc| c.hi[oc] > c.lo[oc]);
    for (ob, orow) in out.chunks_mut(c.out).enumerate().take(b.out) {
        let (k0, k1) = (b.lo[ob], b.hi[ob]);
        let first = (b.start[ob] + k0 as i64) as usize;
        // Vertical: the window's input rows combined into the padded row.
        let rows = k1 - k0;
        combine_into(&mut row[pad0..pad0 + c.size], &mut h0[..c.size], rows, |i| xrow(first + i), R::PAD, R::combine_rows);
        let win = &row[off0..off0 + slide + c.k - 1];
        match (c.stride, c.k) {
            // Stride 2 (the downsampling pools of CNNs): each output's window
            // directly, instead of every stride-1 window of which half are kept.
            (2, 2) => strided_windows::<R, 2, 2>(win, orow),
            (2, 3) => strided_windows::<R, 3, 2>(win, orow),
            _ => {
                // Windows of `k` taps slid over it, then every `stride`-th.
                let h = &mut h1[..slide];
                combine_into(h, &mut h0[..slide], c.k, |t| &win[t..t + slide], R::PAD, R::combine_rows);
                for (o, &v) in orow.iter_mut().zip(h.iter().step_by(c.stride)) {
                    *o = v;
                }
            }
        }
        if R::NEEDS_FINISH || !all_taps || rows == 0 {
            for (oc, o) in orow.iter_mut().enumerate() {
                let taps = rows * (c.hi[oc] - c.lo[oc]);
                *o = r.finish(*o, taps, b.padded_count[ob] * c.padded_count[oc]);
            }
        }
    }
}

/// `out[j] = combine(win[j·S .. j·S + K])` (`win` holds `(n-1)·S + K`
/// values for `n` outputs; the compiler vectorises the strided reads).
#[inline(always)]
fn strided_windows<R: RowReduce, const K: usize, const S: usize>(win: &[f32], out: &mut [f32]) {
    let n = out.len();
    if n == 0 {
        return;
    }
    let win = &win[..(n - 1) * S + K];
    for (j, o) in out.iter_mut().enumerate() {
        let w = &win[j * S..j * S + K];
        let mut a = w[0];
        for &v in &w[1..] {
            a = R::combine(a, v);
        }
        *o = a;
    }
}

/// `dst = combine(src(0), ..., src(n-1))` elementwise (`pad` for `n == 0`),
/// ping-ponging through `spare` so that no pass reads its own output.
#[inline(always)]
fn combine_into<'a>(
    dst: &mut [f32],
    spare: &mut [f32],
    n: usize,
    src: impl Fn(usize) -> &'a [f32],
    pad: f32,
    combine_rows: fn(&mut [f32], &[f32], &[f32]),
) {
    match n {
        0 => dst.fill(pad),
        1 => dst.copy_from_slice(src(0)),
        _ => {
            // The first combine writes `cur`; after the other n-2 (each into
            // `other`, then swapped) the result is in `dst`.
            let (mut cur, mut other): (&mut [f32], &mut [f32]) = if n % 2 == 0 { (dst, spare) } else { (spare, dst) };
            combine_rows(cur, src(0), src(1));
            for i in 2..n {
                combine_rows(other, cur, src(i));
                std::mem::swap(&mut cur, &mut other);
            }
        }
    }
}

fn pool_loops<R: Reduce>(t: &Tabs, x: &[f32], out: &mut [f32], mut idx: Option<&mut [i64]>, r: R) {
    let [a, b, c] = &t.0;
    let mut o = 0;
    for oa in 0..a.out {
        for ob in 0..b.out {
            for oc in 0..c.out {
                let mut acc = r.init();
                let (kc0, kc1) = (c.lo[oc], c.hi[oc]);
                for ka in a.lo[oa]..a.hi[oa] {
                    let pa = (a.start[oa] + (ka * a.dil) as i64) as usize;
                    for kb in b.lo[ob]..b.hi[ob] {
                        let pb = (b.start[ob] + (kb * b.dil) as i64) as usize;
                        let row = (pa * b.size + pb) * c.size;
                        let first = (c.start[oc] + (kc0 * c.dil) as i64) as usize + row;
                        if c.dil == 1 {
                            for (i, &v) in x[first..first + (kc1 - kc0)].iter().enumerate() {
                                r.tap(&mut acc, v, first + i);
                            }
                        } else {
                            for kc in 0..kc1 - kc0 {
                                let at = first + kc * c.dil;
                                r.tap(&mut acc, x[at], at);
                            }
                        }
                    }
                }
                let taps = (a.hi[oa] - a.lo[oa]) * (b.hi[ob] - b.lo[ob]) * (kc1 - kc0);
                let padded = a.padded_count[oa] * b.padded_count[ob] * c.padded_count[oc];
                let (v, at) = r.finish(acc, taps, padded);
                out[o] = v;
                if let Some(ix) = idx.as_deref_mut() {
                    ix[o] = at;
                }
                o += 1;
            }
        }
    }
}

/// Output spatial dims for a symbolic input (used by the global pools too).
pub(crate) fn unit_spatial(xs: &SymbolicShape) -> SymbolicShape {
    let mut d = xs.0.clone();
    for v in d.iter_mut().skip(2) {
        *v = Dim::Known(1);
    }
    SymbolicShape(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::padding::AutoPad;
    use crate::ops::nn::test_util::{run, t};

    fn pool(kind: PoolKind, k: &[usize], window: Window) -> Pool {
        Pool {
            kind,
            kernel_shape: k.to_vec(),
            window,
            storage_order: 0,
            with_indices: false,
        }
    }

    /// The row-by-row path against the per-output loop nest, over shapes,
    /// strides, pads and ceil mode (1-D and 2-D, max and both averages).
    #[test]
    fn row_pass_matches_loop_nest() {
        let mut seed = 7u32;
        let mut next = |m: usize| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as usize % m
        };
        for case in 0..400 {
            let nd = 1 + case % 2;
            // From case 300 on: wide rows pooled 2 or 3 taps with stride 2.
            let wide = case >= 300;
            let mut input: Vec<usize> = (0..nd).map(|_| 1 + next(9)).collect();
            let mut kernel: Vec<usize> = (0..nd).map(|_| 1 + next(4)).collect();
            let mut strides: Vec<usize> = (0..nd).map(|_| 1 + next(3)).collect();
            if wide {
                (input[nd - 1], kernel[nd - 1], strides[nd - 1]) = (20 + next(60), 2 + next(2), 2);
            }
            let pads: Vec<usize> = (0..2 * nd).map(|i| next(kernel[i % nd])).collect();
            let w = Window {
                strides,
                dilations: vec![1; nd],
                pads,
                auto_pad: AutoPad::NotSet,
                ceil_mode: next(2) == 1,
            };
            let Ok(geo) = w.resolve(&input, &kernel) else { continue };
            let isz: usize = input.iter().product();
            let osz: usize = geo.output.iter().product();
            let x: Vec<f32> = (0..isz).map(|_| next(1000) as f32 / 100.0 - 5.0).collect();
            let tabs = Tabs::new(&geo);
            for kind in [
                PoolKind::Max,
                PoolKind::Average { count_include_pad: false },
                PoolKind::Average { count_include_pad: true },
            ] {
                let mut fast = vec![f32::NAN; osz];
                let mut slow = vec![f32::NAN; osz];
                pool_plane(kind, &tabs, &x, &mut fast, None);
                match kind {
                    PoolKind::Max => pool_loops(&tabs, &x, &mut slow, None, MaxValue),
                    PoolKind::Average { count_include_pad } => {
                        pool_loops(&tabs, &x, &mut slow, None, Mean { count_include_pad })
                    }
                    PoolKind::Lp { .. } => unreachable!(),
                }
                for (a, b) in fast.iter().zip(&slow) {
                    assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{kind:?} {geo:?}: {fast:?} vs {slow:?}");
                }
            }
        }
    }

    #[test]
    fn max_and_avg_2d() {
        let x = t(&[1, 1, 3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let y = run(
            &pool(PoolKind::Max, &[2, 2], Window::default()),
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[5., 6., 8., 9.]);
        let w = Window {
            pads: vec![1, 1, 1, 1],
            strides: vec![2, 2],
            ..Default::default()
        };
        let y = run(
            &pool(
                PoolKind::Average {
                    count_include_pad: false,
                },
                &[2, 2],
                w.clone(),
            ),
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[1., 2.5, 5.5, 7.]);
        let y = run(
            &pool(
                PoolKind::Average {
                    count_include_pad: true,
                },
                &[2, 2],
                w,
            ),
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[0.25, 1.25, 2.75, 7.0]);
    }

    #[test]
    fn max_indices_and_same_pad() {
        let x = t(&[1, 1, 2, 3], &[1., 9., 3., 4., 5., 6.]);
        let mut p = pool(
            PoolKind::Max,
            &[2, 2],
            Window {
                auto_pad: AutoPad::SameUpper,
                ..Default::default()
            },
        );
        p.with_indices = true;
        let y = run(&p, &[Some(&x)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 2, 3]);
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[9., 9., 6., 5., 6., 6.]);
        assert_eq!(y[1].as_slice::<i64>().unwrap(), &[1, 1, 5, 4, 5, 5]);
        p.storage_order = 1;
        let y = run(&p, &[Some(&x)]).unwrap();
        assert_eq!(y[1].as_slice::<i64>().unwrap(), &[2, 2, 5, 3, 5, 5]);
    }

    #[test]
    fn lp_and_errors() {
        let x = t(&[1, 1, 2], &[3., 4.]);
        let y = run(
            &pool(PoolKind::Lp { p: 2.0 }, &[2], Window::default()),
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[5.]);
        assert!(run(
            &pool(PoolKind::Max, &[2, 2], Window::default()),
            &[Some(&x)]
        )
        .is_err());
        assert!(run(&pool(PoolKind::Max, &[3], Window::default()), &[Some(&x)]).is_err());
    }
}
