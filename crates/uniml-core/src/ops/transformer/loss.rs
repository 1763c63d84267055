//! `NegativeLogLikelihoodLoss` (opsets 12–22) and `SoftmaxCrossEntropyLoss`
//! (opsets 12–22): input `[N, C, d1..dk]`, integer target `[N, d1..dk]`,
//! optional class weights `[C]`, `ignore_index`, reduction none/sum/mean;
//! SoftmaxCrossEntropyLoss optionally also returns the log-probabilities.
//!
//! Values are read as f32, sums accumulate in f64; `mean` divides by the sum
//! of the applied weights (the count of non-ignored targets without weights).

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::nn::{float_data, store_f32};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    None,
    Sum,
    #[default]
    Mean,
}

impl Reduction {
    pub fn parse(s: &str) -> Option<Reduction> {
        match s {
            "none" => Some(Reduction::None),
            "sum" => Some(Reduction::Sum),
            "mean" => Some(Reduction::Mean),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct NllLoss {
    pub reduction: Reduction,
    pub ignore_index: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct SoftmaxCrossEntropyLoss {
    pub reduction: Reduction,
    pub ignore_index: Option<i64>,
}

/// Loss output fact: the target's shape for `none`, a scalar otherwise.
fn loss_fact(op: &str, reduction: Reduction, inputs: &[&Fact]) -> Result<Fact> {
    let Some(x) = inputs.first() else {
        bail!("{op} needs an input")
    };
    if let Some(dt) = x.dtype {
        if !dt.is_float() {
            bail!("{op} expects a float input, got {dt}");
        }
    }
    let shape = match reduction {
        Reduction::None => match (inputs.get(1).and_then(|t| t.shape.clone()), &x.shape) {
            (Some(t), _) => Some(t),
            (None, Some(s)) if s.rank() >= 2 => {
                let mut d = s.0.clone();
                d.remove(1);
                Some(SymbolicShape(d))
            }
            _ => None,
        },
        _ => Some(SymbolicShape(Vec::<Dim>::new())),
    };
    Ok(Fact {
        dtype: x.dtype,
        shape,
        konst: None,
        is_sequence: false,
    })
}

/// Gathers `-x[n, target, d] * w[target]` per position and reduces.
/// `x` is `[N, C, D]` flattened; returns the output values and shape.
#[allow(clippy::too_many_arguments)]
fn nll(
    op: &str,
    x: &[f32],
    n: usize,
    c: usize,
    dsz: usize,
    target: &[i64],
    weight: Option<&[f32]>,
    ignore: Option<i64>,
) -> Result<(Vec<f32>, f64)> {
    let mut loss = vec![0f32; n * dsz];
    let mut wsum = 0f64;
    for i in 0..n {
        for d in 0..dsz {
            let t = target[i * dsz + d];
            if Some(t) == ignore {
                continue;
            }
            if t < 0 || t as usize >= c {
                bail!("{op}: target value {t} is out of range [0, {c})");
            }
            let t = t as usize;
            let w = weight.map_or(1.0, |w| w[t]);
            loss[i * dsz + d] = -x[(i * c + t) * dsz + d] * w;
            wsum += w as f64;
        }
    }
    Ok((loss, wsum))
}

fn reduce(loss: Vec<f32>, wsum: f64, reduction: Reduction) -> Vec<f32> {
    match reduction {
        Reduction::None => loss,
        Reduction::Sum => vec![loss.iter().map(|&v| v as f64).sum::<f64>() as f32],
        Reduction::Mean => vec![(loss.iter().map(|&v| v as f64).sum::<f64>() / wsum) as f32],
    }
}

/// Sizes `N`, `C`, `D` (product of the trailing dims), targets and weights.
struct Staged {
    n: usize,
    c: usize,
    d: usize,
    target: Vec<i64>,
    weight: Option<Vec<f32>>,
}

/// Checks shapes and reads target/weight.
fn stage(op: &str, x: &TensorView, t: &TensorView, w: Option<&TensorView>) -> Result<Staged> {
    let xs = x.shape();
    if xs.len() < 2 {
        bail!("{op}: input must have rank >= 2 ([N, C, ...]), got shape {xs:?}");
    }
    let (n, c) = (xs[0], xs[1]);
    let mut want: Vec<usize> = vec![n];
    want.extend_from_slice(&xs[2..]);
    if t.shape() != want.as_slice() {
        bail!("{op}: target must have shape {want:?}, got {:?}", t.shape());
    }
    if !matches!(t.dtype(), DType::I32 | DType::I64) {
        bail!("{op}: target must be int32 or int64, got {}", t.dtype());
    }
    let target = crate::ops::util::read_i64s(t)?;
    let weight = match w {
        Some(w) => {
            if w.shape() != [c] {
                bail!("{op}: weight must have shape [{c}], got {:?}", w.shape());
            }
            Some(float_data(w, "weight")?.into_owned())
        }
        None => None,
    };
    Ok(Staged {
        n,
        c,
        d: xs[2..].iter().product(),
        target,
        weight,
    })
}

fn out_tensor(ctx: &mut EvalCtx, dt: DType, shape: &[usize], v: &[f32]) -> Result<Tensor> {
    let mut t = ctx.alloc(dt, shape)?;
    store_f32(v, &mut t)?;
    Ok(t)
}

impl Op for NllLoss {
    fn name(&self) -> &'static str {
        "NegativeLogLikelihoodLoss"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![loss_fact(self.name(), self.reduction, inputs)?])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = self.name();
        let x = input(inputs, 0, op)?;
        let t = input(inputs, 1, op)?;
        let Staged {
            n,
            c,
            d,
            target,
            weight,
        } = stage(op, x, t, inputs.get(2).and_then(|w| w.as_ref()))?;
        let xv = float_data(x, "input")?;
        let (loss, wsum) = nll(
            op,
            &xv,
            n,
            c,
            d,
            &target,
            weight.as_deref(),
            self.ignore_index,
        )?;
        let out = reduce(loss, wsum, self.reduction);
        let shape: &[usize] = if self.reduction == Reduction::None {
            t.shape()
        } else {
            &[]
        };
        Ok(vec![out_tensor(ctx, x.dtype(), shape, &out)?])
    }
    crate::op_as_any!();
}

impl Op for SoftmaxCrossEntropyLoss {
    fn name(&self) -> &'static str {
        "SoftmaxCrossEntropyLoss"
    }

    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        let mut out = vec![loss_fact(self.name(), self.reduction, inputs)?];
        if n_outputs > 1 {
            let x = inputs[0];
            out.push(Fact {
                dtype: x.dtype,
                shape: x.shape.clone(),
                konst: None,
                is_sequence: false,
            });
        }
        Ok(out)
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = self.name();
        let x = input(inputs, 0, op)?;
        let t = input(inputs, 1, op)?;
        let Staged {
            n,
            c,
            d,
            target,
            weight,
        } = stage(op, x, t, inputs.get(2).and_then(|w| w.as_ref()))?;
        let mut lp = float_data(x, "scores")?.into_owned();
        // log_softmax over C (stride d).
        for i in 0..n {
            for j in 0..d {
                let idx = |k: usize| (i * c + k) * d + j;
                let m = (0..c).map(|k| lp[idx(k)]).fold(f32::NEG_INFINITY, f32::max);
                let s: f32 = (0..c).map(|k| (lp[idx(k)] - m).exp()).sum();
                let ls = s.ln();
                for k in 0..c {
                    lp[idx(k)] = lp[idx(k)] - m - ls;
                }
            }
        }
        let (loss, wsum) = nll(
            op,
            &lp,
            n,
            c,
            d,
            &target,
            weight.as_deref(),
            self.ignore_index,
        )?;
        let out = reduce(loss, wsum, self.reduction);
        let shape: &[usize] = if self.reduction == Reduction::None {
            t.shape()
        } else {
            &[]
        };
        let loss_t = out_tensor(ctx, x.dtype(), shape, &out)?;
        let lp_t = out_tensor(ctx, x.dtype(), x.shape(), &lp)?;
        Ok(vec![loss_t, lp_t])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, run, t};

