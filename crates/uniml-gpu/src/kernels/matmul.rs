//! Tiled GEMM template (16×16 threads per workgroup, a 4×4 or 8×8 register
//! block per thread, K in steps of 16 through workgroup memory; the 8×8 block
//! reads its fragments as vec4s: 28.9 TFLOP/s for 4096³ f32 on an H100, vs 19.2
//! with scalar reads, docs/benchmarks.md)
//! and its launchers: `MatMul` (batch broadcast), `Gemm` (transposes,
//! alpha/beta, broadcast C, fused activation) and `Conv` as an implicit GEMM
//! (im2col gathered on the fly: groups, strides, pads, dilations; bias and
//! activation fused). Depthwise convs use a direct kernel.
//!
//! Every user's output is row-major `[batch, M, N]`. In f16 storage each
//! thread owns whole output words ([`OutMode`]): with an even N the tiled
//! blocks give a thread aligned column pairs; with an odd N ≤ 64 and an even M
//! (a conv's 7×7 output) the 4×4 block stages its tile through workgroup
//! memory and writes the tile's word-aligned flat range by pairs; the direct
//! kernel takes one thread per flat pair. Other odd N fall back to
//! per-element (atomic) stores (`storage.rs`).

use std::fmt::Write;

use uniml_core::ops::nn::conv::Conv;
use uniml_core::ops::nn::gemm::Gemm;
use uniml_core::ops::nn::matmul::MatMul;
use uniml_data::{Error, Result};

use super::wgsl::{act_fn, bindings_out, kernel_1d, lit};
use super::{Bind, Facts, Launch, LowerCx, Support};

/// The pieces a GEMM user fills in; every dim is baked in as a constant.
struct GemmSpec<'a> {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    /// Tensor inputs bound (the output is `y`, row-major `[batch, M, N]`).
    inputs: Vec<&'a str>,
    /// Helper functions (batch offsets, activation, …).
    extra: String,
    /// Body of `fn load_a(b: u32, m: u32, k: u32) -> f32` (in range).
    load_a: String,
    /// Body of `fn load_b(b: u32, k: u32, n: u32) -> f32` (in range).
    load_b: String,
    /// Where A is contiguous in k with an even K: body of `fn load_a2(b: u32, m: u32, k: u32) ->
    /// vec2<f32>`, elements k (even) and k + 1 (one f16 word, `ld2_`).
    load_a2: Option<String>,
    /// Where B is contiguous in n with an even N: body of `fn load_b2(b: u32, k: u32, n: u32) ->
    /// vec2<f32>`, elements n (even) and n + 1.
    load_b2: Option<String>,
    /// Body of `fn out_value(b: u32, m: u32, n: u32, v: f32) -> f32`: the stored value of
    /// product `v` (bias, C, activation; in range).
    out_value: String,
}

/// How the tiled kernels store their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutMode {
    /// Per element (`store`): f32 storage, or the f16 fallback (atomic words, cleared first).
    Element,
    /// A thread's aligned column pairs, one word each (`store2`): f16 storage, even N (every row
    /// starts on a word).
    Pairs,
    /// f16 storage, odd N ≤ 64 with an even M, 4×4 block: one column tile spans whole rows, so a
    /// tile's rows are one contiguous flat range starting and ending on a word (M, and the 32-row
    /// halves, are even). The tile goes through workgroup memory (As and Bs, free after the k
    /// loop: 2048 floats, 32 rows at a time) and the workgroup writes that range by pairs.
    Staged,
}

impl GemmSpec<'_> {
    /// Whether the kernels read A / B by aligned pairs (f16 storage: one word, one unpack, per pair).
    fn pair_loads(&self, cx: &LowerCx) -> (bool, bool) {
        (cx.pairs() && self.load_a2.is_some(), cx.pairs() && self.load_b2.is_some())
    }

    fn out_mode(&self, cx: &LowerCx) -> OutMode {
        if !cx.pairs() {
            OutMode::Element
        } else if self.n.is_multiple_of(2) {
            OutMode::Pairs
        } else if gemm_block(self) == 4 && self.n <= 64 && self.m.is_multiple_of(2) {
            OutMode::Staged
        } else {
            OutMode::Element
        }
    }
}

