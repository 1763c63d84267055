//! Data movement: zero-copy views (`Reshape`, `Flatten`, `Squeeze`,
//! `Unsqueeze`, `Identity`), one strided-copy template for `Transpose`,
//! `Slice`, `Expand` and `Concat`, and `Gather` with host indices.

use uniml_core::ops::elementwise::identity::Identity;
use uniml_core::ops::shape::concat::Concat;
use uniml_core::ops::shape::expand::Expand;
use uniml_core::ops::shape::gather::Gather;
use uniml_core::ops::shape::reshape::{Flatten, Reshape, Squeeze, Unsqueeze};
use uniml_core::ops::shape::slice::{slice_axis, AxisSlice, Slice};
use uniml_core::ops::shape::transpose::Transpose;
use uniml_core::{DType, Node, Tensor};
use uniml_data::{Error, Result};

use super::wgsl::{bindings_out, broadcast_strides, groups, kernel_1d, main_1d, main_1d_pairs, strides, unravel, WG};
use super::{Bind, Dispatch, Facts, Launch, LowerCx, OutSpec, Support};

fn is_view(node: &Node) -> bool {
    let op = node.op.as_any();
    op.is::<Reshape>() || op.is::<Flatten>() || op.is::<Squeeze>() || op.is::<Unsqueeze>() || op.is::<Identity>()
}

pub(crate) fn support(f: &Facts) -> Option<std::result::Result<Support, String>> {
    let op = f.node.op.as_any();
    if is_view(f.node) {
        return Some(f.f32s(&[0]).map(|_| Support::View));
    }
    if op.is::<Transpose>() || op.is::<Slice>() || op.is::<Expand>() {
        return Some(f.f32s(&[0]).and_then(|_| match f.rank(0) {
            Some(r) if r <= 8 => Ok(Support::Kernel),
            _ => Err("rank unknown or > 8".into()),
        }));
    }
    if op.is::<Concat>() {
        let all: Vec<usize> = (0..f.node.inputs.len()).collect();
        return Some(f.f32s(&all).map(|_| Support::Kernel));
    }
    if op.is::<Gather>() {
        return Some(f.f32s(&[0]).and_then(|_| match f.dtype(1) {
            Some(DType::I64 | DType::I32) => Ok(Support::Kernel),
            _ => Err("Gather indices must be int32/int64".into()),
        }));
    }
    None
}

pub(crate) fn lower(cx: &LowerCx) -> Option<Result<Launch>> {
    let op = cx.node.op.as_any();
    if is_view(cx.node) {
        return Some(cx.out(0).map(|s| Launch { outputs: vec![OutSpec::View { input: 0, shape: s.to_vec() }], dispatches: vec![] }));
    }
    if let Some(t) = op.downcast_ref::<Transpose>() {
        return Some(lower_transpose(cx, t));
    }
    if let Some(s) = op.downcast_ref::<Slice>() {
        return Some(lower_slice(cx, s));
    }
    if op.is::<Expand>() {
        return Some((|| {
            let (x, out) = (cx.shape(0)?.to_vec(), cx.out(0)?.to_vec());
            copy_launch(cx, &out, &broadcast_strides(&x, &out), 0)
        })());
    }
    if let Some(c) = op.downcast_ref::<Concat>() {
        return Some(lower_concat(cx, c));
    }
    if let Some(g) = op.downcast_ref::<Gather>() {
        return Some(lower_gather(cx, g));
    }
    None
}

/// `y[i] = x[off + Σ coord(i)·src]` over the output shape.
fn copy_launch(cx: &LowerCx, out: &[usize], src: &[i64], off: i64) -> Result<Launch> {
    let n: usize = out.iter().product();
    let body = format!("{}  return ld_x(u32(os + ({off})));", unravel("i", out, &[("os", src)]));
    let (src, g) = kernel_1d(&["x"], &[], "", n, &body, None, cx.pairs());
    cx.single("strided_copy", src, vec![Bind::In(0), Bind::Out(0)], g)
}

fn lower_transpose(cx: &LowerCx, t: &Transpose) -> Result<Launch> {
    let x = cx.shape(0)?.to_vec();
    let perm = t.perm_for(x.len())?;
    let st = strides(&x);
    let out: Vec<usize> = perm.iter().map(|&p| x[p]).collect();
    let src: Vec<i64> = perm.iter().map(|&p| st[p]).collect();
    copy_launch(cx, &out, &src, 0)
}

fn host_ints(cx: &LowerCx, i: usize) -> Result<Option<Vec<i64>>> {
    if !cx.has(i) {
        return Ok(None);
    }
    let t: &Tensor = cx.host(i).ok_or_else(|| Error::Other(format!("{} input {i} is not on the host", cx.node.op.name())))?;
    Ok(Some(t.to_f64_vec()?.into_iter().map(|v| v as i64).collect()))
}

