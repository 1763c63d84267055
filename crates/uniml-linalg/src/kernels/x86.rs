//! x86_64 microkernels: AVX2+FMA 6×16 (12 ymm accumulators) and AVX-512F
//! 12×32 (24 zmm accumulators).  A table holding them is only built after
//! `is_x86_feature_detected!` confirmed the features, which is what makes
//! calling the `#[target_feature]` functions sound.

use core::arch::x86_64::*;

use super::generic::{axpy_body, dot_body, panel_gemv_body};
use super::{Kernel, KernelKind};
use crate::epilogue::{apply_tile, exp_consts as ec, gelu_consts as gc, Activation, TileEpi};

// ---------------------------------------------------------------------------
// AVX2 + FMA, 6×16.

const AVX2_MR: usize = 6;
const AVX2_NR: usize = 16;

/// `exp` on 8 lanes, same algorithm as `epilogue::exp_approx`.
#[inline(always)]
unsafe fn exp256(x: __m256) -> __m256 {
    // max/min return the second operand when one is NaN: NaN propagates.
    let x = _mm256_min_ps(
        _mm256_set1_ps(ec::HI),
        _mm256_max_ps(_mm256_set1_ps(ec::LO), x),
    );
    let t = _mm256_fmadd_ps(x, _mm256_set1_ps(ec::LOG2E), _mm256_set1_ps(ec::MAGIC));
    let nf = _mm256_sub_ps(t, _mm256_set1_ps(ec::MAGIC));
    let r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(ec::LN2_HI), x);
    let r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(ec::LN2_LO), r);
    let mut p = _mm256_set1_ps(ec::P[0]);
    for &coef in &ec::P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(coef));
    }
    let n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(ec::MAGIC_BITS));
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)));
    _mm256_mul_ps(p, _mm256_castsi256_ps(scale))
}

/// `1/d` for `d ≥ 1` (as in the sigmoid): 12-bit estimate + one Newton step
/// (~22 bits), much cheaper than `vdivps`.
#[inline(always)]
unsafe fn recip256(d: __m256) -> __m256 {
    let r = _mm256_rcp_ps(d);
    _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(1.0)), r)
}

/// `1/(1+exp(-v))` as `s = 1/(1+t)`, `t = exp(-|v|) ≤ 1`, and `t·s` for
/// negative `v`: every intermediate stays a normal number (`exp(+88)` and its
/// reciprocal would be subnormal, and subnormals cost ~100× on x86).
#[inline(always)]
unsafe fn sigmoid256(v: __m256) -> __m256 {
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
    let t = exp256(_mm256_sub_ps(_mm256_setzero_ps(), abs));
    let s = recip256(_mm256_add_ps(_mm256_set1_ps(1.0), t));
    // blendv picks by the sign bit of v.
    _mm256_blendv_ps(s, _mm256_mul_ps(t, s), v)
}

/// `x·Φ(x)` on 8 lanes, the formula of `epilogue::Gelu`.
#[inline(always)]
unsafe fn gelu256(v: __m256) -> __m256 {
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
    // min returns its second operand when one is NaN: NaN propagates.
    let a = _mm256_min_ps(
        _mm256_set1_ps(gc::A_MAX),
        _mm256_mul_ps(abs, _mm256_set1_ps(core::f32::consts::FRAC_1_SQRT_2)),
    );
    let t = recip256(_mm256_fmadd_ps(a, _mm256_set1_ps(0.5), _mm256_set1_ps(1.0)));
    let mut q = _mm256_set1_ps(gc::Q[0]);
    for &coef in &gc::Q[1..] {
        q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(coef));
    }
    let h = _mm256_mul_ps(_mm256_mul_ps(t, _mm256_set1_ps(0.5)), exp256(_mm256_fnmadd_ps(a, a, q)));
    // blendv picks `h` where the sign bit of v is set.
    let phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0), h), h, v);
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_set1_ps(gc::X_MIN));
    _mm256_andnot_ps(tiny, _mm256_mul_ps(v, phi))
}

/// The activation on one 8-lane vector.
#[inline(always)]
unsafe fn act256(v: __m256, act: Activation) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    match act {
        Activation::None => v,
        Activation::Relu => _mm256_max_ps(_mm256_setzero_ps(), v),
        Activation::Clip { min, max } => {
            _mm256_min_ps(_mm256_set1_ps(max), _mm256_max_ps(_mm256_set1_ps(min), v))
        }
        Activation::HardSwish => {
            let t = _mm256_fmadd_ps(v, _mm256_set1_ps(1.0 / 6.0), _mm256_set1_ps(0.5));
            let t = _mm256_min_ps(one, _mm256_max_ps(_mm256_setzero_ps(), t));
            _mm256_mul_ps(v, t)
        }
        Activation::Sigmoid => sigmoid256(v),
        Activation::SiLU => _mm256_mul_ps(v, sigmoid256(v)),
        Activation::Gelu => gelu256(v),
    }
}

