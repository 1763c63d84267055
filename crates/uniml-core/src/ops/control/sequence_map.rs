//! `SequenceMap` (opset 17+): runs its body once per element of the input
//! sequence. Each additional input is either a sequence of the same length
//! (its i-th element is fed at iteration i) or a tensor fed to every
//! iteration. Each body output becomes a sequence output.

use uniml_data::{bail, ensure, Error, Result, Tensor, TensorView};

use super::common::{body_is_pure, body_output_facts, captured, sequence_of};
use crate::graph::Subgraph;
use crate::op::{EvalCtx, Fact, Op, Value, ValueRef};

#[derive(Debug)]
pub struct SequenceMap {
    pub body: Subgraph,
    /// Formal inputs of the node (the sequence and the additional inputs); captured values follow.
    pub n_formal: usize,
}

impl Op for SequenceMap {
    fn name(&self) -> &'static str {
        "SequenceMap"
    }
    fn output_facts(&self, _inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        let body = body_output_facts(&self.body);
        Ok((0..n_outputs)
            .map(|i| {
                let b = body.get(i).cloned().unwrap_or_default();
                Fact {
                    dtype: b.dtype,
                    shape: b.shape,
                    konst: None,
                    is_sequence: true,
                }
            })
            .collect())
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("SequenceMap needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let seq = sequence_of(inputs.first(), "SequenceMap input_sequence")?;
        let n = seq.len();
        for i in 1..self.n_formal {
            if let Some(Some(ValueRef::Sequence(s))) = inputs.get(i) {
                ensure!(
                    s.len() == n,
                    "SequenceMap: input {i} is a sequence of length {}, input 0 has length {n}",
                    s.len()
                );
            }
        }
        let caps = captured(&self.body, inputs, self.n_formal)?;
        let m = self.body.graph.outputs.len();
        let mut outs: Vec<Vec<Tensor>> = (0..m).map(|_| Vec::with_capacity(n)).collect();
        for (it, elem) in seq.iter().enumerate() {
            let mut args = Vec::with_capacity(self.n_formal + caps.len());
            args.push(ValueRef::Tensor(elem.view()));
            for i in 1..self.n_formal {
                args.push(match inputs.get(i) {
                    Some(Some(ValueRef::Sequence(s))) => match s.get(it) {
                        Some(t) => ValueRef::Tensor(t.view()),
                        None => bail!("SequenceMap: input {i} has no element {it}"),
                    },
                    Some(Some(v)) => v.clone(),
                    Some(None) | None => ValueRef::None,
                });
            }
            args.extend(caps.iter().cloned());
            let res = ctx.run_subgraph(&self.body, args)?;
            ensure!(
                res.len() >= m,
                "the SequenceMap body produced {} outputs, expected {m}",
                res.len()
            );
            for (j, v) in res.into_iter().take(m).enumerate() {
                match v {
                    Value::Tensor(t) => outs[j].push(t),
                    _ => bail!("SequenceMap: body output {j} must be a tensor"),
                }
            }
        }
        Ok(outs.into_iter().map(Value::Sequence).collect())
    }
    fn is_pure(&self) -> bool {
        body_is_pure(&self.body)
    }
    crate::op_as_any!();
}
