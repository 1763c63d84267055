//! The nn family's seam to the SGEMM (`uniml-linalg`): matrix views, packed
//! operands, a fused epilogue and the parallel drivers used by Conv,
//! ConvTranspose, Gemm and MatMul.
//!
//! Everything here is `C = epilogue(A·B)`; the `par_*` drivers split the work
//! into disjoint column tiles (through linalg's raw-pointer range API) or
//! contiguous row blocks.

use std::sync::{Arc, Mutex};

use uniml_data::{Tensor, TensorView};
use uniml_linalg as la;

use super::FusedActivation;
use super::gemm_split::{BlockSplit, COL_PANEL};
use crate::parallel::{par_chunks_mut, Parallelism};

/// A strided read-only matrix view (element `(i, j)` at `i*rs + j*cs`).
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    pub fn with_stride(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
    /// Columns `j0..j0+n` of this matrix.
    pub fn cols_range(self, j0: usize, n: usize) -> Self {
        let off = (j0 * self.cs).min(self.data.len());
        Mat {
            data: &self.data[off..],
            rows: self.rows,
            cols: n,
            rs: self.rs,
            cs: self.cs,
        }
    }
    /// Rows `i0..i0+m` of this matrix.
    pub fn rows_range(self, i0: usize, m: usize) -> Self {
        let off = (i0 * self.rs).min(self.data.len());
        Mat {
            data: &self.data[off..],
            rows: m,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }
    #[cfg(test)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
    fn la(self) -> la::MatRef<'a> {
        la::MatRef::with_strides(self.data, self.rows, self.cols, self.rs, self.cs)
    }
}

/// What happens after `A·B`: `C = act(A·B + bias_row[i] + bias_col[j] (+ C_old))`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epi<'a> {
    pub bias_row: Option<&'a [f32]>,
    pub bias_col: Option<&'a [f32]>,
    pub act: FusedActivation,
    pub accumulate: bool,
}

impl<'a> Epi<'a> {
    /// The linalg epilogue, plus an activation linalg cannot fuse (applied after).
    fn la(&self) -> (la::Epilogue<'a>, FusedActivation) {
        let (act, post) = match self.act {
            FusedActivation::None => (la::Activation::None, FusedActivation::None),
            FusedActivation::Relu => (la::Activation::Relu, FusedActivation::None),
            FusedActivation::Clip { min, max } => {
                (la::Activation::Clip { min, max }, FusedActivation::None)
            }
            FusedActivation::HardSwish => (la::Activation::HardSwish, FusedActivation::None),
            FusedActivation::Sigmoid => (la::Activation::Sigmoid, FusedActivation::None),
            FusedActivation::SiLU => (la::Activation::SiLU, FusedActivation::None),
            FusedActivation::Gelu => (la::Activation::Gelu, FusedActivation::None),
            other => (la::Activation::None, other),
        };
        let e = la::Epilogue {
            bias_row: self.bias_row,
            bias_col: self.bias_col,
            activation: act,
            accumulate: self.accumulate,
        };
        (e, post)
    }
    fn rows(&self, i0: usize) -> Epi<'a> {
        Epi {
            bias_row: self.bias_row.map(|b| &b[i0.min(b.len())..]),
            ..*self
        }
    }
    fn cols(&self, j0: usize) -> Epi<'a> {
        Epi {
            bias_col: self.bias_col.map(|b| &b[j0.min(b.len())..]),
            ..*self
        }
    }
}

/// A pre-packed left operand (e.g. conv weights `M × K`).
#[derive(Debug, Clone)]
pub struct PackedA {
    m: usize,
    k: usize,
    p: la::PackedA,
}

impl PackedA {
    pub fn pack(a: Mat) -> Self {
        PackedA {
            m: a.rows,
            k: a.cols,
            p: la::PackedA::pack(a.la(), a.rows, a.cols),
        }
    }
    pub fn rows(&self) -> usize {
        self.m
    }
    pub fn cols(&self) -> usize {
        self.k
    }
}

/// A pre-packed right operand (e.g. constant `Gemm`/`MatMul` weights `K × N`).
#[derive(Debug, Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    p: la::PackedB,
}

impl PackedB {
    pub fn pack(b: Mat) -> Self {
        PackedB {
            k: b.rows,
            n: b.cols,
            p: la::PackedB::pack(b.la(), b.rows, b.cols),
        }
    }
    pub fn cols(&self) -> usize {
        self.n
    }
}

