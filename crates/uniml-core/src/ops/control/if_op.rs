//! `If` (opset 1–25): runs `then_branch` or `else_branch` on the single
//! element of `cond`. The branches may produce outputs of different shapes
//! (and sequences or optionals).

use uniml_data::{bail, Error, Result, Tensor, TensorView};

use super::common::{
    body_is_pure, body_output_facts, captured, merge_facts, scalar_bool, tensor_of,
};
use crate::graph::Subgraph;
use crate::op::{EvalCtx, Fact, Op, Value, ValueRef};

#[derive(Debug)]
pub struct If {
    pub then_branch: Subgraph,
    pub else_branch: Subgraph,
    /// Formal inputs of the node (1: `cond`); captured values follow.
    pub n_formal: usize,
}

impl Op for If {
    fn name(&self) -> &'static str {
        "If"
    }
    fn output_facts(&self, _inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        let t = body_output_facts(&self.then_branch);
        let e = body_output_facts(&self.else_branch);
        Ok((0..n_outputs)
            .map(|i| match (t.get(i), e.get(i)) {
                (Some(a), Some(b)) => merge_facts(a, b),
                _ => Fact::unknown(),
            })
            .collect())
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("If needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let cond = match inputs.first() {
            Some(Some(v)) => tensor_of(v, "If cond")?,
            _ => bail!("If: required input 0 (cond) is missing"),
        };
        let branch = if scalar_bool(&cond, "If cond")? {
            &self.then_branch
        } else {
            &self.else_branch
        };
        let args = captured(branch, inputs, self.n_formal)?;
        ctx.run_subgraph(branch, args)
    }
    fn is_pure(&self) -> bool {
        body_is_pure(&self.then_branch) && body_is_pure(&self.else_branch)
    }
    crate::op_as_any!();
}
