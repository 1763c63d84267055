//! What `LSTM`, `GRU` and `RNN` share: direction, activations, layout, the
//! input checks and output shapes, and the f32 staging of inputs/outputs.
//!
//! Kernels work in the "layout 0" view (`[seq, batch, ...]`) through index
//! helpers, so `layout = 1` inputs are never transposed: only the row index
//! of each `(t, b)` pair changes.

use std::borrow::Cow;
use std::sync::Arc;

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};
use uniml_linalg as la;

use crate::op::{EvalCtx, Fact};
use crate::ops::nn::gemm_glue::{PackedWeight, WeightCache};
use crate::ops::nn::{f32_data, store_f32};
use crate::parallel::{par_chunks_mut, Parallelism};

/// Which way(s) the sequence is scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "forward" => Some(Direction::Forward),
            "reverse" => Some(Direction::Reverse),
            "bidirectional" => Some(Direction::Bidirectional),
            _ => None,
        }
    }
    pub fn num_directions(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }
    /// Whether direction index `d` scans from the last step to the first.
    pub fn is_reverse(self, d: usize) -> bool {
        self == Direction::Reverse || (self == Direction::Bidirectional && d == 1)
    }
}

/// The activation functions ONNX recurrent ops accept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    Affine { alpha: f32, beta: f32 },
    LeakyRelu { alpha: f32 },
    ThresholdedRelu { alpha: f32 },
    ScaledTanh { alpha: f32, beta: f32 },
    HardSigmoid { alpha: f32, beta: f32 },
    Elu { alpha: f32 },
    Softsign,
    Softplus,
}