/// Applies what linalg could not fuse (activations outside its set).
fn finish(m: usize, n: usize, c: &mut [f32], ldc: usize, post: FusedActivation) {
    if post == FusedActivation::None {
        return;
    }
    for i in 0..m {
        post.apply_slice(&mut c[i * ldc..i * ldc + n]);
    }
}

/// [`finish`] on the block `rows × cols` of a C reached by pointer (the
/// parallel drivers' tasks, each on its own block).
///
/// # Safety
/// `c.add(i * ldc + j)` is valid for reads and writes for every `(i, j)` in
/// `rows × cols`, and nothing else accesses those elements during the call.
unsafe fn finish_block(post: FusedActivation, c: *mut f32, ldc: usize, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
    if post == FusedActivation::None {
        return;
    }
    for i in rows {
        post.apply_slice(std::slice::from_raw_parts_mut(c.add(i * ldc + cols.start), cols.len()));
    }
}

/// `C = epi(0)` for an empty inner dimension.
fn empty_product(m: usize, n: usize, c: &mut [f32], ldc: usize, epi: &Epi) {
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        for (j, x) in row.iter_mut().enumerate() {
            let old = if epi.accumulate { *x } else { 0.0 };
            let v = old + epi.bias_row.map_or(0.0, |b| b[i]) + epi.bias_col.map_or(0.0, |b| b[j]);
            *x = epi.act.apply(v);
        }
    }
}

/// `C[m×n] (row stride ldc) = epi(A[m×k] · B[k×n])`, single-threaded.
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize, epi: &Epi) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        return empty_product(m, n, c, ldc, epi);
    }
    let (e, post) = epi.la();
    la::sgemm_epilogue(m, n, k, a.la(), b.la(), c, ldc, &e);
    finish(m, n, c, ldc, post);
}

pub fn gemm_packed_a(a: &PackedA, n: usize, b: Mat, c: &mut [f32], ldc: usize, epi: &Epi) {
    if a.m == 0 || n == 0 {
        return;
    }
    if a.k == 0 {
        return empty_product(a.m, n, c, ldc, epi);
    }
    let (e, post) = epi.la();
    la::sgemm_packed_a(&a.p, n, b.la(), c, ldc, &e);
    finish(a.m, n, c, ldc, post);
}

pub fn gemm_packed_b(m: usize, a: Mat, b: &PackedB, c: &mut [f32], ldc: usize, epi: &Epi) {
    if m == 0 || b.n == 0 {
        return;
    }
    if b.k == 0 {
        return empty_product(m, b.n, c, ldc, epi);
    }
    let (e, post) = epi.la();
    la::sgemm_packed_b(m, a.la(), &b.p, c, ldc, &e);
    finish(m, b.n, c, ldc, post);
}

/// Minimum multiply-adds worth a parallel split.
const PAR_MIN_FLOPS: usize = 1 << 18;

/// `C[m×n] (contiguous rows, ldc = n) = epi(A·B)` where A is either packed or
/// a plain view; split over column tiles of at least `min_tile` columns when
/// big enough. `b_tile(j0, n, buf)` gives the `k × n` column tile starting
/// at column `j0`: either a view (`Some`) or `None` after filling `buf` with
/// it row-major (e.g. by im2col).
#[allow(clippy::too_many_arguments)]
pub fn par_gemm_cols<'a>(
    par: &dyn Parallelism,
    a: ARef,
    n: usize,
    k: usize,
    c: &mut [f32],
    epi: &Epi,
    tile: usize,
    b_tile: &BTile<'a>,
) {
    let m = a.rows();
    if m == 0 || n == 0 {
        return;
    }
    let tile = tile.clamp(1, n);
    let split = BlockSplit::new(m, n, tile, par.threads());
    if split.tasks() <= 1 || par.threads() <= 1 {
        super::with_scratch(|buf| {
            for j0 in (0..n).step_by(tile) {
                let w = tile.min(n - j0);
                let b = b_tile(j0, w, buf).unwrap_or(Mat::new(buf, k, w));
                a.gemm(w, b, &mut c[j0..], n, &epi.cols(j0));
            }
        });
        return;
    }
    // Pack a plain A once so that every tile reuses it.
    let owned;
    let pa = match a {
        ARef::Packed(p) => p,
        ARef::Plain(m) => {
            owned = PackedA::pack(m);
            &owned
        }
    };
    if k == 0 {
        return empty_product(m, n, c, n, epi);
    }
    assert!(c.len() >= m * n, "par_gemm_cols: C too small");
    let (e, post) = epi.la();
    let base = crate::parallel::SyncPtr(c.as_mut_ptr());
    par.for_each(split.tasks(), &|t| {
        let (rows, cols) = split.block(t);
        let (j0, w) = (cols.start, cols.len());
        super::with_scratch(|buf| {
            let b = b_tile(j0, w, buf).unwrap_or(Mat::new(buf, k, w));
            let et = la::Epilogue {
                bias_col: e.bias_col.map(|b| &b[j0..]),
                ..e
            };
            // SAFETY: task t computes only block `rows × cols` of C (row
            // stride n, all within `c`, checked above); tasks' blocks are
            // disjoint and `c` outlives the call.
            unsafe {
                let cp = base.get().add(j0);
                la::sgemm_packed_a_block_ptr(&pa.p, w, b.la(), cp, n, &et, rows.clone(), 0..w);
                finish_block(post, cp, n, rows, 0..w);
            }
        });
    });
}

