//! Small WGSL building blocks shared by the kernel templates: bindings, the
//! 1-D launch grid, exact float literals, index unravelling and the fused
//! activation epilogue. Shapes are baked into each generated module as
//! constants (pipelines are cached by source, launches per node and shape).

use std::fmt::Write;

use uniml_core::ops::nn::FusedActivation;

use super::storage::MARK;

/// Threads per workgroup of the 1-D kernels.
pub const WG: u32 = 64;

/// An exact f32 literal (bit pattern), valid for any finite value.
pub fn lit(x: f32) -> String {
    let x = if x.is_nan() {
        0.0
    } else {
        x.clamp(-3.0e38, 3.0e38)
    };
    format!("bitcast<f32>({}u)", x.to_bits())
}

/// Storage bindings in order: tensor inputs, i32 index buffers, then the
/// output tensor. Tensors are reached only through `ld_<name>(i) -> f32` and
/// `st_<name>(i, v: f32)`; index buffers are plain `array<i32>`. This emits
/// one marker per binding, expanded by `LowerCx::dispatch` for the storage of
/// the tensors bound (f32 or packed f16, one range or several: `storage.rs`).
///
/// `paired`: the output is written as whole aligned pairs, `st2_<out>(i, a, b)`
/// with `i` even (in f16 storage one plain store of a word; `st_<out>` exists
/// only in f32 storage). Else it is written per element, `st_<out>(i, v)`: in
/// f16 storage its words are then shared between threads, so atomic and
/// cleared before the node (the fallback where threads cannot own pairs).
pub fn bindings_out(inputs: &[&str], idx: &[&str], out: &str, paired: bool) -> String {
    let mut s = String::new();
    for name in inputs {
        let _ = writeln!(s, "{MARK}in {name}");
    }
    for name in idx {
        let _ = writeln!(s, "{MARK}idx {name}");
    }
    let _ = writeln!(s, "{MARK}{} {out}", if paired { "out2" } else { "out" });
    s
}

/// A 1-D kernel over `n` items: `body` sees `let i: u32` (< n).
pub fn main_1d(n: usize, body: &str) -> String {
    format!(
        "@compute @workgroup_size({WG})\nfn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{\n  let i = gid.x + gid.y * nwg.x * {WG}u;\n  if (i >= {n}u) {{ return; }}\n{body}\n}}\n"
    )
}

/// A complete 1-D kernel writing the `n` elements of output `y`: bindings,
/// `prelude` (helpers), then `fn elem_(i: u32) -> f32` with body `elem`
/// (element `i < n`) and, if given, `fn pair_(i: u32) -> vec2<f32>` with body
/// `pair` (elements `i`, even, and `i + 1`; the second is ignored when
/// `i + 1 == n`, so a pair body may read `ld2_` words). Returns the module and
/// its workgroup counts.
///
/// `pairs` (f16 storage): one thread per aligned output pair, one plain store
/// of the packed word (`pair_`, or `elem_` twice); else one thread per element.
pub fn kernel_1d(inputs: &[&str], idx: &[&str], prelude: &str, n: usize, elem: &str, pair: Option<&str>, pairs: bool) -> (String, [u32; 3]) {
    let mut s = bindings_out(inputs, idx, "y", pairs);
    s.push_str(prelude);
    let _ = writeln!(s, "fn elem_(i: u32) -> f32 {{\n{elem}\n}}");
    if !pairs {
        s.push_str(&main_1d(n, "  st_y(i, elem_(i));"));
        return (s, groups(n, WG));
    }
    let store = match pair {
        Some(p) => {
            let _ = writeln!(s, "fn pair_(i: u32) -> vec2<f32> {{\n{p}\n}}");
            "  let v = pair_(i);\n  st2_y(i, v.x, v.y);".to_string()
        }
        None => format!("  let a = elem_(i);\n  var b = 0.0;\n  if (i + 1u < {n}u) {{ b = elem_(i + 1u); }}\n  st2_y(i, a, b);"),
    };
    s.push_str(&main_1d_pairs(n, &store));
    (s, groups(n.div_ceil(2), WG))
}

/// A 1-D kernel over the aligned pairs of `n` items (launch `groups(n.div_ceil(2), WG)`):
/// `body` sees `let i: u32`, even and < n.
pub fn main_1d_pairs(n: usize, body: &str) -> String {
    format!(
        "@compute @workgroup_size({WG})\nfn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{\n  let i = (gid.x + gid.y * nwg.x * {WG}u) * 2u;\n  if (i >= {n}u) {{ return; }}\n{body}\n}}\n"
    )
}

