//! How a kernel's tensors sit in storage buffers, and the WGSL that reads and
//! writes them. Templates never index a tensor binding directly: they call
//! `ld_<name>(i) -> f32` and `st_<name>(i, v)` (index buffers stay plain
//! `array<i32>`), and [`bindings_out`](super::wgsl::bindings_out) leaves one marker per
//! binding that [`expand`] turns into declarations plus those two functions
//! for the tensor actually bound:
//!
//! - **f32** storage: `array<f32>`;
//! - **f16** storage ([`crate::GpuPrecision::F16Storage`]): pairs of halves in
//!   `array<u32>`, read with WGSL's core `unpack2x16float` and written with
//!   `pack2x16float` (no `shader-f16` feature needed). Two neighbouring
//!   elements share a word, so an output is written one of two ways, chosen
//!   by the template per launch (the marker it emits):
//!   - **paired** (`//@bind out2`, the usual case): each thread owns whole
//!     words and calls `st2_<name>(i, a, b)` for elements `i` (even) and
//!     `i + 1` (ignored past the end): one plain store of the packed pair,
//!     no clearing. In f32 storage `st2_` is two stores and `st_` exists too.
//!   - **shared words** (`//@bind out`, the fallback for kernels whose
//!     threads cannot own aligned pairs, e.g. a tiled GEMM with an odd row
//!     length): `array<atomic<u32>>`, cleared before the node (the launch
//!     says so: [`Expanded::clears`]) and written per element with `atomicOr`
//!     (so a kernel must store each output element once per node).
//!
//!   Inputs also get `ld2_<name>(i) -> vec2<f32>` (elements `i`, even, and
//!   `i + 1`) where the template calls it: one word, one unpack.
//!   Stores saturate to ±65504 (f16's largest finite value): a
//!   finite f32 result never becomes ±inf in storage; ±inf and NaN stay as they are.
//! - **split**: a tensor larger than the device's `max_storage_buffer_binding_size`
//!   stays one buffer but is bound as several ranges (offsets aligned to
//!   `min_storage_buffer_offset_alignment`); the accessors pick the range.

use std::fmt::Write;

use uniml_data::Result;

use crate::context::backend_err;

/// How device tensors are stored for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Storage {
    /// Packed f16 pairs instead of f32.
    pub f16: bool,
    /// Largest bytes of one binding (already aligned down to `align`).
    pub chunk_bytes: u64,
    /// Storage buffers one shader may bind.
    pub max_bindings: u32,
}

impl Storage {
    pub fn new(limits: &wgpu::Limits, f16: bool) -> Storage {
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(4);
        let max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let chunk_bytes = (max / align) * align;
        Storage { f16, chunk_bytes: chunk_bytes.max(align), max_bindings: limits.max_storage_buffers_per_shader_stage }
    }

    /// Bytes a tensor of `elems` elements occupies (a multiple of 4, at least 4).
    pub fn bytes(&self, elems: usize) -> u64 {
        let b = if self.f16 { (elems as u64).div_ceil(2) * 4 } else { elems as u64 * 4 };
        b.max(4)
    }

    /// Elements per binding range.
    fn chunk_elems(&self) -> u64 {
        if self.f16 {
            self.chunk_bytes / 2
        } else {
            self.chunk_bytes / 4
        }
    }

    /// Byte ranges `(offset, size)` binding a tensor of `elems` elements.
    pub fn ranges(&self, elems: usize) -> Vec<(u64, u64)> {
        let total = self.bytes(elems);
        let mut out = Vec::new();
        let mut off = 0;
        while off < total {
            let size = (total - off).min(self.chunk_bytes);
            out.push((off, size));
            off += size;
        }
        out
    }
}

/// What one marker binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    In,
    Idx,
    /// An output written per element (atomic words in f16 storage).
    Out,
    /// An output written as whole aligned pairs (plain stores in f16 storage).
    Out2,
}

pub(crate) const MARK: &str = "//@bind ";

/// Per bind, the byte ranges `(offset, size)` of its buffer, bound as consecutive bindings.
pub(crate) type Ranges = Vec<Vec<(u64, u64)>>;

/// A template with its bindings expanded.
#[derive(Debug)]
pub(crate) struct Expanded {
    pub wgsl: String,
    /// Per marker, the byte ranges to bind (in binding order).
    pub ranges: Ranges,
    /// An output is written per element into shared f16 words (`atomicOr`):
    /// the node's outputs must be cleared first.
    pub clears: bool,
}