/// `C[m×n] = epi(A·B)` with A pre-packed and B (`k × n`) never stored: `fill`
/// packs each block of it as the GEMM needs it (e.g. im2col gathered from
/// the conv input straight into panels). Columns split over tasks of `tile`.
pub fn par_gemm_fill_b(
    par: &dyn Parallelism,
    pa: &PackedA,
    n: usize,
    c: &mut [f32],
    epi: &Epi,
    tile: usize,
    fill: &dyn la::PackB,
) {
    let m = pa.m;
    if m == 0 || n == 0 {
        return;
    }
    if pa.k == 0 {
        return empty_product(m, n, c, n, epi);
    }
    assert!(c.len() >= m * n, "par_gemm_fill_b: C too small");
    let (e, post) = epi.la();
    let base = crate::parallel::SyncPtr(c.as_mut_ptr());
    let run = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        // SAFETY: this call computes only block `rows × cols` of C (row
        // stride n, within `c`, checked above); concurrent calls get disjoint
        // blocks and `c` outlives them.
        unsafe {
            la::sgemm_packed_a_fill_b_ptr(&pa.p, n, fill, base.get(), n, &e, rows.clone(), cols.clone());
            finish_block(post, base.get(), n, rows, cols);
        }
    };
    let split = BlockSplit::new(m, n, tile, par.threads());
    if split.tasks() <= 1 || par.threads() <= 1 {
        // One call: linalg blocks the columns itself.
        return run(0..m, 0..n);
    }
    par.for_each(split.tasks(), &|t| {
        let (rows, cols) = split.block(t);
        run(rows, cols)
    });
}

/// `C[rows, cols] = epi(A · B)` for one block of C, A pre-packed and B
/// (`a.cols() × n`) given row by row in place: row `p` is
/// `base[offs[p] ..][..n]` (see `uniml_linalg::sgemm_packed_a_offs_b_ptr`).
///
/// # Safety
/// `c.add(i * ldc + j)` is valid for reads and writes for every `(i, j)` in
/// `rows × cols`, and nothing else accesses those elements during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed_a_offs_block(
    a: &PackedA,
    n: usize,
    base: &[f32],
    offs: &[usize],
    c: *mut f32,
    ldc: usize,
    epi: &Epi,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    let (e, post) = epi.la();
    la::sgemm_packed_a_offs_b_ptr(&a.p, n, base, offs, c, ldc, &e, rows.clone(), cols.clone());
    finish_block(post, c, ldc, rows, cols);
}

/// Gives column tile `(j0, n)` of B: a view, or `None` after filling the buffer.
pub type BTile<'a> = dyn Fn(usize, usize, &mut Vec<f32>) -> Option<Mat<'a>> + Sync + 'a;

/// Row-split driver for small `n`: `C[m×n] = epi(A·B)` with A a plain view,
/// rows split over tasks (each task's rows of C are contiguous).
pub fn par_gemm_rows(par: &dyn Parallelism, a: Mat, b: Mat, c: &mut [f32], epi: &Epi) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let threads = par.threads();
    if threads <= 1 || m * n * k < PAR_MIN_FLOPS || m < 8 {
        gemm(m, n, k, a, b, c, n, epi);
        return;
    }
    // B is shared by every row block: pack it once.
    let pb = PackedB::pack(b);
    let rows = m.div_ceil(threads * 2).max(4);
    par_chunks_mut(par, &mut c[..m * n], rows * n, &|t, chunk| {
        let i0 = t * rows;
        let mr = chunk.len() / n;
        gemm_packed_b(mr, a.rows_range(i0, mr), &pb, chunk, n, &epi.rows(i0));
    });
}

