//! Quantization ops: `QuantizeLinear`, `DequantizeLinear`,
//! `DynamicQuantizeLinear`, `MatMulInteger`, `QLinearMatMul`, `ConvInteger`
//! and `QLinearConv`.
//!
//! Shared here: the quantization-parameter layout (per-tensor, per-axis or
//! blocked scales/zero points, [`QuantLayout`]), round-half-to-even, and the
//! integer element traits. The integer GEMM (i16 operands, i32 accumulation)
//! is in [`igemm`]; integer convolution (im2col + that GEMM) in [`conv`].
//!
//! Zero points are subtracted on the way in (operands become `i16`, exact for
//! 8-bit inputs), so one GEMM serves every zero-point granularity.

pub mod conv;
pub mod dequantize;
pub mod dynamic;
pub mod igemm;
pub mod matmul;
pub mod quantize;
pub mod requant;

use uniml_data::lowp::{self, SmallInt};
use uniml_data::{bail, ensure, DType, Element, Result, TensorView};

use crate::ops::util::norm_axis;

/// Rounds to the nearest integer, ties to even, for `|v| < 2^22`; values
/// beyond are clamped to `±2^22` first (callers saturate to at most 16-bit
/// ranges afterwards, so the clamp never changes a result) and NaN becomes
/// `-2^22` (so it saturates to the low end, like the ONNX reference).
/// Branch-free, so loops over it vectorize (unlike `round_ties_even`, which
/// is a libm call on baseline x86-64).
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max`/`min` map it to a bound
pub fn rint_clamped(v: f32) -> f32 {
    const LIM: f32 = 4_194_304.0; // 2^22
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
                                     // `max` returns the non-NaN operand.
    let c = v.max(-LIM).min(LIM);
    (c + MAGIC) - MAGIC
}

/// An integer type a quantized tensor may hold (u8, i8, u16, i16, and the 4-/2-bit ints).
pub trait QInt: Element {
    const LO: f32;
    const HI: f32;
    /// Truncating conversion (callers pass values in range).
    fn from_i32(v: i32) -> Self;
}

macro_rules! qint {
    ($($t:ty),*) => {$(
        impl QInt for $t {
            const LO: f32 = <$t>::MIN as f32;
            const HI: f32 = <$t>::MAX as f32;
            #[inline(always)]
            fn from_i32(v: i32) -> Self {
                v as $t
            }
        }
    )*};
}
qint!(u8, i8, u16, i16);

macro_rules! qint_small {
    ($($t:ty),*) => {$(
        impl QInt for $t {
            const LO: f32 = <$t as SmallInt>::MIN as f32;
            const HI: f32 = <$t as SmallInt>::MAX as f32;
            #[inline(always)]
            fn from_i32(v: i32) -> Self {
                <$t as SmallInt>::of(v)
            }
        }
    )*};
}
qint_small!(lowp::U4, lowp::I4, lowp::U2, lowp::I2);

/// Saturating quantization of one value: `clamp(rint(q) + zp, LO, HI)`; NaN gives `LO`.
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max`/`min` map it to a bound
pub fn saturate<Y: QInt>(q: f32, zp: f32) -> Y {
    let c = (rint_clamped(q) + zp).max(Y::LO).min(Y::HI);
    // SAFETY: `max`/`min` with finite bounds give a finite value in [LO, HI] (even for
    // NaN or infinite inputs), which fits i32. A plain `as` cast would be saturating
    // and keeps x86 loops scalar.
    Y::from_i32(unsafe { c.to_int_unchecked::<i32>() })
}

/// Reads a zero-point tensor of any integer quantized dtype as i32s.
pub fn read_zero_points(t: &TensorView, what: &str) -> Result<Vec<i32>> {
    Ok(match t.dtype() {
        DType::U8 => t.as_slice::<u8>()?.iter().map(|&v| v as i32).collect(),
        DType::I8 => t.as_slice::<i8>()?.iter().map(|&v| v as i32).collect(),
        DType::U16 => t.as_slice::<u16>()?.iter().map(|&v| v as i32).collect(),
        DType::I16 => t.as_slice::<i16>()?.iter().map(|&v| v as i32).collect(),
        DType::I32 => t.as_slice::<i32>()?.to_vec(),
        DType::U4 | DType::I4 | DType::U2 | DType::I2 => {
            t.to_f64_vec()?.into_iter().map(|v| v as i32).collect()
        }
        other => bail!(
            "{what} must be an int8/uint8/int16/uint16/int32/(u)int4/(u)int2 tensor, got {other}"
        ),
    })
}

/// Reads a float8/float4 zero point, which must be all zeros (the ONNX spec and reference
/// require it for float8; float4 follows the same rule here).
pub fn check_float_zero_point(t: &TensorView, what: &str) -> Result<()> {
    ensure!(
        t.to_f64_vec()?.iter().all(|&v| v == 0.0),
        "{what} of type {} must be zero",
        t.dtype()
    );
    Ok(())
}