/// Per-thread register block (`T×T` outputs) for a product of this size:
/// 8×8 (128×128 workgroup tiles) when there are enough tiles to fill a
/// large GPU, else 4×4 (64×64 tiles).
fn gemm_block(s: &GemmSpec) -> usize {
    if s.m >= 512 && s.n >= 512 {
        8
    } else {
        4
    }
}

/// The GEMM body as straight-line code for a 16×16 workgroup whose threads
/// each own a `T×T` register block (rows `lid.y + 16r`, columns
/// `lid.x + 16q`, so that stores are coalesced). The accumulators, the A/B
/// fragments and every loop over them (BK = 16 steps) are unrolled by this
/// generator into named scalars: naga keeps loops over private arrays as
/// loops, and drivers may then leave the accumulators in memory instead of
/// registers. A's workgroup rows are rotated by their k (`(m + k) % tile`)
/// so the transposed stores spread over the banks without padding (which
/// would overflow WebGPU's 16 KiB of workgroup memory at 8×8).
///
/// [`OutMode::Pairs`]: a thread's columns are instead `32(q/2) + 2·lid.x + q%2`,
/// so that it owns aligned column pairs and stores each as one word (`store2`).
fn gemm_wgsl(s: &GemmSpec, mode: OutMode, pair_loads: (bool, bool)) -> String {
    if gemm_block(s) == 8 {
        return gemm_wgsl_vec4(s, mode == OutMode::Pairs, pair_loads);
    }
    let paired = mode == OutMode::Pairs;
    let t = gemm_block(s);
    let tile = 16 * t;
    let mask = tile - 1;
    let mut decl = String::new();
    let mut fma = String::new();
    let mut store = String::new();
    for r in 0..t {
        for q in 0..t {
            let _ = writeln!(decl, "  var c{r}_{q} = 0.0;");
        }
    }
    let load = gemm_loads(
        t,
        tile,
        pair_loads,
        |mm, kk, v| format!("As[({kk}) * {tile}u + ((({mm}) + ({kk})) & {mask}u)] = {v};"),
        |kb, nn, v| format!("Bs[({kb}) * {tile}u + ({nn})] = {v};"),
    );
    // Column of the thread's q-th block column, as `<expr> + offset`.
    let col = |q: usize| if paired { ("lid.x * 2u", (q / 2) * 32 + q % 2) } else { ("lid.x", q * 16) };
    for kk in 0..16 {
        for r in 0..t {
            let _ = writeln!(fma, "    let a{kk}_{r} = As[{}u + ((lid.y + {}u) & {mask}u)];", kk * tile, r * 16 + kk);
        }
        for q in 0..t {
            let (c, off) = col(q);
            let _ = writeln!(fma, "    let b{kk}_{q} = Bs[{}u + {c}];", kk * tile + off);
        }
        for r in 0..t {
            for q in 0..t {
                let _ = writeln!(fma, "    c{r}_{q} = fma(a{kk}_{r}, b{kk}_{q}, c{r}_{q});");
            }
        }
    }
    if mode == OutMode::Staged {
        // Two halves of 32 tile rows (rows lid.y + 16r: r = 0, 1 then 2, 3) through As/Bs.
        for h in 0..2 {
            for r in 2 * h..2 * h + 2 {
                for q in 0..t {
                    let _ = writeln!(store, "  stage_((lid.y + {}u) * 64u + lid.x + {}u, c{r}_{q});", (r - 2 * h) * 16, q * 16);
                }
            }
            let _ = write!(
                store,
                r#"  workgroupBarrier();
  {{
    let r0 = m0 + {row0}u;
    if (r0 < M) {{
      let count = (min(r0 + 32u, M) - r0) * N;
      let base = (b * M + r0) * N;
      for (var p = tid * 2u; p < count; p = p + 512u) {{
        let ma = p / N; let na = p - ma * N;
        let mb = (p + 1u) / N; let nb = p + 1u - mb * N;
        st2_y(base + p, out_value(b, r0 + ma, na, unstage_(ma * 64u + na)), out_value(b, r0 + mb, nb, unstage_(mb * 64u + nb)));
      }}
    }}
  }}
  workgroupBarrier();
"#,
                row0 = 32 * h
            );
        }
    } else {
        for r in 0..t {
            for q in (0..t).step_by(if paired { 2 } else { 1 }) {
                let (c, off) = col(q);
                let st = if paired { format!("store2(b, gm, gn, c{r}_{q}, c{r}_{})", q + 1) } else { format!("store(b, gm, gn, c{r}_{q})") };
                let _ = writeln!(store, "  {{ let gm = m0 + lid.y + {}u; let gn = n0 + {c} + {off}u; if (gm < M && gn < N) {{ {st}; }} }}", r * 16);
            }
        }
    }
    gemm_module(s, tile, "f32", decl, load, fma, store, mode, pair_loads)
}

