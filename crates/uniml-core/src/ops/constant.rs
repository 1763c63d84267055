//! `Constant`: a node producing a fixed tensor. The importer turns these into
//! graph constants directly; the op exists for graphs built by hand.

use std::sync::Arc;

use uniml_data::{Result, Tensor, TensorView};

use crate::op::{EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct Const(pub Arc<Tensor>);

impl Op for Const {
    fn name(&self) -> &'static str {
        "Constant"
    }
    fn output_facts(&self, _inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![Fact::constant(self.0.clone())])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Ok(vec![(*self.0).clone()])
    }
    crate::op_as_any!();
}
