//! Single-precision GEMM for uniml, with the microkernel picked once at run
//! time.
//!
//! `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`, row-major C with
//! row stride `ldc`; operands are [`MatRef`] views with arbitrary row and
//! column strides (a transposed operand is just [`MatRef::t`]).
//!
//! * [`sgemm`] — BLAS-like, both operands packed on the fly.
//! * [`PackedB`] + [`sgemm_packed_b`] — right operand (weights of `Gemm` /
//!   `MatMul`) packed once at model load.
//! * [`PackedA`] + [`sgemm_packed_a`] — left operand (convolution weights,
//!   `out[co, pix] = W[co, k] · col[k, pix]`) packed once.
//! * The packed variants take an [`Epilogue`]: bias per row / column, an
//!   [`Activation`], optional accumulation, fused into the tile store.
//! * [`sgemm_epilogue`] — the same epilogue with neither operand pre-packed.
//! * `*_range` variants compute a sub-range of rows / columns and write
//!   nothing else, so a caller can split work across threads (the `*_ptr`
//!   forms take a raw C pointer for exactly that).  The algorithm is chosen
//!   from the full shape, so any partition gives bit-identical results.
//!
//! Implementation: BLIS-style blocking (kc / mc / nc cache blocks, A packed in
//! `mr`-row panels, B in `nr`-column panels, edges zero-padded) around a
//! register-tile microkernel: AVX-512F 12×32 or AVX2+FMA 6×16 on x86_64
//! (detected at run time), `simd128` 4×8 on wasm32 builds with `+simd128`,
//! and a portable auto-vectorised 4×8 everywhere else.  Single-row /
//! single-column products use GEMV loops and tiny products skip packing.
//!
//! The library uses no threads, clocks or files.  It keeps one per-thread
//! scratch buffer for packing (reused between calls, at most a few MiB).

mod driver;
mod epilogue;
mod kernels;
mod pack;
#[cfg(test)]
mod tests;

use core::ops::Range;

use driver::{ASrc, BSrc, Path, Post};
pub use epilogue::{Activation, Epilogue};
use kernels::Kernel;
pub use kernels::{available_kernels, kernel_name, selected_kernel, KernelKind};
pub use pack::{PackedA, PackedB};

/// Applies `act` to every element of `xs` in place with the selected kernel's
/// vectorised epilogue (the same formulas as a fused GEMM epilogue; `exp` is
/// the epilogue's polynomial, within a few ulps).
pub fn activate(act: Activation, xs: &mut [f32]) {
    if act == Activation::None || xs.is_empty() {
        return;
    }
    let kern = kernels::selected();
    // SAFETY: one row of `xs.len()` columns, row stride = length; no biases.
    unsafe {
        match kern.act {
            Some(f) => f(xs.as_mut_ptr(), xs.len(), act),
            None => (kern.epi)(xs.as_mut_ptr(), xs.len(), 1, xs.len(), core::ptr::null(), core::ptr::null(), act),
        }
    }
}

/// `xs[i] = exp(xs[i] - shift)` in place, returning the sum: the core of a
/// softmax row. `exp` is the epilogue's polynomial (relative error ~2e-7);
/// arguments below -87 give exactly 0.
pub fn exp_sum(xs: &mut [f32], shift: f32) -> f32 {
    match kernels::selected().exp_sum {
        // SAFETY: `xs` holds `xs.len()` values.
        Some(f) => unsafe { f(xs.as_mut_ptr(), xs.len(), shift) },
        None => {
            let mut sum = 0.0;
            for v in xs.iter_mut() {
                let d = *v - shift;
                *v = if d < epilogue::exp_consts::LO { 0.0 } else { epilogue::exp_approx(d) };
                sum += *v;
            }
            sum
        }
    }
}

