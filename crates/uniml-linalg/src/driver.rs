//! The GEMM drivers: BLIS-style blocked loops around the microkernel, plus
//! cheap paths (GEMV, small products) where packing would dominate.
//!
//! Every driver computes only the sub-rectangle `rows × cols` of C and writes
//! nothing outside it, so callers may run disjoint ranges concurrently.

use core::ops::Range;
use std::cell::Cell;

use crate::epilogue::{Activation, Epilogue, TileEpi};
use crate::kernels::Kernel;
use crate::pack::{pack_a, pack_b, AlignedBuf, PackedA, PackedB};
use crate::MatRef;

/// Left operand: a strided view (packed on the fly) or pre-packed.
pub(crate) enum ASrc<'a> {
    Mat(MatRef<'a>),
    Packed(&'a PackedA),
}

/// Right operand: a strided view (packed on the fly), pre-packed, or packed
/// on the fly by the caller's [`crate::PackB`] (B never materialised).
pub(crate) enum BSrc<'a> {
    Mat(MatRef<'a>),
    Packed(&'a PackedB),
    Fill(&'a dyn crate::PackB),
    Offs(&'a OffsB<'a>),
}

/// A right operand whose row `p` is `base[offs[p]..][..n]` (unit column
/// stride): read in place by kernels with `ukr_offs` when A has few rows,
/// else packed like a [`crate::PackB`].
pub(crate) struct OffsB<'a> {
    pub base: &'a [f32],
    pub offs: &'a [usize],
}

impl crate::PackB for OffsB<'_> {
    fn pack(&self, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        for (q, panel) in dst.chunks_exact_mut(kc * nr).take(nc.div_ceil(nr)).enumerate() {
            let c0 = j0 + q * nr;
            let w = nr.min(j0 + nc - c0);
            for (p, d) in panel.chunks_exact_mut(nr).enumerate() {
                let start = self.offs[p0 + p] + c0;
                d[..w].copy_from_slice(&self.base[start..start + w]);
                d[w..].fill(0.0);
            }
        }
    }
}

/// What to do with each accumulated value `s`:
/// `C = act(alpha·s + beta·C + bias_row[i] + bias_col[j])` (C not read when
/// `beta == 0`; null bias pointers mean none).
#[derive(Clone, Copy)]
pub(crate) struct Post {
    pub alpha: f32,
    pub beta: f32,
    pub bias_row: *const f32,
    pub bias_col: *const f32,
    pub act: Activation,
}

impl Post {
    pub(crate) fn new(
        alpha: f32,
        beta: f32,
        bias_row: *const f32,
        bias_col: *const f32,
        act: Activation,
    ) -> Post {
        Post {
            alpha,
            beta,
            bias_row,
            bias_col,
            act,
        }
    }

    pub(crate) fn scale(alpha: f32, beta: f32) -> Post {
        Post::new(
            alpha,
            beta,
            core::ptr::null(),
            core::ptr::null(),
            Activation::None,
        )
    }

    pub(crate) fn from_epilogue(ep: &Epilogue) -> Post {
        Post::new(
            1.0,
            if ep.accumulate { 1.0 } else { 0.0 },
            ep.bias_row.map_or(core::ptr::null(), |b| b.as_ptr()),
            ep.bias_col.map_or(core::ptr::null(), |b| b.as_ptr()),
            ep.activation,
        )
    }

    fn has_bias(&self) -> bool {
        !self.bias_row.is_null() || !self.bias_col.is_null()
    }

    fn needs_pass(&self) -> bool {
        self.has_bias() || self.act != Activation::None
    }

    /// The in-register epilogue for the tile at `(i0, j0)`, if any (bias
    /// pointers are offset to the tile, not bounds-checked).
    #[inline]
    fn tile_epi(&self, i0: usize, j0: usize) -> Option<TileEpi> {
        if !self.needs_pass() {
            return None;
        }
        Some(TileEpi {
            bias_row: if self.bias_row.is_null() {
                self.bias_row
            } else {
                self.bias_row.wrapping_add(i0)
            },
            bias_col: if self.bias_col.is_null() {
                self.bias_col
            } else {
                self.bias_col.wrapping_add(j0)
            },
            act: self.act,
        })
    }

    /// Bias + activation on the block `i0.., j0..` of size `rows × cols`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pass(
        &self,
        kern: &Kernel,
        c: *mut f32,
        ldc: usize,
        i0: usize,
        j0: usize,
        rows: usize,
        cols: usize,
    ) {
        if self.needs_pass() && rows > 0 && cols > 0 {
            let br = if self.bias_row.is_null() {
                self.bias_row
            } else {
                self.bias_row.add(i0)
            };
            let bc = if self.bias_col.is_null() {
                self.bias_col
            } else {
                self.bias_col.add(j0)
            };
            (kern.epi)(c.add(i0 * ldc + j0), ldc, rows, cols, br, bc, self.act);
        }
    }

    /// `dst[t·stride] = alpha·vals[t] + beta·dst[t·stride]`.
    #[inline]
    unsafe fn combine(&self, dst: *mut f32, stride: usize, vals: &[f32]) {
        let (alpha, beta) = (self.alpha, self.beta);
        for (t, &v) in vals.iter().enumerate() {
            let d = dst.add(t * stride);
            *d = if beta == 0.0 {
                alpha * v
            } else {
                alpha * v + beta * *d
            };
        }
    }
}

