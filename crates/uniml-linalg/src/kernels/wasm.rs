//! wasm32 `simd128` microkernel, 4×8 (8 `v128` accumulators).  Compiled only
//! when the build enables `simd128` (`-C target-feature=+simd128`); such a
//! module cannot even be instantiated without SIMD support, so no run-time
//! check is needed.  The element-wise helpers reuse the generic bodies, which
//! LLVM vectorises to `v128` under the same target feature.
//!
//! Builds that also enable `relaxed-simd` (the browser package's relaxed
//! flavours, loaded where the JS engine validates relaxed SIMD) multiply-add
//! with `f32x4.relaxed_madd`: one FMA instruction on x86 hosts with FMA3 and on
//! ARM, where baseline simd128 needs a multiply and a dependent add.  Relaxed
//! SIMD leaves fusing to the engine, so results may differ from the plain
//! build's in the last bit; nothing here depends on either rounding.

use core::arch::wasm32::*;

use super::generic::{axpy, dot, epi, panel_gemv_body};
use super::{Kernel, KernelKind};
use crate::epilogue::{exp_consts as ec, gelu_consts as gc, Activation, TileEpi};

/// 4×8 also with fused multiply-adds: a 6×8 tile (12 accumulators) measured 20–60% slower in
/// V8 (Node 20), whose register allocator spills it on x86's 16 xmm registers.
const MR: usize = 4;
const NR: usize = 8;

/// `a·b + c`: fused where the build has relaxed SIMD (see the module doc).
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(f32x4_mul(a, b), c)
    }
}

#[inline(always)]
unsafe fn load(p: *const f32) -> v128 {
    (p as *const v128).read_unaligned()
}

#[inline(always)]
unsafe fn store(p: *mut f32, v: v128) {
    (p as *mut v128).write_unaligned(v)
}

/// `exp` on 4 lanes, same algorithm as `epilogue::exp_approx`.
#[inline(always)]
fn exp4(x: v128) -> v128 {
    // pmax(x, lo) = x < lo ? lo : x — NaN propagates, like the scalar code.
    let x = f32x4_pmin(f32x4_pmax(x, f32x4_splat(ec::LO)), f32x4_splat(ec::HI));
    let t = madd(x, f32x4_splat(ec::LOG2E), f32x4_splat(ec::MAGIC));
    let nf = f32x4_sub(t, f32x4_splat(ec::MAGIC));
    let r = f32x4_sub(x, f32x4_mul(nf, f32x4_splat(ec::LN2_HI)));
    let r = f32x4_sub(r, f32x4_mul(nf, f32x4_splat(ec::LN2_LO)));
    let mut p = f32x4_splat(ec::P[0]);
    for &coef in &ec::P[1..] {
        p = madd(p, r, f32x4_splat(coef));
    }
    let n = i32x4_sub(t, i32x4_splat(ec::MAGIC_BITS));
    f32x4_mul(p, i32x4_shl(i32x4_add(n, i32x4_splat(127)), 23))
}

/// The activation on 4 lanes, with the scalar code's NaN behaviour.
/// `1/(1+exp(-v))` through `t = exp(-|v|) ≤ 1` (`t/(1+t)` for negative `v`),
/// so no intermediate is subnormal (see the x86 kernel).
#[inline(always)]
fn sigmoid4(v: v128) -> v128 {
    let t = exp4(f32x4_neg(f32x4_abs(v)));
    let s = f32x4_div(f32x4_splat(1.0), f32x4_add(f32x4_splat(1.0), t));
    v128_bitselect(f32x4_mul(t, s), s, f32x4_lt(v, f32x4_splat(0.0)))
}

/// `x·Φ(x)` on 4 lanes, the formula of `epilogue::Gelu`.
#[inline(always)]
fn gelu4(v: v128) -> v128 {
    let a = f32x4_mul(f32x4_abs(v), f32x4_splat(core::f32::consts::FRAC_1_SQRT_2));
    // pmin(a, max) = max < a ? max : a — NaN propagates.
    let a = f32x4_pmin(a, f32x4_splat(gc::A_MAX));
    let t = f32x4_div(f32x4_splat(1.0), f32x4_add(f32x4_mul(a, f32x4_splat(0.5)), f32x4_splat(1.0)));
    let mut q = f32x4_splat(gc::Q[0]);
    for &coef in &gc::Q[1..] {
        q = madd(q, t, f32x4_splat(coef));
    }
    let h = f32x4_mul(f32x4_mul(t, f32x4_splat(0.5)), exp4(f32x4_sub(q, f32x4_mul(a, a))));
    let phi = v128_bitselect(h, f32x4_sub(f32x4_splat(1.0), h), f32x4_lt(v, f32x4_splat(0.0)));
    v128_andnot(f32x4_mul(v, phi), f32x4_lt(v, f32x4_splat(gc::X_MIN)))
}

