//! `Attention` (opsets 23–25): scaled dot-product attention on 3-D
//! (`[batch, seq, heads*head_size]`) or 4-D (`[batch, heads, seq, head_size]`)
//! inputs, with grouped KV heads (GQA/MQA), boolean or additive masks,
//! bottom-right causal masking, sliding windows, an internal KV cache
//! (`past_key`/`past_value` → `present_key`/`present_value`), an external
//! cache length (`nonpad_kv_seqlen`), softcap and the `qk_matmul_output` debug
//! output.
//!
//! Everything is computed in f32 (f16/bf16/f64 are converted on the way in
//! and out). Per `(batch, head)`: `S = scale·Q·Kᵀ` (one GEMM), softcap, bias,
//! a stable softmax (rows whose bias is all `-inf` give zeros), `Y = P·V`.

use uniml_data::{bail, bf16, f16, DType, Dim, Result, SymbolicShape, Tensor, TensorView};
use uniml_linalg as la;

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::nn::{f32_data, store_f32};
use crate::parallel::{par_chunks_mut, SyncPtr};

use super::round_to;

#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    pub is_causal: bool,
    /// Head counts, required for 3-D inputs.
    pub q_num_heads: Option<usize>,
    pub kv_num_heads: Option<usize>,
    /// Scale of `Q·Kᵀ` (default `1/sqrt(head_size)`).
    pub scale: Option<f32>,
    /// `softcap·tanh(x/softcap)` on the scores when > 0.
    pub softcap: f32,
    /// What output 3 holds: 0/1 scores (after softcap), 2 scores + bias, 3 probabilities.
    pub qk_matmul_output_mode: i64,
    /// Window bounds around the absolute query position (-1: unbounded).
    pub left_window: i64,
    pub right_window: i64,
    /// Type the softmax runs in (`softmax_precision`); `None`: the input type.
    /// f16/bf16 are emulated step by step in f32, f32/f64 run in f32.
    pub softmax_dtype: Option<DType>,
    /// Whether the node uses output 3 (`qk_matmul_output`).
    pub qk_output: bool,
}

impl Default for Attention {
    fn default() -> Self {
        Attention {
            is_causal: false,
            q_num_heads: None,
            kv_num_heads: None,
            scale: None,
            softcap: 0.0,
            qk_matmul_output_mode: 0,
            left_window: -1,
            right_window: -1,
            softmax_dtype: None,
            qk_output: false,
        }
    }
}

/// Query rows scored at once per (batch, head).
const QUERY_BLOCK: usize = 64;

/// Resolved sizes of one call.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    qh: usize,
    kvh: usize,
    sq: usize,
    skv: usize,
    past: usize,
    d: usize,
    dv: usize,
    rank3: bool,
}

impl Dims {
    fn total(&self) -> usize {
        self.past + self.skv
    }
}

fn dims_of(op: &Attention, q: &[usize], k: &[usize], v: &[usize]) -> Result<Dims> {
    if q.len() != k.len() || q.len() != v.len() {
        bail!("Attention: Q, K and V must have the same rank, got {q:?}, {k:?}, {v:?}");
    }
    match q.len() {
        3 => {
            let (Some(qh), Some(kvh)) = (op.q_num_heads, op.kv_num_heads) else {
                bail!("Attention: 3-D inputs need the q_num_heads and kv_num_heads attributes")
            };
            if qh == 0
                || kvh == 0
                || !q[2].is_multiple_of(qh)
                || !k[2].is_multiple_of(kvh)
                || !v[2].is_multiple_of(kvh)
            {
                bail!("Attention: hidden sizes {}, {}, {} are not divisible by head counts {qh}/{kvh}", q[2], k[2], v[2]);
            }
            if k[0] != q[0] || v[0] != q[0] || v[1] != k[1] {
                bail!("Attention: inconsistent shapes Q {q:?}, K {k:?}, V {v:?}");
            }
            let d = q[2] / qh;
            if k[2] / kvh != d {
                bail!(
                    "Attention: K head size {} differs from Q head size {d}",
                    k[2] / kvh
                );
            }
            Ok(Dims {
                batch: q[0],
                qh,
                kvh,
                sq: q[1],
                skv: k[1],
                past: 0,
                d,
                dv: v[2] / kvh,
                rank3: true,
            })
        }
        4 => {
            if k[0] != q[0] || v[0] != q[0] || k[3] != q[3] || v[1] != k[1] || v[2] != k[2] {
                bail!("Attention: inconsistent shapes Q {q:?}, K {k:?}, V {v:?}");
            }
            Ok(Dims {
                batch: q[0],
                qh: q[1],
                kvh: k[1],
                sq: q[2],
                skv: k[2],
                past: 0,
                d: q[3],
                dv: v[3],
                rank3: false,
            })
        }
        r => bail!("Attention: Q must be rank 3 or 4, got rank {r}"),
    }
}