/// # Safety
/// AVX2+FMA available; `a`: `k·M` floats, `b`: `k·16` floats, `c`: `M×16`
/// tile with row stride `ldc`; epilogue bias pointers `M` / 16 floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2_body<const M: usize>(
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
    let mut c0 = [_mm256_setzero_ps(); M];
    let mut c1 = [_mm256_setzero_ps(); M];
    for i in 0..M {
        let r = c.add(i * ldc);
        _mm_prefetch::<_MM_HINT_T0>(r as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(r.add(15) as *const i8);
    }
    let mut a = a;
    let mut b = b;
    macro_rules! step {
        ($off:expr) => {{
            let b0 = _mm256_loadu_ps(b.add($off * ldb));
            let b1 = _mm256_loadu_ps(b.add($off * ldb + 8));
            for i in 0..M {
                let ai = _mm256_broadcast_ss(&*a.add($off * M + i));
                c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
            }
        }};
    }
    let mut p = k;
    while p >= 4 {
        step!(0);
        step!(1);
        step!(2);
        step!(3);
        a = a.add(4 * M);
        b = b.add(4 * ldb);
        p -= 4;
    }
    while p > 0 {
        step!(0);
        a = a.add(M);
        b = b.add(ldb);
        p -= 1;
    }
    let va = _mm256_set1_ps(alpha);
    let vb = _mm256_set1_ps(beta);
    let zero = _mm256_setzero_ps();
    let (bc0, bc1) = match epi {
        Some(e) if !e.bias_col.is_null() => (
            _mm256_loadu_ps(e.bias_col),
            _mm256_loadu_ps(e.bias_col.add(8)),
        ),
        _ => (zero, zero),
    };
    for i in 0..M {
        let r = c.add(i * ldc);
        let mut v0 = _mm256_mul_ps(va, c0[i]);
        let mut v1 = _mm256_mul_ps(va, c1[i]);
        if beta != 0.0 {
            v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r), v0);
            v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(r.add(8)), v1);
        }
        if let Some(e) = epi {
            // Skipped adds of absent biases keep the (well predicted)
            // branches but save FMA-port work when k is small.
            if !e.bias_row.is_null() {
                let br = _mm256_set1_ps(*e.bias_row.add(i));
                v0 = _mm256_add_ps(v0, br);
                v1 = _mm256_add_ps(v1, br);
            }
            if !e.bias_col.is_null() {
                v0 = _mm256_add_ps(v0, bc0);
                v1 = _mm256_add_ps(v1, bc1);
            }
            v0 = act256(v0, e.act);
            v1 = act256(v1, e.act);
        }
        _mm256_storeu_ps(r, v0);
        _mm256_storeu_ps(r.add(8), v1);
    }
}

#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2_ukr(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
) {
    avx2_body::<AVX2_MR>(k, a, b, AVX2_NR, c, ldc, alpha, beta, epi)
}

#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2_ukr_sb(
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
    avx2_body::<AVX2_MR>(k, a, b, ldb, c, ldc, alpha, beta, epi)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_gemv_nr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<AVX2_NR>(k, panel, x, out)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_gemv_mr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<AVX2_MR>(k, panel, x, out)
}

