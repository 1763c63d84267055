//! Fused epilogue: per-row / per-column bias and an element-wise activation,
//! applied to a C tile right after its last accumulation.
//!
//! Full microtiles get bias + activation inside the microkernel's store (see
//! [`TileEpi`]); everything else (edge tiles, GEMV paths) goes through
//! [`apply_tile`], plain Rust that LLVM vectorises (the SIMD tables
//! instantiate it under `#[target_feature]`).
//! `exp` is a branch-free polynomial (relative error ~2e-7) so that `Sigmoid`
//! and `SiLU` vectorise too.

/// Element-wise activation applied by the GEMM epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)` (NaN stays NaN).
    Relu,
    /// `min(max(x, min), max)` (NaN stays NaN).
    Clip { min: f32, max: f32 },
    /// `x * clamp(x / 6 + 1/2, 0, 1)` (ONNX `HardSwish`).
    HardSwish,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * sigmoid(x)` (a.k.a. Swish).
    SiLU,
    /// `x * Φ(x)`, Φ the standard normal CDF (ONNX `Gelu`, erf form).
    Gelu,
}

impl Activation {
    /// Scalar evaluation with the formulas the epilogue uses.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => Relu.f(x),
            Activation::Clip { min, max } => Clip { min, max }.f(x),
            Activation::HardSwish => HardSwish.f(x),
            Activation::Sigmoid => Sigmoid.f(x),
            Activation::SiLU => SiLU.f(x),
            Activation::Gelu => Gelu.f(x),
        }
    }
}

/// What happens to each element of C after `A·B` has been accumulated:
///
/// `C[i,j] = act( (A·B)[i,j] + bias_row[i] + bias_col[j] + (accumulate ? C_old[i,j] : 0) )`
///
/// (the old value enters *before* the activation, so a residual add followed
/// by ReLU can be fused.)  With `accumulate == false`, C is never read, so it
/// may hold garbage (even NaN).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Epilogue<'a> {
    /// One value per row of C (length ≥ m), e.g. the per-output-channel bias
    /// of a convolution computed as `W[co,k] · col[k,pix]`.
    pub bias_row: Option<&'a [f32]>,
    /// One value per column of C (length ≥ n), e.g. the bias of a `Gemm` /
    /// fully-connected layer.
    pub bias_col: Option<&'a [f32]>,
    /// Applied last.
    pub activation: Activation,
    /// `C += …` instead of `C = …`.
    pub accumulate: bool,
}

impl<'a> Epilogue<'a> {
    /// Plain `C = A·B`.
    pub fn none() -> Self {
        Self::default()
    }
    /// Builder: set the per-row bias.
    pub fn with_bias_row(mut self, bias: &'a [f32]) -> Self {
        self.bias_row = Some(bias);
        self
    }
    /// Builder: set the per-column bias.
    pub fn with_bias_col(mut self, bias: &'a [f32]) -> Self {
        self.bias_col = Some(bias);
        self
    }
    /// Builder: set the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    /// Builder: accumulate into C (`C += …`).
    pub fn with_accumulate(mut self, accumulate: bool) -> Self {
        self.accumulate = accumulate;
        self
    }
}

/// The epilogue a microkernel applies in registers on a full tile:
/// `v = act(v + bias_row[i] + bias_col[j])`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpi {
    /// `mr` values for this tile, or null.
    pub bias_row: *const f32,
    /// `nr` values for this tile, or null.
    pub bias_col: *const f32,
    pub act: Activation,
}

impl TileEpi {
    /// Portable application to an `M×N` tile in memory (used by the generic
    /// and wasm kernels right after their store; fixed sizes vectorise well).
    #[inline(always)]
    pub(crate) unsafe fn apply_fixed<const M: usize, const N: usize>(
        &self,
        c: *mut f32,
        ldc: usize,
    ) {
        match self.act {
            Activation::None => self.fixed::<M, N, _>(Ident, c, ldc),
            Activation::Relu => self.fixed::<M, N, _>(Relu, c, ldc),
            Activation::Clip { min, max } => self.fixed::<M, N, _>(Clip { min, max }, c, ldc),
            Activation::HardSwish => self.fixed::<M, N, _>(HardSwish, c, ldc),
            Activation::Sigmoid => self.fixed::<M, N, _>(Sigmoid, c, ldc),
            Activation::SiLU => self.fixed::<M, N, _>(SiLU, c, ldc),
            Activation::Gelu => self.fixed::<M, N, _>(Gelu, c, ldc),
        }
    }

    #[inline(always)]
    unsafe fn fixed<const M: usize, const N: usize, A: Act>(
        &self,
        act: A,
        c: *mut f32,
        ldc: usize,
    ) {
        let bc: [f32; N] = if self.bias_col.is_null() {
            [0.0; N]
        } else {
            *(self.bias_col as *const [f32; N])
        };
        for i in 0..M {
            let row = &mut *(c.add(i * ldc) as *mut [f32; N]);
            let br = if self.bias_row.is_null() {
                0.0
            } else {
                *self.bias_row.add(i)
            };
            for j in 0..N {
                row[j] = act.f(row[j] + br + bc[j]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Vectorisable scalar formulas.

pub(crate) trait Act: Copy {
    fn f(self, x: f32) -> f32;
}

#[derive(Clone, Copy)]
pub(crate) struct Ident;
#[derive(Clone, Copy)]
pub(crate) struct Relu;
#[derive(Clone, Copy)]
pub(crate) struct Clip {
    min: f32,
    max: f32,
}
#[derive(Clone, Copy)]
pub(crate) struct HardSwish;
#[derive(Clone, Copy)]
pub(crate) struct Sigmoid;
#[derive(Clone, Copy)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) struct SiLU;
#[derive(Clone, Copy)]
pub(crate) struct Gelu;

impl Act for Ident {
    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        x
    }
}
impl Act for Relu {
    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        if x < 0.0 {
            0.0
        } else {
            x
        }
    }
}
impl Act for Clip {
    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        let y = if x < self.min { self.min } else { x };
        if y > self.max {
            self.max
        } else {
            y
        }
    }
}
impl Act for HardSwish {
    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        let t = x * (1.0 / 6.0) + 0.5;
        let t = if t < 0.0 { 0.0 } else { t };
        let t = if t > 1.0 { 1.0 } else { t };
        x * t
    }
}
impl Act for Sigmoid {
    /// Through `t = exp(-|x|) ≤ 1` (`t/(1+t)` for negative `x`): no
    /// intermediate is ever subnormal (those cost ~100× on x86).
    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        let t = exp_approx(-x.abs());
        let s = 1.0 / (1.0 + t);
        if x < 0.0 {
            t * s
        } else {
            s
        }
    }
}
impl Act for SiLU {
    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        x * Sigmoid.f(x)
    }
}

impl Act for Gelu {
    /// `x·Φ(x)` with `Φ(-|x|) = erfc(a)/2`, `a = |x|/√2`, from
    /// [`gelu_consts::Q`]: `1 - Φ(-|x|)` for `x ≥ 0`. No small-argument
    /// branch is needed (erf's relative accuracy near 0 does not matter
    /// here: Φ ≥ 1/2 there), so the SIMD versions are one straight line.
    #[inline(always)]
    fn f(self, x: f32) -> f32 {
        use gelu_consts::*;
        let a = x.abs() * core::f32::consts::FRAC_1_SQRT_2;
        // NaN stays NaN (the comparison is false).
        let a = if a > A_MAX { A_MAX } else { a };
        let t = 1.0 / (1.0 + 0.5 * a);
        let mut q = Q[0];
        for &coef in &Q[1..] {
            q = q * t + coef;
        }
        let h = 0.5 * t * exp_approx(q - a * a);
        let phi = if x < 0.0 { h } else { 1.0 - h };
        if x < X_MIN {
            0.0
        } else {
            x * phi
        }
    }
}

/// Constants of the GELU (shared with the SIMD versions).
pub(crate) mod gelu_consts {
    /// `|x|/√2` is clamped here: `erfc(9) ≈ 4e-37` is still a normal f32
    /// (no subnormal intermediates), and `Φ(x)` is exactly 1 in f32 beyond.
    pub const A_MAX: f32 = 9.0;
    /// `-A_MAX·√2`: below it the GELU is 0 (the clamped `erfc` would not be).
    pub const X_MIN: f32 = -12.727_922;
    /// `erfc(a) = t·exp(-a² + Q(t))`, `t = 1/(1 + a/2)`: a Chebyshev fit
    /// with relative error < 1.2e-7 on `erfc` (Press et al., `erfcc`);
    /// highest degree first (Horner).
    pub const Q: [f32; 10] = [
        0.170_872_77,
        -0.822_152_23,
        1.488_515_9,
        -1.135_203_98,
        0.278_868_07,
        -0.186_288_06,
        0.096_784_18,
        0.374_091_96,
        1.000_023_7,
        -1.265_512_2,
    ];
}

/// Constants of [`exp_approx`] (shared with the SIMD versions).
pub(crate) mod exp_consts {
    pub const LOG2E: f32 = core::f32::consts::LOG2_E;
    /// ln 2 split so that `n · LN2_HI` is exact for |n| < 2^9.
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// 1.5 · 2^23: adding it rounds to the nearest integer, which then sits
    /// in the low mantissa bits.
    pub const MAGIC: f32 = 12_582_912.0;
    pub const MAGIC_BITS: i32 = 0x4B40_0000;
    /// Input clamp: keeps `2^n` a normal number.
    pub const LO: f32 = -87.0;
    pub const HI: f32 = 88.0;
    /// Taylor coefficients of `exp(r)`, highest degree first (Horner).
    pub const P: [f32; 7] = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
}

/// Branch-free `exp` for f32: Cody–Waite range reduction `x = n·ln2 + r`,
/// degree-6 Taylor polynomial on `|r| ≤ ln2/2` (relative error ~2e-7), and
/// `2^n` built from the exponent bits.  Inputs are clamped to `[-87, 88]`, so
/// the result is always a finite normal number (NaN input gives NaN).
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    use exp_consts::*;
    let x = if x < LO { LO } else { x };
    let x = if x > HI { HI } else { x };
    let t = x * LOG2E + MAGIC;
    let nf = t - MAGIC;
    let r = x - nf * LN2_HI - nf * LN2_LO;
    let mut p = P[0];
    for &coef in &P[1..] {
        p = p * r + coef;
    }
    let n = (t.to_bits() as i32).wrapping_sub(MAGIC_BITS);
    p * f32::from_bits((n.wrapping_add(127) as u32) << 23)
}

// ---------------------------------------------------------------------------
// Tile pass.

#[inline(always)]
unsafe fn tile<A: Act>(
    act: A,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias_row: *const f32,
    bias_col: *const f32,
) {
    // Fixed 8-wide chunks: rows are often only one microtile wide (16 or 32
    // floats), too short for LLVM's interleaved vector loop, which would
    // leave everything to the scalar remainder.
    const L: usize = 8;
    for i in 0..rows {
        // SAFETY: the caller guarantees rows×cols elements at stride ldc.
        let row = core::slice::from_raw_parts_mut(c.add(i * ldc), cols);
        let br = if bias_row.is_null() {
            0.0
        } else {
            *bias_row.add(i)
        };
        if bias_col.is_null() {
            let mut chunks = row.chunks_exact_mut(L);
            for ch in &mut chunks {
                let ch: &mut [f32; L] = ch.try_into().unwrap();
                for x in ch.iter_mut() {
                    *x = act.f(*x + br);
                }
            }
            for x in chunks.into_remainder() {
                *x = act.f(*x + br);
            }
        } else {
            let bc = core::slice::from_raw_parts(bias_col, cols);
            let mut chunks = row.chunks_exact_mut(L);
            for (ch, b) in (&mut chunks).zip(bc.chunks_exact(L)) {
                let ch: &mut [f32; L] = ch.try_into().unwrap();
                let b: &[f32; L] = b.try_into().unwrap();
                for l in 0..L {
                    ch[l] = act.f(ch[l] + br + b[l]);
                }
            }
            let done = cols / L * L;
            for (x, &b) in chunks.into_remainder().iter_mut().zip(&bc[done..]) {
                *x = act.f(*x + br + b);
            }
        }
    }
}

/// `C[i,j] = act(C[i,j] + bias_row[i] + bias_col[j])` on a `rows × cols`
/// tile.  Null bias pointers mean "no bias".
///
/// # Safety
/// `c` must be valid for reads and writes of the tile (row stride `ldc`),
/// non-null bias pointers for `rows` / `cols` reads.
#[inline(always)]
pub(crate) unsafe fn apply_tile(
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias_row: *const f32,
    bias_col: *const f32,
    act: Activation,
) {
    match act {
        Activation::None => tile(Ident, c, ldc, rows, cols, bias_row, bias_col),
        Activation::Relu => tile(Relu, c, ldc, rows, cols, bias_row, bias_col),
        Activation::Clip { min, max } => {
            tile(Clip { min, max }, c, ldc, rows, cols, bias_row, bias_col)
        }
        Activation::HardSwish => tile(HardSwish, c, ldc, rows, cols, bias_row, bias_col),
        Activation::Sigmoid => tile(Sigmoid, c, ldc, rows, cols, bias_row, bias_col),
        Activation::SiLU => tile(SiLU, c, ldc, rows, cols, bias_row, bias_col),
        Activation::Gelu => tile(Gelu, c, ldc, rows, cols, bias_row, bias_col),
    }
}