/// Replaces the binding markers of `src` by declarations and accessors.
/// `elems[k]` is the element count of the k-th marker's tensor.
pub(crate) fn expand(src: &str, elems: &[usize], st: &Storage) -> Result<Expanded> {
    let mut out = String::with_capacity(src.len() + 512);
    let mut ranges = Vec::new();
    let mut clears = false;
    let mut b = 0u32;
    let mut k = 0usize;
    for line in src.split_inclusive('\n') {
        let Some(rest) = line.trim_end().strip_prefix(MARK) else {
            out.push_str(line);
            continue;
        };
        let (kind, name) = match rest.split_once(' ') {
            Some(("in", n)) => (Kind::In, n),
            Some(("idx", n)) => (Kind::Idx, n),
            Some(("out", n)) => (Kind::Out, n),
            Some(("out2", n)) => (Kind::Out2, n),
            _ => return Err(backend_err(format!("internal: bad binding marker '{rest}'"))),
        };
        let n = *elems.get(k).ok_or_else(|| backend_err("internal: a binding marker has no tensor"))?;
        k += 1;
        if kind == Kind::Idx {
            let bytes = (n as u64 * 4).max(4);
            if bytes > st.chunk_bytes {
                return Err(backend_err(format!("{n} indices exceed the device's storage binding limit of {} bytes", st.chunk_bytes)));
            }
            let _ = writeln!(out, "@group(0) @binding({b}) var<storage, read> {name}: array<i32>;");
            b += 1;
            ranges.push(vec![(0, bytes)]);
            continue;
        }
        let r = st.ranges(n);
        let parts = r.len();
        let word = match (kind, st.f16) {
            (_, false) => "f32",
            (Kind::Out, true) => "atomic<u32>",
            (_, true) => "u32",
        };
        clears |= kind == Kind::Out && st.f16;
        let access = if kind == Kind::In { "read" } else { "read_write" };
        let part_name = |p: usize| if parts == 1 { name.to_string() } else { format!("{name}_{p}") };
        for p in 0..parts {
            let _ = writeln!(out, "@group(0) @binding({b}) var<storage, {access}> {}: array<{word}>;", part_name(p));
            b += 1;
        }
        // An access on one range, `j` being the index within it (`pair`: the
        // f16 word of elements j, j + 1, j even; f16 ranges hold whole words).
        let one = |p: usize, pair: bool| -> String {
            let a = part_name(p);
            match (kind, st.f16, pair) {
                (Kind::In, false, _) => format!("return {a}[j];"),
                (Kind::In, true, false) => format!("return unpack2x16float({a}[j >> 1u])[j & 1u];"),
                (Kind::In, true, true) => format!("return unpack2x16float({a}[j >> 1u]);"),
                (_, false, _) => format!("{a}[j] = v;"),
                (_, true, false) => format!("atomicOr(&{a}[j >> 1u], pack2x16float(vec2<f32>(sat16_(v), 0.0)) << ((j & 1u) * 16u));"),
                (_, true, true) => format!("{a}[j >> 1u] = pack2x16float(vec2<f32>(sat16_(v.x), sat16_(v.y)));"),
            }
        };
        let body = |pair: bool| {
            if parts == 1 {
                format!("  let j = i;\n  {}\n", one(0, pair))
            } else {
                let chunk = st.chunk_elems();
                let mut s = format!("  let p = i / {chunk}u;\n  let j = i - p * {chunk}u;\n  switch p {{\n");
                for p in 0..parts {
                    let label = if p + 1 == parts { "default".to_string() } else { format!("case {p}u") };
                    let _ = writeln!(s, "    {label}: {{ {} }}", one(p, pair));
                }
                s.push_str("  }\n");
                s
            }
        };
        let last = n.max(1) - 1;
        match kind {
            Kind::In => {
                let _ = writeln!(out, "fn ld_{name}(i: u32) -> f32 {{\n{}}}", body(false));
                if src.contains(&format!("ld2_{name}(")) {
                    if st.f16 {
                        let _ = writeln!(out, "fn ld2_{name}(i: u32) -> vec2<f32> {{\n{}}}", body(true));
                    } else {
                        let _ = writeln!(out, "fn ld2_{name}(i: u32) -> vec2<f32> {{ return vec2<f32>(ld_{name}(i), ld_{name}(min(i + 1u, {last}u))); }}");
                    }
                }
            }
            Kind::Out => {
                if st.f16 {
                    out.push_str(SAT16);
                }
                let _ = writeln!(out, "fn st_{name}(i: u32, v: f32) {{\n{}}}", body(false));
            }
            Kind::Out2 if st.f16 => {
                out.push_str(SAT16);
                let _ = writeln!(out, "fn st2_{name}(i: u32, a: f32, b: f32) {{\n  let v = vec2<f32>(a, b);\n{}}}", body(true));
            }
            _ => {
                let _ = writeln!(out, "fn st_{name}(i: u32, v: f32) {{\n{}}}", body(false));
                let _ = writeln!(out, "fn st2_{name}(i: u32, a: f32, b: f32) {{\n  st_{name}(i, a);\n  if (i < {last}u) {{ st_{name}(i + 1u, b); }}\n}}");
            }
        }
        ranges.push(r);
    }
    if k != elems.len() {
        return Err(backend_err(format!("internal: {} tensors bound but the kernel declares {k}", elems.len())));
    }
    if b > st.max_bindings {
        return Err(backend_err(format!(
            "a kernel needs {b} storage bindings (large tensors are bound as several ranges) but the device allows {}",
            st.max_bindings
        )));
    }
    Ok(Expanded { wgsl: out, ranges, clears })
}