/// The additive mask as f32 with broadcast strides over `[batch, q_heads, sq, mask_len]`.
struct Mask {
    data: Vec<f32>,
    strides: [usize; 4],
    len: usize,
}

impl Mask {
    fn new(m: &TensorView, dm: &Dims) -> Result<Mask> {
        let shape = m.shape();
        if shape.is_empty() || shape.len() > 4 {
            bail!("Attention: attn_mask must have rank 1 to 4, got shape {shape:?}");
        }
        let mut full = [1usize; 4];
        full[4 - shape.len()..].copy_from_slice(shape);
        let target = [dm.batch, dm.qh, dm.sq];
        for i in 0..3 {
            if full[i] != 1 && full[i] != target[i] {
                bail!(
                    "Attention: attn_mask shape {shape:?} does not broadcast to [{}, {}, {}, {}]",
                    dm.batch,
                    dm.qh,
                    dm.sq,
                    dm.total()
                );
            }
        }
        let len = full[3];
        if len > dm.total() {
            bail!(
                "Attention: attn_mask last dim {len} exceeds the total sequence length {}",
                dm.total()
            );
        }
        let own = crate::ops::util::strides(&full);
        let mut strides = [0usize; 4];
        for i in 0..4 {
            strides[i] = if full[i] == 1 { 0 } else { own[i] };
        }
        let data = match m.dtype() {
            DType::Bool => m
                .as_bytes()
                .iter()
                .map(|&b| if b != 0 { 0.0 } else { f32::NEG_INFINITY })
                .collect(),
            DType::String => bail!("Attention: attn_mask must be bool or numeric, got string"),
            _ => f32_data(m)?.into_owned(),
        };
        Ok(Mask { data, strides, len })
    }
}

impl Attention {
    /// Fills `bias[j]` for query row `i` of `(b, h)`; returns whether every key is masked.
    #[allow(clippy::too_many_arguments)]
    fn row_bias(
        &self,
        dm: &Dims,
        mask: Option<&Mask>,
        nonpad: Option<&[i64]>,
        b: usize,
        h: usize,
        i: usize,
        bias: &mut [f32],
    ) -> bool {
        let t = dm.total();
        match mask {
            Some(m) => {
                let base = b * m.strides[0] + h * m.strides[1] + i * m.strides[2];
                for (j, o) in bias.iter_mut().enumerate() {
                    *o = if j < m.len {
                        m.data[base + j * m.strides[3]]
                    } else {
                        f32::NEG_INFINITY
                    };
                }
            }
            None => bias.fill(0.0),
        }
        let offset: i64 = if dm.past > 0 {
            dm.past as i64
        } else if let Some(np) = nonpad {
            np[b] - dm.sq as i64
        } else {
            0
        };
        let p = i as i64 + offset;
        let windowed = self.left_window >= 0 || self.right_window >= 0;
        if self.is_causal || windowed {
            for (j, o) in bias.iter_mut().enumerate() {
                let diff = p - j as i64;
                let mut ok = true;
                if self.is_causal && diff < 0 {
                    ok = false;
                }
                if self.left_window >= 0 && diff > self.left_window {
                    ok = false;
                }
                if self.right_window >= 0 && -diff > self.right_window {
                    ok = false;
                }
                if !ok {
                    *o = f32::NEG_INFINITY;
                }
            }
        }
        if let Some(np) = nonpad {
            let n = np[b].max(0) as usize;
            for o in bias.iter_mut().skip(n.min(t)) {
                *o = f32::NEG_INFINITY;
            }
        }
        bias.iter().all(|&v| v == f32::NEG_INFINITY)
    }
}

