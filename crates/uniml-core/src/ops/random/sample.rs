//! `Bernoulli` (opset 15): 1 with probability `p` for each input element, as
//! the `dtype` attribute (default: the input's dtype; any numeric or bool).
//! `Multinomial` (opset 7): `sample_size` class indices per row of
//! `[batch, classes]` unnormalised log-probabilities, as int32 or int64.

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::SeedSource;
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug)]
pub struct Bernoulli {
    /// Output dtype; `None` means the input's.
    pub dtype: Option<DType>,
    pub seeds: SeedSource,
}

/// Stores 0/1 draws into `out` (any numeric dtype or bool).
fn store_bits(bits: &[bool], out: &mut Tensor) -> Result<()> {
    macro_rules! put {
        ($t:ty, $one:expr, $zero:expr) => {
            out.as_slice_mut::<$t>()?
                .iter_mut()
                .zip(bits)
                .for_each(|(o, &b)| *o = if b { $one } else { $zero })
        };
    }
    match out.dtype() {
        DType::Bool | DType::U8 => out
            .as_bytes_mut()
            .iter_mut()
            .zip(bits)
            .for_each(|(o, &b)| *o = b as u8),
        DType::I8 => put!(i8, 1, 0),
        DType::I16 => put!(i16, 1, 0),
        DType::U16 => put!(u16, 1, 0),
        DType::I32 => put!(i32, 1, 0),
        DType::U32 => put!(u32, 1, 0),
        DType::I64 => put!(i64, 1, 0),
        DType::U64 => put!(u64, 1, 0),
        DType::F32 => put!(f32, 1.0, 0.0),
        DType::F64 => put!(f64, 1.0, 0.0),
        DType::F16 => put!(uniml_data::f16, uniml_data::f16::ONE, uniml_data::f16::ZERO),
        DType::BF16 => put!(
            uniml_data::bf16,
            uniml_data::bf16::ONE,
            uniml_data::bf16::ZERO
        ),
        d => bail!("Bernoulli cannot produce {d}"),
    }
    Ok(())
}

impl Op for Bernoulli {
    fn name(&self) -> &'static str {
        "Bernoulli"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![Fact {
            dtype: self.dtype.or(x.dtype),
            shape: x.shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Bernoulli")?;
        ensure!(
            x.dtype().is_float(),
            "Bernoulli input must hold float probabilities, got {}",
            x.dtype()
        );
        let p = x.to_f64_vec()?;
        let mut rng = self.seeds.next_rng();
        let bits: Vec<bool> = p.iter().map(|&p| rng.uniform() < p).collect();
        let mut out = ctx.alloc(self.dtype.unwrap_or(x.dtype()), x.shape())?;
        store_bits(&bits, &mut out)?;
        Ok(vec![out])
    }

    fn is_pure(&self) -> bool {
        false
    }

    crate::op_as_any!();
}

#[derive(Debug)]
pub struct Multinomial {
    /// int32 or int64.
    pub dtype: DType,
    pub sample_size: usize,
    pub seeds: SeedSource,
}

impl Op for Multinomial {
    fn name(&self) -> &'static str {
        "Multinomial"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let batch = inputs
            .first()
            .and_then(|f| f.shape.as_ref())
            .and_then(|s| s.0.first().cloned())
            .unwrap_or(Dim::Unknown);
        Ok(vec![Fact::new(
            self.dtype,
            SymbolicShape(vec![batch, Dim::Known(self.sample_size)]),
        )])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Multinomial")?;
        let xs = x.shape();
        ensure!(
            xs.len() == 2,
            "Multinomial input must be [batch, classes], got {xs:?}"
        );
        ensure!(
            x.dtype().is_float(),
            "Multinomial input must be a float tensor, got {}",
            x.dtype()
        );
        let (batch, classes) = (xs[0], xs[1]);
        ensure!(
            classes > 0 || batch == 0,
            "Multinomial needs at least one class, got {xs:?}"
        );
        let logits = x.to_f64_vec()?;
        ensure!(
            matches!(self.dtype, DType::I32 | DType::I64),
            "Multinomial output dtype must be int32 or int64, got {}",
            self.dtype
        );
        // Allocate first: the pool enforces the session's memory limit.
        let mut out = ctx.alloc(self.dtype, &[batch, self.sample_size])?;
        let mut rng = self.seeds.next_rng();
        let mut picks = Vec::with_capacity(out.len());
        let mut cdf = vec![0.0f64; classes];
        for row in logits.chunks_exact(classes.max(1)).take(batch) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut total = 0.0;
            for (c, &v) in cdf.iter_mut().zip(row) {
                total += if max.is_finite() {
                    (v - max).exp()
                } else {
                    0.0
                };
                *c = total;
            }
            for _ in 0..self.sample_size {
                let target = rng.uniform() * total;
                // First class whose cumulative weight exceeds the target.
                let k = cdf.partition_point(|&c| c <= target).min(classes - 1);
                picks.push(k as i64);
            }
        }
        match self.dtype {
            DType::I64 => out.as_slice_mut::<i64>()?.copy_from_slice(&picks),
            DType::I32 => out
                .as_slice_mut::<i32>()?
                .iter_mut()
                .zip(&picks)
                .for_each(|(o, &k)| *o = k as i32),
            d => bail!("Multinomial output dtype must be int32 or int64, got {d}"),
        }
        Ok(vec![out])
    }

    fn is_pure(&self) -> bool {
        false
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn bernoulli_extremes_and_dtype() {
        let op = Bernoulli {
            dtype: Some(DType::Bool),
            seeds: SeedSource::new(Some(0.0)),
        };
        let x = Tensor::from_slice(&[4], &[0.0f32, 1.0, 0.0, 1.0]).unwrap();
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(y[0].as_bools().unwrap(), &[false, true, false, true]);
        let op = Bernoulli {
            dtype: None,
            seeds: SeedSource::new(None),
        };
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &[0.0, 1.0, 0.0, 1.0]);
        let ints = Tensor::from_slice(&[1], &[1i64]).unwrap();
        assert!(run(&op, &[Some(&ints)]).is_err());
    }

    #[test]
    fn multinomial_follows_weights() {
        let op = Multinomial {
            dtype: DType::I32,
            sample_size: 2000,
            seeds: SeedSource::new(Some(5.0)),
        };
        let x = Tensor::from_slice(
            &[2, 3],
            &[0.0f32, f32::NEG_INFINITY, 0.0, -100.0, 0.0, -100.0],
        )
        .unwrap();
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(y[0].shape(), &[2, 2000]);
        let v = y[0].as_slice::<i32>().unwrap();
        assert!(v[..2000].iter().all(|&k| k == 0 || k == 2));
        let zeros = v[..2000].iter().filter(|&&k| k == 0).count();
        assert!((800..1200).contains(&zeros), "{zeros}");
        assert!(v[2000..].iter().all(|&k| k == 1));
        let bad = Tensor::from_slice(&[3], &[0f32; 3]).unwrap();
        assert!(run(&op, &[Some(&bad)]).is_err());
    }
}
