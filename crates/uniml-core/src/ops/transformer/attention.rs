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

#[derive(Clone, Debug, PartialEq, Default)]
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
}

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
            if qh == 0 || kvh == 0 || q[2] % qh != 0 || k[2] % kvh != 0 || v[2] % kvh != 0 {
                bail!("Attention: hidden sizes {}, {}, {} are not divisible by head counts {qh}/{kvh}", q[2], k[2], v[2]);
            }
            if k[0] != q[0] || v[0] != q[0] || v[1] != k[1] {
                bail!("Attention: inconsistent shapes Q {q:?}, K {k:?}, V {v:?}");
            }
            let d = q[2] / qh;
            if k[2] / kvh != d {
                bail!("Attention: K head size {} differs from Q head size {d}", k[2] / kvh);
            }
            Ok(Dims { batch: q[0], qh, kvh, sq: q[1], skv: k[1], past: 0, d, dv: v[2] / kvh, rank3: true })
        }
        4 => {
            if k[0] != q[0] || v[0] != q[0] || k[3] != q[3] || v[1] != k[1] || v[2] != k[2] {
                bail!("Attention: inconsistent shapes Q {q:?}, K {k:?}, V {v:?}");
            }
            Ok(Dims { batch: q[0], qh: q[1], kvh: k[1], sq: q[2], skv: k[2], past: 0, d: q[3], dv: v[3], rank3: false })
        }
        r => bail!("Attention: Q must be rank 3 or 4, got rank {r}"),
    }
}

/// Rounds f32 values to the precision of `dt` (f16/bf16), as the reference
/// does when it casts intermediate results back to the input type.
fn round_to(dt: DType, xs: &mut [f32]) {
    match dt {
        DType::F16 => xs.iter_mut().for_each(|x| *x = f16::from_f32(*x).to_f32()),
        DType::BF16 => xs.iter_mut().for_each(|x| *x = bf16::from_f32(*x).to_f32()),
        _ => {}
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
                bail!("Attention: attn_mask shape {shape:?} does not broadcast to [{}, {}, {}, {}]", dm.batch, dm.qh, dm.sq, dm.total());
            }
        }
        let len = full[3];
        if len > dm.total() {
            bail!("Attention: attn_mask last dim {len} exceeds the total sequence length {}", dm.total());
        }
        let own = crate::ops::util::strides(&full);
        let mut strides = [0usize; 4];
        for i in 0..4 {
            strides[i] = if full[i] == 1 { 0 } else { own[i] };
        }
        let data = match m.dtype() {
            DType::Bool => m.as_slice::<u8>()?.iter().map(|&b| if b != 0 { 0.0 } else { f32::NEG_INFINITY }).collect(),
            DType::String => bail!("Attention: attn_mask must be bool or numeric, got string"),
            _ => f32_data(m)?.into_owned(),
        };
        Ok(Mask { data, strides, len })
    }
}