/// The 8×8 block with vec4 workgroup reads: a thread owns rows `4·ly + {0..3}` and
/// `64 + 4·ly + {0..3}` and the same pattern of columns, so each k step reads its A and B
/// fragments as four vec4s (4 loads per 64 FMAs instead of 16). A is stored k-major with its
/// vec4 columns rotated by k (2-way bank conflicts on the transposed stores, none on reads).
/// A thread's columns come in aligned pairs: `paired` stores each pair as one word.
fn gemm_wgsl_vec4(s: &GemmSpec, paired: bool, pair_loads: (bool, bool)) -> String {
    let mut decl = String::new();
    let mut fma = String::new();
    let mut store = String::new();
    for r in 0..8 {
        for q in 0..8 {
            let _ = writeln!(decl, "  var c{r}_{q} = 0.0;");
        }
    }
    let load = gemm_loads(
        8,
        128,
        pair_loads,
        |mm, kk, v| format!("As[({kk}) * 32u + (((({mm}) >> 2u) + ({kk})) & 31u)][({mm}) & 3u] = {v};"),
        |kb, nn, v| format!("Bs[({kb}) * 32u + (({nn}) >> 2u)][({nn}) & 3u] = {v};"),
    );
    const C: [&str; 4] = ["x", "y", "z", "w"];
    for kk in 0..16 {
        let _ = writeln!(fma, "    let al{kk} = As[{}u + ((lid.y + {kk}u) & 31u)];", kk * 32);
        let _ = writeln!(fma, "    let ah{kk} = As[{}u + ((lid.y + {}u) & 31u)];", kk * 32, 16 + kk);
        let _ = writeln!(fma, "    let bl{kk} = Bs[{}u + lid.x];", kk * 32);
        let _ = writeln!(fma, "    let bh{kk} = Bs[{}u + lid.x];", kk * 32 + 16);
        for r in 0..8 {
            let a = format!("a{}{kk}.{}", if r < 4 { "l" } else { "h" }, C[r % 4]);
            for q in 0..8 {
                let bv = format!("b{}{kk}.{}", if q < 4 { "l" } else { "h" }, C[q % 4]);
                let _ = writeln!(fma, "    c{r}_{q} = fma({a}, {bv}, c{r}_{q});");
            }
        }
    }
    for r in 0..8 {
        let row = if r < 4 { format!("lid.y * 4u + {r}u") } else { format!("64u + lid.y * 4u + {}u", r - 4) };
        for q in (0..8).step_by(if paired { 2 } else { 1 }) {
            let col = if q < 4 { format!("lid.x * 4u + {q}u") } else { format!("64u + lid.x * 4u + {}u", q - 4) };
            let st = if paired { format!("store2(b, gm, gn, c{r}_{q}, c{r}_{})", q + 1) } else { format!("store(b, gm, gn, c{r}_{q})") };
            let _ = writeln!(store, "  {{ let gm = m0 + {row}; let gn = n0 + {col}; if (gm < M && gn < N) {{ {st}; }} }}");
        }
    }
    gemm_module(s, 128, "vec4<f32>", decl, load, fma, store, if paired { OutMode::Pairs } else { OutMode::Element }, pair_loads)
}