/// Which algorithm; `Auto` in production, the others let tests force a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Path {
    Auto,
    Blocked,
    Small,
}

/// Up to this many multiply-adds (`m·n·k`) a plain row-axpy loop beats
/// packing.  Packing is cheap (the scratch buffers are reused), so this is
/// tiny: measured on AVX2 / AVX-512, the blocked path already wins at 8×8×8.
const SMALL_WORK: usize = 6 * 6 * 6;

/// Up to this many microtile rows per call, a row-major B with unit column
/// stride is read in place (`Kernel::ukr_sb`) instead of packed: each packed
/// panel would be read only this many times, and packing it costs about as
/// much as the reads it saves (pointwise convolutions with few output
/// channels, where B is the activation).  Results are bit-identical either way.
pub(crate) const DIRECT_B_MAX_TILES: usize = 4;

/// Per-thread packing buffers, reused between calls (so large products don't
/// pay for allocating and faulting in megabytes every time).
#[derive(Default)]
struct Scratch {
    a: AlignedBuf,
    b: AlignedBuf,
}

thread_local! {
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut s = SCRATCH.with(|c| c.take()).unwrap_or_default();
    let r = f(&mut s);
    SCRATCH.with(|c| c.set(Some(s)));
    r
}

#[repr(C, align(64))]
struct Tile([f32; 512]);

/// Copies `len` values from `src` (if non-null) to `buf[off..]`, zeros
/// elsewhere; returns `buf` (or null).
unsafe fn pad_copy(buf: &mut [f32; 64], src: *const f32, off: usize, len: usize) -> *const f32 {
    if src.is_null() {
        return src;
    }
    buf.fill(0.0);
    core::ptr::copy_nonoverlapping(src.add(off), buf.as_mut_ptr().add(off), len);
    buf.as_ptr()
}