/// f16 saturation: finite values beyond ±65504 store as ±65504; ±inf and NaN pass through.
const SAT16: &str = "fn sat16_(v: f32) -> f32 {\n  if (abs(v) > 3.0e38 || v != v) { return v; }\n  return clamp(v, -65504.0, 65504.0);\n}\n";

/// Host f32 values as packed f16 bytes (round to nearest even; beyond ±65504 saturates like the kernels).
pub(crate) fn f32_to_f16_bytes(v: &[f32]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(v.len().div_ceil(2) * 4);
    for &x in v {
        let x = if x.is_finite() { x.clamp(-65504.0, 65504.0) } else { x };
        out.extend_from_slice(&half::f16::from_f32(x).to_bits().to_le_bytes());
    }
    while !out.len().is_multiple_of(4) || out.is_empty() {
        out.push(0);
    }
    out
}

/// Packed f16 bytes as f32 values (`n` of them).
pub(crate) fn f16_bytes_to_f32(b: &[u8], n: usize) -> Vec<f32> {
    b.chunks_exact(2).take(n).map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(chunk: u64, f16: bool) -> Storage {
        Storage { f16, chunk_bytes: chunk, max_bindings: 16 }
    }

    #[test]
    fn ranges_cover_the_tensor_in_aligned_chunks() {
        assert_eq!(st(1024, false).ranges(600), vec![(0, 1024), (1024, 1024), (2048, 352)]);
        assert_eq!(st(1024, true).ranges(5), vec![(0, 12)]);
        assert_eq!(st(1024, true).ranges(0), vec![(0, 4)]);
    }

    #[test]
    fn split_accessors_switch_on_the_range() {
        let src = "//@bind in x\n//@bind out y\nfn main() {}\n";
        let e = expand(src, &[600, 10], &st(1024, false)).unwrap();
        let w = &e.wgsl;
        assert_eq!(e.ranges.len(), 2);
        assert!(w.contains("x_2: array<f32>") && w.contains("let p = i / 256u;") && w.contains("default: { return x_2[j]; }"), "{w}");
        assert!(!e.clears);
        let e = expand(src, &[10, 10], &st(1024, true)).unwrap();
        let w = &e.wgsl;
        assert!(w.contains("unpack2x16float(x[j >> 1u])[j & 1u]") && w.contains("array<atomic<u32>>"), "{w}");
        assert!(e.clears, "a per-element f16 output is cleared first");
    }

    #[test]
    fn paired_outputs_store_whole_words_without_clearing() {
        let src = "//@bind in x\n//@bind out2 y\nfn main() { st2_y(0u, ld2_x(0u).x, 0.0); }\n";
        // f16, split into 3 ranges of 512 halves: each pair stays in one range.
        let e = expand(src, &[1200, 1201], &st(1024, true)).unwrap();
        let w = &e.wgsl;
        assert!(!e.clears && !w.contains("atomic") && !w.contains("fn st_y"), "{w}");
        assert!(w.contains("y_2: array<u32>") && w.contains("let p = i / 512u;"), "{w}");
        assert!(w.contains("default: { y_2[j >> 1u] = pack2x16float(vec2<f32>(sat16_(v.x), sat16_(v.y))); }"), "{w}");
        assert!(w.contains("fn ld2_x(i: u32) -> vec2<f32>") && w.contains("return unpack2x16float(x_1[j >> 1u]);"), "{w}");
        // f32: two element stores, the second only inside the tensor.
        let e = expand(src, &[5, 5], &st(1024, false)).unwrap();
        assert!(!e.clears && e.wgsl.contains("if (i < 4u) { st_y(i + 1u, b); }") && e.wgsl.contains("ld_x(min(i + 1u, 4u))"), "{}", e.wgsl);
    }

    #[test]
    fn f16_host_conversion_saturates() {
        let b = f32_to_f16_bytes(&[1.0, 1e6, -1e6]);
        assert_eq!(b.len(), 8);
        assert_eq!(f16_bytes_to_f32(&b, 3), vec![1.0, 65504.0, -65504.0]);
    }
}
