//! `SplitToSequence` (opset 11+) and `ConcatFromSequence` (opset 11+):
//! between a tensor and a sequence of its parts along one axis. Any dtype.

use uniml_data::{bail, ensure, Dim, Error, Result, SymbolicShape, Tensor, TensorView};

use super::common::{concat, sequence_of, slice_axis, tensor_of};
use crate::op::{EvalCtx, Fact, Op, Value, ValueRef};
use crate::ops::util::{norm_axis, read_i64s};

/// `SplitToSequence`: splits `input` along `axis` into a sequence. Without a
/// `split` input every part has length 1 (and the axis is dropped when
/// `keepdims` is false); a scalar `split` gives parts of that length (the last
/// may be shorter); a 1-D `split` lists the part lengths (summing to the dim).
#[derive(Debug, Clone)]
pub struct SplitToSequence {
    pub axis: i64,
    pub keepdims: bool,
}

impl Op for SplitToSequence {
    fn name(&self) -> &'static str {
        "SplitToSequence"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("SplitToSequence needs an input")
        };
        let shape = match (&x.shape, self.keepdims) {
            (Some(s), true) => {
                let a = norm_axis(self.axis, s.rank())?;
                let mut d = s.0.clone();
                if let Some(x) = d.get_mut(a) {
                    *x = Dim::Unknown;
                }
                Some(SymbolicShape(d))
            }
            _ => None,
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
            konst: None,
            is_sequence: true,
        }])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("SplitToSequence needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let x = match inputs.first() {
            Some(Some(v)) => tensor_of(v, "SplitToSequence input")?,
            _ => bail!("SplitToSequence: required input 0 is missing"),
        };
        ensure!(
            !x.shape().is_empty(),
            "SplitToSequence needs an input of rank >= 1, got a scalar"
        );
        let axis = norm_axis(self.axis, x.shape().len())?;
        let dim = x.shape()[axis];
        let split = match inputs.get(1) {
            Some(Some(ValueRef::None)) | Some(None) | None => None,
            Some(Some(v)) => Some(tensor_of(v, "SplitToSequence split")?),
        };
        let (lens, keep) = match split {
            None => (vec![1usize; dim], self.keepdims),
            Some(s) if s.shape().is_empty() => {
                let v = read_i64s(&s)?.first().copied().unwrap_or(0);
                ensure!(
                    v > 0,
                    "SplitToSequence: a scalar split must be positive, got {v}"
                );
                let v = v as usize;
                let mut lens = vec![v; dim / v];
                if dim % v != 0 {
                    lens.push(dim % v);
                }
                (lens, true)
            }
            Some(s) => {
                ensure!(
                    s.shape().len() == 1,
                    "SplitToSequence: split must be a scalar or 1-D, got shape {:?}",
                    s.shape()
                );
                let v = read_i64s(&s)?;
                ensure!(
                    v.iter().all(|&l| l >= 0),
                    "SplitToSequence: split lengths must be >= 0, got {v:?}"
                );
                let total: i64 = v.iter().sum();
                ensure!(
                    total == dim as i64,
                    "SplitToSequence: split lengths {v:?} sum to {total}, but axis {axis} has length {dim}"
                );
                (v.into_iter().map(|l| l as usize).collect(), true)
            }
        };
        let mut out = Vec::with_capacity(lens.len());
        let mut start = 0;
        for len in lens {
            let part = slice_axis(ctx, &x, axis, start, len, keep)?;
            out.push(part);
            start += len;
        }
        Ok(vec![Value::Sequence(out)])
    }
    crate::op_as_any!();
}

/// `ConcatFromSequence`: concatenates the sequence's tensors along `axis`,
/// or stacks them along a new axis at `axis` when `new_axis`.
#[derive(Debug, Clone)]
pub struct ConcatFromSequence {
    pub axis: i64,
    pub new_axis: bool,
}

impl Op for ConcatFromSequence {
    fn name(&self) -> &'static str {
        "ConcatFromSequence"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(s) = inputs.first() else {
            bail!("ConcatFromSequence needs an input")
        };
        let shape = match &s.shape {
            Some(e) => {
                let rank = e.rank() + usize::from(self.new_axis);
                let a = norm_axis(self.axis, rank)?;
                let mut d = e.0.clone();
                if self.new_axis {
                    d.insert(a, Dim::Unknown);
                } else if let Some(x) = d.get_mut(a) {
                    *x = Dim::Unknown;
                }
                Some(SymbolicShape(d))
            }
            None => None,
        };
        Ok(vec![Fact {
            dtype: s.dtype,
            shape,
            konst: None,
            is_sequence: false,
        }])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("ConcatFromSequence needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let seq = sequence_of(inputs.first(), "ConcatFromSequence input_sequence")?;
        ensure!(!seq.is_empty(), "ConcatFromSequence: the sequence is empty");
        let views: Vec<TensorView> = seq.iter().map(Tensor::view).collect();
        Ok(vec![Value::Tensor(concat(
            ctx,
            &views,
            self.axis,
            self.new_axis,
        )?)])
    }
    crate::op_as_any!();
}
