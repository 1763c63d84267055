//! Element traits shared by the elementwise and reduce kernels.
//!
//! - [`Num`]: every numeric dtype (ints, f32, f64, f16, bf16). Integer
//!   arithmetic wraps (as C/onnxruntime do in practice); f16/bf16 compute in f32.
//! - [`Real`]: f32 and f64, with the transcendental functions the float ops need.
//!   f16/bf16 tensors are computed through f32.
//! - [`CastElem`]: conversions between every non-string dtype with numpy/C
//!   semantics (floats truncate toward zero into ints, ints wrap); into the
//!   low-precision floats by round-to-nearest-even with the ONNX `saturate`
//!   and `round_mode` rules ([`CastMode`], `uniml_data::lowp`).

use uniml_data::lowp::{self, LowFloat, SmallInt};
use uniml_data::{bf16, f16, Element};

/// A numeric element type.
pub trait Num: Element + PartialOrd + Send + Sync {
    const IS_FLOAT: bool;
    const IS_SIGNED: bool;
    const ZERO: Self;
    const ONE: Self;
    /// Smallest value (−inf for floats).
    const LOWEST: Self;
    /// Largest value (+inf for floats).
    const HIGHEST: Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Division; integers truncate toward zero (callers reject zero divisors).
    fn div(self, o: Self) -> Self;
    /// C-style remainder (`fmod` for floats, truncated `%` for integers).
    fn rem_c(self, o: Self) -> Self;
    /// Python-style modulo (result has the sign of the divisor).
    fn rem_py(self, o: Self) -> Self;
    fn abs(self) -> Self;
    fn neg(self) -> Self;
    fn sign(self) -> Self;
    fn is_nan(self) -> bool;
    /// Maximum that propagates NaN (numpy `maximum`).
    #[inline(always)]
    fn max_nan(self, o: Self) -> Self {
        if self.is_nan() || self >= o {
            self
        } else {
            o
        }
    }
    /// Minimum that propagates NaN (numpy `minimum`).
    #[inline(always)]
    fn min_nan(self, o: Self) -> Self {
        if self.is_nan() || self <= o {
            self
        } else {
            o
        }
    }
    fn to_f64(self) -> f64;
    /// From f64: floats round, integers truncate toward zero and wrap.
    fn from_f64(v: f64) -> Self;
    /// Integer value (truncated for floats).
    fn to_i64(self) -> i64;
    /// From i64, wrapping for narrower integers.
    fn from_i64(v: i64) -> Self;
    fn is_zero(self) -> bool {
        self == Self::ZERO
    }
}

/// 2^63 as f64: floats at or above it only fit a `u64`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

macro_rules! num_int {
    ($($t:ty, $signed:expr);*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = false;
            const IS_SIGNED: bool = $signed;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline(always)] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline(always)] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline(always)] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline(always)] fn div(self, o: Self) -> Self { if o == 0 { 0 } else { self.wrapping_div(o) } }
            #[inline(always)] fn rem_c(self, o: Self) -> Self { if o == 0 { 0 } else { self.wrapping_rem(o) } }
            #[inline(always)]
            fn rem_py(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                #[allow(unused_comparisons)]
                if r != 0 && ((r < 0) != (o < 0)) { r.wrapping_add(o) } else { r }
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn abs(self) -> Self { if self < 0 { (0 as $t).wrapping_sub(self) } else { self } }
            #[inline(always)] fn neg(self) -> Self { (0 as $t).wrapping_sub(self) }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn sign(self) -> Self { if self > 0 { 1 } else if self < 0 { (0 as $t).wrapping_sub(1) } else { 0 } }
            #[inline(always)] fn is_nan(self) -> bool { false }
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                if <$t>::MAX as u64 == u64::MAX && v >= TWO_POW_63 { v as u64 as $t } else { v as i64 as $t }
            }
            #[inline(always)] fn to_i64(self) -> i64 { self as i64 }
            #[inline(always)] fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