/// `C[m×n] = epi(A · B)` with A pre-packed (weights), rows split over tasks:
/// for few columns (the 7×7 layers of a CNN), where splitting columns gives
/// no work to share and the plain-A row split would repack the weights.
pub fn par_gemm_packed_a_rows(
    par: &dyn Parallelism,
    a: &PackedA,
    b: Mat,
    c: &mut [f32],
    epi: &Epi,
) {
    let (m, k, n) = (a.m, a.k, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let threads = par.threads();
    if threads <= 1 || m * n * k < PAR_MIN_FLOPS || m < 8 || k == 0 {
        return gemm_packed_a(a, n, b, c, n, epi);
    }
    assert!(c.len() >= m * n, "par_gemm_packed_a_rows: C too small");
    // Whole microtile rows per task (48 is a multiple of every kernel's mr).
    let rows = m.div_ceil(threads * 2).div_ceil(48).max(1) * 48;
    let tasks = m.div_ceil(rows);
    let (e, post) = epi.la();
    let base = crate::parallel::SyncPtr(c.as_mut_ptr());
    par.for_each(tasks, &|t| {
        let (i0, i1) = (t * rows, ((t + 1) * rows).min(m));
        // SAFETY: task t computes only rows i0..i1 of C (row stride n, within
        // `c`, checked above); tasks' row ranges are disjoint and `c` outlives the call.
        unsafe {
            la::sgemm_packed_a_block_ptr(&a.p, n, b.la(), base.get(), n, &e, i0..i1, 0..n);
            if post != FusedActivation::None {
                post.apply_slice(std::slice::from_raw_parts_mut(
                    base.get().add(i0 * n),
                    (i1 - i0) * n,
                ));
            }
        }
    });
}

/// `C[m×n] = epi(A · B)` with B packed, rows split over tasks.
pub fn gemm_packed_b_rows(
    par: &dyn Parallelism,
    m: usize,
    a: Mat,
    b: &PackedB,
    c: &mut [f32],
    epi: &Epi,
) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    let threads = par.threads();
    if threads <= 1 || m * n * k < PAR_MIN_FLOPS || k == 0 {
        gemm_packed_b(m, a, b, c, n, epi);
        return;
    }
    if m < 8 {
        // A few rows (a classifier's GEMV): split the columns instead, each
        // task streaming its share of the packed weights.
        assert!(c.len() >= m * n, "gemm_packed_b_rows: C too small");
        let (e, post) = epi.la();
        let per = n.div_ceil(threads * 2).div_ceil(COL_PANEL).max(1) * COL_PANEL;
        let base = crate::parallel::SyncPtr(c.as_mut_ptr());
        par.for_each(n.div_ceil(per), &|t| {
            let cols = t * per..((t + 1) * per).min(n);
            // SAFETY: task t computes only columns `cols` of the m rows of C
            // (row stride n, within `c`, checked above); tasks' column ranges
            // are disjoint and `c` outlives the call.
            unsafe {
                la::sgemm_packed_b_block_ptr(m, a.la(), &b.p, base.get(), n, &e, 0..m, cols.clone());
                finish_block(post, base.get(), n, 0..m, cols);
            }
        });
        return;
    }
    let rows = m.div_ceil(threads * 2).max(4);
    par_chunks_mut(par, &mut c[..m * n], rows * n, &|t, chunk| {
        let i0 = t * rows;
        let mr = chunk.len() / n;
        gemm_packed_b(mr, a.rows_range(i0, mr), b, chunk, n, &epi.rows(i0));
    });
}

/// Left operand of [`par_gemm_cols`].
#[derive(Clone, Copy)]
pub enum ARef<'a> {
    Packed(&'a PackedA),
    Plain(Mat<'a>),
}

/// Whether a product with `m` rows and `n` columns splits the rows of A
/// across threads (few columns: column tiles would leave threads idle).
pub fn split_rows(par: &dyn Parallelism, m: usize, n: usize) -> bool {
    let threads = par.threads();
    threads > 1 && n < 64 * threads && m >= 16
}

impl ARef<'_> {
    /// `C = epi(A · B)` with the rows of A split over threads; pre-packed
    /// weights are split without repacking them.
    pub fn par_gemm_rows(&self, par: &dyn Parallelism, b: Mat, c: &mut [f32], epi: &Epi) {
        match self {
            ARef::Packed(pa) => par_gemm_packed_a_rows(par, pa, b, c, epi),
            ARef::Plain(a) => par_gemm_rows(par, *a, b, c, epi),
        }
    }

    fn rows(&self) -> usize {
        match self {
            ARef::Packed(p) => p.m,
            ARef::Plain(m) => m.rows,
        }
    }
    fn gemm(&self, n: usize, b: Mat, c: &mut [f32], ldc: usize, epi: &Epi) {
        match self {
            ARef::Packed(p) => gemm_packed_a(p, n, b, c, ldc, epi),
            ARef::Plain(a) => gemm(a.rows, n, a.cols, *a, b, c, ldc, epi),
        }
    }
}