/// `x[i] = exp(x[i] - shift)` (0 below the clamp), returns the sum: 8 lanes
/// at a time (the portable loop's serial float sum never vectorises).
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_exp_sum(x: *mut f32, n: usize, shift: f32) -> f32 {
    let sh = _mm256_set1_ps(shift);
    let lo = _mm256_set1_ps(ec::LO);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let v = _mm256_sub_ps(_mm256_loadu_ps(x.add(i)), sh);
        // Below the clamp exp is 0, not the clamp's 2^-125 (NaN compares false: stays NaN).
        let e = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(v, lo), exp256(v));
        _mm256_storeu_ps(x.add(i), e);
        acc = _mm256_add_ps(acc, e);
        i += 8;
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    let mut sum: f32 = lanes.iter().sum();
    for j in i..n {
        let d = *x.add(j) - shift;
        let e = if d < ec::LO { 0.0 } else { crate::epilogue::exp_approx(d) };
        *x.add(j) = e;
        sum += e;
    }
    sum
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_epi(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias_row: *const f32,
    bias_col: *const f32,
    act: Activation,
) {
    apply_tile(c, ldc, rows, cols, bias_row, bias_col, act)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_dot(x: &[f32], y: &[f32]) -> f32 {
    dot_body(x, y)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    axpy_body(alpha, x, y)
}

fn has_avx2_fma() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

pub(crate) fn avx2_kernel() -> Option<Kernel> {
    if !has_avx2_fma() {
        return None;
    }
    Some(Kernel {
        kind: KernelKind::Avx2Fma,
        name: "avx2+fma 6x16",
        mr: AVX2_MR,
        nr: AVX2_NR,
        kc: 256,
        mc: 144,
        nc: 2048,
        ukr: avx2_ukr,
        ukr_sb: avx2_ukr_sb,
        act: None,
        ukr_rows: None,
        ukr_offs: None,
        exp_sum: Some(avx2_exp_sum),
        gemv_nr: avx2_gemv_nr,
        gemv_mr: avx2_gemv_mr,
        epi: avx2_epi,
        dot: avx2_dot,
        axpy: avx2_axpy,
    })
}

// ---------------------------------------------------------------------------
// AVX-512F, 12×32.

const AVX512_MR: usize = 12;
const AVX512_NR: usize = 32;
/// How far ahead (floats) the microkernel prefetches packed A: measured on
/// ResNet-50 (weights cold in L2), 256–1024 all gain ~8%, 512 best.
const A_PREFETCH: usize = 512;

/// `exp` on 16 lanes, same algorithm as `epilogue::exp_approx`.
#[inline(always)]
unsafe fn exp512(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_set1_ps(ec::HI),
        _mm512_max_ps(_mm512_set1_ps(ec::LO), x),
    );
    let t = _mm512_fmadd_ps(x, _mm512_set1_ps(ec::LOG2E), _mm512_set1_ps(ec::MAGIC));
    let nf = _mm512_sub_ps(t, _mm512_set1_ps(ec::MAGIC));
    let r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(ec::LN2_HI), x);
    let r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(ec::LN2_LO), r);
    let mut p = _mm512_set1_ps(ec::P[0]);
    for &coef in &ec::P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(coef));
    }
    let n = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(ec::MAGIC_BITS));
    let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)));
    _mm512_mul_ps(p, _mm512_castsi512_ps(scale))
}

/// `1/d`: 14-bit estimate + one Newton step (~23 bits).
#[inline(always)]
unsafe fn recip512(d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0)), r)
}

/// [`sigmoid256`] on 16 lanes.
#[inline(always)]
unsafe fn sigmoid512(v: __m512) -> __m512 {
    let abs = _mm512_abs_ps(v);
    let t = exp512(_mm512_sub_ps(_mm512_setzero_ps(), abs));
    let s = recip512(_mm512_add_ps(_mm512_set1_ps(1.0), t));
    let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
    _mm512_mask_mul_ps(s, neg, t, s)
}

/// [`gelu256`] on 16 lanes.
#[inline(always)]
unsafe fn gelu512(v: __m512) -> __m512 {
    let a = _mm512_min_ps(
        _mm512_set1_ps(gc::A_MAX),
        _mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(core::f32::consts::FRAC_1_SQRT_2)),
    );
    let t = recip512(_mm512_fmadd_ps(a, _mm512_set1_ps(0.5), _mm512_set1_ps(1.0)));
    let mut q = _mm512_set1_ps(gc::Q[0]);
    for &coef in &gc::Q[1..] {
        q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(coef));
    }
    let h = _mm512_mul_ps(_mm512_mul_ps(t, _mm512_set1_ps(0.5)), exp512(_mm512_fnmadd_ps(a, a, q)));
    let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
    let phi = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.0), h), h);
    let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_set1_ps(gc::X_MIN));
    _mm512_mask_mov_ps(_mm512_mul_ps(v, phi), tiny, _mm512_setzero_ps())
}