/// A k step's global loads into the workgroup tiles: 16 × `tile` elements of A (`mm` = e / 16,
/// `kk` = e % 16) and of B (`kb` = e / tile, `nn` = e % tile), `t` of each per thread, zero
/// outside the matrices. With `pair_loads` (A, B) the elements come in aligned pairs along k
/// (A) or n (B) through `load_a2`/`load_b2`: `t / 2` words per thread, one unpack each (an even
/// K or N keeps the pair inside the matrix). `put_a(mm, kk, v)`/`put_b(kb, nn, v)` store one
/// value into workgroup memory (the block's layout).
fn gemm_loads(t: usize, tile: usize, pair_loads: (bool, bool), put_a: impl Fn(&str, &str, &str) -> String, put_b: impl Fn(&str, &str, &str) -> String) -> String {
    let mut load = String::new();
    let (pa, pb) = pair_loads;
    for i in 0..(if pa { t / 2 } else { t }) {
        let e = if pa { format!("(tid + {}u) * 2u", i * 256) } else { format!("tid + {}u", i * 256) };
        let (zero, call, put) = if pa {
            ("vec2<f32>(0.0)", "load_a2", format!("{} {}", put_a("mm", "kk", "v.x"), put_a("mm", "kk + 1u", "v.y")))
        } else {
            ("0.0", "load_a", put_a("mm", "kk", "v"))
        };
        let _ = write!(
            load,
            "    {{\n      let e = {e};\n      let mm = e / BK; let kk = e % BK;\n      var v = {zero};\n      if (m0 + mm < M && k0 + kk < K) {{ v = {call}(b, m0 + mm, k0 + kk); }}\n      {put}\n    }}\n"
        );
    }
    for i in 0..(if pb { t / 2 } else { t }) {
        let e = if pb { format!("(tid + {}u) * 2u", i * 256) } else { format!("tid + {}u", i * 256) };
        let (zero, call, put) = if pb {
            ("vec2<f32>(0.0)", "load_b2", format!("{} {}", put_b("kb", "nn", "w.x"), put_b("kb", "nn + 1u", "w.y")))
        } else {
            ("0.0", "load_b", put_b("kb", "nn", "w"))
        };
        let _ = write!(
            load,
            "    {{\n      let e = {e};\n      let kb = e / {tile}u; let nn = e % {tile}u;\n      var w = {zero};\n      if (k0 + kb < K && n0 + nn < N) {{ w = {call}(b, k0 + kb, n0 + nn); }}\n      {put}\n    }}\n"
        );
    }
    load
}

/// The module around a GEMM body: the spec's bindings and accessors, the dims as constants,
/// the two 16-deep workgroup tiles of `tile` columns (as `elem`s), and the k loop with its barriers.
/// `mode`: what the store code calls (`store`, `store2`, or `stage_`/`unstage_` and `st2_y`).
#[allow(clippy::too_many_arguments)]
fn gemm_module(s: &GemmSpec, tile: usize, elem: &str, decl: String, load: String, fma: String, store: String, mode: OutMode, pair_loads: (bool, bool)) -> String {
    let per_elem = if elem == "f32" { 1 } else { 4 };
    format!(
        r#"{head}
const BK: u32 = 16u;
var<workgroup> As: array<{elem}, {len}>;
var<workgroup> Bs: array<{elem}, {len}>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
  let b = wid.z;
  let m0 = wid.y * {tile}u;
  let n0 = wid.x * {tile}u;
  let tid = lid.y * 16u + lid.x;
{decl}  for (var k0 = 0u; k0 < K; k0 = k0 + BK) {{
{load}    workgroupBarrier();
{fma}    workgroupBarrier();
  }}
{store}}}
"#,
        head = gemm_head(s, mode, pair_loads),
        len = 16 * tile / per_elem,
    )
}

/// The tiled module's head: bindings, the spec's functions and the stores of `mode`:
/// `store(b, m, n, v)`, `store2(b, m, n, v0, v1)` (n even), or the staging of the 4×4
/// tile through As/Bs (`stage_(s, v)`, `unstage_(s)`, s < 2048; declared in the module).
fn gemm_head(s: &GemmSpec, mode: OutMode, pair_loads: (bool, bool)) -> String {
    let store = match mode {
        OutMode::Pairs => "fn store2(b: u32, m: u32, n: u32, v0: f32, v1: f32) { st2_y((b * M + m) * N + n, out_value(b, m, n, v0), out_value(b, m, n + 1u, v1)); }",
        OutMode::Element => "fn store(b: u32, m: u32, n: u32, v: f32) { st_y((b * M + m) * N + n, out_value(b, m, n, v)); }",
        OutMode::Staged => {
            "fn stage_(s: u32, v: f32) { if (s < 1024u) { As[s] = v; } else { Bs[s - 1024u] = v; } }\nfn unstage_(s: u32) -> f32 { if (s < 1024u) { return As[s]; } return Bs[s - 1024u]; }"
        }
    };
    format!("{}{}{store}\n", bindings_out(&s.inputs, &[], "y", mode != OutMode::Element), gemm_fns(s, pair_loads))
}

