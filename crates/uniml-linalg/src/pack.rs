//! Packing of operands into microkernel panels, and the pre-packed operand
//! types.
//!
//! * A block (`mc × kc`) → `ceil(mc/mr)` panels, each `kc × mr` (for every
//!   k, the `mr` values of consecutive rows), rows past the edge zero.
//! * B block (`kc × nc`) → `ceil(nc/nr)` panels, each `kc × nr`, columns past
//!   the edge zero.
//!
//! A fully pre-packed operand stores its k blocks one after the other: block
//! `pc` (depth `kc_b = min(kc, k - pc)`) starts at `pc · padded_width`, and
//! panel `q` of it at `pc · padded_width + q · kc_b · w`.

use crate::kernels::{self, Kernel, KernelKind};
use crate::MatRef;

/// A `Vec<f32>` whose usable part starts on a 64-byte boundary.
pub(crate) struct AlignedBuf {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn zeros(len: usize) -> Self {
        let buf = vec![0.0f32; len + 15];
        let addr = buf.as_ptr() as usize;
        let off = ((64 - addr % 64) % 64) / 4;
        AlignedBuf { buf, off, len }
    }
    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
    /// Grow (contents are not preserved) to at least `len` floats.
    pub(crate) fn ensure(&mut self, len: usize) {
        if self.len < len {
            *self = AlignedBuf::zeros(len);
        }
    }
}

impl Default for AlignedBuf {
    fn default() -> Self {
        AlignedBuf::zeros(0)
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        let mut b = AlignedBuf::zeros(self.len);
        b.as_mut_slice().copy_from_slice(self.as_slice());
        b
    }
}

/// Packs rows `i0 .. i0+mc`, depth `p0 .. p0+kc` of `a` into `mr`-row panels.
/// `dst` must hold at least `ceil(mc/mr)·mr·kc` floats.
pub(crate) fn pack_a(
    a: &MatRef,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    dst: &mut [f32],
) {
    let (rs, cs) = (a.row_stride, a.col_stride);
    let data = a.data;
    let npanels = mc.div_ceil(mr);
    for (q, panel) in dst.chunks_exact_mut(mr * kc).take(npanels).enumerate() {
        let r0 = i0 + q * mr;
        let rows = mr.min(i0 + mc - r0);
        if rs == 1 && rows == mr {
            // Columns of A are contiguous: straight copies.
            for (p, out) in panel.chunks_exact_mut(mr).enumerate() {
                let base = r0 + (p0 + p) * cs;
                out.copy_from_slice(&data[base..base + mr]);
            }
            continue;
        }
        if cs == 1 && rows == mr {
            // Rows of A are contiguous: a transpose, all `mr` rows at once so
            // that the panel is written in order (one row at a time wrote
            // every `mr`-th float, `mr` passes over the panel).
            match mr {
                12 => transpose_rows::<12>(panel, data, r0, rs, p0, kc),
                8 => transpose_rows::<8>(panel, data, r0, rs, p0, kc),
                6 => transpose_rows::<6>(panel, data, r0, rs, p0, kc),
                4 => transpose_rows::<4>(panel, data, r0, rs, p0, kc),
                _ => {
                    for r in 0..rows {
                        let base = (r0 + r) * rs + p0;
                        for (p, &v) in data[base..base + kc].iter().enumerate() {
                            panel[p * mr + r] = v;
                        }
                    }
                }
            }
            continue;
        }
        if rows < mr {
            panel.fill(0.0);
        }
        if cs == 1 {
            for r in 0..rows {
                let base = (r0 + r) * rs + p0;
                for (p, &v) in data[base..base + kc].iter().enumerate() {
                    panel[p * mr + r] = v;
                }
            }
        } else {
            for r in 0..rows {
                let base = (r0 + r) * rs + p0 * cs;
                for p in 0..kc {
                    panel[p * mr + r] = data[base + p * cs];
                }
            }
        }
    }
}