/// The activation on one 16-lane vector.
#[inline(always)]
unsafe fn act512(v: __m512, act: Activation) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    match act {
        Activation::None => v,
        Activation::Relu => _mm512_max_ps(_mm512_setzero_ps(), v),
        Activation::Clip { min, max } => {
            _mm512_min_ps(_mm512_set1_ps(max), _mm512_max_ps(_mm512_set1_ps(min), v))
        }
        Activation::HardSwish => {
            let t = _mm512_fmadd_ps(v, _mm512_set1_ps(1.0 / 6.0), _mm512_set1_ps(0.5));
            let t = _mm512_min_ps(one, _mm512_max_ps(_mm512_setzero_ps(), t));
            _mm512_mul_ps(v, t)
        }
        Activation::Sigmoid => sigmoid512(v),
        Activation::SiLU => _mm512_mul_ps(v, sigmoid512(v)),
        Activation::Gelu => gelu512(v),
    }
}

/// # Safety
/// AVX-512F available; `a`: `k·M` floats, `b`: `k·32` floats, `c`: `M×32`
/// tile with row stride `ldc`; epilogue bias pointers `M` / 32 floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_body<const M: usize, const PF: bool, const OB: bool>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    offs: *const usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
) {
    let mut c0 = [_mm512_setzero_ps(); M];
    let mut c1 = [_mm512_setzero_ps(); M];
    for i in 0..M {
        let r = c.add(i * ldc);
        _mm_prefetch::<_MM_HINT_T0>(r as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(r.add(16) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(r.add(31) as *const i8);
    }
    let mut a = a;
    let mut b = b;
    // B row p at `b + offs[p]` (`OB`), else at `b + p·ldb`.
    let mut offs = offs;
    macro_rules! step {
        ($off:expr) => {{
            let brow = if OB { b.add(*offs.add($off)) } else { b.add($off * ldb) };
            let b0 = _mm512_loadu_ps(brow);
            let b1 = _mm512_loadu_ps(brow.add(16));
            if PF {
                // Unpacked B: fetch this row's next panel (hardware prefetchers
                // do not follow one short run per row across many rows).
                // `wrapping_add`: past the last panel it is only a hint.
                _mm_prefetch::<_MM_HINT_T0>(brow.wrapping_add(32) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(brow.wrapping_add(48) as *const i8);
            }
            for i in 0..M {
                let ai = _mm512_set1_ps(*a.add($off * lda + i));
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
        }};
    }
    let mut p = k;
    while p >= 4 {
        // Packed A (a layer's weights) streams from L3 when the model does
        // not fit in L2, and the hardware prefetchers fall behind: fetch the
        // 3 lines these 4 steps will read, `A_PREFETCH` floats (2 KiB) ahead.
        // `wrapping_add`: past A's end it is only a hint, never a read.
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_PREFETCH) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_PREFETCH + 16) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add(A_PREFETCH + 32) as *const i8);
        step!(0);
        step!(1);
        step!(2);
        step!(3);
        a = a.add(4 * lda);
        if OB {
            offs = offs.add(4);
        } else {
            b = b.add(4 * ldb);
        }
        p -= 4;
    }
    while p > 0 {
        step!(0);
        a = a.add(lda);
        if OB {
            offs = offs.add(1);
        } else {
            b = b.add(ldb);
        }
        p -= 1;
    }
    let va = _mm512_set1_ps(alpha);
    let vb = _mm512_set1_ps(beta);
    let zero = _mm512_setzero_ps();
    let (bc0, bc1) = match epi {
        Some(e) if !e.bias_col.is_null() => (
            _mm512_loadu_ps(e.bias_col),
            _mm512_loadu_ps(e.bias_col.add(16)),
        ),
        _ => (zero, zero),
    };
    for i in 0..M {
        let r = c.add(i * ldc);
        let mut v0 = _mm512_mul_ps(va, c0[i]);
        let mut v1 = _mm512_mul_ps(va, c1[i]);
        if beta != 0.0 {
            v0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(r), v0);
            v1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(r.add(16)), v1);
        }
        if let Some(e) = epi {
            // Skipped adds of absent biases keep the (well predicted)
            // branches but save FMA-port work when k is small.
            if !e.bias_row.is_null() {
                let br = _mm512_set1_ps(*e.bias_row.add(i));
                v0 = _mm512_add_ps(v0, br);
                v1 = _mm512_add_ps(v1, br);
            }
            if !e.bias_col.is_null() {
                v0 = _mm512_add_ps(v0, bc0);
                v1 = _mm512_add_ps(v1, bc1);
            }
            v0 = act512(v0, e.act);
            v1 = act512(v1, e.act);
        }
        _mm512_storeu_ps(r, v0);
        _mm512_storeu_ps(r.add(16), v1);
    }
}