/// The spec's helpers, accessors and dims (every GEMM module has them); the pair loads of
/// `pair_loads` (A, B).
fn gemm_fns(s: &GemmSpec, pair_loads: (bool, bool)) -> String {
    let mut pairs = String::new();
    if let (true, Some(a2)) = (pair_loads.0, &s.load_a2) {
        let _ = writeln!(pairs, "fn load_a2(b: u32, m: u32, k: u32) -> vec2<f32> {{ {a2} }}");
    }
    if let (true, Some(b2)) = (pair_loads.1, &s.load_b2) {
        let _ = writeln!(pairs, "fn load_b2(b: u32, k: u32, n: u32) -> vec2<f32> {{ {b2} }}");
    }
    format!(
        r#"{extra}
fn load_a(b: u32, m: u32, k: u32) -> f32 {{ {load_a} }}
fn load_b(b: u32, k: u32, n: u32) -> f32 {{ {load_b} }}
{pairs}
fn out_value(b: u32, m: u32, n: u32, v: f32) -> f32 {{ {out_value} }}
const M: u32 = {m}u;
const N: u32 = {n}u;
const K: u32 = {k}u;
"#,
        extra = s.extra,
        load_a = s.load_a,
        load_b = s.load_b,
        out_value = s.out_value,
        m = s.m,
        n = s.n,
        k = s.k,
    )
}

/// Products with at most this many outputs (all batches) skip the tiled kernel: one thread per
/// output, K summed in order straight from the tensors. A 64×64 tile with its barriers is
/// mostly idle threads there (a 1×N Gemm, a squeeze-excite 1×1 conv).
const DIRECT_MAX_OUTPUTS: usize = 8192;

/// On a software adapter (SwiftShader, lavapipe), where workgroup barriers cost most, products
/// with at most this K also take the direct kernel: a 16-deep K step is then mostly padding and
/// barriers (selfie_segmentation on lavapipe ~460 → ~270 ms). Larger K keeps the tiled kernel:
/// direct for every product made MiniLM 2.2× and MobileNetV2/EfficientNet 1.4× slower there.
/// `GpuContext::force_tiled_gemm` turns this off (the tiled kernels' tests on lavapipe).
const DIRECT_MAX_K_SOFTWARE: usize = 32;

/// The GEMM's module and workgroup counts: the tiled kernel, or for small products (and small K
/// on a software adapter) the direct one.
fn gemm_launch(cx: &LowerCx, s: &GemmSpec) -> Result<(String, [u32; 3])> {
    let total = s.m * s.n * s.batch.max(1);
    if total > DIRECT_MAX_OUTPUTS && !(s.k <= DIRECT_MAX_K_SOFTWARE && cx.ctx.direct_gemm_for_small_k()) {
        return Ok((gemm_wgsl(s, s.out_mode(cx), s.pair_loads(cx)), gemm_groups(s)?));
    }
    // Direct: one thread per output element `i` of the row-major [batch, M, N] output, or in f16
    // storage per aligned pair (with an even N both are in one row and share A's loads).
    let at = format!("  let n = i % N; let m = (i / N) % M; let b = i / {mn}u;\n", mn = s.m * s.n);
    let elem = format!(
        r#"{at}  var acc = 0.0;
  for (var k = 0u; k < K; k = k + 1u) {{
    acc = fma(load_a(b, m, k), load_b(b, k, n), acc);
  }}
  return out_value(b, m, n, acc);"#
    );
    // B's two columns as one word where B is contiguous in n.
    let (_, pb) = s.pair_loads(cx);
    let bb = if pb { "load_b2(b, k, n)" } else { "vec2<f32>(load_b(b, k, n), load_b(b, k, n + 1u))" };
    let pair = format!(
        r#"{at}  var acc = vec2<f32>(0.0);
  for (var k = 0u; k < K; k = k + 1u) {{
    acc = fma(vec2<f32>(load_a(b, m, k)), {bb}, acc);
  }}
  return vec2<f32>(out_value(b, m, n, acc.x), out_value(b, m, n + 1u, acc.y));"#
    );
    Ok(kernel_1d(&s.inputs, &[], &gemm_fns(s, (false, pb)), total, &elem, s.n.is_multiple_of(2).then_some(pair.as_str()), cx.pairs()))
}