/// Computes `C[rows, cols]` of the `m×n` product.
///
/// The algorithm is chosen from the full shape (`m, n, k`), never from the
/// range, so every partition of C into ranges gives bit-identical results.
///
/// # Safety
/// Operands have been validated against `m, n, k`; `rows ⊆ 0..m`,
/// `cols ⊆ 0..n`; `c + i·ldc + j` is valid for reads and writes for every
/// `(i, j) ∈ rows × cols` and nothing else accesses those elements meanwhile;
/// non-null bias pointers cover `m` (row) / `n` (column) values.  When an
/// operand is packed, `kern` is its kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    kern: &Kernel,
    path: Path,
    (m, n, k): (usize, usize, usize),
    a: &ASrc,
    b: &BSrc,
    c: *mut f32,
    ldc: usize,
    post: &Post,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    if k == 0 {
        for i in rows.clone() {
            for j in cols.clone() {
                let d = c.add(i * ldc + j);
                *d = if post.beta == 0.0 {
                    0.0
                } else {
                    post.beta * *d
                };
            }
        }
        post.pass(kern, c, ldc, rows.start, cols.start, rows.len(), cols.len());
        return;
    }
    let auto = path == Path::Auto;
    match (a, b) {
        (ASrc::Packed(pa), BSrc::Mat(bm)) if auto && n == 1 => {
            gemv_packed_a(pa, bm, c, ldc, post, rows, cols.start)
        }
        (ASrc::Mat(am), BSrc::Packed(pb)) if auto && m == 1 => {
            gemv_packed_b(am, pb, c, ldc, post, rows.start, cols)
        }
        (ASrc::Mat(am), BSrc::Mat(bm))
            if auto && m == 1 && (bm.col_stride == 1 || bm.row_stride == 1) =>
        {
            gemv_row(kern, am, bm, k, c, ldc, post, rows.start, cols)
        }
        (ASrc::Mat(am), BSrc::Mat(bm))
            if auto && n == 1 && (am.col_stride == 1 || am.row_stride == 1) =>
        {
            gemv_col(kern, am, bm, k, c, ldc, post, rows, cols.start)
        }
        (ASrc::Mat(am), BSrc::Mat(bm))
            if bm.col_stride == 1
                && (path == Path::Small
                    || (auto && m.saturating_mul(n).saturating_mul(k) <= SMALL_WORK)) =>
        {
            small(kern, am, bm, k, c, ldc, post, rows, cols)
        }
        _ => blocked(kern, k, a, b, c, ldc, post, rows, cols),
    }
}

/// `len` elements of `m.data` from `start` with step `step`, contiguous.
fn gather(m: &MatRef, start: usize, step: usize, len: usize) -> Vec<f32> {
    (0..len).map(|p| m.data[start + p * step]).collect()
}

/// One row of C, both operands strided views (`b` has a unit stride).
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_row(
    kern: &Kernel,
    a: &MatRef,
    b: &MatRef,
    k: usize,
    c: *mut f32,
    ldc: usize,
    post: &Post,
    i: usize,
    cols: Range<usize>,
) {
    let x = gather(a, i * a.row_stride, a.col_stride, k);
    let crow = c.add(i * ldc);
    if b.col_stride == 1 {
        const CH: usize = 1024;
        let mut buf = [0.0f32; CH];
        let mut j0 = cols.start;
        while j0 < cols.end {
            let len = CH.min(cols.end - j0);
            let acc = &mut buf[..len];
            acc.fill(0.0);
            for (p, &xp) in x.iter().enumerate() {
                let base = p * b.row_stride + j0;
                (kern.axpy)(xp, &b.data[base..base + len], acc);
            }
            post.combine(crow.add(j0), 1, acc);
            j0 += len;
        }
    } else {
        for j in cols.clone() {
            let base = j * b.col_stride;
            let s = (kern.dot)(&x, &b.data[base..base + k]);
            post.combine(crow.add(j), 1, &[s]);
        }
    }
    post.pass(kern, c, ldc, i, cols.start, 1, cols.len());
}

/// One column of C, both operands strided views (`a` has a unit stride).
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_col(
    kern: &Kernel,
    a: &MatRef,
    b: &MatRef,
    k: usize,
    c: *mut f32,
    ldc: usize,
    post: &Post,
    rows: Range<usize>,
    j: usize,
) {
    let x = gather(b, j * b.col_stride, b.row_stride, k);
    if a.col_stride == 1 {
        for i in rows.clone() {
            let base = i * a.row_stride;
            let s = (kern.dot)(&a.data[base..base + k], &x);
            post.combine(c.add(i * ldc + j), 1, &[s]);
        }
    } else {
        const CH: usize = 1024;
        let mut buf = [0.0f32; CH];
        let mut i0 = rows.start;
        while i0 < rows.end {
            let len = CH.min(rows.end - i0);
            let acc = &mut buf[..len];
            acc.fill(0.0);
            for (p, &xp) in x.iter().enumerate() {
                let base = p * a.col_stride + i0;
                (kern.axpy)(xp, &a.data[base..base + len], acc);
            }
            post.combine(c.add(i0 * ldc + j), ldc, acc);
            i0 += len;
        }
    }
    post.pass(kern, c, ldc, rows.start, j, rows.len(), 1);
}