/// `panel[p·MR + r] = A[r0 + r][p0 + p]` for a row-major A (row stride `rs`).
#[inline(always)]
fn transpose_rows<const MR: usize>(panel: &mut [f32], data: &[f32], r0: usize, rs: usize, p0: usize, kc: usize) {
    let rows: [&[f32]; MR] = core::array::from_fn(|r| {
        let base = (r0 + r) * rs + p0;
        &data[base..base + kc]
    });
    for (p, out) in panel[..kc * MR].chunks_exact_mut(MR).enumerate() {
        for (o, row) in out.iter_mut().zip(&rows) {
            *o = row[p];
        }
    }
}

/// Packs depth `p0 .. p0+kc`, columns `j0 .. j0+nc` of `b` into `nr`-column
/// panels.  `dst` must hold at least `ceil(nc/nr)·nr·kc` floats.
pub(crate) fn pack_b(
    b: &MatRef,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    nr: usize,
    dst: &mut [f32],
) {
    let (rs, cs) = (b.row_stride, b.col_stride);
    let data = b.data;
    let npanels = nc.div_ceil(nr);
    for (q, panel) in dst.chunks_exact_mut(nr * kc).take(npanels).enumerate() {
        let c0 = j0 + q * nr;
        let cols = nr.min(j0 + nc - c0);
        if cs == 1 && cols == nr {
            // Rows of B are contiguous: straight copies, of a size known at
            // compile time for the kernels' widths (a libc call per 128-byte
            // row was most of the packing time).
            match nr {
                32 => copy_rows::<32>(panel, data, p0, rs, c0),
                16 => copy_rows::<16>(panel, data, p0, rs, c0),
                8 => copy_rows::<8>(panel, data, p0, rs, c0),
                _ => {
                    for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
                        let base = (p0 + p) * rs + c0;
                        out.copy_from_slice(&data[base..base + nr]);
                    }
                }
            }
            continue;
        }
        if cols < nr {
            panel.fill(0.0);
        }
        if rs == 1 {
            for j in 0..cols {
                let base = (c0 + j) * cs + p0;
                for (p, &v) in data[base..base + kc].iter().enumerate() {
                    panel[p * nr + j] = v;
                }
            }
        } else {
            for p in 0..kc {
                let base = (p0 + p) * rs + c0 * cs;
                let out = &mut panel[p * nr..p * nr + cols];
                for (j, o) in out.iter_mut().enumerate() {
                    *o = data[base + j * cs];
                }
            }
        }
    }
}

/// `panel[p·N..][..N] = data[(p0 + p)·rs + c0..][..N]` for every row `p` of the panel.
#[inline(always)]
fn copy_rows<const N: usize>(panel: &mut [f32], data: &[f32], p0: usize, rs: usize, c0: usize) {
    for (p, out) in panel.chunks_exact_mut(N).enumerate() {
        let base = (p0 + p) * rs + c0;
        let src: &[f32; N] = data[base..base + N].try_into().expect("N values");
        let dst: &mut [f32; N] = out.try_into().expect("chunk of N");
        *dst = *src;
    }
}

/// Pre-packed right operand `B[k×n]` (weights): pack once at model load and
/// reuse with [`crate::sgemm_packed_b`].  The layout follows the microkernel
/// selected when packing; products with it always run on that kernel.
#[derive(Clone)]
pub struct PackedB {
    pub(crate) kern: Kernel,
    k: usize,
    n: usize,
    /// `ceil(n/nr)·nr`.
    npad: usize,
    data: AlignedBuf,
}

impl PackedB {
    /// Packs `b` (a `k×n` view, any strides) for the process's selected kernel.
    pub fn pack(b: MatRef, k: usize, n: usize) -> PackedB {
        Self::pack_for(*kernels::selected(), b, k, n)
    }

    /// Packs for a specific kernel (testing / benchmarking); panics if that
    /// kernel is not available here.
    pub fn pack_with_kernel(kind: KernelKind, b: MatRef, k: usize, n: usize) -> PackedB {
        Self::pack_for(kernels::table_or_panic(kind), b, k, n)
    }

