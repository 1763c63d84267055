//! `Resize` / `Upsample` (nearest, linear, cubic; every coordinate mode but
//! tf_crop_and_resize; scales or sizes): one thread per output, taps from the
//! core's own per-axis tables (`axis_table`), baked into the module.

use std::fmt::Write;

use uniml_core::ops::nn::resize::{AspectPolicy, Resize};
use uniml_core::ops::nn::resize_kernels::{axis_table, CoordMode};
use uniml_data::{Error, Result};

use super::wgsl::{kernel_1d, strides};
use super::{Bind, Facts, Launch, LowerCx, OutSpec, Support};

/// Host inputs of a Resize node: roi, scales, sizes.
pub(crate) fn host_inputs(r: &Resize) -> Vec<usize> {
    [r.roi_input, r.scales_input, r.sizes_input].into_iter().flatten().collect()
}

pub(crate) fn support(f: &Facts) -> Option<std::result::Result<Support, String>> {
    let r = f.node.op.as_any().downcast_ref::<Resize>()?;
    Some((|| {
        f.f32s(&[0])?;
        if r.interp.antialias {
            return Err("antialiased Resize runs on CPU".into());
        }
        if r.interp.coord == CoordMode::TfCropAndResize {
            return Err("tf_crop_and_resize runs on CPU".into());
        }
        if r.keep_aspect != AspectPolicy::Stretch || r.axes.is_some() {
            return Err("keep_aspect_ratio_policy / axes run on CPU".into());
        }
        Ok(Support::Kernel)
    })())
}

fn floats(cx: &LowerCx, i: Option<usize>) -> Result<Option<Vec<f64>>> {
    match i.filter(|&i| cx.has(i)) {
        None => Ok(None),
        Some(i) => {
            let t = cx.host(i).ok_or_else(|| Error::Other(format!("Resize input {i} is not on the host")))?;
            let v = t.to_f64_vec()?;
            Ok((!v.is_empty()).then_some(v))
        }
    }
}

pub(crate) fn lower(cx: &LowerCx) -> Option<Result<Launch>> {
    let r = cx.node.op.as_any().downcast_ref::<Resize>()?;
    Some(lower_resize(cx, r))
}

fn lower_resize(cx: &LowerCx, r: &Resize) -> Result<Launch> {
    let xs = cx.shape(0)?.to_vec();
    let rank = xs.len();
    let mut out = xs.clone();
    let mut sc = vec![1f64; rank];
    let sizes = floats(cx, r.sizes_input)?;
    let scales = match &r.const_scales {
        Some(c) => Some(c.iter().map(|&v| v as f64).collect()),
        None => floats(cx, r.scales_input)?,
    };
    match (sizes, scales) {
        (Some(sz), _) => {
            if sz.len() != rank {
                return Err(Error::Shape(format!("Resize sizes has {} values, expected {rank}", sz.len())));
            }
            for a in 0..rank {
                out[a] = sz[a].max(0.0) as usize;
                sc[a] = if xs[a] == 0 { 1.0 } else { out[a] as f64 / xs[a] as f64 };
            }
        }
        (None, Some(s)) => {
            if s.len() != rank || s.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
                return Err(Error::Shape(format!("Resize scales {s:?} must be {rank} positive values")));
            }
            for a in 0..rank {
                sc[a] = s[a] as f32 as f64;
                out[a] = (sc[a] * xs[a] as f64) as usize;
            }
        }
        (None, None) => return Err(Error::Shape("Resize needs either scales or sizes".into())),
    }
    if out != cx.out(0)? {
        return Err(Error::Shape(format!("Resize: output {out:?} disagrees with the shape rules' {:?}", cx.out(0)?)));
    }
    let n: usize = out.iter().product();
    if n == 0 || xs.iter().product::<usize>() == 0 {
        return Ok(Launch { outputs: vec![OutSpec::New(out)], dispatches: vec![] });
    }
    let ist = strides(&xs);
    let mut tables = String::new();
    let mut body = String::from("  var r_ = i;\n");
    for d in (0..rank).rev() {
        let _ = writeln!(body, "  let c{d} = r_ % {}u; r_ = r_ / {}u;", out[d], out[d]);
    }
    let mut base = String::from("0u");
    let mut loops = String::new();
    let mut closes = String::new();
    let mut weight = String::from("1.0");
    let mut offset = String::new();
    for a in 0..rank {
        let identity = out[a] == xs[a] && (sc[a] - 1.0).abs() < 1e-9;
        if identity {
            let _ = write!(base, " + c{a} * {}u", ist[a]);
            continue;
        }
        let t = axis_table(&r.interp, xs[a], out[a], sc[a], (0.0, 1.0));
        let len = t.idx.len().max(1);
        let idx: Vec<String> = t.idx.iter().map(|v| format!("{v}u")).collect();
        // Module-scope initializers must be const expressions: decimal literals (shortest round-trip form, exact).
        let w: Vec<String> = t.w.iter().map(|v| if v.is_finite() { format!("{v:e}f") } else { "0.0f".into() }).collect();
        let _ = writeln!(tables, "var<private> IX{a}: array<u32, {len}> = array<u32, {len}>({});", if idx.is_empty() { "0u".into() } else { idx.join(", ") });
        let _ = writeln!(tables, "var<private> W{a}: array<f32, {len}> = array<f32, {len}>({});", if w.is_empty() { "0.0".into() } else { w.join(", ") });
        let _ = writeln!(loops, "  for (var k{a} = 0u; k{a} < {n}u; k{a} = k{a} + 1u) {{\n    let t{a} = c{a} * {n}u + k{a};", n = t.n);
        closes.push_str("  }\n");
        let _ = write!(weight, " * W{a}[t{a}]");
        let _ = write!(offset, " + IX{a}[t{a}] * {}u", ist[a]);
    }
    let _ = write!(
        body,
        "  let base = {base};\n  var acc = 0.0;\n{loops}    acc = acc + {weight} * ld_x(base{offset});\n{closes}  return acc;"
    );
    let (src, g) = kernel_1d(&["x"], &[], &tables, n, &body, None, cx.pairs());
    cx.single("resize", src, vec![Bind::In(0), Bind::Out(0)], g)
}
