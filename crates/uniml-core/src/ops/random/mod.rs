//! Random ops — `RandomNormal`, `RandomUniform`, `RandomNormalLike`,
//! `RandomUniformLike`, `Bernoulli`, `Multinomial` — and `BitCast`.
//!
//! Random values come from [`Rng`] (xoshiro256**, seeded through splitmix64),
//! with Box–Muller normals. They are never constant-folded (`is_pure` is
//! false). With a `seed` attribute a node's *n*-th run draws from the stream
//! `(seed, n)`, so the first run of a session is reproducible (onnxruntime
//! likewise seeds one generator per node); without one, streams come from a
//! process-wide counter. The values cannot match numpy's generator, which the
//! ONNX reference uses.

pub mod bitcast;
pub mod generate;
pub mod sample;

use std::sync::atomic::{AtomicU64, Ordering};

/// splitmix64 step: a good 64-bit mixer for seeding.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** pseudo-random generator.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Two independent standard normals (Box–Muller).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        (r * c, r * s)
    }
}

/// Where a node's random streams come from.
#[derive(Debug, Default)]
pub struct SeedSource {
    /// The `seed` attribute, if any.
    pub seed: Option<f32>,
    /// Runs so far of this node.
    runs: AtomicU64,
}

static GLOBAL_STREAM: AtomicU64 = AtomicU64::new(0);

impl SeedSource {
    pub fn new(seed: Option<f32>) -> Self {
        SeedSource {
            seed,
            runs: AtomicU64::new(0),
        }
    }

    /// The generator for the next run of the node.
    pub fn next_rng(&self) -> Rng {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let base = match self.seed {
            Some(s) => (s as f64).to_bits() ^ 0x5EED_0000_0000_0000,
            None => {
                let local = 0u8;
                let entropy = &local as *const u8 as usize as u64;
                GLOBAL_STREAM
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(0xA076_1D64_78BD_642F)
                    ^ entropy.rotate_left(32)
            }
        };
        let mut sm = base ^ run.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        Rng::new(splitmix64(&mut sm))
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use uniml_data::{Result, Tensor};

    use crate::op::{BufferPool, EvalCtx, Op};
    use crate::parallel::Serial;

    pub fn run(op: &dyn Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let views: Vec<_> = inputs.iter().map(|t| t.map(|t| t.view())).collect();
        op.eval(&mut ctx, &views)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(42);
        let n = 100_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            s += u;
        }
        assert!((s / n as f64 - 0.5).abs() < 0.01);
        s = 0.0;
        for _ in 0..n / 2 {
            let (a, b) = r.normal_pair();
            s += a + b;
            s2 += a * a + b * b;
        }
        assert!((s / n as f64).abs() < 0.02);
        assert!((s2 / n as f64 - 1.0).abs() < 0.03);
    }

    #[test]
    fn seeded_streams_repeat_per_run_index() {
        let a = SeedSource::new(Some(3.0));
        let b = SeedSource::new(Some(3.0));
        let (x0, y0) = (a.next_rng().next_u64(), b.next_rng().next_u64());
        let (x1, y1) = (a.next_rng().next_u64(), b.next_rng().next_u64());
        assert_eq!(x0, y0);
        assert_eq!(x1, y1);
        assert_ne!(x0, x1);
    }
}