/// Stable softmax of one row in place (a row whose maximum is `-inf` becomes
/// zeros, a row holding NaN becomes NaN). For `F16`/`BF16` every step is
/// rounded to that type like numpy does on such arrays (bf16 sums round after
/// each addition, f16 sums accumulate in f32).
pub(crate) fn softmax_row(row: &mut [f32], dt: DType) {
    let mut m = f32::NEG_INFINITY;
    let mut nan = false;
    for &v in row.iter() {
        if v.is_nan() {
            nan = true;
        } else if v > m {
            m = v;
        }
    }
    if nan {
        row.fill(f32::NAN);
        return;
    }
    if m == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    match dt {
        DType::F16 | DType::BF16 => {
            for v in row.iter_mut() {
                *v -= m;
            }
            round_to(dt, row);
            for v in row.iter_mut() {
                *v = v.exp();
            }
            round_to(dt, row);
            let mut s = 0f32;
            for &v in row.iter() {
                s += v;
                if dt == DType::BF16 {
                    s = bf16::from_f32(s).to_f32();
                }
            }
            let mut s = [s];
            round_to(dt, &mut s);
            for v in row.iter_mut() {
                *v /= s[0];
            }
            round_to(dt, row);
        }
        _ => {
            let mut s = 0f32;
            for v in row.iter_mut() {
                *v = (*v - m).exp();
                s += *v;
            }
            let inv = 1.0 / s;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// Copies K or V (`[B, S, H*D]` or `[B, H, S, D]`) after `past` (`[B, H, P, D]`)
/// into `out` as `[B, H, P+S, D]`.
fn concat_cache(x: &[f32], past: Option<&[f32]>, dm: &Dims, d: usize, out: &mut [f32]) {
    let (h, s, p) = (dm.kvh, dm.skv, dm.past);
    let t = p + s;
    for b in 0..dm.batch {
        for hh in 0..h {
            let dst = &mut out[(b * h + hh) * t * d..(b * h + hh + 1) * t * d];
            if let Some(pk) = past {
                let src = (b * h + hh) * p * d;
                dst[..p * d].copy_from_slice(&pk[src..src + p * d]);
            }
            for si in 0..s {
                let src = if dm.rank3 {
                    (b * s + si) * h * d + hh * d
                } else {
                    ((b * h + hh) * s + si) * d
                };
                dst[(p + si) * d..(p + si + 1) * d].copy_from_slice(&x[src..src + d]);
            }
        }
    }
}

impl Op for Attention {
    fn name(&self) -> &'static str {
        "Attention"
    }

    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        let Some(q) = inputs.first() else {
            bail!("Attention needs Q, K and V")
        };
        if let Some(dt) = q.dtype {
            if !dt.is_float() {
                bail!("Attention expects float Q, got {dt}");
            }
        }
        let shape = |i: usize| inputs.get(i).and_then(|f| f.shape.as_ref());
        let known = |i: usize| shape(i).and_then(|s| s.concrete());
        let mut facts = vec![Fact::dtype_only(q.dtype); n_outputs.max(1)];
        if let (Some(qs), Some(vs)) = (shape(0), shape(2)) {
            let y = match (qs.rank(), vs.rank()) {
                (4, 4) => Some(SymbolicShape(vec![
                    qs.0[0].clone(),
                    qs.0[1].clone(),
                    qs.0[2].clone(),
                    vs.0[3].clone(),
                ])),
                (3, 3) => {
                    let hidden = match (vs.0[2].known(), self.q_num_heads, self.kv_num_heads) {
                        (Some(v), Some(qh), Some(kvh)) if kvh > 0 => Dim::Known(v / kvh * qh),
                        _ => Dim::Unknown,
                    };
                    Some(SymbolicShape(vec![
                        qs.0[0].clone(),
                        qs.0[1].clone(),
                        hidden,
                    ]))
                }
                _ => None,
            };
            facts[0].shape = y;
        }
        if let (Some(q), Some(k), Some(v)) = (known(0), known(1), known(2)) {
            if let Ok(mut dm) = dims_of(self, &q, &k, &v) {
                if let Some(p) = known(4) {
                    if p.len() == 4 {
                        dm.past = p[2];
                    }
                }
                let t = dm.total();
                let shapes = [
                    None,
                    Some(vec![dm.batch, dm.kvh, t, dm.d]),
                    Some(vec![dm.batch, dm.kvh, t, dm.dv]),
                    Some(vec![dm.batch, dm.qh, dm.sq, t]),
                ];
                for (f, s) in facts.iter_mut().zip(shapes).skip(1) {
                    f.shape = s.map(|s| SymbolicShape::known(&s));
                }
            }
        }
        if let Some(f) = facts.get_mut(2) {
            f.dtype = inputs.get(2).and_then(|f| f.dtype).or(q.dtype);
        }
        Ok(facts)
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let q = input(inputs, 0, "Attention")?;
        let k = input(inputs, 1, "Attention")?;
        let v = input(inputs, 2, "Attention")?;
        let opt = |i: usize| inputs.get(i).and_then(|x| x.as_ref());
        let dt = q.dtype();
        for (n, t) in [("Q", q), ("K", k), ("V", v)] {
            if !t.dtype().is_float() {
                bail!("Attention: {n} must be a float tensor, got {}", t.dtype());
            }
        }
        let mut dm = dims_of(self, q.shape(), k.shape(), v.shape())?;
        if dm.kvh == 0 || !dm.qh.is_multiple_of(dm.kvh) {
            bail!(
                "Attention: q_num_heads {} must be a multiple of kv_num_heads {}",
                dm.qh,
                dm.kvh
            );
        }
        let (pk, pv) = (opt(4), opt(5));
        if pk.is_some() != pv.is_some() {
            bail!("Attention: past_key and past_value must be given together");
        }
        if let (Some(pk), Some(pv)) = (pk, pv) {
            let p = pk.shape().get(2).copied().unwrap_or(0);
            if pk.shape() != [dm.batch, dm.kvh, p, dm.d]
                || pv.shape() != [dm.batch, dm.kvh, p, dm.dv]
            {
                bail!(
                    "Attention: past_key {:?} / past_value {:?} must be [{}, {}, past, {}] / [.., {}]",
                    pk.shape(),
                    pv.shape(),
                    dm.batch,
                    dm.kvh,
                    dm.d,
                    dm.dv
                );
            }
            dm.past = p;
        }
        let nonpad = match opt(6) {
            Some(n) => {
                let v = crate::ops::util::read_i64s(n)?;
                if v.len() != dm.batch {
                    bail!(
                        "Attention: nonpad_kv_seqlen must have {} values, got {}",
                        dm.batch,
                        v.len()
                    );
                }
                if pk.is_some() {
                    bail!(
                        "Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value"
                    );
                }
                Some(v)
            }
            None => None,
        };
        let mask = match opt(3) {
            Some(m) => Some(Mask::new(m, &dm)?),
            None => None,
        };
        let t = dm.total();
        let (b_, qh, kvh, sq, d, dv) = (dm.batch, dm.qh, dm.kvh, dm.sq, dm.d, dm.dv);
        let group = qh / kvh;

        let mut qf = f32_data(q)?;
        let mut kall = vec![0f32; b_ * kvh * t * d];
        let mut vall = vec![0f32; b_ * kvh * t * dv];
        let pkf = match pk {
            Some(p) => Some(f32_data(p)?),
            None => None,
        };
        let pvf = match pv {
            Some(p) => Some(f32_data(p)?),
            None => None,
        };
        concat_cache(&f32_data(k)?, pkf.as_deref(), &dm, d, &mut kall);
        concat_cache(&f32_data(v)?, pvf.as_deref(), &dm, dv, &mut vall);

        // Q and K are each scaled by sqrt(scale) (rounded to the input type).
        let scale = self.scale.map_or(1.0 / (d as f64).sqrt(), |s| s as f64);
        let lp = matches!(dt, DType::F16 | DType::BF16);
        let sqrt_s = match dt {
            DType::F16 => f16::from_f64(scale.sqrt()).to_f32(),
            DType::BF16 => bf16::from_f64(scale.sqrt()).to_f32(),
            _ => scale.sqrt() as f32,
        };
        // f16/bf16 follow the reference's rounding of every intermediate:
        // scaled copies of Q and K, then an unscaled product.
        let (alpha, kscaled) = if lp {
            let mut qs = qf.into_owned();
            qs.iter_mut().for_each(|x| *x *= sqrt_s);
            round_to(dt, &mut qs);
            qf = std::borrow::Cow::Owned(qs);
            let mut ks = kall.clone();
            ks.iter_mut().for_each(|x| *x *= sqrt_s);
            round_to(dt, &mut ks);
            (1.0, Some(ks))
        } else {
            (sqrt_s * sqrt_s, None)
        };
        let sm_dt = self.softmax_dtype.unwrap_or(dt);

        let want_qk = self.qk_output;
        let mut qk_out = vec![0f32; if want_qk { b_ * qh * sq * t } else { 0 }];
        let qk_ptr = SyncPtr(qk_out.as_mut_ptr());
        let mut y = vec![0f32; b_ * qh * sq * dv];
        let mode = self.qk_matmul_output_mode;
        let dm_c = dm;
        let (qf, kall_r, vall_r) = (&qf[..], kscaled.as_deref().unwrap_or(&kall[..]), &vall[..]);
        let (mask_r, nonpad_r) = (mask.as_ref(), nonpad.as_deref());
        par_chunks_mut(ctx.par, &mut y, (sq * dv).max(1), &|task, yb| {
            let (b, h) = (task / qh, task % qh);
            let kv = h / group;
            let (qoff, qrs) = if dm_c.rank3 {
                (b * sq * qh * d + h * d, qh * d)
            } else {
                ((b * qh + h) * sq * d, d)
            };
            let kb = &kall_r[(b * kvh + kv) * t * d..(b * kvh + kv + 1) * t * d];
            let vb = &vall_r[(b * kvh + kv) * t * dv..(b * kvh + kv + 1) * t * dv];
            // Query rows in blocks, so the score block stays small for long sequences.
            let block = sq.clamp(1, QUERY_BLOCK);
            let mut s = vec![0f32; block * t];
            let mut bias = vec![0f32; t];
            for i0 in (0..sq).step_by(block) {
                let rows = block.min(sq - i0);
                let s = &mut s[..rows * t];
                if t > 0 && d > 0 {
                    let a = la::MatRef::with_strides(&qf[qoff + i0 * qrs..], rows, d, qrs, 1);
                    let kt = la::MatRef::new(kb, t, d).t();
                    la::sgemm(rows, t, d, alpha, a, kt, 0.0, s, t);
                } else {
                    s.fill(0.0);
                }
                round_to(dt, s);
                if self.softcap > 0.0 {
                    let c = self.softcap;
                    if lp {
                        for x in s.iter_mut() {
                            let mut v = [*x / c];
                            round_to(dt, &mut v);
                            v[0] = v[0].tanh();
                            round_to(dt, &mut v);
                            *x = v[0] * c;
                        }
                        round_to(dt, s);
                    } else {
                        s.iter_mut().for_each(|x| *x = c * (*x / c).tanh());
                    }
                }
                for r in 0..rows {
                    let i = i0 + r;
                    let row = &mut s[r * t..(r + 1) * t];
                    let qk_off = ((b * qh + h) * sq + i) * t;
                    let all_masked = self.row_bias(&dm_c, mask_r, nonpad_r, b, h, i, &mut bias);
                    // Mode 0/1: the (softcapped) scores before the bias.
                    if want_qk && mode <= 1 {
                        // SAFETY: each task writes only its own (b, h) block of qk_out.
                        unsafe { copy_to(qk_ptr, qk_off, row) };
                    }
                    for (x, &bv) in row.iter_mut().zip(&bias) {
                        *x += bv;
                    }
                    round_to(dt, row);
                    if want_qk && mode == 2 {
                        // SAFETY: as above.
                        unsafe { copy_to(qk_ptr, qk_off, row) };
                    }
                    if all_masked {
                        row.fill(0.0);
                    } else {
                        softmax_row(row, sm_dt);
                    }
                    round_to(dt, row);
                    if want_qk && mode == 3 {
                        // SAFETY: as above.
                        unsafe { copy_to(qk_ptr, qk_off, row) };
                    }
                }
                if dv > 0 {
                    let out = &mut yb[i0 * dv..(i0 + rows) * dv];
                    if t > 0 {
                        let p = la::MatRef::new(s, rows, t);
                        la::sgemm(
                            rows,
                            dv,
                            t,
                            1.0,
                            p,
                            la::MatRef::new(vb, t, dv),
                            0.0,
                            out,
                            dv,
                        );
                    } else {
                        out.fill(0.0);
                    }
                }
            }
        });

        // Y: [B, H, Sq, Dv] → 3-D [B, Sq, H*Dv] when the inputs were 3-D.
        let mut outs = Vec::with_capacity(4);
        if dm.rank3 {
            let mut yt = ctx.alloc(dt, &[b_, sq, qh * dv])?;
            let mut tmp = vec![0f32; y.len()];
            for b in 0..b_ {
                for h in 0..qh {
                    for i in 0..sq {
                        let src = ((b * qh + h) * sq + i) * dv;
                        let dst = (b * sq + i) * qh * dv + h * dv;
                        tmp[dst..dst + dv].copy_from_slice(&y[src..src + dv]);
                    }
                }
            }
            store_f32(&tmp, &mut yt)?;
            outs.push(yt);
        } else {
            let mut yt = ctx.alloc(dt, &[b_, qh, sq, dv])?;
            store_f32(&y, &mut yt)?;
            outs.push(yt);
        }
        let mut pkt = ctx.alloc(k.dtype(), &[b_, kvh, t, d])?;
        store_f32(&kall, &mut pkt)?;
        outs.push(pkt);
        let mut pvt = ctx.alloc(v.dtype(), &[b_, kvh, t, dv])?;
        store_f32(&vall, &mut pvt)?;
        outs.push(pvt);
        // Output 3 only when the node asks for it (an empty tensor stands in otherwise).
        let qk_shape = if want_qk {
            [b_, qh, sq, t]
        } else {
            [0, 0, 0, 0]
        };
        let mut qkt = ctx.alloc(dt, &qk_shape)?;
        store_f32(&qk_out, &mut qkt)?;
        outs.push(qkt);
        Ok(outs)
    }
    crate::op_as_any!();
}

/// Writes `row` at `base + off`.
///
/// # Safety
/// `base` must point to a buffer holding at least `off + row.len()` floats, and
/// no other task may access that range concurrently.
unsafe fn copy_to(base: SyncPtr<f32>, off: usize, row: &[f32]) {
    std::ptr::copy_nonoverlapping(row.as_ptr(), base.get().add(off), row.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, rand_vec, run, t, FakePar};

    /// Naive 4-D attention with GQA, an additive [sq, total] mask, causal
    /// (offset = past) and past K/V.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        pk: &[f32],
        pv: &[f32],
        mask: Option<&[f32]>,
        causal: bool,
        dims: (usize, usize, usize, usize, usize, usize, usize, usize),
    ) -> Vec<f32> {
        let (b_, qh, kvh, sq, skv, p, d, dv) = dims;
        let t = p + skv;
        let scale = 1.0 / (d as f32).sqrt();
        let kat = |b: usize, h: usize, j: usize, x: usize| {
            if j < p {
                pk[((b * kvh + h) * p + j) * d + x]
            } else {
                k[((b * kvh + h) * skv + j - p) * d + x]
            }
        };
        let vat = |b: usize, h: usize, j: usize, x: usize| {
            if j < p {
                pv[((b * kvh + h) * p + j) * dv + x]
            } else {
                v[((b * kvh + h) * skv + j - p) * dv + x]
            }
        };
        let mut y = vec![0f32; b_ * qh * sq * dv];
        for b in 0..b_ {
            for h in 0..qh {
                let kh = h / (qh / kvh);
                for i in 0..sq {
                    let mut sc: Vec<f32> = (0..t)
                        .map(|j| {
                            let mut s = (0..d)
                                .map(|x| q[((b * qh + h) * sq + i) * d + x] * kat(b, kh, j, x))
                                .sum::<f32>()
                                * scale;
                            if let Some(m) = mask {
                                s += m[i * t + j];
                            }
                            if causal && j > i + p {
                                s = f32::NEG_INFINITY;
                            }
                            s
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = sc
                        .iter_mut()
                        .map(|x| {
                            *x = (*x - m).exp();
                            *x
                        })
                        .sum();
                    for x in 0..dv {
                        y[((b * qh + h) * sq + i) * dv + x] =
                            (0..t).map(|j| sc[j] / sum * vat(b, kh, j, x)).sum();
                    }
                }
            }
        }
        y
    }

    #[test]
    fn gqa_causal_mask_and_past_match_naive() {
        let (b_, qh, kvh, sq, skv, p, d, dv) = (2, 4, 2, 3, 2, 2, 4, 5);
        let t_ = p + skv;
        let q = rand_vec(b_ * qh * sq * d, 1);
        let k = rand_vec(b_ * kvh * skv * d, 2);
        let v = rand_vec(b_ * kvh * skv * dv, 3);
        let pk = rand_vec(b_ * kvh * p * d, 4);
        let pv = rand_vec(b_ * kvh * p * dv, 5);
        let mask = rand_vec(sq * t_, 6);
        let want = naive(
            &q,
            &k,
            &v,
            &pk,
            &pv,
            Some(&mask),
            true,
            (b_, qh, kvh, sq, skv, p, d, dv),
        );
        let op = Attention {
            is_causal: true,
            ..Default::default()
        };
        let ins = [
            t(&[b_, qh, sq, d], &q),
            t(&[b_, kvh, skv, d], &k),
            t(&[b_, kvh, skv, dv], &v),
            t(&[sq, t_], &mask),
            t(&[b_, kvh, p, d], &pk),
            t(&[b_, kvh, p, dv], &pv),
        ];
        let out = crate::ops::nn::test_util::run_with(
            &FakePar,
            &op,
            &ins.iter().map(Some).collect::<Vec<_>>(),
        )
        .unwrap();
        assert_close(out[0].as_slice::<f32>().unwrap(), &want, 1e-5);
        assert_eq!(out[1].shape(), &[b_, kvh, t_, d]);
        // present_key = concat(past_key, K) along the sequence.
        assert_eq!(&out[1].as_slice::<f32>().unwrap()[..p * d], &pk[..p * d]);
        assert_eq!(
            &out[1].as_slice::<f32>().unwrap()[p * d..t_ * d],
            &k[..skv * d]
        );
    }

    #[test]
    fn long_sequences_are_blocked_correctly() {
        let (b_, qh, kvh, sq, skv, d, dv) = (1, 2, 1, 70, 75, 3, 2);
        let q = rand_vec(b_ * qh * sq * d, 11);
        let k = rand_vec(b_ * kvh * skv * d, 12);
        let v = rand_vec(b_ * kvh * skv * dv, 13);
        let want = naive(
            &q,
            &k,
            &v,
            &[],
            &[],
            None,
            true,
            (b_, qh, kvh, sq, skv, 0, d, dv),
        );
        let op = Attention {
            is_causal: true,
            ..Default::default()
        };
        let ins = [
            t(&[b_, qh, sq, d], &q),
            t(&[b_, kvh, skv, d], &k),
            t(&[b_, kvh, skv, dv], &v),
        ];
        let out = crate::ops::nn::test_util::run_with(
            &FakePar,
            &op,
            &ins.iter().map(Some).collect::<Vec<_>>(),
        )
        .unwrap();
        assert_close(out[0].as_slice::<f32>().unwrap(), &want, 1e-5);
    }

    #[test]
    fn three_d_layout_matches_four_d() {
        let (b_, h, s, d) = (1, 2, 3, 4);
        let q4 = rand_vec(b_ * h * s * d, 7);
        let k4 = rand_vec(b_ * h * s * d, 8);
        let v4 = rand_vec(b_ * h * s * d, 9);
        let to3 = |x: &[f32]| {
            let mut o = vec![0f32; x.len()];
            for hh in 0..h {
                for ss in 0..s {
                    for dd in 0..d {
                        o[ss * h * d + hh * d + dd] = x[(hh * s + ss) * d + dd];
                    }
                }
            }
            o
        };
        let op4 = Attention {
            left_window: -1,
            right_window: -1,
            ..Default::default()
        };
        let y4 = run(
            &op4,
            &[
                Some(&t(&[1, h, s, d], &q4)),
                Some(&t(&[1, h, s, d], &k4)),
                Some(&t(&[1, h, s, d], &v4)),
            ],
        )
        .unwrap();
        let op3 = Attention {
            q_num_heads: Some(h),
            kv_num_heads: Some(h),
            left_window: -1,
            right_window: -1,
            ..Default::default()
        };
        let y3 = run(
            &op3,
            &[
                Some(&t(&[1, s, h * d], &to3(&q4))),
                Some(&t(&[1, s, h * d], &to3(&k4))),
                Some(&t(&[1, s, h * d], &to3(&v4))),
            ],
        )
        .unwrap();
        assert_eq!(y3[0].shape(), &[1, s, h * d]);
        assert_close(
            y3[0].as_slice::<f32>().unwrap(),
            &to3(y4[0].as_slice::<f32>().unwrap()),
            1e-6,
        );
        // 3-D without head counts is an error.
        assert!(run(
            &op4,
            &[
                Some(&t(&[1, s, h * d], &q4)),
                Some(&t(&[1, s, h * d], &k4)),
                Some(&t(&[1, s, h * d], &v4))
            ]
        )
        .is_err());
    }

    #[test]
    fn fully_masked_rows_are_zero_and_probabilities_exposed() {
        let q = t(&[1, 1, 2, 1], &[1.0, 2.0]);
        let k = t(&[1, 1, 2, 1], &[1.0, -1.0]);
        let v = t(&[1, 1, 2, 1], &[3.0, 5.0]);
        let mask = Tensor::from_bools(&[2, 2], &[false, false, true, true]).unwrap();
        let op = Attention {
            qk_matmul_output_mode: 3,
            qk_output: true,
            left_window: -1,
            right_window: -1,
            ..Default::default()
        };
        let out = run(&op, &[Some(&q), Some(&k), Some(&v), Some(&mask)]).unwrap();
        let y = out[0].as_slice::<f32>().unwrap();
        assert_eq!(y[0], 0.0);
        let (a, b) = (2.0f32, -2.0f32);
        let pa = 1.0 / (1.0 + (b - a).exp());
        assert_close(&y[1..], &[pa * 3.0 + (1.0 - pa) * 5.0], 1e-6);
        assert_close(
            out[3].as_slice::<f32>().unwrap(),
            &[0.0, 0.0, pa, 1.0 - pa],
            1e-6,
        );
        // A mask that does not broadcast is an error.
        let bad = t(&[3, 2], &[0.0; 6]);
        assert!(run(&op, &[Some(&q), Some(&k), Some(&v), Some(&bad)]).is_err());
    }

    #[test]
    fn sliding_window_limits_keys() {
        // One query position per key; left window 0 + causal: each query sees only itself.
        let q = t(&[1, 1, 3, 1], &[1.0, 1.0, 1.0]);
        let k = t(&[1, 1, 3, 1], &[0.5, 0.1, 0.9]);
        let v = t(&[1, 1, 3, 1], &[1.0, 2.0, 3.0]);
        let op = Attention {
            is_causal: true,
            left_window: 0,
            right_window: -1,
            ..Default::default()
        };
        let out = run(&op, &[Some(&q), Some(&k), Some(&v)]).unwrap();
        assert_close(out[0].as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0], 1e-6);
    }
}