impl Activation {
    /// Parses an activation name (case-insensitive). `alpha`/`beta` are
    /// consumed from the iterators only by activations that take them
    /// (onnxruntime's convention); missing values take the op defaults.
    pub fn parse(
        name: &str,
        alpha: &mut dyn Iterator<Item = f32>,
        beta: &mut dyn Iterator<Item = f32>,
    ) -> Option<Activation> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "affine" => Activation::Affine {
                alpha: alpha.next().unwrap_or(1.0),
                beta: beta.next().unwrap_or(0.0),
            },
            "leakyrelu" => Activation::LeakyRelu {
                alpha: alpha.next().unwrap_or(0.01),
            },
            "thresholdedrelu" => Activation::ThresholdedRelu {
                alpha: alpha.next().unwrap_or(1.0),
            },
            "scaledtanh" => Activation::ScaledTanh {
                alpha: alpha.next().unwrap_or(1.0),
                beta: beta.next().unwrap_or(1.0),
            },
            "hardsigmoid" => Activation::HardSigmoid {
                alpha: alpha.next().unwrap_or(0.2),
                beta: beta.next().unwrap_or(0.5),
            },
            "elu" => Activation::Elu {
                alpha: alpha.next().unwrap_or(1.0),
            },
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            _ => return None,
        })
    }

    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => sigmoid(x),
            Activation::Affine { alpha, beta } => alpha * x + beta,
            Activation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > alpha {
                    x
                } else {
                    0.0
                }
            }
            Activation::ScaledTanh { alpha, beta } => alpha * (beta * x).tanh(),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::Elu { alpha } => {
                if x < 0.0 {
                    alpha * (x.exp() - 1.0)
                } else {
                    x
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }

    /// Applies the activation to a slice in place; `Sigmoid` and `Tanh` with
    /// linalg's vectorised sigmoid (`tanh(x) = 2·sigmoid(2x) - 1`, within
    /// ~4e-7 absolute), the rest element by element.
    pub fn apply_slice(self, xs: &mut [f32]) {
        match self {
            Activation::Sigmoid => la::activate(la::Activation::Sigmoid, xs),
            Activation::Tanh => {
                crate::ops::wide::wide(
                    #[inline(always)]
                    || xs.iter_mut().for_each(|x| *x *= 2.0),
                );
                la::activate(la::Activation::Sigmoid, xs);
                crate::ops::wide::wide(
                    #[inline(always)]
                    || xs.iter_mut().for_each(|x| *x = 2.0 * *x - 1.0),
                );
            }
            other => xs.iter_mut().for_each(|x| *x = other.apply(*x)),
        }
    }
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Attributes shared by the three recurrent ops.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnCommon {
    pub hidden_size: usize,
    pub direction: Direction,
    /// 0: `[seq, batch, ...]`; 1: `[batch, seq, ...]` (opset 14+).
    pub layout: i64,
    /// Clip threshold applied to gate pre-activations (`None` = no clipping).
    pub clip: Option<f32>,
    /// Activations per direction, `gates_per_dir` each (forward first).
    pub activations: Vec<Activation>,
    /// A constant `R` transposed per direction (`[dirs, hidden, gates·hidden]`),
    /// made once by [`pack_constants`] for the small-batch steps of [`Recurrent`].
    pub recurrent_t: WeightCache<Vec<f32>>,
}

impl RnnCommon {
    #[inline(always)]
    pub fn clip(&self, x: f32) -> f32 {
        match self.clip {
            Some(c) => x.clamp(-c, c),
            None => x,
        }
    }
    /// The activation `i` (0-based within a direction) of direction `d`.
    pub fn act(&self, d: usize, i: usize, per_dir: usize) -> Activation {
        self.activations
            .get(d * per_dir + i)
            .or_else(|| self.activations.get(i))
            .copied()
            .unwrap_or(Activation::Tanh)
    }
}

/// [`Op::pack_constants`](crate::Op::pack_constants) of a recurrent op:
/// a constant `R` transposed once.
pub fn pack_constants(c: &RnnCommon, gates: usize, inputs: &[&Fact]) {
    if let Some(r) = inputs.get(2).and_then(|f| f.konst.as_ref()) {
        let (dirs, hidden) = (c.direction.num_directions(), c.hidden_size);
        c.recurrent_t.ensure(r, |r| {
            let w = r.as_slice::<f32>().ok().filter(|_| r.shape() == [dirs, gates * hidden, hidden])?;
            Some(transpose_per_direction(w, dirs, gates * hidden, hidden))
        });
    }
}

/// Output facts of a recurrent op: `Y`, `Y_h` (and `Y_c` for LSTM).
pub fn output_facts(
    op: &str,
    c: &RnnCommon,
    inputs: &[&Fact],
    n_outputs: usize,
) -> Result<Vec<Fact>> {
    let Some(x) = inputs.first() else {
        bail!("{op} needs an input X")
    };
    if let Some(dt) = x.dtype {
        if !dt.is_float() {
            bail!("{op} expects a float input X, got {dt}");
        }
    }
    let nd = Dim::Known(c.direction.num_directions());
    let hs = Dim::Known(c.hidden_size);
    let (mut seq, mut batch) = (Dim::Unknown, Dim::Unknown);
    if let Some(s) = &x.shape {
        if s.rank() != 3 {
            bail!("{op} expects a rank-3 input X, got rank {}", s.rank());
        }
        let (a, b) = (s.0[0].clone(), s.0[1].clone());
        if c.layout == 0 {
            (seq, batch) = (a, b);
        } else {
            (batch, seq) = (a, b);
        }
    }
    let (y, yh) = if c.layout == 0 {
        (
            vec![seq, nd.clone(), batch.clone(), hs.clone()],
            vec![nd, batch, hs],
        )
    } else {
        (
            vec![batch.clone(), seq, nd.clone(), hs.clone()],
            vec![batch, nd, hs],
        )
    };
    let mut out = vec![Fact {
        dtype: x.dtype,
        shape: Some(SymbolicShape(y)),
        konst: None,
        is_sequence: false,
    }];
    for _ in 1..n_outputs {
        out.push(Fact {
            dtype: x.dtype,
            shape: Some(SymbolicShape(yh.clone())),
            konst: None,
            is_sequence: false,
        });
    }
    out.truncate(n_outputs.max(1));
    Ok(out)
}

/// Validated sizes and f32 copies of the common inputs.
pub struct Staged<'a> {
    pub dtype: DType,
    pub seq: usize,
    pub batch: usize,
    pub input_size: usize,
    pub hidden: usize,
    pub dirs: usize,
    pub layout1: bool,
    pub x: Cow<'a, [f32]>,
    /// `[dirs, gates*hidden, input]`.
    pub w: Cow<'a, [f32]>,
    /// `[dirs, gates*hidden, hidden]`.
    pub r: Cow<'a, [f32]>,
    /// `[dirs, 2*gates*hidden]` (`Wb` then `Rb`), zeros when absent.
    pub b: Cow<'a, [f32]>,
    /// `R` transposed per direction when it is the constant cached in [`RnnCommon`].
    pub r_t: Option<Arc<PackedWeight<Vec<f32>>>>,
    /// Per-batch sequence lengths (all `seq` when absent).
    pub lens: Vec<usize>,
    /// Initial hidden state in layout 0, `[dirs, batch, hidden]`.
    pub h0: Vec<f32>,
}

