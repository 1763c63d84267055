//! Row kernels: one workgroup of 64 threads per row of a `[outer, R, inner]`
//! layout, reducing through workgroup memory. Covers ReduceSum/Mean/Max/Min/
//! SumSquare/L1/L2 over contiguous axes, GlobalAverage/MaxPool, Softmax and
//! LogSoftmax over any axis, and LayerNormalization.
//!
//! In f16 storage each thread owns whole output words: a reduction's
//! workgroup reduces an aligned pair of rows and stores both results at once;
//! Softmax over a contiguous even-length row and LayerNormalization with an
//! even row length write by pairs within the row. Other shapes (a strided or
//! odd-length Softmax row) fall back to per-element (atomic) stores.

use uniml_core::ops::nn::global_pool::{GlobalPool, GlobalPoolKind};
use uniml_core::ops::nn::norm::LayerNorm;
use uniml_core::ops::nn::softmax::{Softmax, SoftmaxKind};
use uniml_core::ops::reduce::reducer::{Reduce, ReduceKind};
use uniml_data::{Error, Result};

use super::wgsl::{bindings_out, groups, lit, INF};
use super::{Bind, Facts, Launch, LowerCx, Support};

/// Code reducing `pre(v)` over the row into `let <var>`; `comb` combines `p` and `q`.
fn block_reduce(var: &str, init: &str, pre: &str, comb: &str) -> String {
    let c = |p: &str, q: &str| comb.replace('p', p).replace('q', q);
    format!(
        r#"  {{
    var acc = {init};
    for (var r = lid.x; r < R; r = r + 64u) {{ let v = ld_x(base + r * I); let t = {pre}; acc = {c1}; }}
    red[lid.x] = acc;
  }}
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {{
    if (lid.x < s) {{ red[lid.x] = {c2}; }}
    workgroupBarrier();
  }}
  let {var} = red[0];
  workgroupBarrier();
"#,
        c1 = c("acc", "t"),
        c2 = c("red[lid.x]", "red[lid.x + s]"),
    )
}

/// The row-kernel shell: `body` runs per row with `base`, `R`, `I`, `row` and `lid`.
/// `paired`: the body stores whole aligned pairs (`st2_y`).
fn row_kernel(inputs: &[&str], rows: usize, r: usize, inner: usize, body: &str, paired: bool) -> String {
    let body = format!("  let row = wid.x + wid.y * nwg.x;\n  if (row >= {rows}u) {{ return; }}\n  let base = (row / I) * R * I + row % I;\n{body}");
    row_shell(&bindings_out(inputs, &[], "y", paired), r, inner, &body)
}

/// The reduction shell in f16 storage: one workgroup per aligned pair of rows (`row0`, `row0 + 1`),
/// each reduced by `reduce` into `s`, both results `post(s)` stored as one word.
fn row_pair_kernel(rows: usize, r: usize, inner: usize, reduce: &str, post: &str) -> String {
    let mut body = format!("  let row0 = (wid.x + wid.y * nwg.x) * 2u;\n  if (row0 >= {rows}u) {{ return; }}\n  var out_ = vec2<f32>(0.0);\n");
    for h in 0..2 {
        body.push_str(&format!(
            "  {{\n  let row = row0 + {h}u;\n  if (row < {rows}u) {{\n  let base = (row / I) * R * I + row % I;\n{reduce}  out_[{h}] = {post};\n  }}\n  }}\n"
        ));
    }
    body.push_str("  if (lid.x == 0u) { st2_y(row0, out_.x, out_.y); }\n");
    row_shell(&bindings_out(&["x"], &[], "y", true), r, inner, &body)
}

/// The module both row shells share: bindings, `R`, `I`, 64 threads per workgroup and
/// their reduction buffer `red`, then `body` as the entry point.
fn row_shell(bindings: &str, r: usize, inner: usize, body: &str) -> String {
    format!(
        r#"{bindings}{INF}
const R: u32 = {r}u;
const I: u32 = {inner}u;
var<workgroup> red: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
{body}}}
"#
    )
}

const SUM: &str = "p + q";

fn reduce_axes(f: &Facts, red: &Reduce) -> std::result::Result<Option<Vec<i64>>, String> {
    if let Some(a) = &red.axes {
        return Ok(Some(a.clone()));
    }
    match f.input(1) {
        None => Ok(None),
        Some(_) => match f.konst(1) {
            Some(t) => t.as_slice::<i64>().map(|s| Some(s.to_vec())).map_err(|_| "axes must be int64".to_string()),
            None => Err("axes computed at run time".into()),
        },
    }
}

/// `(outer, r, inner)` when `axes` (None = all) are contiguous in a tensor of `shape`.
fn contiguous(shape: &[usize], axes: Option<&[i64]>) -> Option<(usize, usize, usize)> {
    let rank = shape.len() as i64;
    let mut ax: Vec<usize> = match axes {
        None => (0..shape.len()).collect(),
        Some(a) => a.iter().map(|&x| if x < 0 { x + rank } else { x }).filter(|&x| (0..rank).contains(&x)).map(|x| x as usize).collect(),
    };
    ax.sort_unstable();
    ax.dedup();
    let (&a0, &a1) = (ax.first()?, ax.last()?);
    if a1 - a0 + 1 != ax.len() {
        return None;
    }
    Some((shape[..a0].iter().product(), shape[a0..=a1].iter().product(), shape[a1 + 1..].iter().product()))
}

