//! Complex FFT of any length in f64.
//!
//! - powers of two: iterative radix-2 (decimation in time, bit-reversed input);
//! - short other lengths (≤ [`DIRECT_MAX`]): direct O(n²) DFT from a twiddle table;
//! - longer other lengths: Bluestein's chirp-z transform, which turns the DFT
//!   into a circular convolution of power-of-two length `m ≥ 2n − 1`.
//!
//! The inverse is computed as `conj(fft(conj(x)))` and is *not* scaled.

use std::f64::consts::PI;

/// A complex number (re, im) in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct C64 {
    pub re: f64,
    pub im: f64,
}

impl C64 {
    pub const ZERO: C64 = C64 { re: 0.0, im: 0.0 };
    #[inline(always)]
    pub fn new(re: f64, im: f64) -> C64 {
        C64 { re, im }
    }
    /// `exp(i·theta)`.
    #[inline(always)]
    pub fn cis(theta: f64) -> C64 {
        let (s, c) = theta.sin_cos();
        C64 { re: c, im: s }
    }
    #[inline(always)]
    pub fn conj(self) -> C64 {
        C64 {
            re: self.re,
            im: -self.im,
        }
    }
    #[inline(always)]
    pub fn scale(self, s: f64) -> C64 {
        C64 {
            re: self.re * s,
            im: self.im * s,
        }
    }
}