fn lower_slice(cx: &LowerCx, s: &Slice) -> Result<Launch> {
    let x = cx.shape(0)?.to_vec();
    let rank = x.len();
    let pick = |attr: &Option<Vec<i64>>, i: usize| -> Result<Option<Vec<i64>>> {
        match attr {
            Some(a) => Ok(Some(a.clone())),
            None => host_ints(cx, i),
        }
    };
    let (starts, ends) = match (pick(&s.starts, 1)?, pick(&s.ends, 2)?) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(Error::Shape("Slice: starts and ends are required".into())),
    };
    let axes = pick(&s.axes, 3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = pick(&s.steps, 4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(Error::Shape("Slice: starts, ends, axes and steps must have the same length".into()));
    }
    let mut plan: Vec<AxisSlice> = x.iter().map(|&d| AxisSlice { start: 0, step: 1, len: d }).collect();
    for k in 0..starts.len() {
        let a = if axes[k] < 0 { axes[k] + rank as i64 } else { axes[k] };
        if !(0..rank as i64).contains(&a) {
            return Err(Error::Shape(format!("Slice: axis {} out of range for rank {rank}", axes[k])));
        }
        plan[a as usize] = slice_axis(starts[k], ends[k], steps[k], x[a as usize])?;
    }
    let st = strides(&x);
    let out: Vec<usize> = plan.iter().map(|p| p.len).collect();
    let src: Vec<i64> = plan.iter().zip(&st).map(|(p, s)| p.step * s).collect();
    let off: i64 = plan.iter().zip(&st).map(|(p, s)| p.start * s).sum();
    if out.iter().product::<usize>() == 0 {
        return Ok(Launch { outputs: vec![OutSpec::New(out)], dispatches: vec![] });
    }
    copy_launch(cx, &out, &src, off)
}

fn lower_concat(cx: &LowerCx, c: &Concat) -> Result<Launch> {
    let out = cx.out(0)?.to_vec();
    let rank = out.len() as i64;
    let axis = if c.axis < 0 { c.axis + rank } else { c.axis };
    if !(0..rank).contains(&axis) {
        return Err(Error::Shape(format!("Concat axis {} out of range for rank {rank}", c.axis)));
    }
    let axis = axis as usize;
    let ost = strides(&out);
    let inner: usize = out[axis + 1..].iter().product();
    // One dispatch per input, each writing its own blocks of the output. In f16 storage, when
    // every block (an input's `dim · inner` run) has even length, the blocks start on words:
    // each thread copies an aligned pair. Otherwise a word may span two inputs' blocks, so
    // stores are per element (atomic).
    let mut paired = cx.pairs();
    for j in 0..cx.node.inputs.len() {
        paired &= (cx.shape(j)?.get(axis).copied().unwrap_or(0) * inner).is_multiple_of(2);
    }
    let mut dispatches: Vec<Dispatch> = Vec::new();
    let mut at = 0usize;
    for j in 0..cx.node.inputs.len() {
        let s = cx.shape(j)?.to_vec();
        let n: usize = s.iter().product();
        if n > 0 {
            let (to, off) = (unravel("i", &s, &[("od", &ost)]), at as i64 * ost[axis]);
            let (main, g) = if paired {
                (main_1d_pairs(n, &format!("{to}  let v = ld2_x(i);\n  st2_y(u32(od + {off}), v.x, v.y);")), groups(n.div_ceil(2), WG))
            } else {
                (main_1d(n, &format!("{to}  st_y(u32(od + {off}), ld_x(i));")), groups(n, WG))
            };
            let src = format!("{}{main}", bindings_out(&["x"], &[], "y", paired));
            dispatches.push(cx.dispatch("concat", src, vec![Bind::In(j), Bind::Out(0)], g)?);
        }
        at += s.get(axis).copied().unwrap_or(0);
    }
    Ok(Launch { outputs: vec![OutSpec::New(out)], dispatches })
}

fn lower_gather(cx: &LowerCx, g: &Gather) -> Result<Launch> {
    let x = cx.shape(0)?.to_vec();
    let idx = cx.shape(1)?.to_vec();
    let rank = x.len() as i64;
    let axis = if g.axis < 0 { g.axis + rank } else { g.axis };
    if !(0..rank).contains(&axis) {
        return Err(Error::Shape(format!("Gather axis {} out of range for rank {rank}", g.axis)));
    }
    let a = axis as usize;
    let (outer, dim, inner): (usize, usize, usize) = (x[..a].iter().product(), x[a], x[a + 1..].iter().product());
    let ni: usize = idx.iter().product();
    let n = outer * ni * inner;
    let out = cx.out(0)?.to_vec();
    if n == 0 {
        return Ok(Launch { outputs: vec![OutSpec::New(out)], dispatches: vec![] });
    }
    let body = format!(
        "  let j = i % {inner}u; let t = i / {inner}u; let q = t % {ni}u; let o = t / {ni}u;\n  return ld_x((o * {dim}u + u32(ix[q])) * {inner}u + j);"
    );
    let (src, g) = kernel_1d(&["x"], &["ix"], "", n, &body, None, cx.pairs());
    let d = cx.dispatch("gather", src, vec![Bind::In(0), Bind::Idx { input: 1, dim }, Bind::Out(0)], g)?;
    Ok(Launch { outputs: vec![OutSpec::New(out)], dispatches: vec![d] })
}
