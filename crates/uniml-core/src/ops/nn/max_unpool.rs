//! `MaxUnpool`: scatters `X` into a zero tensor at the flat `I` indices
//! produced by `MaxPool`; the output size is `output_shape` (input 2) when
//! given, else `(in - 1) * stride - pads + kernel` per spatial dim.

use uniml_data::{bail, ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::padding::attr_or;
use super::{float_data, with_f32_output};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::read_i64s;

#[derive(Debug, Clone)]
pub struct MaxUnpool {
    pub kernel_shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
}

impl MaxUnpool {
    fn default_shape(&self, xs: &[usize]) -> Result<Vec<usize>> {
        let n = self.kernel_shape.len();
        ensure!(
            xs.len() == n + 2,
            "MaxUnpool input {xs:?} does not match kernel_shape {:?}",
            self.kernel_shape
        );
        let strides = attr_or(&self.strides, n, 1, "strides")?;
        let pads = if self.pads.is_empty() {
            vec![0; 2 * n]
        } else {
            self.pads.clone()
        };
        ensure!(
            pads.len() == 2 * n,
            "pads has {} values, expected {}",
            pads.len(),
            2 * n
        );
        let mut out = xs[..2].to_vec();
        for i in 0..n {
            let v = (xs[i + 2] as i64 - 1) * strides[i] as i64 - (pads[i] + pads[n + i]) as i64
                + self.kernel_shape[i] as i64;
            ensure!(
                v >= 0,
                "MaxUnpool output size along spatial dim {i} would be negative"
            );
            out.push(v as usize);
        }
        Ok(out)
    }
}

impl Op for MaxUnpool {
    fn name(&self) -> &'static str {
        "MaxUnpool"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = if let Some(k) = inputs.get(2).and_then(|f| f.konst.as_ref()) {
            let v = read_i64s(&k.view())?;
            Some(SymbolicShape(
                v.iter()
                    .map(|&d| {
                        if d >= 0 {
                            Dim::Known(d as usize)
                        } else {
                            Dim::Unknown
                        }
                    })
                    .collect(),
            ))
        } else if inputs
            .get(2)
            .is_some_and(|f| f.shape.is_some() || f.dtype.is_some())
        {
            None
        } else {
            x.shape
                .as_ref()
                .and_then(|s| s.concrete())
                .and_then(|s| self.default_shape(&s).ok())
                .map(|s| SymbolicShape::known(&s))
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
            konst: None,
            is_sequence: false,
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "MaxUnpool")?;
        let idx = input(inputs, 1, "MaxUnpool")?;
        ensure!(
            idx.shape() == x.shape(),
            "MaxUnpool indices shape {:?} differs from X shape {:?}",
            idx.shape(),
            x.shape()
        );
        // As the reference: scatter into the inferred shape, then place that
        // block at the origin of `output_shape` (if given).
        let inferred = self.default_shape(x.shape())?;
        let out_shape = match inputs.get(2).and_then(|s| s.as_ref()) {
            Some(s) => {
                let v = read_i64s(s)?;
                ensure!(
                    v.len() == x.shape().len(),
                    "MaxUnpool output_shape {v:?} must have rank {}",
                    x.shape().len()
                );
                v.iter()
                    .map(|&d| {
                        usize::try_from(d).map_err(|_| {
                            uniml_data::Error::Shape(format!("negative output_shape {v:?}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            None => inferred.clone(),
        };
        ensure!(
            out_shape.iter().zip(&inferred).all(|(o, i)| o >= i),
            "MaxUnpool output_shape {out_shape:?} is smaller than the unpooled shape {inferred:?}"
        );
        let xd = float_data(x, "X")?;
        let iv = read_i64s(idx)?;
        let y = with_f32_output(ctx, x.dtype(), &out_shape, |_, out| {
            let total: usize = inferred.iter().product();
            let mut tmp = vec![0f32; total];
            for (&i, &v) in iv.iter().zip(xd.iter()) {
                if i < 0 || i as usize >= total {
                    bail!("MaxUnpool index {i} is out of range for output of {total} elements");
                }
                tmp[i as usize] = v;
            }
            if inferred == out_shape {
                out.copy_from_slice(&tmp);
                return Ok(());
            }
            // Copy rows of the inferred block into the larger output.
            let r = inferred.len();
            let row = inferred[r - 1];
            let rows = total / row.max(1);
            let mut idx = vec![0usize; r - 1];
            for k in 0..rows {
                let mut off = 0usize;
                for d in 0..r - 1 {
                    off = off * out_shape[d] + idx[d];
                }
                off *= out_shape[r - 1];
                out[off..off + row].copy_from_slice(&tmp[k * row..(k + 1) * row]);
                for d in (0..r - 1).rev() {
                    idx[d] += 1;
                    if idx[d] < inferred[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
            Ok(())
        })?;
        Ok(vec![y])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{run, t};

    #[test]
    fn unpool() {
        let x = t(&[1, 1, 1, 2], &[5., 6.]);
        let i = Tensor::from_slice(&[1, 1, 1, 2], &[1i64, 7]).unwrap();
        let op = MaxUnpool {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            pads: vec![],
        };
        let y = run(&op, &[Some(&x), Some(&i), None]).unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 2, 4]);
        assert_eq!(
            y[0].as_slice::<f32>().unwrap(),
            &[0., 5., 0., 0., 0., 0., 0., 6.]
        );
        let bad = Tensor::from_slice(&[1, 1, 1, 2], &[1i64, 70]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&bad), None]).is_err());
    }
}
