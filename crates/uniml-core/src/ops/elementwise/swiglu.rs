//! `SwiGLU(A, B) = Swish_alpha(A) * B` with `Swish_alpha(a) = a * sigmoid(alpha * a)`
//! (opset 28). `A` (gate) and `B` (value) have the same shape; no broadcasting.
//! f32/f64 compute in their own precision, f16/bf16 through f32, rounded once.

use uniml_data::{bail, bf16, f16, DType, Result, Tensor, TensorView};

use super::kernel::for_chunks;
use super::num::Real;
use super::unary::sigmoid;
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, PartialEq)]
pub struct SwiGlu {
    pub alpha: f32,
}

impl Default for SwiGlu {
    fn default() -> Self {
        SwiGlu { alpha: 1.0 }
    }
}

#[inline(always)]
fn swiglu<R: Real>(a: R, b: R, alpha: R) -> R {
    a * sigmoid(alpha * a) * b
}

fn run<R: Real>(ctx: &EvalCtx, a: &[R], b: &[R], out: &mut [R], alpha: f32) {
    let al = R::of(alpha as f64);
    for_chunks(ctx.par, out, &|start, chunk| {
        let n = chunk.len();
        for ((o, &x), &y) in chunk.iter_mut().zip(&a[start..start + n]).zip(&b[start..start + n]) {
            *o = swiglu(x, y, al);
        }
    });
}

fn run_half<H: Copy + Send + Sync>(
    ctx: &EvalCtx,
    a: &[H],
    b: &[H],
    out: &mut [H],
    alpha: f32,
    to: impl Fn(H) -> f32 + Sync,
    from: impl Fn(f32) -> H + Sync,
) {
    for_chunks(ctx.par, out, &|start, chunk| {
        let n = chunk.len();
        for ((o, &x), &y) in chunk.iter_mut().zip(&a[start..start + n]).zip(&b[start..start + n]) {
            *o = from(swiglu(to(x), to(y), alpha));
        }
    });
}

impl Op for SwiGlu {
    fn name(&self) -> &'static str {
        "SwiGLU"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        if inputs.len() != 2 {
            bail!("SwiGLU needs 2 inputs (A, B), got {}", inputs.len());
        }
        let (a, b) = (inputs[0], inputs[1]);
        if let (Some(x), Some(y)) = (a.dtype, b.dtype) {
            if x != y || !x.is_float() {
                bail!("SwiGLU needs A and B of one float dtype, got {x} and {y}");
            }
        }
        Ok(vec![Fact {
            dtype: a.dtype.or(b.dtype),
            shape: a.shape.clone().or_else(|| b.shape.clone()),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "SwiGLU")?;
        let b = input(inputs, 1, "SwiGLU")?;
        if a.shape() != b.shape() {
            bail!("SwiGLU needs A and B of one shape, got {:?} and {:?}", a.shape(), b.shape());
        }
        if a.dtype() != b.dtype() {
            bail!("SwiGLU needs A and B of one dtype, got {} and {}", a.dtype(), b.dtype());
        }
        let mut out = ctx.alloc(a.dtype(), a.shape())?;
        let al = self.alpha;
        match a.dtype() {
            DType::F32 => run(ctx, a.as_slice::<f32>()?, b.as_slice()?, out.as_slice_mut()?, al),
            DType::F64 => run(ctx, a.as_slice::<f64>()?, b.as_slice()?, out.as_slice_mut()?, al),
            DType::F16 => run_half(ctx, a.as_slice::<f16>()?, b.as_slice()?, out.as_slice_mut()?, al, f16::to_f32, f16::from_f32),
            DType::BF16 => {
                run_half(ctx, a.as_slice::<bf16>()?, b.as_slice()?, out.as_slice_mut()?, al, bf16::to_f32, bf16::from_f32)
            }
            other => bail!("SwiGLU expects a float tensor, got {other}"),
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::run as run_op;

    #[test]
    fn matches_definition() {
        let av = [-3.0f32, -0.5, 0.0, 0.7, 2.0, 10.0];
        let bv = [1.0f32, 2.0, 3.0, -1.0, 0.5, 0.25];
        let a = Tensor::from_slice(&[2, 3], &av).unwrap();
        let b = Tensor::from_slice(&[2, 3], &bv).unwrap();
        let y = run_op(&SwiGlu { alpha: 1.7 }, &[Some(&a), Some(&b)]).unwrap().remove(0);
        for (i, &g) in y.as_slice::<f32>().unwrap().iter().enumerate() {
            let (x, v) = (av[i] as f64, bv[i] as f64);
            let want = x / (1.0 + (-1.7 * x).exp()) * v;
            assert!((g as f64 - want).abs() < 1e-6, "{i}: {g} vs {want}");
        }
        let c = Tensor::from_slice(&[6], &bv).unwrap();
        assert!(run_op(&SwiGlu::default(), &[Some(&a), Some(&c)]).is_err());
        let i = Tensor::from_slice(&[1], &[1i32]).unwrap();
        assert!(run_op(&SwiGlu::default(), &[Some(&i), Some(&i)]).is_err());
    }
}