#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_ukr(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
) {
    avx512_body::<AVX512_MR, false, false>(k, a, AVX512_MR, b, AVX512_NR, core::ptr::null(), c, ldc, alpha, beta, epi)
}

#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_ukr_sb(
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
    avx512_body::<AVX512_MR, true, false>(k, a, AVX512_MR, b, ldb, core::ptr::null(), c, ldc, alpha, beta, epi)
}

/// `x[i] = exp(x[i] - shift)` (0 below the clamp), returns the sum.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_exp_sum(x: *mut f32, n: usize, shift: f32) -> f32 {
    let sh = _mm512_set1_ps(shift);
    let lo = _mm512_set1_ps(ec::LO);
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let m: __mmask16 = if n - i >= 16 { 0xFFFF } else { ((1u32 << (n - i)) - 1) as __mmask16 };
        let v = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x.add(i)), sh);
        // Below the clamp exp is 0, not the clamp's 2^-125: no subnormals later.
        let keep = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(m, v, lo) | (m & !_mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v));
        let e = _mm512_maskz_mov_ps(keep, exp512(v));
        _mm512_mask_storeu_ps(x.add(i), m, e);
        acc = _mm512_add_ps(acc, e);
        i += 16;
    }
    _mm512_reduce_add_ps(acc)
}

/// The activation over a slice, 16 lanes at a time (masked tail).
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_act(x: *mut f32, n: usize, act: Activation) {
    let mut i = 0;
    while i + 16 <= n {
        _mm512_storeu_ps(x.add(i), act512(_mm512_loadu_ps(x.add(i)), act));
        i += 16;
    }
    if i < n {
        let m = ((1u32 << (n - i)) - 1) as __mmask16;
        let v = act512(_mm512_maskz_loadu_ps(m, x.add(i)), act);
        _mm512_mask_storeu_ps(x.add(i), m, v);
    }
}

/// The microkernel for the first `rows < 12` rows of a tile (the last, partial
/// row panel of A, still laid out 12 wide), written straight into C instead
/// of computing 12 rows into a scratch tile and copying the valid ones.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_ukr_rows(
    rows: usize,
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
    const LDA: usize = AVX512_MR;
    let offs = core::ptr::null();
    macro_rules! m {
        ($($r:literal)*) => {
            match rows {
                $($r => avx512_body::<$r, false, false>(k, a, LDA, b, ldb, offs, c, ldc, alpha, beta, epi),)*
                _ => avx512_body::<AVX512_MR, false, false>(k, a, LDA, b, ldb, offs, c, ldc, alpha, beta, epi),
            }
        };
    }
    m!(1 2 3 4 5 6 7 8 9 10 11)
}

/// The microkernel for the first `rows <= 12` rows of a tile, B row `p` at
/// `b + offs[p]` (read in place, next panel prefetched like `ukr_sb`).
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_ukr_offs(
    rows: usize,
    k: usize,
    a: *const f32,
    b: *const f32,
    offs: *const usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
) {
    const LDA: usize = AVX512_MR;
    macro_rules! m {
        ($($r:literal)*) => {
            match rows {
                $($r => avx512_body::<$r, true, true>(k, a, LDA, b, 0, offs, c, ldc, alpha, beta, epi),)*
                _ => avx512_body::<AVX512_MR, true, true>(k, a, LDA, b, 0, offs, c, ldc, alpha, beta, epi),
            }
        };
    }
    m!(1 2 3 4 5 6 7 8 9 10 11)
}

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_gemv_nr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<AVX512_NR>(k, panel, x, out)
}

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_gemv_mr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<AVX512_MR>(k, panel, x, out)
}

pub(crate) fn avx512_kernel() -> Option<Kernel> {
    if !(is_x86_feature_detected!("avx512f") && has_avx2_fma()) {
        return None;
    }
    Some(Kernel {
        kind: KernelKind::Avx512,
        name: "avx512f 12x32",
        mr: AVX512_MR,
        nr: AVX512_NR,
        kc: 256,
        mc: 144,
        nc: 2048,
        ukr: avx512_ukr,
        ukr_sb: avx512_ukr_sb,
        act: Some(avx512_act),
        ukr_rows: Some(avx512_ukr_rows),
        ukr_offs: Some(avx512_ukr_offs),
        exp_sum: Some(avx512_exp_sum),
        gemv_nr: avx512_gemv_nr,
        gemv_mr: avx512_gemv_mr,
        // The element-wise passes are memory-bound; the AVX2 builds do.
        epi: avx2_epi,
        dot: avx2_dot,
        axpy: avx2_axpy,
    })
}