pub(crate) fn support(f: &Facts) -> Option<std::result::Result<Support, String>> {
    let op = f.node.op.as_any();
    if let Some(r) = op.downcast_ref::<Reduce>() {
        return Some((|| {
            f.f32s(&[0])?;
            f.outputs(1)?;
            if !matches!(r.kind, ReduceKind::Sum | ReduceKind::Mean | ReduceKind::Max | ReduceKind::Min | ReduceKind::SumSquare | ReduceKind::L1 | ReduceKind::L2) {
                return Err(format!("no GPU kernel for {}", r.kind.name()));
            }
            let axes = reduce_axes(f, r)?;
            if r.noop_with_empty_axes && axes.as_ref().is_none_or(|a| a.is_empty()) {
                return Err("noop_with_empty_axes".into());
            }
            let rank = f.rank(0).ok_or("input rank unknown")?;
            let axes = axes.filter(|a| !a.is_empty());
            contiguous(&vec![2; rank], axes.as_deref()).ok_or("reduced axes are not contiguous")?;
            Ok(Support::Kernel)
        })());
    }
    if let Some(g) = op.downcast_ref::<GlobalPool>() {
        return Some(match g.kind {
            GlobalPoolKind::Average | GlobalPoolKind::Max => f.f32s(&[0]).map(|_| Support::Kernel),
            _ => Err("GlobalLpPool runs on CPU".into()),
        });
    }
    if let Some(s) = op.downcast_ref::<Softmax>() {
        return Some(match s.kind {
            SoftmaxKind::Hardmax => Err("Hardmax runs on CPU".into()),
            _ => f.f32s(&[0]).and_then(|_| f.rank(0).map(|_| Support::Kernel).ok_or_else(|| "input rank unknown".into())),
        });
    }
    if op.downcast_ref::<LayerNorm>().is_some() {
        return Some((|| {
            f.f32s(&[0, 1])?;
            if f.input(2).is_some() {
                f.f32s(&[2])?;
            }
            // Mean / InvStdDev outputs are only produced by the CPU kernel.
            let extra = f.node.outputs.len() > 1;
            if extra {
                return Err("Mean/InvStdDev outputs requested".into());
            }
            Ok(Support::Kernel)
        })());
    }
    None
}