impl Staged<'_> {
    /// Row of X (and of the projected inputs) for step `t` of batch `b`.
    #[inline(always)]
    pub fn row(&self, t: usize, b: usize) -> usize {
        if self.layout1 {
            b * self.seq + t
        } else {
            t * self.batch + b
        }
    }
}

pub fn opt<'a, 'b>(inputs: &'b [Option<TensorView<'a>>], i: usize) -> Option<&'b TensorView<'a>> {
    inputs.get(i).and_then(|x| x.as_ref())
}

/// Reads an optional `[dirs, batch, hidden]` (layout 0) or `[batch, dirs, hidden]`
/// (layout 1) state into layout 0.
pub fn read_state(
    op: &str,
    what: &str,
    t: Option<&TensorView>,
    dirs: usize,
    batch: usize,
    hidden: usize,
    layout1: bool,
) -> Result<Vec<f32>> {
    let mut out = vec![0f32; dirs * batch * hidden];
    let Some(t) = t else { return Ok(out) };
    let want = if layout1 {
        [batch, dirs, hidden]
    } else {
        [dirs, batch, hidden]
    };
    if t.shape() != want {
        bail!("{op}: {what} must have shape {want:?}, got {:?}", t.shape());
    }
    if !t.dtype().is_float() {
        bail!("{op}: {what} must be a float tensor, got {}", t.dtype());
    }
    let v = f32_data(t)?;
    if layout1 {
        for b in 0..batch {
            for d in 0..dirs {
                let src = (b * dirs + d) * hidden;
                let dst = (d * batch + b) * hidden;
                out[dst..dst + hidden].copy_from_slice(&v[src..src + hidden]);
            }
        }
    } else {
        out.copy_from_slice(&v);
    }
    Ok(out)
}

/// Checks and stages X, W, R, B, sequence_lens, initial_h (inputs 0..=5).
pub fn stage<'a>(
    op: &str,
    c: &RnnCommon,
    gates: usize,
    inputs: &[Option<TensorView<'a>>],
) -> Result<Staged<'a>> {
    let x = crate::op::input(inputs, 0, op)?;
    let w = crate::op::input(inputs, 1, op)?;
    let r = crate::op::input(inputs, 2, op)?;
    let dtype = x.dtype();
    if !dtype.is_float() {
        bail!("{op} expects float inputs, got X of type {dtype}");
    }
    if x.shape().len() != 3 {
        bail!("{op}: X must be rank 3, got shape {:?}", x.shape());
    }
    let layout1 = c.layout != 0;
    let (seq, batch, input_size) = if layout1 {
        (x.shape()[1], x.shape()[0], x.shape()[2])
    } else {
        (x.shape()[0], x.shape()[1], x.shape()[2])
    };
    let dirs = c.direction.num_directions();
    let hidden = c.hidden_size;
    if w.shape() != [dirs, gates * hidden, input_size] {
        bail!(
            "{op}: W must have shape [{dirs}, {}, {input_size}], got {:?}",
            gates * hidden,
            w.shape()
        );
    }
    if r.shape() != [dirs, gates * hidden, hidden] {
        bail!(
            "{op}: R must have shape [{dirs}, {}, {hidden}], got {:?}",
            gates * hidden,
            r.shape()
        );
    }
    for (name, t) in [("W", w), ("R", r)] {
        if t.dtype() != dtype {
            bail!("{op}: {name} must be {dtype} like X, got {}", t.dtype());
        }
    }
    let b = match opt(inputs, 3) {
        Some(b) => {
            if b.shape() != [dirs, 2 * gates * hidden] {
                bail!(
                    "{op}: B must have shape [{dirs}, {}], got {:?}",
                    2 * gates * hidden,
                    b.shape()
                );
            }
            if !b.dtype().is_float() {
                bail!("{op}: B must be a float tensor, got {}", b.dtype());
            }
            f32_data(b)?
        }
        None => Cow::Owned(vec![0f32; dirs * 2 * gates * hidden]),
    };
    let lens = match opt(inputs, 4) {
        Some(l) => {
            if l.shape() != [batch] {
                bail!(
                    "{op}: sequence_lens must have shape [{batch}], got {:?}",
                    l.shape()
                );
            }
            let v = crate::ops::util::read_i64s(l)?;
            let mut out = Vec::with_capacity(batch);
            for &n in &v {
                if n < 0 || n as usize > seq {
                    bail!("{op}: sequence_lens values must be in [0, {seq}], got {n}");
                }
                out.push(n as usize);
            }
            out
        }
        None => vec![seq; batch],
    };
    let h0 = read_state(
        op,
        "initial_h",
        opt(inputs, 5),
        dirs,
        batch,
        hidden,
        layout1,
    )?;
    Ok(Staged {
        dtype,
        seq,
        batch,
        input_size,
        hidden,
        dirs,
        layout1,
        x: f32_data(x)?,
        w: f32_data(w)?,
        r: f32_data(r)?,
        r_t: c.recurrent_t.get(r),
        b,
        lens,
        h0,
    })
}