num_int!(i8, true; i16, true; i32, true; i64, true; u8, false; u16, false; u32, false; u64, false);

macro_rules! num_float {
    ($($t:ty);*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = true;
            const IS_SIGNED: bool = true;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline(always)] fn add(self, o: Self) -> Self { self + o }
            #[inline(always)] fn sub(self, o: Self) -> Self { self - o }
            #[inline(always)] fn mul(self, o: Self) -> Self { self * o }
            #[inline(always)] fn div(self, o: Self) -> Self { self / o }
            #[inline(always)] fn rem_c(self, o: Self) -> Self { self % o }
            #[inline(always)]
            fn rem_py(self, o: Self) -> Self {
                let r = self % o;
                if r != 0.0 && ((r < 0.0) != (o < 0.0)) { r + o } else if r == 0.0 { (0.0 as $t).copysign(o) } else { r }
            }
            #[inline(always)] fn abs(self) -> Self { <$t>::abs(self) }
            #[inline(always)] fn neg(self) -> Self { -self }
            #[inline(always)]
            fn sign(self) -> Self { if self > 0.0 { 1.0 } else if self < 0.0 { -1.0 } else { self } }
            #[inline(always)] fn is_nan(self) -> bool { <$t>::is_nan(self) }
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)] fn to_i64(self) -> i64 { self as i64 }
            #[inline(always)] fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
num_float!(f32; f64);

macro_rules! num_half {
    ($($t:ty);*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = true;
            const IS_SIGNED: bool = true;
            const ZERO: Self = <$t>::ZERO;
            const ONE: Self = <$t>::ONE;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline(always)] fn add(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() + o.to_f32()) }
            #[inline(always)] fn sub(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() - o.to_f32()) }
            #[inline(always)] fn mul(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() * o.to_f32()) }
            #[inline(always)] fn div(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() / o.to_f32()) }
            #[inline(always)] fn rem_c(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() % o.to_f32()) }
            #[inline(always)] fn rem_py(self, o: Self) -> Self { <$t>::from_f32(self.to_f32().rem_py(o.to_f32())) }
            #[inline(always)] fn abs(self) -> Self { <$t>::from_bits(self.to_bits() & 0x7fff) }
            #[inline(always)] fn neg(self) -> Self { <$t>::from_bits(self.to_bits() ^ 0x8000) }
            #[inline(always)] fn sign(self) -> Self { <$t>::from_f32(Num::sign(self.to_f32())) }
            #[inline(always)] fn is_nan(self) -> bool { <$t>::is_nan(self) }
            #[inline(always)] fn to_f64(self) -> f64 { self.to_f64() }
            #[inline(always)] fn from_f64(v: f64) -> Self { <$t>::from_f64(v) }
            #[inline(always)] fn to_i64(self) -> i64 { self.to_f32() as i64 }
            #[inline(always)] fn from_i64(v: i64) -> Self { <$t>::from_f64(v as f64) }
        }
    )*};
}
num_half!(f16; bf16);