/// One row of C against a pre-packed B: streams the packed panels once.
unsafe fn gemv_packed_b(
    a: &MatRef,
    pb: &PackedB,
    c: *mut f32,
    ldc: usize,
    post: &Post,
    i: usize,
    cols: Range<usize>,
) {
    let kern = &pb.kern;
    let (k, nr) = (pb.k(), kern.nr);
    let x = gather(a, i * a.row_stride, a.col_stride, k);
    let mut acc = [0.0f32; 64];
    let mut tmp = [0.0f32; 64];
    for q in cols.start / nr..cols.end.div_ceil(nr) {
        acc[..nr].fill(0.0);
        let mut pc = 0;
        while pc < k {
            let kc = kern.kc.min(k - pc);
            (kern.gemv_nr)(
                kc,
                pb.panel_ptr(pc, q),
                x.as_ptr().add(pc),
                tmp.as_mut_ptr(),
            );
            for (s, t) in acc[..nr].iter_mut().zip(&tmp[..nr]) {
                *s += *t;
            }
            pc += kc;
        }
        let (jlo, jhi) = ((q * nr).max(cols.start), (q * nr + nr).min(cols.end));
        post.combine(c.add(i * ldc + jlo), 1, &acc[jlo - q * nr..jhi - q * nr]);
    }
    post.pass(kern, c, ldc, i, cols.start, 1, cols.len());
}

/// One column of C against a pre-packed A.
unsafe fn gemv_packed_a(
    pa: &PackedA,
    b: &MatRef,
    c: *mut f32,
    ldc: usize,
    post: &Post,
    rows: Range<usize>,
    j: usize,
) {
    let kern = &pa.kern;
    let (k, mr) = (pa.k(), kern.mr);
    let x = gather(b, j * b.col_stride, b.row_stride, k);
    let mut acc = [0.0f32; 64];
    let mut tmp = [0.0f32; 64];
    for q in rows.start / mr..rows.end.div_ceil(mr) {
        acc[..mr].fill(0.0);
        let mut pc = 0;
        while pc < k {
            let kc = kern.kc.min(k - pc);
            (kern.gemv_mr)(
                kc,
                pa.panel_ptr(pc, q),
                x.as_ptr().add(pc),
                tmp.as_mut_ptr(),
            );
            for (s, t) in acc[..mr].iter_mut().zip(&tmp[..mr]) {
                *s += *t;
            }
            pc += kc;
        }
        let (ilo, ihi) = ((q * mr).max(rows.start), (q * mr + mr).min(rows.end));
        post.combine(c.add(ilo * ldc + j), ldc, &acc[ilo - q * mr..ihi - q * mr]);
    }
    post.pass(kern, c, ldc, rows.start, j, rows.len(), 1);
}

/// Small products: `C[i,:] = beta·C[i,:] + Σ_p (alpha·A[i,p]) · B[p,:]`
/// without packing (`b.col_stride == 1`).
#[allow(clippy::too_many_arguments)]
unsafe fn small(
    kern: &Kernel,
    a: &MatRef,
    b: &MatRef,
    k: usize,
    c: *mut f32,
    ldc: usize,
    post: &Post,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let len = cols.len();
    for i in rows.clone() {
        let crow = core::slice::from_raw_parts_mut(c.add(i * ldc + cols.start), len);
        if post.beta == 0.0 {
            crow.fill(0.0);
        } else if post.beta != 1.0 {
            for v in crow.iter_mut() {
                *v *= post.beta;
            }
        }
        for p in 0..k {
            let s = post.alpha * a.data[i * a.row_stride + p * a.col_stride];
            let base = p * b.row_stride + cols.start;
            (kern.axpy)(s, &b.data[base..base + len], crow);
        }
    }
    post.pass(kern, c, ldc, rows.start, cols.start, rows.len(), len);
}