    #[test]
    fn nll_reductions_weights_and_ignore() {
        // N=2, C=3
        let x = t(&[2, 3], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
        let tg = Tensor::from_slice(&[2], &[2i64, 0]).unwrap();
        let w = t(&[3], &[1.0, 2.0, 3.0]);
        let op = NllLoss {
            reduction: Reduction::None,
            ignore_index: None,
        };
        let y = run(&op, &[Some(&x), Some(&tg)]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[3.0, 4.0], 1e-6);
        let op = NllLoss {
            reduction: Reduction::Mean,
            ignore_index: None,
        };
        let y = run(&op, &[Some(&x), Some(&tg), Some(&w)]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[(9.0 + 4.0) / 4.0], 1e-6);
        let op = NllLoss {
            reduction: Reduction::Mean,
            ignore_index: Some(0),
        };
        let y = run(&op, &[Some(&x), Some(&tg)]).unwrap();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[3.0], 1e-6);
        let op = NllLoss {
            reduction: Reduction::Sum,
            ignore_index: None,
        };
        let bad = Tensor::from_slice(&[2], &[3i64, 0]).unwrap();
        assert!(run(&op, &[Some(&x), Some(&bad)]).is_err());
    }

    #[test]
    fn sce_matches_log_softmax() {
        let x = t(&[1, 2, 2], &[1.0, 0.0, 2.0, 0.0]);
        let tg = Tensor::from_slice(&[1, 2], &[1i64, 0]).unwrap();
        let op = SoftmaxCrossEntropyLoss {
            reduction: Reduction::Sum,
            ignore_index: None,
        };
        let y = run(&op, &[Some(&x), Some(&tg)]).unwrap();
        // position 0: scores (1, 2), target 1: -log(e^2/(e+e^2)); position 1: (0, 0) target 0: log 2
        let l0 = -(2f32.exp() / (1f32.exp() + 2f32.exp())).ln();
        assert_close(y[0].as_slice::<f32>().unwrap(), &[l0 + 2f32.ln()], 1e-6);
        assert_eq!(y[1].shape(), &[1, 2, 2]);
    }
}
