//! Requantization of i32 accumulators to an 8-bit output:
//! `y = saturate(rint(acc · multiplier) + zero_point)`, product in f64.

use uniml_data::{bail, DType, Result, Tensor};

use crate::op::EvalCtx;
use crate::parallel::par_chunks_mut;

/// The multiplier of each output element.
#[derive(Clone, Copy, Debug)]
pub enum Mult<'a> {
    /// One multiplier for the whole tensor.
    Const(f64),
    /// Rows of `row` elements; row `r` uses `vals[r % vals.len()]` (e.g. per output channel).
    PerRow { row: usize, vals: &'a [f64] },
    /// One multiplier per element.
    Table(&'a [f64]),
}

/// Round half to even of `v` clamped to `±2^40` (NaN → `-2^40`), branch-free.
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max`/`min` map it to a bound
fn rint64_clamped(v: f64) -> f64 {
    const LIM: f64 = 1_099_511_627_776.0; // 2^40
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    (v.max(-LIM).min(LIM) + MAGIC) - MAGIC
}

trait Q8: Copy + Send {
    const LO: f64;
    const HI: f64;
    fn from_i32(v: i32) -> Self;
}
impl Q8 for u8 {
    const LO: f64 = 0.0;
    const HI: f64 = 255.0;
    fn from_i32(v: i32) -> Self {
        v as u8
    }
}
impl Q8 for i8 {
    const LO: f64 = -128.0;
    const HI: f64 = 127.0;
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max`/`min` map it to a bound
fn one<T: Q8>(acc: i32, k: f64, zp: f64) -> T {
    let v = (rint64_clamped(acc as f64 * k) + zp).max(T::LO).min(T::HI);
    // SAFETY: `max`/`min` with finite bounds give a finite value in [LO, HI], which fits i32.
    T::from_i32(unsafe { v.to_int_unchecked::<i32>() })
}

fn run<T: Q8>(ctx: &EvalCtx, y: &mut [T], c: &[i32], mult: Mult, zp: f64) {
    const CHUNK: usize = 1 << 15;
    par_chunks_mut(ctx.par, y, CHUNK, &|ci, chunk| {
        let base = ci * CHUNK;
        let cs = &c[base..base + chunk.len()];
        match mult {
            Mult::Const(k) => {
                for (o, &v) in chunk.iter_mut().zip(cs) {
                    *o = one(v, k, zp);
                }
            }
            Mult::Table(t) => {
                for ((o, &v), &k) in chunk.iter_mut().zip(cs).zip(&t[base..]) {
                    *o = one(v, k, zp);
                }
            }
            Mult::PerRow { row, vals } => {
                let row = row.max(1);
                let mut e = 0;
                while e < chunk.len() {
                    let pos = base + e;
                    let len = (row - pos % row).min(chunk.len() - e);
                    let k = vals[(pos / row) % vals.len()];
                    for (o, &v) in chunk[e..e + len].iter_mut().zip(&cs[e..e + len]) {
                        *o = one(v, k, zp);
                    }
                    e += len;
                }
            }
        }
    });
}

/// Writes the requantized `c` into `y` (uint8 or int8, same element count).
pub fn requantize(ctx: &EvalCtx, y: &mut Tensor, c: &[i32], mult: Mult, zp: f64) -> Result<()> {
    if y.len() != c.len() {
        bail!(
            "internal: requantizing {} accumulators into {} outputs",
            c.len(),
            y.len()
        );
    }
    match mult {
        Mult::Table(t) if t.len() != c.len() => {
            bail!("internal: {} multipliers for {} outputs", t.len(), c.len())
        }
        Mult::PerRow { vals, .. } if vals.is_empty() && !c.is_empty() => {
            bail!("internal: no multipliers")
        }
        _ => {}
    }
    match y.dtype() {
        DType::U8 => run(ctx, y.as_slice_mut::<u8>()?, c, mult, zp),
        DType::I8 => run(ctx, y.as_slice_mut::<i8>()?, c, mult, zp),
        other => bail!("quantized output must be int8 or uint8, got {other}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::ops::nn::test_util::FakePar;

    #[test]
    fn rounds_and_saturates() {
        let mut pool = BufferPool::new(u64::MAX);
        let ctx = EvalCtx::new(&FakePar, &mut pool);
        let c = [5i32, -5, 7, 1000, -1000, 3, 0, 1];
        let mut y = Tensor::zeros(DType::I8, &[8]).unwrap();
        requantize(&ctx, &mut y, &c, Mult::Const(0.5), 1.0).unwrap();
        assert_eq!(y.as_slice::<i8>().unwrap(), &[3, -1, 5, 127, -128, 3, 1, 1]);
        let mut y = Tensor::zeros(DType::U8, &[8]).unwrap();
        requantize(
            &ctx,
            &mut y,
            &c,
            Mult::PerRow {
                row: 3,
                vals: &[1.0, f64::NAN],
            },
            0.0,
        )
        .unwrap();
        assert_eq!(y.as_slice::<u8>().unwrap(), &[5, 0, 7, 0, 0, 0, 0, 1]);
        let t = [1.0, 2.0, 0.5, 0.1, 0.0, 1.0, 1.0, 1.0];
        requantize(&ctx, &mut y, &c, Mult::Table(&t), 10.0).unwrap();
        assert_eq!(
            y.as_slice::<u8>().unwrap(),
            &[15, 0, 14, 110, 10, 13, 10, 11]
        );
        assert!(requantize(&ctx, &mut y, &c[..3], Mult::Const(1.0), 0.0).is_err());
        assert!(requantize(&ctx, &mut y, &c, Mult::Table(&t[..2]), 0.0).is_err());
    }
}