/// `out[rows × n] = x[rows × k] · w[n × k]ᵀ + bias[n]`, rows split over threads.
#[allow(clippy::too_many_arguments)]
pub fn project_inputs(
    par: &dyn Parallelism,
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[f32],
    n: usize,
    bias: &[f32],
    out: &mut [f32],
) {
    if rows == 0 || n == 0 {
        return;
    }
    let threads = par.threads().max(1);
    let chunk_rows = if threads > 1 && rows * n * k >= (1 << 18) {
        rows.div_ceil(threads * 2).max(4)
    } else {
        rows
    };
    par_chunks_mut(par, &mut out[..rows * n], chunk_rows * n, &|i, c| {
        let r0 = i * chunk_rows;
        let m = c.len() / n;
        if k > 0 {
            let a = la::MatRef::new(&x[r0 * k..(r0 + m) * k], m, k);
            let b = la::MatRef::new(w, n, k).t();
            la::sgemm(m, n, k, 1.0, a, b, 0.0, c, n);
        }
        for row in c.chunks_exact_mut(n) {
            for (o, &bv) in row.iter_mut().zip(bias) {
                *o += bv;
            }
        }
    });
}

impl Staged<'_> {
    /// The recurrent weights of direction `d` (all its gates).
    pub fn recurrent(&self, d: usize) -> Recurrent<'_> {
        let size = self.r.len() / self.dirs.max(1);
        let gh = size / self.hidden.max(1);
        let t = self.r_t.as_ref().map(|t| (&t.packed[d * size..(d + 1) * size], gh));
        Recurrent::new(&self.r[d * size..(d + 1) * size], gh, self.hidden, t)
    }
}

/// `[dirs, n, k]` → `[dirs, k, n]`.
fn transpose_per_direction(w: &[f32], dirs: usize, n: usize, k: usize) -> Vec<f32> {
    let mut t = vec![0f32; dirs * n * k];
    for (wd, td) in w.chunks_exact(n * k).zip(t.chunks_exact_mut(n * k)) {
        // Blocks of 16 rows, so that the strided writes reuse their lines.
        for j0 in (0..n).step_by(16) {
            for p in 0..k {
                for j in j0..(j0 + 16).min(n) {
                    td[p * n + j] = wd[j * k + p];
                }
            }
        }
    }
    t
}

/// The recurrent weights of one direction (or a block of its gates) for
/// every step's `c[m × n] += h[m × k] · Rᵀ`, `R` being `n × k` row-major.
/// With `Rᵀ` at hand (a constant `R`, see [`RnnCommon::recurrent_t`]),
/// batches of up to [`Recurrent::FEW_ROWS`] run one GEMV per row as `k`
/// vectorised axpy sweeps over contiguous rows of `Rᵀ`: a dot product per
/// row of `R` is bound by its horizontal sum, and a GEMM would repack `R`
/// every step.
pub struct Recurrent<'a> {
    w: &'a [f32],
    n: usize,
    k: usize,
    /// `Rᵀ` (`k × n`) with its row stride.
    transposed: Option<(&'a [f32], usize)>,
}

impl<'a> Recurrent<'a> {
    const FEW_ROWS: usize = 4;

    /// `w`: `n × k`; `transposed`: the same as `k × n` with a row stride.
    pub fn new(w: &'a [f32], n: usize, k: usize, transposed: Option<(&'a [f32], usize)>) -> Self {
        Recurrent {
            w,
            n,
            k,
            transposed,
        }
    }

    /// Rows `j0 .. j0+n` of `R` (a block of gates).
    pub fn rows(&self, j0: usize, n: usize) -> Recurrent<'a> {
        let k = self.k;
        Recurrent {
            w: &self.w[j0 * k..(j0 + n) * k],
            n,
            k,
            transposed: self.transposed.map(|(t, ldt)| (&t[j0..], ldt)),
        }
    }

    /// `c[m × n] += a[m × k] · Rᵀ` (row stride of `a` is `lda`, of `c` is `ldc`).
    pub fn acc(&self, m: usize, a: &[f32], lda: usize, c: &mut [f32], ldc: usize) {
        let (n, k) = (self.n, self.k);
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        match self.transposed {
            Some((t, ldt)) if m <= Self::FEW_ROWS => {
                let b = la::MatRef::with_strides(t, k, n, ldt, 1);
                for i in 0..m {
                    let ai = la::MatRef::new(&a[i * lda..i * lda + k], 1, k);
                    la::sgemm(1, n, k, 1.0, ai, b, 1.0, &mut c[i * ldc..i * ldc + n], n);
                }
            }
            _ => {
                let a = la::MatRef::with_strides(a, m, k, lda, 1);
                let b = la::MatRef::new(self.w, n, k).t();
                la::sgemm(m, n, k, 1.0, a, b, 1.0, c, ldc);
            }
        }
    }
}

