//! `RandomNormal`, `RandomUniform` (opset 1): a tensor of the `shape`
//! attribute; `RandomNormalLike`, `RandomUniformLike` (opset 1): the shape (and,
//! without a `dtype` attribute, the dtype) of the input. Normal values are
//! `mean + scale · N(0, 1)`, uniform ones `low + (high − low) · U[0, 1)`.
//! Output dtypes: f32, f64, f16, bf16.

use uniml_data::{bail, bf16, f16, DType, Result, SymbolicShape, Tensor, TensorView};

use super::{Rng, SeedSource};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    Normal { mean: f32, scale: f32 },
    Uniform { low: f32, high: f32 },
}

#[derive(Debug)]
pub struct RandomGen {
    pub dist: Distribution,
    /// Output dtype; `None` (only for the `*Like` ops) means the input's.
    pub dtype: Option<DType>,
    /// Output shape; `None` for the `*Like` ops (the input's shape).
    pub shape: Option<Vec<usize>>,
    pub seeds: SeedSource,
}

/// Fills `out` (a float tensor) with `next()` values converted to its dtype.
pub(crate) fn fill_float(out: &mut Tensor, mut next: impl FnMut() -> f64) -> Result<()> {
    match out.dtype() {
        DType::F32 => out
            .as_slice_mut::<f32>()?
            .iter_mut()
            .for_each(|v| *v = next() as f32),
        DType::F64 => out
            .as_slice_mut::<f64>()?
            .iter_mut()
            .for_each(|v| *v = next()),
        DType::F16 => out
            .as_slice_mut::<f16>()?
            .iter_mut()
            .for_each(|v| *v = f16::from_f64(next())),
        DType::BF16 => out
            .as_slice_mut::<bf16>()?
            .iter_mut()
            .for_each(|v| *v = bf16::from_f64(next())),
        d => bail!(
            "random values can only be generated as float16, bfloat16, float or double, got {d}"
        ),
    }
    Ok(())
}

impl RandomGen {
    fn fill(&self, rng: &mut Rng, out: &mut Tensor) -> Result<()> {
        match self.dist {
            Distribution::Uniform { low, high } => {
                let (lo, span) = (low as f64, high as f64 - low as f64);
                fill_float(out, || lo + span * rng.uniform())
            }
            Distribution::Normal { mean, scale } => {
                let (m, s) = (mean as f64, scale as f64);
                let mut spare: Option<f64> = None;
                fill_float(out, || {
                    let z = match spare.take() {
                        Some(z) => z,
                        None => {
                            let (a, b) = rng.normal_pair();
                            spare = Some(b);
                            a
                        }
                    };
                    m + s * z
                })
            }
        }
    }
}

impl Op for RandomGen {
    fn name(&self) -> &'static str {
        match (self.dist, self.shape.is_some()) {
            (Distribution::Normal { .. }, true) => "RandomNormal",
            (Distribution::Normal { .. }, false) => "RandomNormalLike",
            (Distribution::Uniform { .. }, true) => "RandomUniform",
            (Distribution::Uniform { .. }, false) => "RandomUniformLike",
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![match &self.shape {
            Some(s) => Fact::new(self.dtype.unwrap_or(DType::F32), SymbolicShape::known(s)),
            None => {
                let x = inputs.first().copied().cloned().unwrap_or_default();
                Fact {
                    dtype: self.dtype.or(x.dtype),
                    shape: x.shape,
                    konst: None,
                    is_sequence: false,
                }
            }
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let (dtype, shape) = match &self.shape {
            Some(s) => (self.dtype.unwrap_or(DType::F32), s.clone()),
            None => {
                let x = input(inputs, 0, self.name())?;
                (self.dtype.unwrap_or(x.dtype()), x.shape().to_vec())
            }
        };
        if !dtype.is_float() {
            bail!("{} output must be a float dtype, got {dtype}", self.name());
        }
        let mut out = ctx.alloc(dtype, &shape)?;
        let mut rng = self.seeds.next_rng();
        self.fill(&mut rng, &mut out)?;
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
    fn shapes_dtypes_and_ranges() {
        let op = RandomGen {
            dist: Distribution::Uniform {
                low: 2.0,
                high: 3.0,
            },
            dtype: Some(DType::F64),
            shape: Some(vec![4, 5]),
            seeds: SeedSource::new(Some(1.0)),
        };
        assert!(!op.is_pure());
        let y = run(&op, &[]).unwrap();
        assert_eq!(y[0].shape(), &[4, 5]);
        assert!(y[0]
            .as_slice::<f64>()
            .unwrap()
            .iter()
            .all(|v| (2.0..3.0).contains(v)));
        let like = RandomGen {
            dist: Distribution::Normal {
                mean: 10.0,
                scale: 0.001,
            },
            dtype: None,
            shape: None,
            seeds: SeedSource::new(None),
        };
        let x = Tensor::from_slice(&[3], &[f16::ZERO; 3]).unwrap();
        let y = run(&like, &[Some(&x)]).unwrap();
        assert_eq!(y[0].dtype(), DType::F16);
        assert!(y[0]
            .to_f64_vec()
            .unwrap()
            .iter()
            .all(|v| (v - 10.0).abs() < 0.1));
        let ints = Tensor::from_slice(&[3], &[1i32; 3]).unwrap();
        assert!(run(&like, &[Some(&ints)]).is_err());
    }
}