/// Chooses a column tile for a `m × n × k` product: big enough to amortise the
/// per-call packing, small enough to give every thread work and to keep a
/// `k × tile` im2col buffer around 1 MiB.
pub fn col_tile(par: &dyn Parallelism, m: usize, n: usize, k: usize) -> usize {
    let threads = par.threads().max(1);
    // Keep a `k × tile` B tile within ~1 MiB (L2), in whole 32-column panels.
    let cap = ((1usize << 18) / k.max(1)).max(64) / 32 * 32;
    if threads == 1 || m * n * k < PAR_MIN_FLOPS {
        return n.min(cap.max(1)).max(1);
    }
    // Whole panels per task, and a task count that is a multiple of the
    // thread count (edge panels are the only uneven ones).
    let panels = n.div_ceil(COL_PANEL);
    let rounds = if panels <= 8 * threads { 1 } else { 2 };
    let per = panels.div_ceil(threads * rounds).max(1) * COL_PANEL;
    per.min(cap.max(COL_PANEL)).max(1)
}

// ---------------------------------------------------------------------------
// Weight caches keyed by the constant tensor they were packed from.

/// Weights packed once from a constant tensor, remembered with that tensor.
#[derive(Debug)]
pub struct PackedWeight<T> {
    source: Arc<Tensor>,
    pub packed: T,
}

impl<T> PackedWeight<T> {
    pub fn new(source: Arc<Tensor>, packed: T) -> Self {
        PackedWeight { source, packed }
    }
    /// Whether `v` is a view of exactly the tensor this was packed from.
    pub fn matches(&self, v: &TensorView) -> bool {
        let s = self.source.view();
        s.dtype() == v.dtype()
            && s.shape() == v.shape()
            && std::ptr::eq(s.as_bytes().as_ptr(), v.as_bytes().as_ptr())
    }
}

/// A replaceable slot for a [`PackedWeight`], shared by clones of an op.
#[derive(Debug)]
pub struct WeightCache<T>(Mutex<Option<Arc<PackedWeight<T>>>>);

impl<T> Default for WeightCache<T> {
    fn default() -> Self {
        WeightCache(Mutex::new(None))
    }
}

impl<T> Clone for WeightCache<T> {
    fn clone(&self) -> Self {
        WeightCache(Mutex::new(self.get_any()))
    }
}

/// A cache of data derived from an input, never part of an op's identity:
/// ops that differ only in what they have cached are equal.
impl<T> PartialEq for WeightCache<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> WeightCache<T> {
    fn get_any(&self) -> Option<Arc<PackedWeight<T>>> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
    /// The pack for the run-time weight `v`, if `v` is the tensor it was packed from.
    pub fn get(&self, v: &TensorView) -> Option<Arc<PackedWeight<T>>> {
        self.get_any().filter(|p| p.matches(v))
    }
    /// Packs `source` with `pack` unless the cache already holds a pack of it.
    pub fn ensure(&self, source: &Arc<Tensor>, pack: impl FnOnce(&Tensor) -> Option<T>) {
        if self.get(&source.view()).is_some() {
            return;
        }
        if let Some(p) = pack(source) {
            if let Ok(mut g) = self.0.lock() {
                *g = Some(Arc::new(PackedWeight::new(source.clone(), p)));
            }
        }
    }
    pub fn clear(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, rand_vec};

    fn naive(m: usize, n: usize, k: usize, a: Mat, b: Mat) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a.at(i, p) * b.at(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_with_transposes_and_epilogue() {
        for &(m, n, k) in &[(1, 1, 1), (5, 7, 3), (9, 600, 300), (13, 3, 1)] {
            let av = rand_vec(m * k, 1);
            let bv = rand_vec(k * n, 2);
            let bias = rand_vec(m, 3);
            let a = Mat::new(&av, m, k);
            let bt = Mat::new(&bv, n, k).t();
            let want: Vec<f32> = naive(m, n, k, a, bt)
                .iter()
                .enumerate()
                .map(|(i, v)| (v + bias[i / n]).max(0.0))
                .collect();
            let mut c = vec![f32::NAN; m * n];
            let epi = Epi {
                bias_row: Some(&bias),
                act: FusedActivation::Relu,
                ..Default::default()
            };
            gemm(m, n, k, a, bt, &mut c, n, &epi);
            assert_close(&c, &want, 1e-5);
        }
    }
}