/// A read-only strided matrix view: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// Contiguous row-major `rows × cols` (row stride `cols`, column stride 1).
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// A view with explicit strides.
    pub fn with_strides(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transposed view (no copy: dimensions and strides swap).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// The sub-view of `nrows × ncols` starting at `(r0, c0)`.
    pub fn sub(self, r0: usize, nrows: usize, c0: usize, ncols: usize) -> Self {
        assert!(
            r0 + nrows <= self.rows && c0 + ncols <= self.cols,
            "MatRef::sub out of range"
        );
        let off = if nrows == 0 || ncols == 0 {
            0
        } else {
            r0 * self.row_stride + c0 * self.col_stride
        };
        MatRef {
            data: &self.data[off.min(self.data.len())..],
            rows: nrows,
            cols: ncols,
            ..self
        }
    }

    /// Element `(i, j)` (bounds-checked).
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        assert!(i < self.rows && j < self.cols);
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// Panics unless the view is `rows × cols` and every element lies in `data`.
    fn check(&self, what: &str, rows: usize, cols: usize) {
        assert!(
            self.rows == rows && self.cols == cols,
            "uniml-linalg: {what} is {}x{}, expected {rows}x{cols}",
            self.rows,
            self.cols
        );
        if rows > 0 && cols > 0 {
            let last = (rows - 1).checked_mul(self.row_stride).and_then(|r| {
                (cols - 1)
                    .checked_mul(self.col_stride)
                    .and_then(|c| r.checked_add(c))
            });
            assert!(
                matches!(last, Some(l) if l < self.data.len()),
                "uniml-linalg: {what} view ({rows}x{cols}, strides {}/{}) exceeds its data (len {})",
                self.row_stride,
                self.col_stride,
                self.data.len()
            );
        }
    }
}

/// Panics unless C (`len` floats, row stride `ldc`) covers `rows × cols`.
fn check_c(len: usize, ldc: usize, n: usize, rows: &Range<usize>, cols: &Range<usize>) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    assert!(
        rows.len() == 1 || ldc >= n,
        "uniml-linalg: ldc ({ldc}) < n ({n})"
    );
    let need = (rows.end - 1)
        .checked_mul(ldc)
        .and_then(|v| v.checked_add(cols.end));
    assert!(
        matches!(need, Some(nd) if nd <= len),
        "uniml-linalg: C (len {len}, ldc {ldc}) too small for rows {rows:?} × cols {cols:?}"
    );
}

fn check_ranges(m: usize, n: usize, rows: &Range<usize>, cols: &Range<usize>) {
    assert!(
        rows.start <= rows.end && rows.end <= m,
        "uniml-linalg: row range {rows:?} not within 0..{m}"
    );
    assert!(
        cols.start <= cols.end && cols.end <= n,
        "uniml-linalg: column range {cols:?} not within 0..{n}"
    );
}

fn check_epilogue(ep: &Epilogue, m: usize, n: usize) {
    if let Some(b) = ep.bias_row {
        assert!(
            b.len() >= m,
            "uniml-linalg: bias_row has {} values, need {m}",
            b.len()
        );
    }
    if let Some(b) = ep.bias_col {
        assert!(
            b.len() >= n,
            "uniml-linalg: bias_col has {} values, need {n}",
            b.len()
        );
    }
}

/// Most rows of C a product computes with the selected kernel while reading
/// a row-major B (unit column stride) in place instead of packing it: a
/// whole number of microtile rows.
pub fn in_place_b_rows() -> usize {
    driver::DIRECT_B_MAX_TILES * kernels::selected().mr
}

/// Whether the selected kernel reads a B given as row offsets
/// ([`sgemm_packed_a_offs_b_ptr`]) in place; otherwise it packs it.
pub fn reads_offs_b_in_place() -> bool {
    kernels::selected().ukr_offs.is_some()
}

/// `C[m×n] = alpha · A[m×k] · B[k×n] + beta · C` (BLAS semantics: with
/// `beta == 0`, C is not read).  `a` must be `m×k`, `b` must be `k×n`; C is
/// row-major with row stride `ldc ≥ n`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    sgemm_impl(
        kernels::selected(),
        Path::Auto,
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c,
        ldc,
    )
}

/// [`sgemm`] with an explicitly chosen kernel (testing / benchmarking);
/// panics if `kind` is not available.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with_kernel(
    kind: KernelKind,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    sgemm_impl(
        &kernels::table_or_panic(kind),
        Path::Auto,
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c,
        ldc,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_impl(
    kern: &Kernel,
    path: Path,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    a.check("A", m, k);
    b.check("B", k, n);
    check_c(c.len(), ldc, n, &(0..m), &(0..n));
    let post = Post::scale(alpha, beta);
    // SAFETY: operands and C validated above; `c` is exclusively borrowed.
    unsafe {
        driver::gemm(
            kern,
            path,
            (m, n, k),
            &ASrc::Mat(a),
            &BSrc::Mat(b),
            c.as_mut_ptr(),
            ldc,
            &post,
            0..m,
            0..n,
        )
    }
}

/// `C = act(A[m×k] · B[k×n] + bias (+ C))` with neither operand pre-packed.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_epilogue(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef,
    b: MatRef,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
) {
    a.check("A", m, k);
    b.check("B", k, n);
    check_c(c.len(), ldc, n, &(0..m), &(0..n));
    check_epilogue(epilogue, m, n);
    let post = Post::from_epilogue(epilogue);
    // SAFETY: validated above; `c` is exclusively borrowed.
    unsafe {
        driver::gemm(
            kernels::selected(),
            Path::Auto,
            (m, n, k),
            &ASrc::Mat(a),
            &BSrc::Mat(b),
            c.as_mut_ptr(),
            ldc,
            &post,
            0..m,
            0..n,
        )
    }
}