/// Reads a scale tensor (float, float16, bfloat16; int32 where allowed) as f32s.
pub fn read_scales(t: &TensorView, what: &str, allow_int32: bool) -> Result<Vec<f32>> {
    let ok =
        t.dtype().is_float() && t.dtype() != DType::F64 || allow_int32 && t.dtype() == DType::I32;
    ensure!(
        ok,
        "{what} must be a float/float16/bfloat16 tensor, got {}",
        t.dtype()
    );
    Ok(t.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
}

/// Rounds an f32 to the precision of `dtype` (f16/bf16), identity otherwise.
#[inline]
pub fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => half::f16::from_f32(v).to_f32(),
        DType::BF16 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

/// Where the scale / zero point of each element of `x` is, for per-tensor,
/// per-axis and blocked quantization. `x` is viewed as
/// `[outer, dim, inner]` around the quantization axis; the parameter index
/// of element `(o, a, i)` is `o * s_outer + (a / block) * s_axis + i * s_inner`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantLayout {
    pub outer: usize,
    pub dim: usize,
    pub inner: usize,
    pub block: usize,
    pub s_outer: usize,
    pub s_axis: usize,
    pub s_inner: usize,
}

impl QuantLayout {
    /// Resolves the granularity from the shapes of `x` and of the scale:
    /// one element → per tensor; else `block_size == 0` → per axis (1-D scale
    /// of length `x.shape[axis]`); else blocked (scale shape equal to x's but
    /// along `axis`, where it has `ceil(x.shape[axis] / block_size)` entries).
    pub fn resolve(
        xs: &[usize],
        ss: &[usize],
        axis: i64,
        block_size: usize,
    ) -> Result<QuantLayout> {
        let n: usize = xs.iter().product();
        let sn: usize = ss.iter().product();
        if sn == 1 {
            return Ok(QuantLayout {
                outer: 1,
                dim: 1,
                inner: n,
                block: 1,
                s_outer: 0,
                s_axis: 0,
                s_inner: 0,
            });
        }
        let ax = norm_axis(axis, xs.len())?;
        ensure!(
            !xs.is_empty(),
            "a scalar input takes a scalar scale, got scale shape {ss:?}"
        );
        let outer: usize = xs[..ax].iter().product();
        let dim = xs[ax];
        let inner: usize = xs[ax + 1..].iter().product();
        if block_size == 0 {
            ensure!(
                ss.len() == 1 && ss[0] == dim,
                "per-axis scale must be 1-D with x.shape[{ax}] = {dim} values, got shape {ss:?} for x of shape {xs:?}"
            );
            return Ok(QuantLayout {
                outer,
                dim,
                inner,
                block: 1,
                s_outer: 0,
                s_axis: 1,
                s_inner: 0,
            });
        }
        ensure!(
            ss.len() == xs.len(),
            "blocked quantization needs a scale of x's rank {}, got scale shape {ss:?}",
            xs.len()
        );
        for (d, (&a, &b)) in xs.iter().zip(ss).enumerate() {
            ensure!(
                d == ax || a == b,
                "blocked scale shape {ss:?} must equal x shape {xs:?} except along axis {ax}"
            );
        }
        let nb = ss[ax];
        ensure!(
            nb == dim.div_ceil(block_size),
            "blocked scale has {nb} blocks along axis {ax}, expected ceil({dim} / block_size {block_size}) = {}",
            dim.div_ceil(block_size)
        );
        Ok(QuantLayout {
            outer,
            dim,
            inner,
            block: block_size,
            s_outer: nb * inner,
            s_axis: inner,
            s_inner: 1,
        })
    }

    /// Number of scale values this layout indexes.
    pub fn params(&self) -> usize {
        if self.s_inner == 1 {
            self.outer * self.s_outer
        } else if self.s_axis == 1 {
            self.dim
        } else {
            1
        }
    }

    /// Splits the flat element range `[start, start + len)` into runs along
    /// which the parameter index moves by a constant step: calls
    /// `f(offset_in_range, run_len, param_index, param_step)`.
    pub fn for_runs(
        &self,
        start: usize,
        len: usize,
        mut f: impl FnMut(usize, usize, usize, usize),
    ) {
        let (dim, block) = (self.dim.max(1), self.block.max(1));
        let end = start + len;
        let mut pos = start;
        while pos < end {
            if self.inner > 1 {
                // Runs inside one (o, a) row; blocked scales vary along it.
                let (row, i) = (pos / self.inner, pos % self.inner);
                let run = (self.inner - i).min(end - pos);
                let (o, a) = (row / dim, row % dim);
                f(
                    pos - start,
                    run,
                    o * self.s_outer + (a / block) * self.s_axis + i * self.s_inner,
                    self.s_inner,
                );
                pos += run;
            } else if block == 1 {
                // The axis is innermost: per-axis parameters step along it.
                let (o, a) = (pos / dim, pos % dim);
                let run = (dim - a).min(end - pos);
                f(
                    pos - start,
                    run,
                    o * self.s_outer + a * self.s_axis,
                    self.s_axis,
                );
                pos += run;
            } else {
                // Blocked along the innermost axis: one parameter per block.
                let (o, a) = (pos / dim, pos % dim);
                let run = (block - a % block).min(dim - a).min(end - pos);
                f(
                    pos - start,
                    run,
                    o * self.s_outer + (a / block) * self.s_axis,
                    0,
                );
                pos += run;
            }
        }
    }
}

