//! Low-precision element types: the float8 family (E4M3FN, E4M3FNUZ, E5M2,
//! E5M2FNUZ, E8M0), float4 (E2M1) and the 4- and 2-bit integers.
//!
//! # In-memory representation
//!
//! Every one of them takes **one byte per element** in a [`crate::Tensor`]:
//! the float types hold their bit pattern in the low bits of the byte (as
//! `f16` tensors hold theirs in a `u16`), the integers hold their value
//! (`INT4`/`INT2` as a sign-extended `i8`, `UINT4`/`UINT2` as a `u8`).
//! Sub-byte types are packed (two or four per byte, first element in the
//! lowest bits) only at the serialisation boundary ([`pack_bits`] /
//! [`unpack_bits`], used for ONNX `raw_data`). Why unpacked:
//!
//! * every element is addressable, so the data-movement kernels (gather,
//!   slice, transpose, concat, reshape…) move them as plain bytes with no
//!   nibble arithmetic and no special cases for odd lengths or offsets;
//! * a tensor's byte size stays `len * dtype.size()`, which the buffer pool,
//!   memory limits and zero-copy views rely on;
//! * these types are storage formats (Cast and Quantize/DequantizeLinear
//!   convert to and from them); the 2x–4x memory cost of unpacking them is
//!   paid only while such a tensor is live.
//!
//! Bytes of a sub-byte dtype are always in range (a `UINT4` byte is 0..=15, an
//! `INT4` byte is -8..=7 …): [`crate::Tensor::from_raw_bytes`] rejects others.
//!
//! # Conversions
//!
//! [`MiniFloat::encode`] rounds an `f64` to the nearest representable value,
//! ties to even, with the exponent range unbounded; a result beyond the
//! largest finite value is an overflow: with `saturate` it becomes ±max,
//! without it ±inf where the type has infinities (E5M2) and NaN otherwise
//! (the tables of the ONNX `Cast` operator). Types without NaN (E2M1) always
//! saturate and encode NaN as +0. Types without negative zero (FNUZ) give +0
//! for -0. [`E8M0`](F8E8M0) (unsigned powers of two) has its own rules, see
//! [`f8e8m0_encode`].

use crate::{DType, Element};

/// The special-value convention of a small float format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// IEEE style: all-ones exponent is ±inf (zero mantissa) or NaN (E5M2).
    Ieee,
    /// "Finite": no infinities, only the all-ones pattern `S.1111.111` is NaN (E4M3FN).
    Fn,
    /// "Finite, unsigned zero": no infinities, no -0; `0x80` is the only NaN (FNUZ types).
    Fnuz,
    /// No infinities and no NaN: every pattern is a finite number (E2M1).
    None,
}

/// A sign / exponent / mantissa float of at most 8 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MiniFloat {
    pub exp_bits: u32,
    pub man_bits: u32,
    pub bias: i32,
    pub specials: Specials,
}

pub const E4M3FN: MiniFloat = MiniFloat { exp_bits: 4, man_bits: 3, bias: 7, specials: Specials::Fn };
pub const E4M3FNUZ: MiniFloat = MiniFloat { exp_bits: 4, man_bits: 3, bias: 8, specials: Specials::Fnuz };
pub const E5M2: MiniFloat = MiniFloat { exp_bits: 5, man_bits: 2, bias: 15, specials: Specials::Ieee };
pub const E5M2FNUZ: MiniFloat = MiniFloat { exp_bits: 5, man_bits: 2, bias: 16, specials: Specials::Fnuz };
pub const E2M1: MiniFloat = MiniFloat { exp_bits: 2, man_bits: 1, bias: 1, specials: Specials::None };

/// `2^k` exactly (for the small exponents used here).
fn pow2(k: i32) -> f64 {
    f64::powi(2.0, k)
}

impl MiniFloat {
    fn sign_bit(self) -> u8 {
        1 << (self.exp_bits + self.man_bits)
    }
    fn exp_max(self) -> u32 {
        (1 << self.exp_bits) - 1
    }
    fn man_max(self) -> u32 {
        (1 << self.man_bits) - 1
    }

    /// The largest finite value's bit pattern (positive).
    pub fn max_code(self) -> u8 {
        let (e, m) = match self.specials {
            Specials::Ieee => (self.exp_max() - 1, self.man_max()),
            Specials::Fn => (self.exp_max(), self.man_max() - 1),
            Specials::Fnuz | Specials::None => (self.exp_max(), self.man_max()),
        };
        ((e << self.man_bits) | m) as u8
    }