fn gemm_groups(s: &GemmSpec) -> Result<[u32; 3]> {
    if s.batch > 65535 {
        return Err(Error::Shape(format!("GEMM batch {} exceeds 65535 workgroups", s.batch)));
    }
    let tile = 16 * gemm_block(s);
    Ok([s.n.div_ceil(tile).max(1) as u32, s.m.div_ceil(tile).max(1) as u32, s.batch.max(1) as u32])
}

/// `fn <name>(b: u32) -> u32`: element offset of batch `b` given batch dims and strides.
fn batch_offset_fn(name: &str, dims: &[usize], strides: &[usize]) -> String {
    let mut s = format!("fn {name}(b: u32) -> u32 {{\n  var r = b;\n  var o = 0u;\n");
    for d in (0..dims.len()).rev() {
        let _ = writeln!(s, "  o = o + (r % {}u) * {}u; r = r / {}u;", dims[d], strides[d], dims[d]);
    }
    s.push_str("  return o;\n}\n");
    s
}

pub(crate) fn support(f: &Facts) -> Option<std::result::Result<Support, String>> {
    let op = f.node.op.as_any();
    if op.downcast_ref::<MatMul>().is_some() {
        return Some((|| {
            f.f32s(&[0, 1])?;
            match (f.rank(0), f.rank(1)) {
                (Some(a), Some(b)) if a >= 2 && b >= 2 && a.max(b) <= 6 => Ok(Support::Kernel),
                (Some(_), Some(_)) => Err("MatMul with a 1-D operand or rank > 6 runs on CPU".into()),
                _ => Err("operand ranks unknown".into()),
            }
        })());
    }
    if op.downcast_ref::<Gemm>().is_some() {
        return Some((|| {
            f.f32s(&[0, 1])?;
            if f.input(2).is_some() {
                f.f32s(&[2])?;
            }
            Ok(Support::Kernel)
        })());
    }
    if let Some(c) = op.downcast_ref::<Conv>() {
        return Some((|| {
            f.f32s(&[0, 1])?;
            if f.input(2).is_some() {
                f.f32s(&[2])?;
            }
            match f.rank(0) {
                Some(3 | 4) => {}
                Some(r) => return Err(format!("Conv of rank {r} runs on CPU (1-D and 2-D on GPU)")),
                None => return Err("input rank unknown".into()),
            }
            if c.group == 0 {
                return Err("group 0".into());
            }
            if c.residual {
                return Err("a Conv with a fused residual input runs on CPU".into());
            }
            Ok(Support::Kernel)
        })());
    }
    None
}

pub(crate) fn lower(cx: &LowerCx) -> Option<Result<Launch>> {
    let op = cx.node.op.as_any();
    if op.downcast_ref::<MatMul>().is_some() {
        return Some(lower_matmul(cx));
    }
    if let Some(g) = op.downcast_ref::<Gemm>() {
        return Some(lower_gemm(cx, g));
    }
    if let Some(c) = op.downcast_ref::<Conv>() {
        return Some(lower_conv(cx, c));
    }
    None
}

fn lower_matmul(cx: &LowerCx) -> Result<Launch> {
    let (a, b) = (cx.shape(0)?.to_vec(), cx.shape(1)?.to_vec());
    let out = cx.out(0)?.to_vec();
    let (m, k, n) = (a[a.len() - 2], a[a.len() - 1], b[b.len() - 1]);
    if b[b.len() - 2] != k {
        return Err(Error::Shape(format!("MatMul: inner dims differ: {a:?} × {b:?}")));
    }
    let bdims = &out[..out.len() - 2];
    let batch: usize = bdims.iter().product();
    // Element offsets per batch dim of A and B (0 where broadcast).
    let bstr = |s: &[usize], mat: usize| -> Vec<usize> {
        let sb = &s[..s.len() - 2];
        let off = bdims.len() - sb.len();
        let mut st = vec![0usize; bdims.len()];
        let mut acc = mat;
        for d in (0..sb.len()).rev() {
            if sb[d] != 1 {
                st[d + off] = acc;
            }
            acc *= sb[d];
        }
        st
    };
    let (sa, sb) = (bstr(&a, m * k), bstr(&b, k * n));
    let spec = GemmSpec {
        m,
        n,
        k,
        batch,
        inputs: vec!["a", "w"],
        extra: batch_offset_fn("a_off", bdims, &sa) + &batch_offset_fn("b_off", bdims, &sb),
        load_a: format!("return ld_a(a_off(b) + m * {k}u + k);"),
        load_b: format!("return ld_w(b_off(b) + k * {n}u + n);"),
        // Batch offsets are multiples of M·K (N·K): an even K (N) keeps pairs on words.
        load_a2: k.is_multiple_of(2).then(|| format!("return ld2_a(a_off(b) + m * {k}u + k);")),
        load_b2: n.is_multiple_of(2).then(|| format!("return ld2_w(b_off(b) + k * {n}u + n);")),
        out_value: "return v;".into(),
    };
    let (src, g) = gemm_launch(cx, &spec)?;
    cx.single("matmul", src, vec![Bind::In(0), Bind::In(1), Bind::Out(0)], g)
}