#[inline(always)]
fn act4(v: v128, act: Activation) -> v128 {
    let one = f32x4_splat(1.0);
    match act {
        Activation::None => v,
        Activation::Relu => f32x4_pmax(v, f32x4_splat(0.0)),
        Activation::Clip { min, max } => {
            f32x4_pmin(f32x4_pmax(v, f32x4_splat(min)), f32x4_splat(max))
        }
        Activation::HardSwish => {
            let t = f32x4_add(f32x4_mul(v, f32x4_splat(1.0 / 6.0)), f32x4_splat(0.5));
            f32x4_mul(v, f32x4_pmin(f32x4_pmax(t, f32x4_splat(0.0)), one))
        }
        Activation::Sigmoid => sigmoid4(v),
        Activation::SiLU => f32x4_mul(v, sigmoid4(v)),
        Activation::Gelu => gelu4(v),
    }
}

/// `M` rows × `NV` vectors (`4·NV` columns).
///
/// # Safety
/// `a`: `k·M` floats, `b`: `k·4·NV` floats, `c`: an `M×4·NV` tile with row
/// stride `ldc`; epilogue bias pointers `M` / `4·NV` floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn ukr_body<const M: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
) {
    // One k step per iteration: unrolling only adds live values, and the
    // engine's register allocator (16 xmm on x86 hosts) starts spilling.
    let mut acc = [[f32x4_splat(0.0); NV]; M];
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        let mut bv = [f32x4_splat(0.0); NV];
        for (v, slot) in bv.iter_mut().enumerate() {
            *slot = load(b.add(4 * v));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = v128_load32_splat(a.add(i) as *const u32);
            for (r, &bvv) in row.iter_mut().zip(&bv) {
                *r = madd(ai, bvv, *r);
            }
        }
        a = a.add(M);
        b = b.add(ldb);
    }
    let va = f32x4_splat(alpha);
    let vb = f32x4_splat(beta);
    let zero = f32x4_splat(0.0);
    let mut bc = [zero; NV];
    if let Some(e) = epi {
        if !e.bias_col.is_null() {
            for (v, slot) in bc.iter_mut().enumerate() {
                *slot = load(e.bias_col.add(4 * v));
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let r = c.add(i * ldc);
        for (v, &acc_v) in row.iter().enumerate() {
            let mut x = f32x4_mul(va, acc_v);
            if beta != 0.0 {
                x = f32x4_add(x, f32x4_mul(vb, load(r.add(4 * v))));
            }
            if let Some(e) = epi {
                let br = if e.bias_row.is_null() {
                    zero
                } else {
                    f32x4_splat(*e.bias_row.add(i))
                };
                x = act4(f32x4_add(f32x4_add(x, br), bc[v]), e.act);
            }
            store(r.add(4 * v), x);
        }
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn ukr(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
) {
    ukr_body::<MR, { NR / 4 }>(k, a, b, NR, c, ldc, alpha, beta, epi)
}

#[allow(clippy::too_many_arguments)]
unsafe fn ukr_sb(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
) {
    ukr_body::<MR, { NR / 4 }>(k, a, b, ldb, c, ldc, alpha, beta, epi)
}

unsafe fn gemv_nr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<NR>(k, panel, x, out)
}

unsafe fn gemv_mr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<MR>(k, panel, x, out)
}

/// `x[i] = exp(x[i] - shift)` (0 below the clamp), returns the sum: 4 lanes
/// at a time (the portable loop's serial float sum never vectorises).
unsafe fn exp_sum(x: *mut f32, n: usize, shift: f32) -> f32 {
    let sh = f32x4_splat(shift);
    let lo = f32x4_splat(ec::LO);
    let mut acc = f32x4_splat(0.0);
    let mut i = 0;
    while i + 4 <= n {
        let v = f32x4_sub(load(x.add(i)), sh);
        // Below the clamp exp is 0 (NaN compares false: stays NaN).
        let e = v128_andnot(exp4(v), f32x4_lt(v, lo));
        store(x.add(i), e);
        acc = f32x4_add(acc, e);
        i += 4;
    }
    let mut sum = f32x4_extract_lane::<0>(acc)
        + f32x4_extract_lane::<1>(acc)
        + f32x4_extract_lane::<2>(acc)
        + f32x4_extract_lane::<3>(acc);
    for j in i..n {
        let d = *x.add(j) - shift;
        let e = if d < ec::LO { 0.0 } else { crate::epilogue::exp_approx(d) };
        *x.add(j) = e;
        sum += e;
    }
    sum
}

pub(crate) fn kernel() -> Kernel {
    Kernel {
        kind: KernelKind::WasmSimd128,
        name: if cfg!(target_feature = "relaxed-simd") { "wasm simd128+relaxed 4x8" } else { "wasm simd128 4x8" },
        mr: MR,
        nr: NR,
        kc: 256,
        mc: 64,
        nc: 2048,
        ukr,
        ukr_sb,
        act: None,
        ukr_rows: None,
        ukr_offs: None,
        exp_sum: Some(exp_sum),
        gemv_nr,
        gemv_mr,
        epi,
        dot,
        axpy,
    }
}