/// `C[m×n] = epilogue(A[m×k] · B)` with `B` pre-packed (`k = b.k()`,
/// `n = b.n()`).
pub fn sgemm_packed_b(
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
) {
    sgemm_packed_b_range(m, a, b, c, ldc, epilogue, 0..m)
}

/// Like [`sgemm_packed_b`] but computes only the rows `rows` of C (`a` and
/// `c` are the full operands); nothing outside those rows is written.
pub fn sgemm_packed_b_range(
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
) {
    check_ranges(m, b.n(), &rows, &(0..b.n()));
    check_c(c.len(), ldc, b.n(), &rows, &(0..b.n()));
    // SAFETY: C checked to cover the range; `c` is exclusively borrowed.
    unsafe { sgemm_packed_b_range_ptr(m, a, b, c.as_mut_ptr(), ldc, epilogue, rows) }
}

/// Raw-pointer form of [`sgemm_packed_b_range`], for callers that split the
/// rows of one C across threads.
///
/// # Safety
/// For every `i ∈ rows` and `j < b.n()`, `c.add(i * ldc + j)` must be valid
/// for reads and writes, and no other code may access those elements during
/// the call (disjoint row ranges of one C may run concurrently).
pub unsafe fn sgemm_packed_b_range_ptr(
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
) {
    packed_b_impl(Path::Auto, m, a, b, c, ldc, epilogue, rows, 0..b.n())
}

/// [`sgemm_packed_b_range_ptr`] over the block `rows × cols` of C, for
/// callers that split the columns (e.g. a GEMV's outputs) across threads.
///
/// # Safety
/// For every `(i, j)` in `rows × cols`, `c.add(i * ldc + j)` must be valid
/// for reads and writes, and no other code may access those elements during
/// the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_packed_b_block_ptr(
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    packed_b_impl(Path::Auto, m, a, b, c, ldc, epilogue, rows, cols)
}

#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn packed_b_impl(
    path: Path,
    m: usize,
    a: MatRef,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let n = b.n();
    a.check("A", m, b.k());
    check_ranges(m, n, &rows, &cols);
    assert!(
        rows.len() <= 1 || ldc >= n,
        "uniml-linalg: ldc ({ldc}) < n ({n})"
    );
    check_epilogue(epilogue, m, n);
    let post = Post::from_epilogue(epilogue);
    driver::gemm(
        &b.kern,
        path,
        (m, n, b.k()),
        &ASrc::Mat(a),
        &BSrc::Packed(b),
        c,
        ldc,
        &post,
        rows,
        cols,
    )
}

/// `C[m×n] = epilogue(A · B[k×n])` with `A` pre-packed (`m = a.m()`,
/// `k = a.k()`).
pub fn sgemm_packed_a(
    a: &PackedA,
    n: usize,
    b: MatRef,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
) {
    sgemm_packed_a_range(a, n, b, c, ldc, epilogue, 0..n)
}

/// Like [`sgemm_packed_a`] but computes only the columns `cols` of C (`b`
/// and `c` are the full operands); nothing outside those columns is written.
pub fn sgemm_packed_a_range(
    a: &PackedA,
    n: usize,
    b: MatRef,
    c: &mut [f32],
    ldc: usize,
    epilogue: &Epilogue,
    cols: Range<usize>,
) {
    check_ranges(a.m(), n, &(0..a.m()), &cols);
    check_c(c.len(), ldc, n, &(0..a.m()), &cols);
    // SAFETY: C checked to cover the range; `c` is exclusively borrowed.
    unsafe { sgemm_packed_a_range_ptr(a, n, b, c.as_mut_ptr(), ldc, epilogue, cols) }
}