fn lower_gemm(cx: &LowerCx, g: &Gemm) -> Result<Launch> {
    let (a, b) = (cx.shape(0)?.to_vec(), cx.shape(1)?.to_vec());
    if a.len() != 2 || b.len() != 2 {
        return Err(Error::Shape(format!("Gemm operands must be 2-D, got {a:?} and {b:?}")));
    }
    let (m, k) = if g.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (kb, n) = if g.trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != kb {
        return Err(Error::Shape(format!("Gemm: inner dims differ: {a:?} × {b:?} (transA {}, transB {})", g.trans_a, g.trans_b)));
    }
    let load_a = if g.trans_a { format!("return ld_a(k * {m}u + m);") } else { format!("return ld_a(m * {k}u + k);") };
    let load_b = if g.trans_b { format!("return ld_w(n * {k}u + k);") } else { format!("return ld_w(k * {n}u + n);") };
    let has_c = cx.has(2) && g.beta != 0.0;
    let mut binds = vec![Bind::In(0), Bind::In(1)];
    let (names, c_term) = if has_c {
        binds.push(Bind::In(2));
        let cs = cx.shape(2)?.to_vec();
        let st = super::wgsl::broadcast_strides(&cs, &[m, n]);
        (vec!["a", "w", "c"], format!(" + {} * ld_c(m * {}u + n * {}u)", lit(g.beta), st[0], st[1]))
    } else {
        (vec!["a", "w"], String::new())
    };
    binds.push(Bind::Out(0));
    let spec = GemmSpec {
        m,
        n,
        k,
        batch: 1,
        inputs: names,
        extra: act_fn(g.activation),
        load_a,
        load_b,
        load_a2: (!g.trans_a && k.is_multiple_of(2)).then(|| format!("return ld2_a(m * {k}u + k);")),
        load_b2: (!g.trans_b && n.is_multiple_of(2)).then(|| format!("return ld2_w(k * {n}u + n);")),
        out_value: format!("return act({} * v{c_term});", lit(g.alpha)),
    };
    let (src, g) = gemm_launch(cx, &spec)?;
    cx.single("gemm", src, binds, g)
}

/// Conv geometry in 2-D form (1-D convs have H = 1).
struct ConvGeom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
    group: usize,
}

fn conv_geom(cx: &LowerCx, conv: &Conv) -> Result<ConvGeom> {
    let x = cx.shape(0)?.to_vec();
    let wt = cx.shape(1)?.to_vec();
    if wt.len() != x.len() || !(3..=4).contains(&x.len()) {
        return Err(Error::Shape(format!("Conv: input {x:?} and weight {wt:?} must both be 3-D or 4-D")));
    }
    let group = conv.group.max(1);
    let (m, cg) = (wt[0], wt[1]);
    if x[1] != cg * group || m % group != 0 {
        return Err(Error::Shape(format!("Conv: input channels {} != {cg} × group {group} (or {m} outputs not divisible)", x[1])));
    }
    let geo = conv.window.resolve(&x[2..], &wt[2..])?;
    let two = |v: &[usize], d: usize| if v.len() == 2 { (v[0], v[1]) } else { (d, v[0]) };
    let (h, w) = two(&x[2..], 1);
    let (kh, kw) = two(&wt[2..], 1);
    let (oh, ow) = two(&geo.output, 1);
    let (sh, sw) = two(&geo.strides, 1);
    let (dh, dw) = two(&geo.dilations, 1);
    let (ph, pw) = two(&geo.pad_begin, 0);
    Ok(ConvGeom { n: x[0], c: x[1], h, w, m, kh, kw, oh, ow, sh, sw, dh, dw, ph, pw, group })
}