/// Checks that a zero point matches its scale (same element count; same shape unless both hold one value).
pub fn check_zero_point_shape(scale: &[usize], zp: &[usize]) -> Result<()> {
    let (a, b): (usize, usize) = (scale.iter().product(), zp.iter().product());
    ensure!(
        a == b && (a == 1 || scale == zp),
        "zero point shape {zp:?} must equal the scale shape {scale:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rint_is_half_even() {
        for &v in &[
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            2.4999,
            3.5001,
            -7.5,
            1e9,
            -1e9,
            123456.5,
            0.0,
            -0.0,
            f32::INFINITY,
        ] {
            let want = v.clamp(-4_194_304.0, 4_194_304.0).round_ties_even();
            assert_eq!(rint_clamped(v), want, "{v}");
        }
        assert_eq!(saturate::<u8>(f32::NAN, 3.0), 0);
        assert_eq!(saturate::<i16>(f32::NAN, 3.0), i16::MIN);
        assert_eq!(saturate::<u16>(f32::INFINITY, 3.0), u16::MAX);
        assert_eq!(saturate::<i8>(f32::NEG_INFINITY, 3.0), -128);
        assert_eq!(saturate::<u8>(1e30, 3.0), 255);
        assert_eq!(saturate::<i8>(-1e30, 3.0), -128);
        assert_eq!(saturate::<i16>(2.5, 1.0), 3);
    }

    #[test]
    fn layouts() {
        let l = QuantLayout::resolve(&[2, 3, 4], &[], 1, 0).unwrap();
        assert_eq!((l.outer, l.dim, l.inner, l.params()), (1, 1, 24, 1));
        let l = QuantLayout::resolve(&[2, 3, 4], &[3], 1, 0).unwrap();
        assert_eq!((l.outer, l.dim, l.inner, l.params()), (2, 3, 4, 3));
        let l = QuantLayout::resolve(&[2, 3, 4], &[4], -1, 0).unwrap();
        assert_eq!((l.outer, l.dim, l.inner), (6, 4, 1));
        assert!(QuantLayout::resolve(&[2, 3, 4], &[4], 1, 0).is_err());
        assert!(QuantLayout::resolve(&[2, 3, 4], &[3], 3, 0).is_err());
        let l = QuantLayout::resolve(&[3, 5], &[3, 3], 1, 2).unwrap();
        assert_eq!(l.params(), 9);
        assert!(QuantLayout::resolve(&[3, 5], &[3, 2], 1, 2).is_err());
        assert!(QuantLayout::resolve(&[3, 5], &[3, 4], 1, 2).is_err());
        assert!(QuantLayout::resolve(&[3, 5], &[2, 3], 1, 2).is_err());
        // Runs of the blocked layout walk the scale row-major.
        let mut seen = vec![];
        l.for_runs(3, 5, |off, len, p, step| seen.push((off, len, p, step)));
        assert_eq!(
            seen,
            vec![(0, 1, 1, 0), (1, 1, 2, 0), (2, 2, 3, 0), (4, 1, 4, 0)]
        );
        // Per-axis on the innermost axis: one run per row, stepping through the scales.
        let l = QuantLayout::resolve(&[2, 3], &[3], 1, 0).unwrap();
        let mut seen = vec![];
        l.for_runs(1, 5, |off, len, p, step| seen.push((off, len, p, step)));
        assert_eq!(seen, vec![(0, 2, 1, 1), (2, 3, 0, 1)]);
        // Per-axis on an outer axis: constant runs.
        let l = QuantLayout::resolve(&[2, 3, 2], &[3], 1, 0).unwrap();
        let mut seen = vec![];
        l.for_runs(0, 12, |off, len, p, step| seen.push((off, len, p, step)));
        assert_eq!(
            seen[..4],
            [(0, 2, 0, 0), (2, 2, 1, 0), (4, 2, 2, 0), (6, 2, 0, 0)]
        );
        // Blocked on an outer axis: runs step through the scale row.
        let l = QuantLayout::resolve(&[4, 3], &[2, 3], 0, 2).unwrap();
        let mut seen = vec![];
        l.for_runs(0, 12, |off, len, p, step| seen.push((off, len, p, step)));
        assert_eq!(
            seen,
            vec![(0, 3, 0, 1), (3, 3, 0, 1), (6, 3, 3, 1), (9, 3, 3, 1)]
        );
    }
}