/// f32 and f64 with the math the float ops need.
pub trait Real:
    Num
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    fn of(v: f64) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn ceil(self) -> Self;
    fn floor(self) -> Self;
    fn round_even(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tan(self) -> Self;
    fn asin(self) -> Self;
    fn acos(self) -> Self;
    fn atan(self) -> Self;
    fn sinh(self) -> Self;
    fn cosh(self) -> Self;
    fn tanh(self) -> Self;
    fn asinh(self) -> Self;
    fn acosh(self) -> Self;
    fn atanh(self) -> Self;
    fn erf(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn is_infinite(self) -> bool;
    fn max_f(self, o: Self) -> Self;
    fn min_f(self, o: Self) -> Self;
    /// `exp`, branch-free and vectorisable for f32 ([`exp_f32`]); std for f64.
    fn fast_exp(self) -> Self;
    /// `tanh`, branch-free and vectorisable for f32 ([`tanh_f32`]); std for f64.
    fn fast_tanh(self) -> Self;
}

macro_rules! real {
    ($t:ty, $erf:path, $exp:path, $tanh:path) => {
        impl Real for $t {
            #[inline(always)]
            fn of(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn round_even(self) -> Self {
                <$t>::round_ties_even(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn tan(self) -> Self {
                <$t>::tan(self)
            }
            #[inline(always)]
            fn asin(self) -> Self {
                <$t>::asin(self)
            }
            #[inline(always)]
            fn acos(self) -> Self {
                <$t>::acos(self)
            }
            #[inline(always)]
            fn atan(self) -> Self {
                <$t>::atan(self)
            }
            #[inline(always)]
            fn sinh(self) -> Self {
                <$t>::sinh(self)
            }
            #[inline(always)]
            fn cosh(self) -> Self {
                <$t>::cosh(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn asinh(self) -> Self {
                <$t>::asinh(self)
            }
            #[inline(always)]
            fn acosh(self) -> Self {
                <$t>::acosh(self)
            }
            #[inline(always)]
            fn atanh(self) -> Self {
                <$t>::atanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline(always)]
            fn is_infinite(self) -> bool {
                <$t>::is_infinite(self)
            }
            #[inline(always)]
            fn max_f(self, o: Self) -> Self {
                if self > o {
                    self
                } else {
                    o
                }
            }
            #[inline(always)]
            fn min_f(self, o: Self) -> Self {
                if self < o {
                    self
                } else {
                    o
                }
            }
            #[inline(always)]
            fn fast_exp(self) -> Self {
                $exp(self)
            }
            #[inline(always)]
            fn fast_tanh(self) -> Self {
                $tanh(self)
            }
        }
    };
}
real!(f32, erf_f32, exp_f32, tanh_f32);
real!(f64, libm::erf, f64::exp, f64::tanh);

/// `e^x` for f32 without branches or calls, so loops over it vectorise
/// (Cephes `expf` polynomial; max relative error ~2 ulp, subnormal results
/// included; NaN propagates, overflow gives +inf).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const C1: f32 = 355.0 / 512.0; // ln 2, high part (exact in few bits)
    const C2: f32 = -2.121_944_4e-4; // ln 2 - C1
    let x = x.clamp(-104.0, 89.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n in two halves so that every n in [-150, 129] stays a normal float.
    // n as an integer, read from the bits of `t` (a saturating `as` cast would
    // not vectorise): t = 1.5 * 2^23 + n exactly.
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    y * s1 * s2
}

/// `tanh` for f32 without branches or calls (vectorisable): an odd Taylor
/// polynomial near 0, `1 - 2 / (e^{2|x|} + 1)` elsewhere; max relative error
/// about 3e-7.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let e = exp_f32(2.0 * a);
    let big = 1.0 - 2.0 / (e + 1.0);
    let x2 = x * x;
    let mut p = 21844.0 / 6_081_075.0f32;
    p = p * x2 - 1382.0 / 155_925.0;
    p = p * x2 + 62.0 / 2835.0;
    p = p * x2 - 17.0 / 315.0;
    p = p * x2 + 2.0 / 15.0;
    p = p * x2 - 1.0 / 3.0;
    let small = x + x * x2 * p;
    if a < 0.25 {
        small
    } else {
        big.copysign(x)
    }
}

/// `erf` for f32, branch-free and vectorisable: the odd Taylor polynomial
/// `x·P(x²)` for `|x| < 0.5` (truncation < 1e-9), else `1 − erfc` with a
/// Chebyshev `erfc` (relative error < 1.2e-7, so < 6e-8 absolute on erf)
/// on `|x|` clamped to 4 (erf(4) rounds to 1 in f32; no subnormal `exp`).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let a = x.abs().min(4.0);
    let x2 = x * x;
    let mut p = -1.0 / 75_600.0f32;
    p = p * x2 + 1.0 / 9360.0;
    p = p * x2 - 1.0 / 1320.0;
    p = p * x2 + 1.0 / 216.0;
    p = p * x2 - 1.0 / 42.0;
    p = p * x2 + 1.0 / 10.0;
    p = p * x2 - 1.0 / 3.0;
    p = p * x2 + 1.0;
    let small = x * p * std::f32::consts::FRAC_2_SQRT_PI;
    // erfc(a) = t·exp(-a² + P(t)), t = 1/(1 + a/2): a Chebyshev fit with
    // relative error < 1.2e-7 on erfc itself (Press et al., `erfcc`).
    let t = 1.0 / (1.0 + 0.5 * a);
    let mut q = 0.170_872_77f32;
    for c in [-0.822_152_23f32, 1.488_515_9, -1.135_203_98, 0.278_868_07, -0.186_288_06, 0.096_784_18, 0.374_091_96, 1.000_023_7, -1.265_512_2] {
        q = q * t + c;
    }
    let big = (1.0 - t * exp_f32(q - a * a)).copysign(x);
    if x.is_nan() {
        x
    } else if a < 0.5 {
        small
    } else {
        big
    }
}

/// How a cast rounds into the low-precision float types (ONNX `Cast` attributes
/// `saturate` and `round_mode`); other targets ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CastMode {
    /// Out-of-range values become ±max (default) instead of inf/NaN (float8 targets).
    pub saturate: bool,
    /// Rounding into FLOAT8E8M0.
    pub round: lowp::RoundMode,
}

impl Default for CastMode {
    fn default() -> Self {
        CastMode { saturate: true, round: lowp::RoundMode::Up }
    }
}

/// Conversions between every non-string dtype (bool is `u8` 0/1).
pub trait CastElem: bytemuck::Pod + Send + Sync {
    /// Integer-like (ints and bool): converted through `i128` exactly.
    const INTEGRAL: bool;
    fn to_i128(self) -> i128;
    fn to_f64c(self) -> f64;
    fn from_i128(v: i128) -> Self;
    fn from_f64c(v: f64) -> Self;
    /// From f64 under a [`CastMode`] (only the low-precision floats look at it).
    #[inline(always)]
    fn from_f64_mode(v: f64, _mode: CastMode) -> Self {
        Self::from_f64c(v)
    }
    /// From an integer under a [`CastMode`].
    #[inline(always)]
    fn from_i128_mode(v: i128, _mode: CastMode) -> Self {
        Self::from_i128(v)
    }
}

macro_rules! cast_low_float {
    ($($t:ty),*) => {$(
        impl CastElem for $t {
            const INTEGRAL: bool = false;
            #[inline(always)] fn to_i128(self) -> i128 { LowFloat::to_f64(self) as i128 }
            #[inline(always)] fn to_f64c(self) -> f64 { LowFloat::to_f64(self) }
            #[inline(always)] fn from_i128(v: i128) -> Self { Self::from_i128_mode(v, CastMode::default()) }
            #[inline(always)] fn from_f64c(v: f64) -> Self { Self::from_f64_mode(v, CastMode::default()) }
            #[inline(always)]
            fn from_f64_mode(v: f64, m: CastMode) -> Self {
                <$t as LowFloat>::from_f64(v, m.saturate, m.round)
            }
            #[inline(always)]
            fn from_i128_mode(v: i128, m: CastMode) -> Self {
                <$t as LowFloat>::from_f64(v as f64, m.saturate, m.round)
            }
        }
    )*};
}
cast_low_float!(lowp::F8E4M3FN, lowp::F8E4M3FNUZ, lowp::F8E5M2, lowp::F8E5M2FNUZ, lowp::F8E8M0, lowp::F4E2M1);

macro_rules! cast_small_int {
    ($($t:ty),*) => {$(
        impl CastElem for $t {
            const INTEGRAL: bool = true;
            #[inline(always)] fn to_i128(self) -> i128 { self.value() as i128 }
            #[inline(always)] fn to_f64c(self) -> f64 { self.value() as f64 }
            /// Integers wrap (two's complement), as every ONNX integer cast does.
            #[inline(always)] fn from_i128(v: i128) -> Self { <$t as SmallInt>::wrapping(v) }
            /// Floats truncate and wrap (see `SmallInt::from_f64_cast`).
            #[inline(always)] fn from_f64c(v: f64) -> Self { <$t as SmallInt>::from_f64_cast(v) }
        }
    )*};
}
cast_small_int!(lowp::U4, lowp::I4, lowp::U2, lowp::I2);

macro_rules! cast_int {
    ($($t:ty),*) => {$(
        impl CastElem for $t {
            const INTEGRAL: bool = true;
            #[inline(always)] fn to_i128(self) -> i128 { self as i128 }
            #[inline(always)] fn to_f64c(self) -> f64 { self as f64 }
            #[inline(always)] fn from_i128(v: i128) -> Self { v as $t }
            #[inline(always)] fn from_f64c(v: f64) -> Self { <$t as Num>::from_f64(v) }
        }
    )*};
}
cast_int!(i8, i16, i32, i64, u8, u16, u32, u64);

/// A bool stored as one byte (view a bool tensor's `u8` slice with
/// `bytemuck::cast_slice`); converting into it tests `!= 0` (NaN is true).
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct BoolElem(pub u8);

impl CastElem for BoolElem {
    const INTEGRAL: bool = true;
    #[inline(always)]
    fn to_i128(self) -> i128 {
        (self.0 != 0) as i128
    }
    #[inline(always)]
    fn to_f64c(self) -> f64 {
        (self.0 != 0) as u8 as f64
    }
    #[inline(always)]
    fn from_i128(v: i128) -> Self {
        BoolElem((v != 0) as u8)
    }
    #[inline(always)]
    fn from_f64c(v: f64) -> Self {
        BoolElem((v != 0.0) as u8)
    }
}

macro_rules! cast_float {
    ($($t:ty),*) => {$(
        impl CastElem for $t {
            const INTEGRAL: bool = false;
            #[inline(always)] fn to_i128(self) -> i128 { Num::to_f64(self) as i128 }
            #[inline(always)] fn to_f64c(self) -> f64 { Num::to_f64(self) }
            #[inline(always)] fn from_i128(v: i128) -> Self { <$t as Num>::from_f64(v as f64) }
            #[inline(always)] fn from_f64c(v: f64) -> Self { <$t as Num>::from_f64(v) }
        }
    )*};
}
cast_float!(f64, f16, bf16);

impl CastElem for f32 {
    const INTEGRAL: bool = false;
    #[inline(always)]
    fn to_i128(self) -> i128 {
        self as i128
    }
    #[inline(always)]
    fn to_f64c(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_i128(v: i128) -> Self {
        // Direct conversion rounds once (i64 -> f64 -> f32 could round twice).
        v as f32
    }
    #[inline(always)]
    fn from_f64c(v: f64) -> Self {
        v as f32
    }
}

/// Converts one element between any two non-string element types.
#[inline(always)]
pub fn cast_elem<S: CastElem, D: CastElem>(s: S) -> D {
    if S::INTEGRAL {
        D::from_i128(s.to_i128())
    } else {
        D::from_f64c(s.to_f64c())
    }
}

/// [`cast_elem`] under a [`CastMode`].
#[inline(always)]
pub fn cast_elem_mode<S: CastElem, D: CastElem>(s: S, mode: CastMode) -> D {
    if S::INTEGRAL {
        D::from_i128_mode(s.to_i128(), mode)
    } else {
        D::from_f64_mode(s.to_f64c(), mode)
    }
}

#[cfg(test)]
mod erf_tests {
    #[test]
    fn erf_f32_matches_f64() {
        for i in -6000..=6000 {
            let x = i as f32 * 1e-3;
            let (got, want) = (super::erf_f32(x) as f64, libm::erf(x as f64));
            assert!((got - want).abs() <= 1.5e-7, "erf({x}) = {got}, want {want}");
        }
        for x in [1e-30f32, -1e-20, 1e-6, 10.0, -100.0, f32::INFINITY, f32::NEG_INFINITY] {
            let (got, want) = (super::erf_f32(x) as f64, libm::erf(x as f64));
            assert!((got - want).abs() <= 1e-7 * want.abs().max(1e-30) + 1e-37, "erf({x}) = {got}, want {want}");
        }
        assert!(super::erf_f32(f32::NAN).is_nan());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_semantics() {
        assert_eq!(Num::div(-7i32, 2), -3);
        assert_eq!(Num::rem_c(-7i32, 2), -1);
        assert_eq!(Num::rem_py(-7i32, 2), 1);
        assert_eq!(Num::rem_py(7i32, -2), -1);
        assert_eq!(Num::div(i32::MIN, -1), i32::MIN);
        assert_eq!(Num::add(250u8, 10), 4);
        assert_eq!(Num::sign(-5i8), -1);
        assert_eq!(Num::abs(i8::MIN), i8::MIN);
    }

    #[test]
    fn float_mod_follows_numpy() {
        assert_eq!(Num::rem_py(-1.0f64, 3.0), 2.0);
        assert_eq!(Num::rem_py(1.0f64, -3.0), -2.0);
        assert_eq!(Num::rem_py(-1.0f64, f64::INFINITY), f64::INFINITY);
        assert!(Num::rem_py(1.0f64, 0.0).is_nan());
        assert!(Num::rem_py(-4.0f64, 2.0).is_sign_positive());
    }

    #[test]
    fn fast_exp_and_tanh_are_accurate() {
        let mut worst_exp = 0f64;
        let mut worst_tanh = 0f64;
        let mut x = -110.0f32;
        while x < 95.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            if want > f32::MAX as f64 {
                assert!(got.is_infinite(), "exp({x})");
            } else if want > 1.2e-38 {
                worst_exp = worst_exp.max(((got - want) / want).abs());
            } else {
                assert!((got - want).abs() < 2e-45, "exp({x}) = {got} vs {want}");
            }
            let t = (x as f64).tanh();
            worst_tanh = worst_tanh.max(((tanh_f32(x) as f64 - t) / t.abs().max(1e-30)).abs());
            x += 0.00731;
        }
        for x in [1e-6f32, -3e-3, 0.2499, 0.2501, -0.7] {
            let t = (x as f64).tanh();
            worst_tanh = worst_tanh.max(((tanh_f32(x) as f64 - t) / t.abs()).abs());
        }
        assert!(worst_exp < 3e-7, "exp rel err {worst_exp}");
        assert!(worst_tanh < 5e-7, "tanh rel err {worst_tanh}");
        assert!(exp_f32(f32::NAN).is_nan() && tanh_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(-30.0), -1.0);
    }

    #[test]
    fn casts_follow_numpy() {
        assert_eq!(cast_elem::<f32, u8>(300.0), 44);
        assert_eq!(cast_elem::<f32, u8>(-1.0), 255);
        assert_eq!(cast_elem::<f32, i32>(-2.7), -2);
        assert_eq!(cast_elem::<i64, i8>(257), 1);
        assert_eq!(cast_elem::<f32, BoolElem>(f32::NAN), BoolElem(1));
        assert_eq!(cast_elem::<f32, BoolElem>(0.0), BoolElem(0));
        assert_eq!(cast_elem::<BoolElem, f32>(BoolElem(1)), 1.0);
        assert_eq!(cast_elem::<i64, f32>(16777217), 16777216.0);
        assert_eq!(cast_elem::<f64, u64>(1.8e19), 18000000000000000000);
        assert_eq!(cast_elem::<f32, f16>(1.0), f16::ONE);
        assert!((Real::erf(1.0f32) - 0.842_700_8).abs() < 1e-7);
    }
}