impl Attention {
    /// Fills `bias[j]` for query row `i` of `(b, h)`; returns whether every key is masked.
    #[allow(clippy::too_many_arguments)]
    fn row_bias(&self, dm: &Dims, mask: Option<&Mask>, nonpad: Option<&[i64]>, b: usize, h: usize, i: usize, bias: &mut [f32]) -> bool {
        let t = dm.total();
        match mask {
            Some(m) => {
                let base = b * m.strides[0] + h * m.strides[1] + i * m.strides[2];
                for (j, o) in bias.iter_mut().enumerate() {
                    *o = if j < m.len { m.data[base + j * m.strides[3]] } else { f32::NEG_INFINITY };
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

/// Stable softmax of one row in place (a row whose maximum is `-inf` becomes zeros).
pub(crate) fn softmax_row(row: &mut [f32]) {
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
                let src = if dm.rank3 { (b * s + si) * h * d + hh * d } else { ((b * h + hh) * s + si) * d };
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
        let Some(q) = inputs.first() else { bail!("Attention needs Q, K and V") };
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
                (4, 4) => Some(SymbolicShape(vec![qs.0[0].clone(), qs.0[1].clone(), qs.0[2].clone(), vs.0[3].clone()])),
                (3, 3) => {
                    let hidden = match (vs.0[2].known(), self.q_num_heads, self.kv_num_heads) {
                        (Some(v), Some(qh), Some(kvh)) if kvh > 0 => Dim::Known(v / kvh * qh),
                        _ => Dim::Unknown,
                    };
                    Some(SymbolicShape(vec![qs.0[0].clone(), qs.0[1].clone(), hidden]))
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
        if dm.qh % dm.kvh != 0 {
            bail!("Attention: q_num_heads {} must be a multiple of kv_num_heads {}", dm.qh, dm.kvh);
        }
        let (pk, pv) = (opt(4), opt(5));
        if pk.is_some() != pv.is_some() {
            bail!("Attention: past_key and past_value must be given together");
        }
        if let (Some(pk), Some(pv)) = (pk, pv) {
            let p = pk.shape().get(2).copied().unwrap_or(0);
            if pk.shape() != [dm.batch, dm.kvh, p, dm.d] || pv.shape() != [dm.batch, dm.kvh, p, dm.dv] {
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
                    bail!("Attention: nonpad_kv_seqlen must have {} values, got {}", dm.batch, v.len());
                }
                if pk.is_some() {
                    bail!("Attention: nonpad_kv_seqlen cannot be combined with past_key/past_value");
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

        let qf = f32_data(q)?;
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

        let scale = self.scale.unwrap_or(1.0 / (d as f32).sqrt());
        let mut sqrt_s = [scale.sqrt()];
        round_to(dt, &mut sqrt_s);
        let alpha = sqrt_s[0] * sqrt_s[0];

        let want_qk = true;
        let mut qk_out = if want_qk { vec![0f32; b_ * qh * sq * t] } else { vec![] };
        let qk_ptr = SyncPtr(qk_out.as_mut_ptr());
        let mut y = vec![0f32; b_ * qh * sq * dv];
        let mode = self.qk_matmul_output_mode;
        let dm_c = dm;
        let (qf, kall_r, vall_r) = (&qf[..], &kall[..], &vall[..]);
        let (mask_r, nonpad_r) = (mask.as_ref(), nonpad.as_deref());
        par_chunks_mut(ctx.par, &mut y, (sq * dv).max(1), &|task, yb| {
            let (b, h) = (task / qh, task % qh);
            let kv = h / group;
            let (qoff, qrs) = if dm_c.rank3 { (b * sq * qh * d + h * d, qh * d) } else { ((b * qh + h) * sq * d, d) };
            let mut s = vec![0f32; sq * t];
            if t > 0 && sq > 0 {
                let a = la::MatRef::with_strides(&qf[qoff..], sq, d, qrs, 1);
                let kb = la::MatRef::new(&kall_r[(b * kvh + kv) * t * d..(b * kvh + kv + 1) * t * d], t, d).t();
                if d > 0 {
                    la::sgemm(sq, t, d, alpha, a, kb, 0.0, &mut s, t);
                }
            }
            if self.softcap > 0.0 {
                let c = self.softcap;
                s.iter_mut().for_each(|x| *x = c * (*x / c).tanh());
            }
            let mut bias = vec![0f32; t];
            let mut masked_rows = vec![false; sq];
            for i in 0..sq {
                let row = &mut s[i * t..(i + 1) * t];
                masked_rows[i] = self.row_bias(&dm_c, mask_r, nonpad_r, b, h, i, &mut bias);
                // Mode 0/1: the (softcapped) scores before the bias.
                if mode <= 1 {
                    // SAFETY: each task writes only its own (b, h) block of qk_out.
                    unsafe { copy_to(qk_ptr, ((b * qh + h) * sq + i) * t, row) };
                }
                for (x, &bv) in row.iter_mut().zip(&bias) {
                    *x += bv;
                }
                if mode == 2 {
                    unsafe { copy_to(qk_ptr, ((b * qh + h) * sq + i) * t, row) };
                }
                if masked_rows[i] {
                    row.fill(0.0);
                } else {
                    softmax_row(row);
                }
                round_to(dt, row);
                if mode == 3 {
                    unsafe { copy_to(qk_ptr, ((b * qh + h) * sq + i) * t, row) };
                }
            }
            if t > 0 && sq > 0 && dv > 0 {
                let vb = la::MatRef::new(&vall_r[(b * kvh + kv) * t * dv..(b * kvh + kv + 1) * t * dv], t, dv);
                la::sgemm(sq, dv, t, 1.0, la::MatRef::new(&s, sq, t), vb, 0.0, yb, dv);
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
        let mut qkt = ctx.alloc(dt, &[b_, qh, sq, t])?;
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
