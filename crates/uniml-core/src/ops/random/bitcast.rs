//! `BitCast` (opset 26): reinterprets the bits of each element as another
//! dtype of the same bit width (e.g. float32 ↔ int32, int8 → uint8, bool →
//! uint8, uint8 → float8, int4 ↔ uint4 ↔ float4). Shape is unchanged; strings
//! are not allowed. Bytes cast *to* bool become 0/1 (bool tensors only hold
//! those); sub-byte elements are re-encoded in their one-byte in-memory form.

use uniml_data::{ensure, DType, Result, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct BitCast {
    pub to: DType,
}

impl Op for BitCast {
    fn name(&self) -> &'static str {
        "BitCast"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        if let Some(d) = x.dtype {
            ensure!(
                d != DType::String && d.bits() == self.to.bits(),
                "BitCast needs same-width non-string dtypes, got {d} ({} bits) to {} ({} bits)",
                d.bits(),
                self.to,
                self.to.bits()
            );
        }
        Ok(vec![Fact {
            dtype: Some(self.to),
            shape: x.shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "BitCast")?;
        let d = x.dtype();
        ensure!(
            d != DType::String && self.to != DType::String && d.bits() == self.to.bits(),
            "BitCast needs same-width non-string dtypes, got {d} ({} bits) to {} ({} bits)",
            d.bits(),
            self.to,
            self.to.bits()
        );
        let mut out = ctx.alloc(self.to, x.shape())?;
        let dst = out.as_bytes_mut();
        dst.copy_from_slice(x.as_bytes());
        if self.to == DType::Bool {
            dst.iter_mut().for_each(|b| *b = (*b != 0) as u8);
        } else if self.to.bits() < 8 {
            let to = self.to;
            dst.iter_mut().for_each(|b| *b = uniml_data::lowp::byte_from_bits(to, *b));
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn reinterprets_bits() {
        let x = Tensor::from_slice(&[3], &[1.0f32, -2.5, 3.75]).unwrap();
        let y = run(&BitCast { to: DType::I32 }, &[Some(&x)]).unwrap();
        assert_eq!(
            y[0].as_slice::<i32>().unwrap(),
            &[1065353216, -1071644672, 1081081856]
        );
        let b = Tensor::from_slice(&[2], &[-1i8, 0]).unwrap();
        let y = run(&BitCast { to: DType::U8 }, &[Some(&b)]).unwrap();
        assert_eq!(y[0].as_slice::<u8>().unwrap(), &[255, 0]);
        let y = run(&BitCast { to: DType::Bool }, &[Some(&b)]).unwrap();
        assert_eq!(y[0].as_bools().unwrap(), &[true, false]);
        assert!(run(&BitCast { to: DType::I64 }, &[Some(&x)]).is_err());
    }
}
