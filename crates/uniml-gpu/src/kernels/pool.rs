//! `MaxPool` / `AveragePool` over 1-D and 2-D windows (pads, strides,
//! dilations, ceil mode, `count_include_pad`): one thread per output.

use uniml_core::ops::nn::pool::{Pool, PoolKind};
use uniml_data::{Error, Result};

use super::wgsl::{kernel_1d, INF};
use super::{Bind, Facts, Launch, LowerCx, Support};

pub(crate) fn support(f: &Facts) -> Option<std::result::Result<Support, String>> {
    let p = f.node.op.as_any().downcast_ref::<Pool>()?;
    Some((|| {
        f.f32s(&[0])?;
        if p.with_indices || f.node.outputs.len() > 1 {
            return Err("MaxPool indices run on CPU".into());
        }
        if matches!(p.kind, PoolKind::Lp { .. }) {
            return Err("LpPool runs on CPU".into());
        }
        match f.rank(0) {
            Some(3 | 4) => Ok(Support::Kernel),
            Some(r) => Err(format!("{r}-D pooling runs on CPU (1-D and 2-D on GPU)")),
            None => Err("input rank unknown".into()),
        }
    })())
}

pub(crate) fn lower(cx: &LowerCx) -> Option<Result<Launch>> {
    let p = cx.node.op.as_any().downcast_ref::<Pool>()?;
    Some(lower_pool(cx, p))
}

fn lower_pool(cx: &LowerCx, p: &Pool) -> Result<Launch> {
    let x = cx.shape(0)?.to_vec();
    if !(3..=4).contains(&x.len()) {
        return Err(Error::Shape(format!("{}: input must be 3-D or 4-D, got {x:?}", p.kind_name())));
    }
    let geo = p.window.resolve(&x[2..], &p.kernel_shape)?;
    let two = |v: &[usize], d: usize| if v.len() == 2 { (v[0], v[1]) } else { (d, v[0]) };
    let (h, w) = two(&x[2..], 1);
    let (kh, kw) = two(&geo.kernel, 1);
    let (oh, ow) = two(&geo.output, 1);
    let (sh, sw) = two(&geo.strides, 1);
    let (dh, dw) = two(&geo.dilations, 1);
    let (ph, pw) = two(&geo.pad_begin, 0);
    let (eh, ew) = two(&geo.pad_end, 0);
    let planes = x[0] * x[1];
    let total = planes * oh * ow;
    let (init, step, fin) = match p.kind {
        PoolKind::Max => ("var best = -inf_(); var any = false;", "best = max(best, v); any = true;", "return select(0.0, best, any);".to_string()),
        PoolKind::Average { count_include_pad } => (
            "var s = 0.0; var n = 0u;",
            "s = s + v; n = n + 1u;",
            if count_include_pad {
                "return select(0.0, s / f32(cy * cx), cy * cx > 0u);".to_string()
            } else {
                "return select(0.0, s / f32(n), n > 0u);".to_string()
            },
        ),
        PoolKind::Lp { .. } => return Err(Error::Other("LpPool has no GPU kernel".into())),
    };
    let body = format!(
        r#"  let ox = i % {ow}u; let oy = (i / {ow}u) % {oh}u; let plane = i / {ohw}u;
  {init}
  var cy = 0u; var cx = 0u;
  for (var ky = 0u; ky < {kh}u; ky = ky + 1u) {{
    let iy = i32(oy * {sh}u + ky * {dh}u) - {ph};
    if (iy >= -{ph} && iy < {h} + {eh}) {{ cy = cy + 1u; }}
  }}
  for (var kx = 0u; kx < {kw}u; kx = kx + 1u) {{
    let ix = i32(ox * {sw}u + kx * {dw}u) - {pw};
    if (ix >= -{pw} && ix < {w} + {ew}) {{ cx = cx + 1u; }}
  }}
  for (var ky = 0u; ky < {kh}u; ky = ky + 1u) {{
    let iy = i32(oy * {sh}u + ky * {dh}u) - {ph};
    if (iy < 0 || iy >= {h}) {{ continue; }}
    for (var kx = 0u; kx < {kw}u; kx = kx + 1u) {{
      let ix = i32(ox * {sw}u + kx * {dw}u) - {pw};
      if (ix < 0 || ix >= {w}) {{ continue; }}
      let v = ld_x((plane * {hu}u + u32(iy)) * {wu}u + u32(ix));
      {step}
    }}
  }}
  {fin}"#,
        ohw = oh * ow,
        ph = ph as i32,
        pw = pw as i32,
        eh = eh as i32,
        ew = ew as i32,
        h = h as i32,
        w = w as i32,
        hu = h,
        wu = w,
    );
    let (src, g) = kernel_1d(&["x"], &[], INF, total, &body, None, cx.pairs());
    cx.single("pool", src, vec![Bind::In(0), Bind::Out(0)], g)
}

trait KindName {
    fn kind_name(&self) -> &'static str;
}
impl KindName for Pool {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "MaxPool",
            PoolKind::Average { .. } => "AveragePool",
            PoolKind::Lp { .. } => "LpPool",
        }
    }
}
