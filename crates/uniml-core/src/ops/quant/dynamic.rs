//! `DynamicQuantizeLinear` (opset 11): uint8 quantization with scale and zero
//! point computed from the data range (extended to include 0), as in the ONNX
//! function body: all arithmetic in f32, round half to even.

use uniml_data::{ensure, DType, Result, SymbolicShape, Tensor, TensorView};

use super::{rint_clamped, saturate};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

const CHUNK: usize = 1 << 16;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicQuantizeLinear;

/// The scale and (rounded, saturated) zero point for data in `[min, max]`.
pub fn dynamic_params(min: f32, max: f32) -> (f32, f32) {
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    let range = if hi == lo { 1.0 } else { hi - lo };
    let scale = range / 255.0;
    let zp = (0.0 - lo / scale).clamp(0.0, 255.0);
    (scale, rint_clamped(zp))
}

/// `(min(0, min x), max(0, max x))`, ignoring NaNs; 8 lanes so it vectorizes.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([0f32; 8], [0f32; 8]);
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    for (i, &v) in rest.iter().enumerate() {
        lo[i] = if v < lo[i] { v } else { lo[i] };
        hi[i] = if v > hi[i] { v } else { hi[i] };
    }
    (
        lo.iter().fold(0f32, |a, &b| a.min(b)),
        hi.iter().fold(0f32, |a, &b| a.max(b)),
    )
}

impl Op for DynamicQuantizeLinear {
    fn name(&self) -> &'static str {
        "DynamicQuantizeLinear"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        if let Some(d) = x.dtype {
            ensure!(
                d == DType::F32,
                "DynamicQuantizeLinear input must be float, got {d}"
            );
        }
        Ok(vec![
            Fact {
                dtype: Some(DType::U8),
                shape: x.shape,
                konst: None,
                is_sequence: false,
            },
            Fact::new(DType::F32, SymbolicShape::known(&[])),
            Fact::new(DType::U8, SymbolicShape::known(&[])),
        ])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "DynamicQuantizeLinear")?;
        ensure!(
            x.dtype() == DType::F32,
            "DynamicQuantizeLinear input must be float, got {}",
            x.dtype()
        );
        let xd = x.as_slice::<f32>()?;
        let (lo, hi) = min_max(xd);
        let (scale, zp) = dynamic_params(lo, hi);
        let mut y = ctx.alloc(DType::U8, x.shape())?;
        par_chunks_mut(ctx.par, y.as_slice_mut::<u8>()?, CHUNK, &|ci, chunk| {
            let xs = &xd[ci * CHUNK..ci * CHUNK + chunk.len()];
            for (o, &v) in chunk.iter_mut().zip(xs) {
                *o = saturate::<u8>(v / scale, zp);
            }
        });
        Ok(vec![y, Tensor::scalar(scale), Tensor::scalar(zp as u8)])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::run;

    #[test]
    fn matches_onnx_examples() {
        let x = Tensor::from_slice(&[6], &[0.0f32, 2.0, -3.0, -2.5, 1.34, 0.5]).unwrap();
        let r = run(&DynamicQuantizeLinear, &[Some(&x)]).unwrap();
        assert_eq!(r[0].as_slice::<u8>().unwrap(), &[153, 255, 0, 26, 221, 179]);
        assert!((r[1].as_slice::<f32>().unwrap()[0] - 0.019_607_844).abs() < 1e-9);
        assert_eq!(r[2].as_slice::<u8>().unwrap(), &[153]);
        let x = Tensor::from_slice(&[6], &[-1.0f32, -2.1, -1.3, -2.5, -3.34, -4.0]).unwrap();
        let r = run(&DynamicQuantizeLinear, &[Some(&x)]).unwrap();
        assert_eq!(r[0].as_slice::<u8>().unwrap(), &[191, 121, 172, 96, 42, 0]);
        assert_eq!(r[2].as_slice::<u8>().unwrap(), &[255]);
        let x = Tensor::from_slice(&[2, 3], &[1.0f32, 2.1, 1.3, 2.5, 3.34, 4.0]).unwrap();
        let r = run(&DynamicQuantizeLinear, &[Some(&x)]).unwrap();
        assert_eq!(
            r[0].as_slice::<u8>().unwrap(),
            &[64, 134, 83, 159, 213, 255]
        );
        assert_eq!(r[2].as_slice::<u8>().unwrap(), &[0]);
        // All zeros and empty input: scale 1/255, zero point 0.
        let x = Tensor::from_slice(&[0], &[0f32; 0]).unwrap();
        let r = run(&DynamicQuantizeLinear, &[Some(&x)]).unwrap();
        assert_eq!(r[0].shape(), &[0]);
        assert_eq!(r[1].as_slice::<f32>().unwrap(), &[1.0 / 255.0]);
        let xi = Tensor::from_slice(&[1], &[1u8]).unwrap();
        assert!(run(&DynamicQuantizeLinear, &[Some(&xi)]).is_err());
    }
}