    pub(crate) fn pack_for(kern: Kernel, b: MatRef, k: usize, n: usize) -> PackedB {
        b.check("B", k, n);
        let npad = n.div_ceil(kern.nr) * kern.nr;
        let mut data = AlignedBuf::zeros(k * npad);
        let dst = data.as_mut_slice();
        let mut pc = 0;
        while pc < k {
            let kc = kern.kc.min(k - pc);
            pack_b(
                &b,
                pc,
                kc,
                0,
                n,
                kern.nr,
                &mut dst[pc * npad..(pc + kc) * npad],
            );
            pc += kc;
        }
        PackedB {
            kern,
            k,
            n,
            npad,
            data,
        }
    }

    /// Depth (rows of B).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Width (columns of B).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Name of the microkernel this operand was packed for.
    pub fn kernel_name(&self) -> &'static str {
        self.kern.name
    }
    /// Bytes held by the packed data.
    pub fn size_bytes(&self) -> usize {
        self.data.as_slice().len() * 4
    }

    /// Start of panel `q` of the k block starting at depth `pc`.
    #[inline]
    pub(crate) fn panel_ptr(&self, pc: usize, q: usize) -> *const f32 {
        let kc = self.kern.kc.min(self.k - pc);
        self.data.as_slice()[pc * self.npad + q * kc * self.kern.nr..].as_ptr()
    }
}

impl core::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PackedB")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("kernel", &self.kern.name)
            .finish()
    }
}

/// Pre-packed left operand `A[m×k]` (e.g. convolution weights
/// `W[co, ci·kh·kw]` for `out[co, pix] = W · col[k, pix]`): pack once, reuse
/// with [`crate::sgemm_packed_a`].
#[derive(Clone)]
pub struct PackedA {
    pub(crate) kern: Kernel,
    m: usize,
    k: usize,
    /// `ceil(m/mr)·mr`.
    mpad: usize,
    data: AlignedBuf,
}

impl PackedA {
    /// Packs `a` (an `m×k` view, any strides) for the process's selected kernel.
    pub fn pack(a: MatRef, m: usize, k: usize) -> PackedA {
        Self::pack_for(*kernels::selected(), a, m, k)
    }

    /// Packs for a specific kernel (testing / benchmarking); panics if that
    /// kernel is not available here.
    pub fn pack_with_kernel(kind: KernelKind, a: MatRef, m: usize, k: usize) -> PackedA {
        Self::pack_for(kernels::table_or_panic(kind), a, m, k)
    }

    pub(crate) fn pack_for(kern: Kernel, a: MatRef, m: usize, k: usize) -> PackedA {
        a.check("A", m, k);
        let mpad = m.div_ceil(kern.mr) * kern.mr;
        let mut data = AlignedBuf::zeros(k * mpad);
        let dst = data.as_mut_slice();
        let mut pc = 0;
        while pc < k {
            let kc = kern.kc.min(k - pc);
            pack_a(
                &a,
                0,
                m,
                pc,
                kc,
                kern.mr,
                &mut dst[pc * mpad..(pc + kc) * mpad],
            );
            pc += kc;
        }
        PackedA {
            kern,
            m,
            k,
            mpad,
            data,
        }
    }

    /// Rows of A.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Depth (columns of A).
    pub fn k(&self) -> usize {
        self.k
    }
    /// Name of the microkernel this operand was packed for.
    pub fn kernel_name(&self) -> &'static str {
        self.kern.name
    }
    /// Bytes held by the packed data.
    pub fn size_bytes(&self) -> usize {
        self.data.as_slice().len() * 4
    }

    /// Start of panel `q` of the k block starting at depth `pc`.
    #[inline]
    pub(crate) fn panel_ptr(&self, pc: usize, q: usize) -> *const f32 {
        let kc = self.kern.kc.min(self.k - pc);
        self.data.as_slice()[pc * self.mpad + q * kc * self.kern.mr..].as_ptr()
    }
}

impl core::fmt::Debug for PackedA {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PackedA")
            .field("m", &self.m)
            .field("k", &self.k)
            .field("kernel", &self.kern.name)
            .finish()
    }
}