impl std::ops::Add for C64 {
    type Output = C64;
    #[inline(always)]
    fn add(self, o: C64) -> C64 {
        C64 {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
}

impl std::ops::Sub for C64 {
    type Output = C64;
    #[inline(always)]
    fn sub(self, o: C64) -> C64 {
        C64 {
            re: self.re - o.re,
            im: self.im - o.im,
        }
    }
}

impl std::ops::Mul for C64 {
    type Output = C64;
    #[inline(always)]
    fn mul(self, o: C64) -> C64 {
        C64 {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
}

/// Lengths up to this that are not powers of two use the direct DFT.
pub const DIRECT_MAX: usize = 64;

#[derive(Debug, Clone)]
enum Kind {
    /// n ≤ 1: the transform is the identity.
    Trivial,
    Radix2 {
        /// `exp(-2πi·k/n)` for k in 0..n/2.
        twiddles: Vec<C64>,
        /// Bit-reversal permutation of 0..n.
        rev: Vec<usize>,
    },
    Direct {
        /// `exp(-2πi·k/n)` for k in 0..n.
        twiddles: Vec<C64>,
    },
    Bluestein {
        inner: Box<Fft>,
        /// `exp(-πi·k²/n)` for k in 0..n.
        chirp: Vec<C64>,
        /// FFT (length m) of the conjugate chirp laid out circularly, pre-scaled by 1/m.
        kernel: Vec<C64>,
    },
}

/// A precomputed plan for forward/inverse complex transforms of length `n`.
#[derive(Debug, Clone)]
pub struct Fft {
    n: usize,
    kind: Kind,
}

impl Fft {
    pub fn new(n: usize) -> Fft {
        let kind = if n <= 1 {
            Kind::Trivial
        } else if n.is_power_of_two() {
            let bits = n.trailing_zeros();
            let rev = (0..n)
                .map(|i| i.reverse_bits() >> (usize::BITS - bits))
                .collect();
            let twiddles = (0..n / 2)
                .map(|k| C64::cis(-2.0 * PI * k as f64 / n as f64))
                .collect();
            Kind::Radix2 { twiddles, rev }
        } else if n <= DIRECT_MAX {
            Kind::Direct {
                twiddles: (0..n)
                    .map(|k| C64::cis(-2.0 * PI * k as f64 / n as f64))
                    .collect(),
            }
        } else {
            let m = (2 * n - 1).next_power_of_two();
            let inner = Fft::new(m);
            // k² mod 2n keeps the chirp angle small (exact integer reduction).
            let two_n = 2 * n as u128;
            let chirp: Vec<C64> = (0..n)
                .map(|k| {
                    let k2 = (k as u128 * k as u128) % two_n;
                    C64::cis(-PI * k2 as f64 / n as f64)
                })
                .collect();
            let mut kernel = vec![C64::ZERO; m];
            kernel[0] = chirp[0].conj();
            for k in 1..n {
                kernel[k] = chirp[k].conj();
                kernel[m - k] = chirp[k].conj();
            }
            let mut scratch = Vec::new();
            inner.forward(&mut kernel, &mut scratch);
            let s = 1.0 / m as f64;
            for v in kernel.iter_mut() {
                *v = v.scale(s);
            }
            Kind::Bluestein {
                inner: Box::new(inner),
                chirp,
                kernel,
            }
        };
        Fft { n, kind }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// In-place forward transform `X[k] = Σ x[j]·exp(-2πi·jk/n)`; `buf.len()` must be `n`.
    /// `scratch` is reused between calls (no allocation once it has grown).
    pub fn forward(&self, buf: &mut [C64], scratch: &mut Vec<C64>) {
        debug_assert_eq!(buf.len(), self.n);
        match &self.kind {
            Kind::Trivial => {}
            Kind::Radix2 { twiddles, rev } => radix2(buf, twiddles, rev),
            Kind::Direct { twiddles } => {
                scratch.clear();
                scratch.extend_from_slice(buf);
                let n = self.n;
                for (k, out) in buf.iter_mut().enumerate() {
                    let mut acc = C64::ZERO;
                    let mut idx = 0usize;
                    for x in scratch.iter() {
                        acc = acc + *x * twiddles[idx];
                        idx += k;
                        if idx >= n {
                            idx -= n;
                        }
                    }
                    *out = acc;
                }
            }
            Kind::Bluestein {
                inner,
                chirp,
                kernel,
            } => {
                let m = inner.n;
                scratch.clear();
                scratch.resize(m, C64::ZERO);
                for ((s, x), c) in scratch.iter_mut().zip(buf.iter()).zip(chirp) {
                    *s = *x * *c;
                }
                // The inner plan is radix-2 and needs no scratch of its own.
                let mut none = Vec::new();
                inner.forward(scratch, &mut none);
                for (s, k) in scratch.iter_mut().zip(kernel) {
                    *s = (*s * *k).conj();
                }
                inner.forward(scratch, &mut none);
                for ((out, s), c) in buf.iter_mut().zip(scratch.iter()).zip(chirp) {
                    *out = s.conj() * *c;
                }
            }
        }
    }

    /// In-place unscaled inverse transform `x[j] = Σ X[k]·exp(+2πi·jk/n)`.
    pub fn inverse(&self, buf: &mut [C64], scratch: &mut Vec<C64>) {
        for v in buf.iter_mut() {
            *v = v.conj();
        }
        self.forward(buf, scratch);
        for v in buf.iter_mut() {
            *v = v.conj();
        }
    }
}

fn radix2(a: &mut [C64], twiddles: &[C64], rev: &[usize]) {
    let n = a.len();
    for (i, &j) in rev.iter().enumerate().take(n) {
        if i < j {
            a.swap(i, j);
        }
    }
    let mut size = 2;
    while size <= n {
        let half = size / 2;
        let step = n / size;
        for block in a.chunks_exact_mut(size) {
            let (lo, hi) = block.split_at_mut(half);
            for (j, (u, v)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                let t = *v * twiddles[j * step];
                let x = *u;
                *u = x + t;
                *v = x - t;
            }
        }
        size *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[C64], sign: f64) -> Vec<C64> {
        let n = x.len();
        (0..n)
            .map(|k| {
                x.iter().enumerate().fold(C64::ZERO, |acc, (j, v)| {
                    let ang = sign * 2.0 * PI * ((j * k) % n) as f64 / n as f64;
                    acc + *v * C64::cis(ang)
                })
            })
            .collect()
    }

    fn signal(n: usize) -> Vec<C64> {
        (0..n)
            .map(|i| {
                C64::new(
                    (i as f64 * 0.37).sin() + 0.1 * i as f64,
                    (i as f64 * 1.3).cos(),
                )
            })
            .collect()
    }

    #[test]
    fn matches_naive_dft_for_all_plan_kinds() {
        for n in [
            1usize, 2, 3, 4, 5, 7, 8, 12, 16, 63, 64, 65, 100, 128, 257, 1000,
        ] {
            let x = signal(n);
            let plan = Fft::new(n);
            let mut scratch = Vec::new();
            let mut f = x.clone();
            plan.forward(&mut f, &mut scratch);
            let want = naive(&x, -1.0);
            let scale = 1.0 + n as f64;
            for (a, b) in f.iter().zip(&want) {
                assert!(
                    (a.re - b.re).abs() < 1e-9 * scale && (a.im - b.im).abs() < 1e-9 * scale,
                    "n={n}"
                );
            }
            let mut g = f.clone();
            plan.inverse(&mut g, &mut scratch);
            for (a, b) in g.iter().zip(&x) {
                assert!(
                    (a.re / n as f64 - b.re).abs() < 1e-9 && (a.im / n as f64 - b.im).abs() < 1e-9,
                    "n={n}"
                );
            }
        }
    }
}