pub(crate) fn lower(cx: &LowerCx) -> Option<Result<Launch>> {
    let op = cx.node.op.as_any();
    if let Some(r) = op.downcast_ref::<Reduce>() {
        return Some(lower_reduce(cx, r));
    }
    if let Some(g) = op.downcast_ref::<GlobalPool>() {
        return Some((|| {
            let s = cx.shape(0)?;
            if s.len() < 3 {
                return Err(Error::Shape(format!("{}: input must have rank >= 3, got {s:?}", cx.node.op.name())));
            }
            let (rows, r) = (s[0] * s[1], s[2..].iter().product::<usize>());
            let max = g.kind == GlobalPoolKind::Max;
            reduce_rows(cx, rows, r, 1, if max { "max(p, q)" } else { SUM }, if max { "-inf_()" } else { "0.0" }, "v", if max { "s" } else { "s / f32(R)" })
        })());
    }
    if let Some(s) = op.downcast_ref::<Softmax>() {
        return Some(lower_softmax(cx, s));
    }
    if let Some(l) = op.downcast_ref::<LayerNorm>() {
        return Some(lower_layernorm(cx, l));
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn reduce_rows(cx: &LowerCx, rows: usize, r: usize, inner: usize, comb: &str, init: &str, pre: &str, post: &str) -> Result<Launch> {
    if cx.pairs() {
        let src = row_pair_kernel(rows, r, inner, &block_reduce("s", init, pre, comb), post);
        return cx.single("reduce_rows", src, vec![Bind::In(0), Bind::Out(0)], groups(rows.div_ceil(2), 1));
    }
    let body = format!("{}  if (lid.x == 0u) {{ st_y(row, {post}); }}", block_reduce("s", init, pre, comb));
    let src = row_kernel(&["x"], rows, r, inner, &body, false);
    cx.single("reduce_rows", src, vec![Bind::In(0), Bind::Out(0)], groups(rows, 1))
}

fn lower_reduce(cx: &LowerCx, red: &Reduce) -> Result<Launch> {
    let shape = cx.shape(0)?.to_vec();
    let axes: Option<Vec<i64>> = match &red.axes {
        Some(a) => Some(a.clone()),
        None if cx.has(1) => Some(cx.host(1).ok_or_else(|| Error::Other("Reduce axes not on the host".into()))?.as_slice::<i64>()?.to_vec()),
        None => None,
    };
    let axes = axes.filter(|a| !a.is_empty());
    let (o, r, i) = contiguous(&shape, axes.as_deref()).ok_or_else(|| Error::Shape("Reduce: axes are not contiguous".into()))?;
    let (comb, init, pre, post) = match red.kind {
        ReduceKind::Sum => (SUM, "0.0", "v", "s"),
        ReduceKind::Mean => (SUM, "0.0", "v", "s / f32(R)"),
        ReduceKind::Max => ("max(p, q)", "-inf_()", "v", "s"),
        ReduceKind::Min => ("min(p, q)", "inf_()", "v", "s"),
        ReduceKind::SumSquare => (SUM, "0.0", "v * v", "s"),
        ReduceKind::L1 => (SUM, "0.0", "abs(v)", "s"),
        ReduceKind::L2 => (SUM, "0.0", "v * v", "sqrt(s)"),
        k => return Err(Error::Other(format!("no GPU kernel for {}", k.name()))),
    };
    reduce_rows(cx, o * i, r, i, comb, init, pre, post)
}

fn lower_softmax(cx: &LowerCx, s: &Softmax) -> Result<Launch> {
    let shape = cx.shape(0)?.to_vec();
    let rank = shape.len() as i64;
    let axis = if s.axis < 0 { s.axis + rank } else { s.axis };
    if !(0..rank.max(1)).contains(&axis) {
        return Err(Error::Shape(format!("Softmax axis {} out of range for rank {rank}", s.axis)));
    }
    let a = axis as usize;
    let outer: usize = shape[..a].iter().product();
    let (r, inner) = if s.flatten_tail || shape.is_empty() { (shape[a..].iter().product(), 1) } else { (shape[a], shape[a + 1..].iter().product()) };
    // The result of input value(s) `xv` (f32 or vec2).
    let write = match s.kind {
        SoftmaxKind::LogSoftmax => "xv - mx - log(sm)",
        _ => "exp(xv - mx) / sm",
    };
    // f16 storage: a contiguous row of even length is written by pairs (one word per thread).
    let paired = cx.pairs() && inner == 1 && r.is_multiple_of(2);
    let store = if paired {
        format!("  for (var r = lid.x * 2u; r < R; r = r + 128u) {{ let xv = ld2_x(base + r); let v = {write}; st2_y(base + r, v.x, v.y); }}")
    } else {
        format!("  for (var r = lid.x; r < R; r = r + 64u) {{ let xv = ld_x(base + r * I); st_y(base + r * I, {write}); }}")
    };
    let body = format!("{}{}{store}", block_reduce("mx", "-inf_()", "v", "max(p, q)"), block_reduce("sm", "0.0", "exp(v - mx)", SUM));
    let rows = outer * inner;
    cx.single("softmax", row_kernel(&["x"], rows, r, inner, &body, paired), vec![Bind::In(0), Bind::Out(0)], groups(rows, 1))
}

fn lower_layernorm(cx: &LowerCx, l: &LayerNorm) -> Result<Launch> {
    let shape = cx.shape(0)?.to_vec();
    let rank = shape.len() as i64;
    let axis = if l.axis < 0 { l.axis + rank } else { l.axis };
    if !(0..rank).contains(&axis) {
        return Err(Error::Shape(format!("LayerNormalization axis {} out of range for rank {rank}", l.axis)));
    }
    let a = axis as usize;
    let (outer, r): (usize, usize) = (shape[..a].iter().product(), shape[a..].iter().product());
    let check = |i: usize| -> Result<()> {
        let n: usize = cx.shape(i)?.iter().product();
        if n != r {
            return Err(Error::Shape(format!("LayerNormalization input {i} has {n} values, expected {r} (broadcast parameters run on CPU)")));
        }
        Ok(())
    };
    check(1)?;
    let has_b = cx.has(2);
    let mut names = vec!["x", "scale"];
    let mut binds = vec![Bind::In(0), Bind::In(1)];
    if has_b {
        check(2)?;
        names.push("bias");
        binds.push(Bind::In(2));
    }
    binds.push(Bind::Out(0));
    // f16 storage with an even row length: one thread per aligned pair of the row.
    let paired = cx.pairs() && r.is_multiple_of(2);
    let store = if paired {
        let b = if has_b { " + ld2_bias(r)" } else { "" };
        format!("  for (var r = lid.x * 2u; r < R; r = r + 128u) {{ let v = (ld2_x(base + r) - mean) * inv * ld2_scale(r){b}; st2_y(base + r, v.x, v.y); }}")
    } else {
        let b = if has_b { " + ld_bias(r)" } else { "" };
        format!("  for (var r = lid.x; r < R; r = r + 64u) {{ st_y(base + r, (ld_x(base + r) - mean) * inv * ld_scale(r){b}); }}")
    };
    let body = format!(
        "{}  let mean = total / f32(R);\n{}  let inv = inverseSqrt(sq / f32(R) + {eps});\n{store}",
        block_reduce("total", "0.0", "v", SUM),
        block_reduce("sq", "0.0", "(v - mean) * (v - mean)", SUM),
        eps = lit(l.epsilon),
    );
    cx.single("layernorm", row_kernel(&names, outer, r, 1, &body, paired), binds, groups(outer, 1))
}