/// The BLIS loop nest: `jc` (nc columns) → `pc` (kc depth, pack B) → `ic`
/// (mc rows, pack A) → `jr` (nr) → `ir` (mr) → microkernel.  Tiles crossing
/// the edge of `rows × cols` go through a local buffer.
#[allow(clippy::too_many_arguments)]
unsafe fn blocked(
    kern: &Kernel,
    k: usize,
    a: &ASrc,
    b: &BSrc,
    c: *mut f32,
    ldc: usize,
    post: &Post,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    let Kernel {
        mr,
        nr,
        kc: kc_max,
        mc: mc_max,
        nc: nc_max,
        ukr,
        ukr_sb,
        ukr_rows,
        ukr_offs,
        ..
    } = *kern;
    debug_assert!(mr * nr <= 512 && mc_max % mr == 0 && nc_max % nr == 0);
    // A packed operand is addressed by whole panels, so its tile grid starts
    // on a panel boundary (tiles straddling the range start are clipped).
    let i_org = if let ASrc::Packed(_) = a {
        rows.start / mr * mr
    } else {
        rows.start
    };
    let j_org = if let BSrc::Packed(_) = b {
        cols.start / nr * nr
    } else {
        cols.start
    };
    let kc_eff = kc_max.min(k);
    // B read in place: (data, row stride).
    let direct_b = match b {
        BSrc::Mat(bm) if bm.col_stride == 1 && rows.end - i_org <= DIRECT_B_MAX_TILES * mr => {
            Some((bm.data.as_ptr(), bm.row_stride))
        }
        _ => None,
    };
    // B rows at offsets read in place: (operand, kernel).
    let direct_offs = match (b, ukr_offs) {
        (BSrc::Offs(o), Some(f)) if rows.end - i_org <= DIRECT_B_MAX_TILES * mr => Some((*o, f)),
        _ => None,
    };
    with_scratch(|s| {
        if let ASrc::Mat(_) = a {
            s.a.ensure(mc_max.min(rows.end - i_org).div_ceil(mr) * mr * kc_eff);
        }
        if let BSrc::Mat(_) | BSrc::Fill(_) | BSrc::Offs(_) = b {
            // In place, only a partial last panel is packed.
            let in_place = direct_b.is_some() || direct_offs.is_some();
            let panels = if in_place { 1 } else { nc_max.min(cols.end - j_org).div_ceil(nr) };
            s.b.ensure(panels * nr * kc_eff);
        }
        let mut tile = Tile([0.0; 512]);
        let mut bias_r = [0.0f32; 64];
        let mut bias_c = [0.0f32; 64];
        let mut jc = j_org;
        while jc < cols.end {
            let nc = nc_max.min(cols.end - jc);
            let mut pc = 0;
            while pc < k {
                let kc = kc_max.min(k - pc);
                let beta = if pc == 0 { post.beta } else { 1.0 };
                let last = pc + kc == k;
                let bp0: *const f32 = match b {
                    BSrc::Packed(pb) => pb.panel_ptr(pc, jc / nr),
                    BSrc::Mat(_) if direct_b.is_some() => core::ptr::null(),
                    BSrc::Mat(bm) => {
                        pack_b(bm, pc, kc, jc, nc, nr, s.b.as_mut_slice());
                        s.b.as_slice().as_ptr()
                    }
                    BSrc::Fill(f) => {
                        f.pack(pc, kc, jc, nc, nr, &mut s.b.as_mut_slice()[..nc.div_ceil(nr) * nr * kc]);
                        s.b.as_slice().as_ptr()
                    }
                    BSrc::Offs(_) if direct_offs.is_some() => core::ptr::null(),
                    BSrc::Offs(o) => {
                        crate::PackB::pack(*o, pc, kc, jc, nc, nr, &mut s.b.as_mut_slice()[..nc.div_ceil(nr) * nr * kc]);
                        s.b.as_slice().as_ptr()
                    }
                };
                let mut ic = i_org;
                while ic < rows.end {
                    let mc = mc_max.min(rows.end - ic);
                    let ap0: *const f32 = match a {
                        ASrc::Packed(pa) => pa.panel_ptr(pc, ic / mr),
                        ASrc::Mat(am) => {
                            pack_a(am, ic, mc, pc, kc, mr, s.a.as_mut_slice());
                            s.a.as_slice().as_ptr()
                        }
                    };
                    let mut jr = 0;
                    while jr < nc {
                        let j0 = jc + jr;
                        let (jlo, jhi) = (j0.max(cols.start), (j0 + nr).min(cols.end));
                        // B rows at offsets, this whole panel read in place.
                        let offs_here = direct_offs.filter(|_| j0 + nr <= cols.end);
                        // The panel and its row stride.
                        let (bp, ldb) = match (direct_b, b) {
                            (Some((data, rs)), _) if j0 + nr <= cols.end => (data.add(pc * rs + j0), rs),
                            (Some(_), BSrc::Mat(bm)) => {
                                pack_b(bm, pc, kc, j0, cols.end - j0, nr, s.b.as_mut_slice());
                                (s.b.as_slice().as_ptr(), nr)
                            }
                            _ => match (direct_offs, offs_here) {
                                (Some((o, _)), None) => {
                                    // The partial last panel of an in-place B: packed.
                                    crate::PackB::pack(o, pc, kc, j0, cols.end - j0, nr, &mut s.b.as_mut_slice()[..nr * kc]);
                                    (s.b.as_slice().as_ptr(), nr)
                                }
                                (Some((o, _)), Some(_)) => (o.base.as_ptr().add(j0), 0),
                                _ => (bp0.add(jr * kc), nr),
                            },
                        };
                        let direct = direct_b.is_some();
                        // The microkernel on the first `r` rows of the panel at
                        // `bp`: at offsets, in place or packed.
                        let part_rows = |r: usize, ap, ct, ldct, te: Option<&TileEpi>| match offs_here {
                            Some((o, f)) => f(r, kc, ap, bp, o.offs.as_ptr().add(pc), ct, ldct, post.alpha, beta, te),
                            None => match ukr_rows {
                                Some(part) => part(r, kc, ap, bp, ldb, ct, ldct, post.alpha, beta, te),
                                None => unreachable!("part_rows without ukr_rows"),
                            },
                        };
                        let full = |ap, ct, ldct, te: Option<&TileEpi>| {
                            if offs_here.is_some() {
                                part_rows(mr, ap, ct, ldct, te)
                            } else if direct {
                                ukr_sb(kc, ap, bp, ldb, ct, ldct, post.alpha, beta, te)
                            } else {
                                ukr(kc, ap, bp, ct, ldct, post.alpha, beta, te)
                            }
                        };
                        let mut ir = 0;
                        while ir < mc {
                            let i0 = ic + ir;
                            let (ilo, ihi) = (i0.max(rows.start), (i0 + mr).min(rows.end));
                            let ap = ap0.add(ir * kc);
                            let te = if last { post.tile_epi(i0, j0) } else { None };
                            if ilo == i0 && jlo == j0 && ihi == i0 + mr && jhi == j0 + nr {
                                full(ap, c.add(i0 * ldc + j0), ldc, te.as_ref());
                            } else if (ukr_rows.is_some() || offs_here.is_some())
                                && ilo == i0
                                && jlo == j0
                                && jhi == j0 + nr
                            {
                                // The last rows of A: only those rows, straight into C.
                                let ct = c.add(i0 * ldc + j0);
                                part_rows(ihi - i0, ap, ct, ldc, te.as_ref());
                            } else {
                                // Edge tile: the same kernel call on a local copy (so
                                // results don't depend on where a range starts), with
                                // zero-padded bias copies, then copy the valid part back.
                                let t = tile.0.as_mut_ptr();
                                let (h, w) = (ihi - ilo, jhi - jlo);
                                let (ti, tj) = (ilo - i0, jlo - j0);
                                if beta != 0.0 {
                                    for i in 0..h {
                                        core::ptr::copy_nonoverlapping(
                                            c.add((ilo + i) * ldc + jlo),
                                            t.add((ti + i) * nr + tj),
                                            w,
                                        );
                                    }
                                }
                                let te = te.map(|e| TileEpi {
                                    bias_row: pad_copy(&mut bias_r, e.bias_row, ti, h),
                                    bias_col: pad_copy(&mut bias_c, e.bias_col, tj, w),
                                    act: e.act,
                                });
                                full(ap, t, nr, te.as_ref());
                                for i in 0..h {
                                    core::ptr::copy_nonoverlapping(
                                        t.add((ti + i) * nr + tj),
                                        c.add((ilo + i) * ldc + jlo),
                                        w,
                                    );
                                }
                            }
                            ir += mr;
                        }
                        jr += nr;
                    }
                    ic += mc;
                }
                pc += kc;
            }
            jc += nc;
        }
    })
}