    /// The largest finite value.
    pub fn max_value(self) -> f64 {
        self.decode(self.max_code())
    }

    /// The value of bit pattern `code` (bits above the format's width are ignored).
    pub fn decode(self, code: u8) -> f64 {
        let width = 1 + self.exp_bits + self.man_bits;
        let code = if width < 8 { code & ((1u16 << width) - 1) as u8 } else { code };
        let neg = code & self.sign_bit() != 0;
        let e = ((code as u32) >> self.man_bits) & self.exp_max();
        let m = code as u32 & self.man_max();
        match self.specials {
            Specials::Fnuz if code == 0x80 => return f64::NAN,
            Specials::Fn if e == self.exp_max() && m == self.man_max() => {
                return if neg { -f64::NAN } else { f64::NAN }
            }
            Specials::Ieee if e == self.exp_max() => {
                let v = if m == 0 { f64::INFINITY } else { f64::NAN };
                return if neg { -v } else { v };
            }
            _ => {}
        }
        let mag = if e == 0 {
            m as f64 * pow2(1 - self.bias - self.man_bits as i32)
        } else {
            ((1u32 << self.man_bits) + m) as f64 * pow2(e as i32 - self.bias - self.man_bits as i32)
        };
        if neg {
            -mag
        } else {
            mag
        }
    }

    fn nan_code(self, neg: bool) -> u8 {
        let s = if neg { self.sign_bit() } else { 0 };
        match self.specials {
            // Exponent all ones, top mantissa bit set (a quiet NaN, as ml_dtypes writes it).
            Specials::Ieee => s | ((self.exp_max() << self.man_bits) | (1 << (self.man_bits - 1))) as u8,
            Specials::Fn => s | ((self.exp_max() << self.man_bits) | self.man_max()) as u8,
            Specials::Fnuz => 0x80,
            Specials::None => 0,
        }
    }

    fn overflow_code(self, neg: bool, saturate: bool) -> u8 {
        let s = if neg { self.sign_bit() } else { 0 };
        match self.specials {
            _ if saturate => s | self.max_code(),
            Specials::Ieee => s | (self.exp_max() << self.man_bits) as u8,
            Specials::None => s | self.max_code(),
            Specials::Fn | Specials::Fnuz => self.nan_code(neg),
        }
    }

    /// Rounds `v` to this format, to nearest with ties to even (see the module docs for
    /// overflow, NaN and signed zero).
    pub fn encode(self, v: f64, saturate: bool) -> u8 {
        let neg = v.is_sign_negative();
        if v.is_nan() {
            return self.nan_code(neg);
        }
        let a = v.abs();
        if a.is_infinite() {
            return self.overflow_code(neg, saturate);
        }
        let min_exp = 1 - self.bias; // exponent of the smallest normal
        let e = if a == 0.0 { min_exp } else { frexp_exp(a).max(min_exp) };
        let quantum = pow2(e - self.man_bits as i32);
        // a / quantum is exact (a power-of-two scaling); n has at most man_bits + 1 bits.
        let n = (a / quantum).round_ties_even();
        if n * quantum > self.max_value() {
            return self.overflow_code(neg, saturate);
        }
        let n = n as u32;
        let s = if neg && !(n == 0 && self.specials == Specials::Fnuz) { self.sign_bit() } else { 0 };
        let one = 1u32 << self.man_bits;
        let bits = if n == 0 {
            0
        } else if n >= 2 * one {
            // Rounded up into the next binade.
            (((e + 1 + self.bias) as u32) << self.man_bits) as u8
        } else if n >= one {
            ((((e + self.bias) as u32) << self.man_bits) | (n - one)) as u8
        } else {
            n as u8 // subnormal (e == min_exp)
        };
        s | bits
    }
}

/// `floor(log2(a))` for a finite `a > 0`.
fn frexp_exp(a: f64) -> i32 {
    let bits = a.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i32;
    if e == 0 {
        // f64 subnormal: far below every format's range.
        -1075
    } else {
        e - 1023
    }
}