/// Raw-pointer form of [`sgemm_packed_a_range`], for callers that split the
/// columns (pixels) of one C across threads.
///
/// # Safety
/// For every `i < a.m()` and `j ∈ cols`, `c.add(i * ldc + j)` must be valid
/// for reads and writes, and no other code may access those elements during
/// the call (disjoint column ranges of one C may run concurrently).
pub unsafe fn sgemm_packed_a_range_ptr(
    a: &PackedA,
    n: usize,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    cols: Range<usize>,
) {
    packed_a_impl(Path::Auto, a, n, b, c, ldc, epilogue, 0..a.m(), cols)
}

/// [`sgemm_packed_a_range_ptr`] over a block: rows `rows` (absolute row
/// indices of A and C) and columns `cols`, for callers that split the rows of
/// one C across threads (few columns, e.g. the last layers of a CNN).
///
/// # Safety
/// For every `i ∈ rows` and `j ∈ cols`, `c.add(i * ldc + j)` must be valid
/// for reads and writes, and no other code may access those elements during
/// the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_packed_a_block_ptr(
    a: &PackedA,
    n: usize,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    packed_a_impl(Path::Auto, a, n, b, c, ldc, epilogue, rows, cols)
}

/// Packs blocks of a right operand that is never materialised (e.g. the
/// im2col matrix of a convolution, gathered straight from the input).
pub trait PackB: Sync {
    /// Writes depth `p0 .. p0+kc` and columns `j0 .. j0+nc` of B as
    /// `ceil(nc/nr)` panels of `kc × nr` values: element `(p0+p, j0+q·nr+t)`
    /// at `dst[q·kc·nr + p·nr + t]`, columns past `nc` zero. `dst` holds
    /// exactly those panels.
    fn pack(&self, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, dst: &mut [f32]);
}

/// `C[rows, cols] = epilogue(A · B)` with `A` pre-packed and the `a.k() × n`
/// operand B packed block by block by `b` (so B is never stored whole);
/// otherwise like [`sgemm_packed_a_block_ptr`].
///
/// # Safety
/// As for [`sgemm_packed_a_block_ptr`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_packed_a_fill_b_ptr(
    a: &PackedA,
    n: usize,
    b: &dyn PackB,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    packed_a_driver(Path::Blocked, a, n, &BSrc::Fill(b), c, ldc, epilogue, rows, cols)
}

/// `C[rows, cols] = epilogue(A · B)` with `A` pre-packed and B (`a.k() × n`)
/// given row by row in place: row `p` is `base[offs[p] .. offs[p] + n]` (an
/// implicit im2col, e.g. a convolution's taps over a zero-padded input).
/// Kernels with an in-place microkernel for it read B straight from `base`
/// when `rows` spans few microtiles ([`in_place_b_rows`]); otherwise B is
/// packed block by block. Otherwise like [`sgemm_packed_a_block_ptr`].
///
/// # Safety
/// As for [`sgemm_packed_a_block_ptr`].
///
/// # Panics
/// If `offs.len() != a.k()` or a row runs past the end of `base`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_packed_a_offs_b_ptr(
    a: &PackedA,
    n: usize,
    base: &[f32],
    offs: &[usize],
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    assert_eq!(offs.len(), a.k(), "uniml-linalg: {} B row offsets for k = {}", offs.len(), a.k());
    assert!(
        offs.iter().all(|&o| o.checked_add(n).is_some_and(|end| end <= base.len())),
        "uniml-linalg: a B row runs past the end of its {}-value buffer",
        base.len()
    );
    let b = driver::OffsB { base, offs };
    packed_a_driver(Path::Blocked, a, n, &BSrc::Offs(&b), c, ldc, epilogue, rows, cols)
}

#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn packed_a_impl(
    path: Path,
    a: &PackedA,
    n: usize,
    b: MatRef,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    b.check("B", a.k(), n);
    packed_a_driver(path, a, n, &BSrc::Mat(b), c, ldc, epilogue, rows, cols)
}

/// The checks and driver call of every product with a pre-packed A.
#[allow(clippy::too_many_arguments)]
unsafe fn packed_a_driver(
    path: Path,
    a: &PackedA,
    n: usize,
    b: &BSrc,
    c: *mut f32,
    ldc: usize,
    epilogue: &Epilogue,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let m = a.m();
    check_ranges(m, n, &rows, &cols);
    assert!(rows.len() <= 1 || ldc >= n, "uniml-linalg: ldc ({ldc}) < n ({n})");
    check_epilogue(epilogue, m, n);
    let post = Post::from_epilogue(epilogue);
    driver::gemm(&a.kern, path, (m, n, a.k()), &ASrc::Packed(a), b, c, ldc, &post, rows, cols)
}
