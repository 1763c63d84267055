//! Microkernel tables and the one-time run-time selection.
//!
//! A [`Kernel`] is a plain `Copy` table: tile shape, cache-block sizes and
//! function pointers.  Packed operands keep a copy of the table they were
//! packed for, so a `PackedB` always runs with the kernel matching its layout.

use std::sync::OnceLock;

use crate::epilogue::{Activation, TileEpi};

pub(crate) mod generic;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// `C[mr×nr] = alpha · Apanel[k×mr]ᵀ · Bpanel[k×nr] + beta · C` (C not read
/// when `beta == 0`), then the optional in-register tile epilogue.  `c` is a
/// full tile with row stride `ldc`.
pub(crate) type UkrFn = unsafe fn(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
);
/// [`UkrFn`] reading B straight from a row-major matrix: row `p` of the
/// `k×nr` panel at `b + p·ldb` (no packing, for products too short in M
/// for a packed copy of B to pay for itself).
pub(crate) type UkrSbFn = unsafe fn(
    k: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
    epi: Option<&TileEpi>,
);
/// `out[0..w] = Σ_p x[p] · panel[p·w ..][..w]` for the table's panel width w.
pub(crate) type PanelGemvFn = unsafe fn(k: usize, panel: *const f32, x: *const f32, out: *mut f32);
/// Bias + activation pass on a `rows × cols` tile (null bias = none).
pub(crate) type EpiFn = unsafe fn(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias_row: *const f32,
    bias_col: *const f32,
    act: Activation,
);
/// [`UkrSbFn`] computing and writing only the first `rows < mr` rows.
pub(crate) type UkrRowsFn = unsafe fn(
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
);
/// The microkernel for the first `rows <= mr` rows of a tile with B read in
/// place row by row: row `p` of the `k×nr` panel at `b + offs[p]` (an
/// implicit im2col: a convolution's taps over a padded input).
pub(crate) type UkrOffsFn = unsafe fn(
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
);
/// `x[i] = exp(x[i] - shift)` over `n` values, returning their sum.
pub(crate) type ExpSumFn = unsafe fn(x: *mut f32, n: usize, shift: f32) -> f32;
/// The activation over `n` values in place.
pub(crate) type ActFn = unsafe fn(x: *mut f32, n: usize, act: Activation);
pub(crate) type DotFn = unsafe fn(x: &[f32], y: &[f32]) -> f32;
pub(crate) type AxpyFn = unsafe fn(alpha: f32, x: &[f32], y: &mut [f32]);

/// Which microkernel family.  [`KernelKind::is_available`] says whether this
/// machine (and this build) can run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Plain Rust, auto-vectorised for the compile target (always available).
    Generic,
    /// x86_64 AVX2 + FMA, 6×16 tile.
    Avx2Fma,
    /// x86_64 AVX-512F, 12×32 tile.
    Avx512,
    /// wasm32 `simd128`, 4×8 tile (only in builds with `+simd128`).
    WasmSimd128,
}

impl KernelKind {
    /// All kinds, in selection order (fastest first).
    pub const ALL: [KernelKind; 4] = [
        KernelKind::Avx512,
        KernelKind::Avx2Fma,
        KernelKind::WasmSimd128,
        KernelKind::Generic,
    ];

    /// Whether this build and this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        table(self).is_some()
    }

    /// The descriptive name, e.g. `"avx2+fma 6x16"` (`None` if unavailable).
    pub fn name(self) -> Option<&'static str> {
        table(self).map(|k| k.name)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Kernel {
    pub kind: KernelKind,
    pub name: &'static str,
    /// Microtile rows (A panel width).
    pub mr: usize,
    /// Microtile columns (B panel width).
    pub nr: usize,
    /// Depth of one k block.
    pub kc: usize,
    /// Rows of one A block (`mc×kc`, kept in L2); a multiple of `mr`.
    pub mc: usize,
    /// Columns of one B block (`kc×nc`); a multiple of `nr`.
    pub nc: usize,
    pub ukr: UkrFn,
    /// The microkernel over an unpacked, row-major B.
    pub ukr_sb: UkrSbFn,
    /// Panel GEMV over a packed B panel (width `nr`).
    pub gemv_nr: PanelGemvFn,
    /// Panel GEMV over a packed A panel (width `mr`).
    pub gemv_mr: PanelGemvFn,
    pub epi: EpiFn,
    /// An explicitly vectorised activation over a slice (else `epi` on one row).
    pub act: Option<ActFn>,
    /// The microkernel for the first `rows < mr` rows of a tile, B with row stride `ldb`.
    pub ukr_rows: Option<UkrRowsFn>,
    /// The microkernel over B rows at offsets (else such a B is packed).
    pub ukr_offs: Option<UkrOffsFn>,
    /// `x = exp(x - shift)` in place, returning the sum (softmax).
    pub exp_sum: Option<ExpSumFn>,
    pub dot: DotFn,
    pub axpy: AxpyFn,
}

impl core::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.name)
            .field("mr", &self.mr)
            .field("nr", &self.nr)
            .field("kc", &self.kc)
            .field("mc", &self.mc)
            .field("nc", &self.nc)
            .finish()
    }
}

/// The table for `kind`, if this build / CPU supports it.
pub(crate) fn table(kind: KernelKind) -> Option<Kernel> {
    match kind {
        KernelKind::Generic => Some(generic::kernel()),
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2Fma => x86::avx2_kernel(),
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512 => x86::avx512_kernel(),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        KernelKind::WasmSimd128 => Some(wasm::kernel()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Like [`table`] but panics with a clear message when unavailable.
pub(crate) fn table_or_panic(kind: KernelKind) -> Kernel {
    table(kind).unwrap_or_else(|| {
        panic!("uniml-linalg: kernel {kind:?} is not available on this machine/build")
    })
}

/// The kernel picked once for this process: the first available in
/// [`KernelKind::ALL`].
pub(crate) fn selected() -> &'static Kernel {
    static SELECTED: OnceLock<Kernel> = OnceLock::new();
    SELECTED.get_or_init(|| {
        KernelKind::ALL
            .iter()
            .find_map(|&k| table(k))
            .unwrap_or_else(generic::kernel)
    })
}

/// Kernels this machine can run (fastest first).
pub fn available_kernels() -> Vec<KernelKind> {
    KernelKind::ALL
        .iter()
        .copied()
        .filter(|k| k.is_available())
        .collect()
}

/// Name of the microkernel selected for this process, e.g. `"avx2+fma 6x16"`.
pub fn kernel_name() -> &'static str {
    selected().name
}

/// The kind of the microkernel selected for this process.
pub fn selected_kernel() -> KernelKind {
    selected().kind
}