/// Rounding of a cast to [`F8E8M0`] (the ONNX `Cast` attribute `round_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoundMode {
    /// Towards +inf: any fraction of the f32 mantissa rounds the exponent up (ONNX default).
    #[default]
    Up,
    /// Towards zero: the exponent of the f32 value.
    Down,
    /// To nearest (ties per the ONNX reference, `onnx.numpy_helper.to_float8e8m0`).
    Nearest,
}

/// `FLOAT8E8M0`, an unsigned power of two `2^(code - 127)`; `0xFF` is NaN. Encoded from
/// the value as f32, as the ONNX reference does: the f32 exponent field, incremented per
/// `round`; NaN and ±inf give NaN; the sign is ignored (negative input is undefined in
/// ONNX); `saturate` keeps a rounded-up 0xFE from becoming NaN.
pub fn f8e8m0_encode(v: f64, saturate: bool, round: RoundMode) -> u8 {
    let bits = (v as f32).to_bits();
    let exp = (bits >> 23) & 0xff;
    if exp == 0xff {
        return 0xff;
    }
    let up = match round {
        RoundMode::Down => false,
        RoundMode::Up => bits & 0x7f_ffff != 0,
        RoundMode::Nearest => {
            let g = bits & 0x40_0000 != 0;
            let r = bits & 0x20_0000 != 0;
            let s = bits & 0x1f_ffff != 0;
            g && (r || s || exp > 0)
        }
    };
    if up && !(saturate && exp == 0xfe) {
        (exp + 1) as u8
    } else {
        exp as u8
    }
}

/// The value of a `FLOAT8E8M0` bit pattern.
pub fn f8e8m0_decode(code: u8) -> f64 {
    if code == 0xff {
        f64::NAN
    } else {
        pow2(code as i32 - 127)
    }
}

/// A low-precision float element: conversions through f64.
pub trait LowFloat: Element {
    /// Value of this element.
    fn to_f64(self) -> f64;
    /// Nearest element to `v` (see the module docs).
    fn from_f64(v: f64, saturate: bool, round: RoundMode) -> Self;
    /// Element of bit pattern `code`.
    fn from_bits(code: u8) -> Self;
    fn to_bits(self) -> u8;
}