/// Allocates the `Y` output (layout 0: `[seq, dirs, batch, hidden]`,
/// layout 1: `[batch, seq, dirs, hidden]`) and the state outputs
/// (`[dirs, batch, hidden]` or `[batch, dirs, hidden]`) from layout-0 f32
/// buffers `y` (`[seq, dirs, batch, hidden]`) and `states` (`[dirs, batch, hidden]` each).
pub fn emit(
    ctx: &mut EvalCtx,
    s: &Staged,
    y: &[f32],
    states: &[&[f32]],
    n_outputs: usize,
) -> Result<Vec<Tensor>> {
    let (seq, dirs, batch, hidden) = (s.seq, s.dirs, s.batch, s.hidden);
    let mut outs = Vec::with_capacity(n_outputs);
    let y_shape = if s.layout1 {
        [batch, seq, dirs, hidden]
    } else {
        [seq, dirs, batch, hidden]
    };
    let mut yt = ctx.alloc(s.dtype, &y_shape)?;
    if s.layout1 {
        let mut tmp = vec![0f32; y.len()];
        for t in 0..seq {
            for d in 0..dirs {
                for b in 0..batch {
                    let src = ((t * dirs + d) * batch + b) * hidden;
                    let dst = ((b * seq + t) * dirs + d) * hidden;
                    tmp[dst..dst + hidden].copy_from_slice(&y[src..src + hidden]);
                }
            }
        }
        store_f32(&tmp, &mut yt)?;
    } else {
        store_f32(y, &mut yt)?;
    }
    outs.push(yt);
    for st in states.iter().take(n_outputs.saturating_sub(1)) {
        let shape = if s.layout1 {
            [batch, dirs, hidden]
        } else {
            [dirs, batch, hidden]
        };
        let mut t = ctx.alloc(s.dtype, &shape)?;
        if s.layout1 {
            let mut tmp = vec![0f32; st.len()];
            for d in 0..dirs {
                for b in 0..batch {
                    let src = (d * batch + b) * hidden;
                    let dst = (b * dirs + d) * hidden;
                    tmp[dst..dst + hidden].copy_from_slice(&st[src..src + hidden]);
                }
            }
            store_f32(&tmp, &mut t)?;
        } else {
            store_f32(st, &mut t)?;
        }
        outs.push(t);
    }
    Ok(outs)
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use uniml_data::Tensor;

    use super::RnnCommon;
    use crate::op::{Fact, Op};
    use crate::ops::nn::test_util::{assert_close, rand_vec};

    /// Tells `op` that its `R` is the constant `r`, as the session does, and
    /// checks that it made the transposed copy.
    pub(in crate::ops::rnn) fn pack_constant_r(op: &dyn Op, common: &RnnCommon, r: &Arc<Tensor>) {
        let rf = Fact { konst: Some(r.clone()), ..Default::default() };
        op.pack_constants(&[&Fact::default(), &Fact::default(), &rf]);
        assert!(common.recurrent_t.get(&r.view()).is_some());
    }

    #[test]
    fn recurrent_products_match_naive() {
        // Batches ≤ 4 use the transposed copy, 6 the GEMM; odd sizes.
        for (m, n, k) in [(1, 13, 37), (3, 9, 16), (4, 32, 5), (6, 7, 64)] {
            let (lda, ldc) = (k + 3, n + 2);
            let a = rand_vec(m * lda, 1);
            let w = rand_vec(n * k, 2);
            let c0 = rand_vec(m * ldc, 3);
            let mut got = c0.clone();
            let t = super::transpose_per_direction(&w, 1, n, k);
            super::Recurrent::new(&w, n, k, Some((&t, n))).acc(m, &a, lda, &mut got, ldc);
            let mut want = c0.clone();
            for i in 0..m {
                for j in 0..n {
                    let dot: f32 = (0..k).map(|p| a[i * lda + p] * w[j * k + p]).sum();
                    want[i * ldc + j] += dot;
                }
            }
            assert_close(&got, &want, 1e-4);
        }
    }
}