fn lower_conv(cx: &LowerCx, conv: &Conv) -> Result<Launch> {
    let g = conv_geom(cx, conv)?;
    let has_bias = cx.has(2);
    let mut binds = vec![Bind::In(0), Bind::In(1)];
    let mut names = vec!["x", "wt"];
    if has_bias {
        binds.push(Bind::In(2));
        names.push("bias");
    }
    binds.push(Bind::Out(0));
    let bias = |co: &str| if has_bias { format!(" + ld_bias({co})") } else { String::new() };
    let act = act_fn(conv.activation);
    let ConvGeom { n, c, h, w, m, kh, kw, oh, ow, sh, sw, dh, dw, ph, pw, group } = g;
    if group == c && m == c && group > 1 {
        // Depthwise: one thread per output element.
        let total = n * m * oh * ow;
        let body = format!(
            r#"  let ox = i % {ow}u; let oy = (i / {ow}u) % {oh}u; let ch = (i / {ohw}u) % {m}u; let img = i / {mohw}u;
  var s = 0.0;
  for (var ky = 0u; ky < {kh}u; ky = ky + 1u) {{
    let iy = i32(oy * {sh}u + ky * {dh}u) - {ph};
    if (iy < 0 || iy >= {h}) {{ continue; }}
    for (var kx = 0u; kx < {kw}u; kx = kx + 1u) {{
      let ix = i32(ox * {sw}u + kx * {dw}u) - {pw};
      if (ix < 0 || ix >= {w}) {{ continue; }}
      s = fma(ld_x(((img * {c}u + ch) * {h}u + u32(iy)) * {w}u + u32(ix)), ld_wt((ch * {kh}u + ky) * {kw}u + kx), s);
    }}
  }}
  return act(s{b});"#,
            ohw = oh * ow,
            mohw = m * oh * ow,
            ph = ph as i32,
            pw = pw as i32,
            h = h as i32,
            w = w as i32,
            b = bias("ch"),
        );
        let (src, g) = kernel_1d(&names, &[], &act, total, &body, None, cx.pairs());
        return cx.single("depthwise_conv", src, binds, g);
    }
    let (mg, cg) = (m / group, c / group);
    let khw = kh * kw;
    let spec = GemmSpec {
        m: mg,
        n: oh * ow,
        k: cg * khw,
        batch: n * group,
        inputs: names,
        extra: act,
        load_a: format!("return ld_wt(((b % {group}u) * {mg}u + m) * {K}u + k);", K = cg * khw),
        load_b: format!(
            r#"let img = b / {group}u; let g = b % {group}u;
  let ch = k / {khw}u; let r = k % {khw}u; let ky = r / {kw}u; let kx = r % {kw}u;
  let oy = n / {ow}u; let ox = n % {ow}u;
  let iy = i32(oy * {sh}u + ky * {dh}u) - {ph};
  let ix = i32(ox * {sw}u + kx * {dw}u) - {pw};
  if (iy < 0 || iy >= {h} || ix < 0 || ix >= {w}) {{ return 0.0; }}
  return ld_x(((img * {c}u + g * {cg}u + ch) * {hu}u + u32(iy)) * {wu}u + u32(ix));"#,
            ph = ph as i32,
            pw = pw as i32,
            h = h as i32,
            w = w as i32,
            hu = h,
            wu = w,
        ),
        // Weights are [group·mg, K] rows: an even K keeps k pairs on words.
        load_a2: (cg * khw).is_multiple_of(2).then(|| format!("return ld2_wt(((b % {group}u) * {mg}u + m) * {K}u + k);", K = cg * khw)),
        // A pointwise conv (1×1, stride 1, no pads) reads B = the input plane, contiguous in n.
        load_b2: (khw == 1 && (sh, sw, ph, pw) == (1, 1, 0, 0) && (oh, ow) == (h, w) && (h * w).is_multiple_of(2))
            .then(|| format!("let img = b / {group}u; let g = b % {group}u; return ld2_x((img * {c}u + g * {cg}u + k) * {hw}u + n);", hw = h * w)),
        // The output [n, group·mg, oh·ow] is [batch = n·group, mg, oh·ow] row-major.
        out_value: format!("let co = (b % {group}u) * {mg}u + m; return act(v{});", bias("co")),
    };
    let (src, g) = gemm_launch(cx, &spec)?;
    cx.single("conv_implicit_gemm", src, binds, g)
}
