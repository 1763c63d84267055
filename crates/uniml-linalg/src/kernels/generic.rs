//! Portable kernels in plain Rust, written so that LLVM vectorises them
//! (fixed-size accumulator arrays, no reductions across lanes in hot loops).
//!
//! The `*_body` functions are `#[inline(always)]` so the SIMD tables can
//! re-instantiate them inside `#[target_feature]` wrappers.

use crate::epilogue::{apply_tile, Activation, TileEpi};

use super::{Kernel, KernelKind};

/// Rows of the generic microtile.
pub(crate) const MR: usize = 4;
/// Columns of the generic microtile.
pub(crate) const NR: usize = 8;

/// Four lanes as a plain array; the element-wise ops below are the unit
/// LLVM's SLP vectoriser maps onto one 128-bit register (SSE2, NEON,
/// `simd128`).  Without this grouping it sometimes picks odd lane groupings
/// and fills the loop with shuffles.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct V4([f32; 4]);

impl V4 {
    #[inline(always)]
    fn splat(x: f32) -> V4 {
        V4([x; 4])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> V4 {
        V4(p.cast::<[f32; 4]>().read_unaligned())
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        p.cast::<[f32; 4]>().write_unaligned(self.0)
    }
    #[inline(always)]
    fn mul_add(self, a: V4, b: V4) -> V4 {
        // self + a·b, lane by lane (no fused multiply-add: not portable).
        let mut r = self.0;
        for ((r, x), y) in r.iter_mut().zip(a.0).zip(b.0) {
            *r += x * y;
        }
        V4(r)
    }
    #[inline(always)]
    fn scale(self, s: f32) -> V4 {
        let mut r = self.0;
        for v in r.iter_mut() {
            *v *= s;
        }
        V4(r)
    }
}

/// Microkernel body: `C[M×4·NV] = alpha · Apanel[k×M]ᵀ · Bpanel[k×4·NV] + beta · C`
/// (C not read when `beta == 0`), then the optional tile epilogue (`N` is
/// `4·NV`).
///
/// # Safety
/// `a` holds `k·M` floats, `b` holds `k·N` floats, `c` an `M×N` tile with
/// row stride `ldc`; the epilogue's bias pointers `M` / `N` floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn ukr_body<const M: usize, const NV: usize, const N: usize>(
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
    debug_assert_eq!(N, 4 * NV);
    let mut acc = [[V4::splat(0.0); NV]; M];
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        let mut bv = [V4::splat(0.0); NV];
        for (v, slot) in bv.iter_mut().enumerate() {
            *slot = V4::load(b.add(4 * v));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = V4::splat(*a.add(i));
            for (r, &bvv) in row.iter_mut().zip(&bv) {
                *r = r.mul_add(ai, bvv);
            }
        }
        a = a.add(M);
        b = b.add(ldb);
    }
    for (i, row) in acc.iter().enumerate() {
        let r = c.add(i * ldc);
        for (v, acc_v) in row.iter().enumerate() {
            let mut x = acc_v.scale(alpha);
            if beta != 0.0 {
                x = x.mul_add(V4::splat(beta), V4::load(r.add(4 * v)));
            }
            x.store(r.add(4 * v));
        }
    }
    if let Some(e) = epi {
        e.apply_fixed::<M, N>(c, ldc);
    }
}

/// `out[0..W] = Σ_p x[p] · panel[p·W .. p·W+W]` over a packed panel.
///
/// # Safety
/// `panel` holds `k·W` floats, `x` holds `k`, `out` has room for `W`.
#[inline(always)]
pub(crate) unsafe fn panel_gemv_body<const W: usize>(
    k: usize,
    panel: *const f32,
    x: *const f32,
    out: *mut f32,
) {
    let mut acc0 = [0.0f32; W];
    let mut acc1 = [0.0f32; W];
    let mut p = 0;
    while p + 2 <= k {
        let x0 = *x.add(p);
        let x1 = *x.add(p + 1);
        let p0 = &*(panel.add(p * W) as *const [f32; W]);
        let p1 = &*(panel.add((p + 1) * W) as *const [f32; W]);
        for j in 0..W {
            acc0[j] += x0 * p0[j];
            acc1[j] += x1 * p1[j];
        }
        p += 2;
    }
    if p < k {
        let x0 = *x.add(p);
        let p0 = &*(panel.add(p * W) as *const [f32; W]);
        for j in 0..W {
            acc0[j] += x0 * p0[j];
        }
    }
    for j in 0..W {
        *out.add(j) = acc0[j] + acc1[j];
    }
}

/// Dot product with 16 independent partial sums (vectorises without
/// re-association).
#[inline(always)]
pub(crate) fn dot_body(x: &[f32], y: &[f32]) -> f32 {
    const L: usize = 16;
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0f32; L];
    let xc = x.chunks_exact(L);
    let yc = y.chunks_exact(L);
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (xs, ys) in xc.zip(yc) {
        for l in 0..L {
            acc[l] += xs[l] * ys[l];
        }
    }
    for (l, (a, b)) in xr.iter().zip(yr).enumerate() {
        acc[l] += a * b;
    }
    let mut w = L;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0]
}

/// `y += alpha · x`.
#[inline(always)]
pub(crate) fn axpy_body(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * *xi;
    }
}

// ---------------------------------------------------------------------------
// Baseline instantiations (no target features beyond the compile target).

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
    ukr_body::<MR, { NR / 4 }, NR>(k, a, b, NR, c, ldc, alpha, beta, epi)
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
    ukr_body::<MR, { NR / 4 }, NR>(k, a, b, ldb, c, ldc, alpha, beta, epi)
}

unsafe fn gemv_nr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<NR>(k, panel, x, out)
}

unsafe fn gemv_mr(k: usize, panel: *const f32, x: *const f32, out: *mut f32) {
    panel_gemv_body::<MR>(k, panel, x, out)
}

pub(crate) unsafe fn epi(
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

pub(crate) unsafe fn dot(x: &[f32], y: &[f32]) -> f32 {
    dot_body(x, y)
}

pub(crate) unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    axpy_body(alpha, x, y)
}

pub(crate) fn kernel() -> Kernel {
    Kernel {
        kind: KernelKind::Generic,
        name: "generic 4x8",
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
        exp_sum: None,
        gemv_nr,
        gemv_mr,
        epi,
        dot,
        axpy,
    }
}
