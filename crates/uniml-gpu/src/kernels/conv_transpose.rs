//! `ConvTranspose` (1-D/2-D, groups, strides, dilations, explicit pads,
//! output_padding; bias and fused activation): one thread per output gathers
//! the inputs that scatter into it. `auto_pad` and `output_shape` run on CPU.

use uniml_core::ops::nn::conv_transpose::ConvTranspose;
use uniml_core::ops::nn::padding::AutoPad;
use uniml_data::{Error, Result};

use super::wgsl::{act_fn, kernel_1d};
use super::{Bind, Facts, Launch, LowerCx, Support};

pub(crate) fn support(f: &Facts) -> Option<std::result::Result<Support, String>> {
    let c = f.node.op.as_any().downcast_ref::<ConvTranspose>()?;
    Some((|| {
        f.f32s(&[0, 1])?;
        if f.input(2).is_some() {
            f.f32s(&[2])?;
        }
        if c.auto_pad != AutoPad::NotSet || c.output_shape.is_some() {
            return Err("ConvTranspose with auto_pad or output_shape runs on CPU".into());
        }
        match f.rank(0) {
            Some(3 | 4) => Ok(Support::Kernel),
            Some(r) => Err(format!("{r}-D ConvTranspose runs on CPU (1-D and 2-D on GPU)")),
            None => Err("input rank unknown".into()),
        }
    })())
}

pub(crate) fn lower(cx: &LowerCx) -> Option<Result<Launch>> {
    let c = cx.node.op.as_any().downcast_ref::<ConvTranspose>()?;
    Some(lower_ct(cx, c))
}

fn lower_ct(cx: &LowerCx, ct: &ConvTranspose) -> Result<Launch> {
    let x = cx.shape(0)?.to_vec();
    let wt = cx.shape(1)?.to_vec();
    let out = cx.out(0)?.to_vec();
    let nd = x.len().saturating_sub(2);
    if wt.len() != x.len() || out.len() != x.len() || !(1..=2).contains(&nd) {
        return Err(Error::Shape(format!("ConvTranspose: input {x:?}, weight {wt:?} and output {out:?} must be 3-D or 4-D alike")));
    }
    let group = ct.group.max(1);
    let (c, mg) = (x[1], wt[1]);
    if wt[0] != c || c % group != 0 || out[1] != mg * group {
        return Err(Error::Shape(format!("ConvTranspose: weight {wt:?} does not fit input {x:?} with group {group}")));
    }
    let or1 = |v: &[usize], i: usize| v.get(i).copied().unwrap_or(1);
    let pads = ct.pads.clone().unwrap_or_else(|| vec![0; 2 * nd]);
    if pads.len() != 2 * nd {
        return Err(Error::Shape(format!("ConvTranspose pads {pads:?} must have {} values", 2 * nd)));
    }
    // 2-D form: 1-D maps to H = 1.
    let two = |v: &[usize], d: usize| if v.len() == 2 { (v[0], v[1]) } else { (d, v.first().copied().unwrap_or(d)) };
    let (h, w) = two(&x[2..], 1);
    let (kh, kw) = two(&wt[2..], 1);
    let (oh, ow) = two(&out[2..], 1);
    let s: Vec<usize> = (0..nd).map(|i| or1(&ct.strides, i)).collect();
    let d: Vec<usize> = (0..nd).map(|i| or1(&ct.dilations, i)).collect();
    let (sh, sw) = two(&s, 1);
    let (dh, dw) = two(&d, 1);
    let (ph, pw) = two(&pads[..nd], 0);
    let cg = c / group;
    let has_bias = cx.has(2);
    let mut names = vec!["x", "wt"];
    let mut binds = vec![Bind::In(0), Bind::In(1)];
    if has_bias {
        names.push("bias");
        binds.push(Bind::In(2));
    }
    binds.push(Bind::Out(0));
    let m = mg * group;
    let total = out.iter().product::<usize>();
    let body = format!(
        r#"  let ox = i % {ow}u; let oy = (i / {ow}u) % {oh}u; let co = (i / {ohw}u) % {m}u; let img = i / {mohw}u;
  let g = co / {mg}u; let cm = co % {mg}u;
  var s = 0.0;
  for (var ky = 0u; ky < {kh}u; ky = ky + 1u) {{
    let ty = i32(oy) + {ph} - i32(ky * {dh}u);
    if (ty < 0 || ty % {sh} != 0) {{ continue; }}
    let iy = u32(ty / {sh});
    if (iy >= {h}u) {{ continue; }}
    for (var kx = 0u; kx < {kw}u; kx = kx + 1u) {{
      let tx = i32(ox) + {pw} - i32(kx * {dw}u);
      if (tx < 0 || tx % {sw} != 0) {{ continue; }}
      let ix = u32(tx / {sw});
      if (ix >= {w}u) {{ continue; }}
      for (var cc = 0u; cc < {cg}u; cc = cc + 1u) {{
        let ci = g * {cg}u + cc;
        s = fma(ld_x(((img * {c}u + ci) * {h}u + iy) * {w}u + ix), ld_wt(((ci * {mg}u + cm) * {kh}u + ky) * {kw}u + kx), s);
      }}
    }}
  }}
  return act(s{b});"#,
        ohw = oh * ow,
        mohw = m * oh * ow,
        ph = ph as i32,
        pw = pw as i32,
        sh = sh as i32,
        sw = sw as i32,
        b = if has_bias { " + ld_bias(co)" } else { "" },
    );
    let (src, g) = kernel_1d(&names, &[], &act_fn(ct.activation), total, &body, None, cx.pairs());
    cx.single("conv_transpose", src, binds, g)
}