/// Workgroup counts for `items` work items of `per_group` each (2-D beyond 65535 groups).
pub fn groups(items: usize, per_group: u32) -> [u32; 3] {
    let g = (items as u64).div_ceil(per_group as u64).max(1);
    if g <= 65535 {
        [g as u32, 1, 1]
    } else {
        [65535, g.div_ceil(65535) as u32, 1]
    }
}

/// Code that splits linear index `idx` over `shape` (row-major) and sums
/// `coord * stride` for each named stride set into `var <name>: i32`.
pub fn unravel(idx: &str, shape: &[usize], sets: &[(&str, &[i64])]) -> String {
    let mut s = String::new();
    for (name, _) in sets {
        let _ = writeln!(s, "  var {name}: i32 = 0;");
    }
    let _ = writeln!(s, "  var r_: u32 = {idx};");
    for d in (0..shape.len()).rev() {
        if shape[d] == 1 {
            continue;
        }
        let _ = writeln!(s, "  {{ let c = i32(r_ % {}u); r_ = r_ / {}u;", shape[d], shape[d]);
        for (name, st) in sets {
            if st[d] != 0 {
                let _ = writeln!(s, "    {name} += c * ({});", st[d]);
            }
        }
        let _ = writeln!(s, "  }}");
    }
    s
}

/// Row-major strides.
pub fn strides(shape: &[usize]) -> Vec<i64> {
    let mut st = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for d in (0..shape.len()).rev() {
        st[d] = acc;
        acc *= shape[d] as i64;
    }
    st
}

/// Strides of `shape` broadcast to `out` (right-aligned; 0 on broadcast dims).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<i64> {
    let st = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len()).map(|d| if d < off || shape[d - off] == 1 { 0 } else { st[d - off] }).collect()
}

/// `fn act(v: f32) -> f32` for a fused activation epilogue.
pub fn act_fn(a: FusedActivation) -> String {
    let body = match a {
        FusedActivation::None => "return v;".to_string(),
        FusedActivation::Relu => "return max(v, 0.0);".to_string(),
        FusedActivation::LeakyRelu { alpha } => format!("return select(v, v * {}, v < 0.0);", lit(alpha)),
        FusedActivation::Clip { min, max } => format!("return min(max(v, {}), {});", lit(min), lit(max)),
        FusedActivation::HardSwish => "return v * clamp(v / 6.0 + 0.5, 0.0, 1.0);".to_string(),
        FusedActivation::HardSwishAffine { scale, shift } => {
            format!("return v * clamp(v / 6.0 + 0.5, 0.0, 1.0) * {} + {};", lit(scale), lit(shift))
        }
        FusedActivation::HardSigmoid { alpha, beta } => format!("return clamp({} * v + {}, 0.0, 1.0);", lit(alpha), lit(beta)),
        FusedActivation::Sigmoid => "return sigmoid_(v);".to_string(),
        FusedActivation::SiLU => "return v * sigmoid_(v);".to_string(),
        FusedActivation::Gelu => "return 0.5 * v * (1.0 + erf_(v * 0.70710678118654752));".to_string(),
    };
    format!("{MATH}\nfn act(v: f32) -> f32 {{ {body} }}\n")
}

/// `inf_()`: +∞ at run time (a WGSL constant expression may not be infinite).
/// Max/min reductions start from ∓∞ like the CPU kernels, so an all -∞ row stays -∞.
pub const INF: &str = "var<private> inf_bits_: u32 = 0x7f800000u;\nfn inf_() -> f32 { return bitcast<f32>(inf_bits_); }\n";

/// Numerically careful helpers used by activations and unary ops.
pub const MATH: &str = r#"
fn sigmoid_(v: f32) -> f32 {
  if (v >= 0.0) { return 1.0 / (1.0 + exp(-v)); }
  let e = exp(v);
  return e / (1.0 + e);
}
fn tanh_(v: f32) -> f32 {
  let c = clamp(v, -15.0, 15.0);
  let e = exp(2.0 * c);
  return (e - 1.0) / (e + 1.0);
}
// erf: Abramowitz & Stegun 7.1.26 refined to |error| < 1.5e-7.
fn erf_(v: f32) -> f32 {
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return select(y, -y, v < 0.0);
}
fn softplus_(v: f32) -> f32 {
  if (v > 20.0) { return v; }
  return log(1.0 + exp(v));
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unravel_skips_unit_dims_and_zero_strides() {
        let s = unravel("i", &[2, 1, 3], &[("a", &[3, 0, 1]), ("b", &[0, 0, 1])]);
        assert!(s.contains("r_ % 3u") && s.contains("r_ % 2u") && !s.contains("% 1u"));
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
    }

    #[test]
    fn literals_are_exact_and_finite() {
        assert_eq!(lit(1.0), format!("bitcast<f32>({}u)", 1f32.to_bits()));
        assert_eq!(lit(f32::INFINITY), lit(3.0e38));
    }
}