macro_rules! minifloat {
    ($($(#[$doc:meta])* $name:ident = $dt:ident, $fmt:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(transparent)]
        pub struct $name(pub u8);
        impl Element for $name {
            const DTYPE: DType = DType::$dt;
        }
        impl LowFloat for $name {
            #[inline]
            fn to_f64(self) -> f64 {
                $fmt.decode(self.0)
            }
            #[inline]
            fn from_f64(v: f64, saturate: bool, _round: RoundMode) -> Self {
                $name($fmt.encode(v, saturate))
            }
            fn from_bits(code: u8) -> Self {
                $name(code)
            }
            fn to_bits(self) -> u8 {
                self.0
            }
        }
    )*};
}
minifloat! {
    /// `FLOAT8E4M3FN`: 4 exponent bits (bias 7), 3 mantissa bits, no inf, max 448.
    F8E4M3FN = F8E4M3FN, E4M3FN;
    /// `FLOAT8E4M3FNUZ`: bias 8, no inf, no -0 (`0x80` is NaN), max 240.
    F8E4M3FNUZ = F8E4M3FNUZ, E4M3FNUZ;
    /// `FLOAT8E5M2`: IEEE-like, 5 exponent bits (bias 15), 2 mantissa bits, max 57344.
    F8E5M2 = F8E5M2, E5M2;
    /// `FLOAT8E5M2FNUZ`: bias 16, no inf, no -0 (`0x80` is NaN), max 57344.
    F8E5M2FNUZ = F8E5M2FNUZ, E5M2FNUZ;
    /// `FLOAT4E2M1`: 2 exponent bits (bias 1), 1 mantissa bit, values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}.
    F4E2M1 = F4E2M1, E2M1;
}

/// `FLOAT8E8M0`: an unsigned power of two, `2^(code - 127)`; `0xFF` is NaN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct F8E8M0(pub u8);
impl Element for F8E8M0 {
    const DTYPE: DType = DType::F8E8M0;
}
impl LowFloat for F8E8M0 {
    fn to_f64(self) -> f64 {
        f8e8m0_decode(self.0)
    }
    fn from_f64(v: f64, saturate: bool, round: RoundMode) -> Self {
        F8E8M0(f8e8m0_encode(v, saturate, round))
    }
    fn from_bits(code: u8) -> Self {
        F8E8M0(code)
    }
    fn to_bits(self) -> u8 {
        self.0
    }
}

/// A 4- or 2-bit integer element, stored as its value in one byte.
pub trait SmallInt: Element {
    const MIN: i32;
    const MAX: i32;
    fn value(self) -> i32;
    /// The element of value `v`, which must be in `MIN..=MAX`.
    fn of(v: i32) -> Self;
    /// Cast from a float: truncated toward zero, then wrapped to the type's width like
    /// an integer cast (NaN and infinities give 0). ONNX leaves out-of-range
    /// float-to-int results undefined; wrapping is what ml_dtypes (its reference) gives
    /// in most runs, and keeps float and integer sources consistent.
    fn from_f64_cast(v: f64) -> Self {
        if v.is_finite() {
            Self::wrapping(v.trunc() as i128)
        } else {
            Self::of(0)
        }
    }
    /// Quantization: rounded half to even and clamped to the range (NaN gives 0).
    fn saturating(v: f64) -> Self {
        if v.is_nan() {
            return Self::of(0);
        }
        Self::of(v.round_ties_even().clamp(Self::MIN as f64, Self::MAX as f64) as i32)
    }
    /// `v` reduced to the type's width (two's complement wrap-around), as ONNX casts
    /// between integer types do.
    fn wrapping(v: i128) -> Self {
        let span = (Self::MAX - Self::MIN + 1) as i128;
        Self::of((v - Self::MIN as i128).rem_euclid(span) as i32 + Self::MIN)
    }
}

macro_rules! small_int {
    ($($(#[$doc:meta])* $name:ident($t:ty) = $dt:ident, $min:expr, $max:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(transparent)]
        pub struct $name(pub $t);
        impl Element for $name {
            const DTYPE: DType = DType::$dt;
        }
        impl SmallInt for $name {
            const MIN: i32 = $min;
            const MAX: i32 = $max;
            #[inline]
            fn value(self) -> i32 {
                self.0 as i32
            }
            #[inline]
            fn of(v: i32) -> Self {
                $name(v as $t)
            }
        }
    )*};
}
small_int! {
    /// `UINT4`: 0..=15.
    U4(u8) = U4, 0, 15;
    /// `INT4`: -8..=7 (sign-extended in its byte).
    I4(i8) = I4, -8, 7;
    /// `UINT2`: 0..=3.
    U2(u8) = U2, 0, 3;
    /// `INT2`: -2..=1 (sign-extended in its byte).
    I2(i8) = I2, -2, 1;
}

/// Whether `byte` is a valid in-memory element of `dtype` (always true for 8-bit types).
pub fn valid_byte(dtype: DType, byte: u8) -> bool {
    match dtype {
        DType::U4 | DType::F4E2M1 => byte <= 15,
        DType::U2 => byte <= 3,
        DType::I4 => (-8..=7).contains(&(byte as i8)),
        DType::I2 => (-2..=1).contains(&(byte as i8)),
        _ => true,
    }
}

/// The in-memory byte of the `dtype` element whose serialised bit pattern is the low
/// `dtype.bits()` bits of `bits` (sign-extends INT4/INT2; identity for 8-bit types).
pub fn byte_from_bits(dtype: DType, bits: u8) -> u8 {
    let width = dtype.bits();
    if width >= 8 {
        return bits;
    }
    let mask = (1u8 << width) - 1;
    let v = bits & mask;
    if matches!(dtype, DType::I4 | DType::I2) && v & (1 << (width - 1)) != 0 {
        v | !mask
    } else {
        v
    }
}

/// Packs one-byte-per-element data of a sub-byte `dtype` (`dtype.bits()` < 8) into the
/// serialised layout: `8 / bits` elements per byte, the first in the lowest bits, the
/// last byte zero-padded. Other dtypes are returned unchanged.
pub fn pack_bits(dtype: DType, elems: &[u8]) -> Vec<u8> {
    let bits = dtype.bits();
    if bits >= 8 {
        return elems.to_vec();
    }
    let per = (8 / bits) as usize;
    let mask = (1u8 << bits) - 1;
    elems
        .chunks(per)
        .map(|c| c.iter().enumerate().fold(0u8, |acc, (i, &e)| acc | ((e & mask) << (i as u32 * bits))))
        .collect()
}

/// Unpacks `n` elements of a sub-byte `dtype` from the serialised layout (see
/// [`pack_bits`]), sign-extending signed integers. `None` when `packed` has the wrong length.
pub fn unpack_bits(dtype: DType, packed: &[u8], n: usize) -> Option<Vec<u8>> {
    let bits = dtype.bits();
    if bits >= 8 {
        return (packed.len() == n * dtype.size()).then(|| packed.to_vec());
    }
    let per = (8 / bits) as usize;
    if packed.len() != n.div_ceil(per) {
        return None;
    }
    Some(
        (0..n)
            .map(|i| {
                byte_from_bits(dtype, packed[i / per] >> ((i % per) as u32 * bits))
            })
            .collect(),
    )
}

/// The value of one in-memory byte of a low-precision `dtype` (None for other dtypes).
pub fn byte_to_f64(dtype: DType, b: u8) -> Option<f64> {
    Some(match dtype {
        DType::F8E4M3FN => E4M3FN.decode(b),
        DType::F8E4M3FNUZ => E4M3FNUZ.decode(b),
        DType::F8E5M2 => E5M2.decode(b),
        DType::F8E5M2FNUZ => E5M2FNUZ.decode(b),
        DType::F4E2M1 => E2M1.decode(b),
        DType::F8E8M0 => f8e8m0_decode(b),
        DType::U4 | DType::U2 => b as f64,
        DType::I4 | DType::I2 => b as i8 as f64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent reference: the value of a bit pattern straight from the format's
    /// definition (OCP 8-bit floating point spec / ONNX docs), written out per format.
    fn reference_decode(fmt: MiniFloat, code: u8) -> f64 {
        let (eb, mb) = (fmt.exp_bits, fmt.man_bits);
        let s = if (code >> (eb + mb)) & 1 == 1 { -1.0 } else { 1.0 };
        let e = ((code >> mb) as i32) & ((1 << eb) - 1);
        let m = (code as i32) & ((1 << mb) - 1);
        let frac = m as f64 / (1 << mb) as f64;
        let v = if e == 0 { frac * 2f64.powi(1 - fmt.bias) } else { (1.0 + frac) * 2f64.powi(e - fmt.bias) };
        s * v
    }

    #[test]
    fn decode_matches_definition() {
        for code in 0..=255u8 {
            let (a, b) = (E4M3FN.decode(code), reference_decode(E4M3FN, code));
            if code & 0x7f == 0x7f {
                assert!(a.is_nan());
            } else {
                assert_eq!(a, b, "e4m3fn {code:#x}");
            }
            let a = E5M2.decode(code);
            if code & 0x7c == 0x7c {
                assert!(if code & 3 == 0 { a.is_infinite() } else { a.is_nan() }, "e5m2 {code:#x}");
            } else {
                assert_eq!(a, reference_decode(E5M2, code));
            }
            for fmt in [E4M3FNUZ, E5M2FNUZ] {
                let a = fmt.decode(code);
                if code == 0x80 {
                    assert!(a.is_nan());
                } else {
                    assert_eq!(a, reference_decode(fmt, code));
                }
            }
        }
        assert_eq!(E4M3FN.max_value(), 448.0);
        assert_eq!(E4M3FNUZ.max_value(), 240.0);
        assert_eq!(E5M2.max_value(), 57344.0);
        assert_eq!(E5M2FNUZ.max_value(), 57344.0);
        assert_eq!(E2M1.max_value(), 6.0);
        let e2m1: Vec<f64> = (0..16).map(|c| E2M1.decode(c)).collect();
        assert_eq!(e2m1, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]);
    }

    /// Every finite pattern round-trips, and every midpoint between neighbours rounds to
    /// the neighbour with the even mantissa (checked by brute force against all values).
    #[test]
    fn encode_is_round_to_nearest_even() {
        for fmt in [E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E2M1] {
            let width = 1 + fmt.exp_bits + fmt.man_bits;
            let mut finite: Vec<(f64, u8)> = (0..(1u16 << width))
                .map(|c| c as u8)
                .filter(|&c| fmt.decode(c).is_finite() && c != fmt.sign_bit())
                .map(|c| (fmt.decode(c), c))
                .collect();
            finite.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            for &(v, c) in &finite {
                assert_eq!(fmt.encode(v, true), c, "{fmt:?} {v}");
            }
            for w in finite.windows(2) {
                let (lo, hi) = (w[0], w[1]);
                let mid = (lo.0 + hi.0) / 2.0;
                let even = if lo.1 & 1 == 0 { lo.1 } else { hi.1 };
                // ±0 neighbours: the sign of the midpoint wins.
                let got = fmt.encode(mid, true);
                assert_eq!(fmt.decode(got), fmt.decode(even), "{fmt:?} midpoint {mid}");
                let near_lo = fmt.encode(lo.0 + (hi.0 - lo.0) * 0.25, true);
                let near_hi = fmt.encode(lo.0 + (hi.0 - lo.0) * 0.75, true);
                assert_eq!(fmt.decode(near_lo), lo.0, "{fmt:?} {}", lo.0);
                assert_eq!(fmt.decode(near_hi), hi.0, "{fmt:?} {}", hi.0);
            }
        }
    }

    #[test]
    fn overflow_nan_and_zero() {
        // saturate: ±max; not: inf for E5M2, NaN otherwise.
        assert_eq!(E4M3FN.encode(1e6, true), 0x7e);
        assert_eq!(E4M3FN.encode(-f64::INFINITY, true), 0xfe);
        assert_eq!(E4M3FN.encode(464.0, false), 0x7e); // ties to 448 (even)
        assert!(E4M3FN.decode(E4M3FN.encode(470.0, false)).is_nan());
        assert_eq!(E5M2.encode(1e6, false), 0x7c);
        assert_eq!(E5M2.encode(-f64::INFINITY, false), 0xfc);
        assert_eq!(E5M2.encode(f64::INFINITY, true), 0x7b);
        assert_eq!(E5M2FNUZ.encode(1e6, false), 0x80);
        assert_eq!(E4M3FNUZ.encode(-0.0, true), 0);
        assert_eq!(E4M3FN.encode(-0.0, true), 0x80);
        assert_eq!(E4M3FNUZ.encode(-1e-9, true), 0);
        assert!(E5M2.decode(E5M2.encode(f64::NAN, true)).is_nan());
        assert_eq!(E2M1.encode(1e9, false), 7);
        assert_eq!(E2M1.encode(-5.0, false), 0xe); // tie → 4 (even)
        assert_eq!(E2M1.encode(f64::NAN, true), 0);
    }

    #[test]
    fn e8m0() {
        assert_eq!(f8e8m0_encode(1.0, true, RoundMode::Up), 127);
        assert_eq!(f8e8m0_encode(1.1, true, RoundMode::Up), 128);
        assert_eq!(f8e8m0_encode(1.1, true, RoundMode::Down), 127);
        assert_eq!(f8e8m0_encode(1.6, true, RoundMode::Nearest), 128);
        assert_eq!(f8e8m0_encode(f64::INFINITY, true, RoundMode::Up), 255);
        assert_eq!(f8e8m0_encode(3.0e38, true, RoundMode::Up), 254);
        assert_eq!(f8e8m0_encode(3.0e38, false, RoundMode::Up), 255);
        assert_eq!(f8e8m0_decode(130), 8.0);
        assert!(f8e8m0_decode(255).is_nan());
    }

    #[test]
    fn packing() {
        let v = [1u8, 2, 3, 15, 7];
        let p = pack_bits(DType::U4, &v);
        assert_eq!(p, [0x21, 0xf3, 0x07]);
        assert_eq!(unpack_bits(DType::U4, &p, 5).unwrap(), v);
        let i: Vec<u8> = [-8i8, 7, -1].iter().map(|&x| x as u8).collect();
        let p = pack_bits(DType::I4, &i);
        assert_eq!(p, [0x78, 0x0f]);
        assert_eq!(unpack_bits(DType::I4, &p, 3).unwrap(), i);
        let i2: Vec<u8> = [-2i8, 1, -1, 0, 1].iter().map(|&x| x as u8).collect();
        let p = pack_bits(DType::I2, &i2);
        assert_eq!(p, [0b00_11_01_10, 0b01]);
        assert_eq!(unpack_bits(DType::I2, &p, 5).unwrap(), i2);
        assert!(unpack_bits(DType::U2, &p, 9).is_none());
        assert_eq!(I4::wrapping(9).0, -7);
        assert_eq!(U4::wrapping(-100).0, 12);
    }
}
