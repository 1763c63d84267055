//! Optionals (opset 15+): `Optional`, `OptionalHasElement`,
//! `OptionalGetElement`. At run time an optional holding a value *is* that
//! value (a tensor or a sequence); an empty optional is [`Value::None`].

use uniml_data::{bail, DType, Error, Result, SymbolicShape, Tensor, TensorView};

use super::common::copy_view;
use crate::op::{EvalCtx, Fact, Op, Value, ValueRef};

/// `Optional`: wraps its input, or is empty without one.
#[derive(Debug, Clone, Default)]
pub struct OptionalOp;

impl Op for OptionalOp {
    fn name(&self) -> &'static str {
        "Optional"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![inputs
            .first()
            .map(|f| Fact {
                konst: None,
                ..(*f).clone()
            })
            .unwrap_or_default()])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("Optional needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        Ok(vec![match inputs.first() {
            Some(Some(ValueRef::Tensor(t))) => Value::Tensor(copy_view(ctx, t)?),
            Some(Some(v)) => v.to_owned(),
            Some(None) | None => Value::None,
        }])
    }
    crate::op_as_any!();
}

/// `OptionalHasElement`: whether the input holds a value (false when the
/// input is absent or an empty optional; true for any tensor or sequence).
#[derive(Debug, Clone, Default)]
pub struct OptionalHasElement;

impl Op for OptionalHasElement {
    fn name(&self) -> &'static str {
        "OptionalHasElement"
    }
    fn output_facts(&self, _inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![Fact::new(DType::Bool, SymbolicShape::known(&[]))])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("OptionalHasElement needs eval_values".into()))
    }
    fn eval_values(&self, _ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let has = matches!(
            inputs.first(),
            Some(Some(ValueRef::Tensor(_) | ValueRef::Sequence(_)))
        );
        Ok(vec![Value::Tensor(Tensor::from_bools(&[], &[has])?)])
    }
    crate::op_as_any!();
}

/// `OptionalGetElement`: the value an optional holds (an error when empty);
/// a plain tensor or sequence passes through (opset 18).
#[derive(Debug, Clone, Default)]
pub struct OptionalGetElement;

impl Op for OptionalGetElement {
    fn name(&self) -> &'static str {
        "OptionalGetElement"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![inputs
            .first()
            .map(|f| Fact {
                konst: None,
                ..(*f).clone()
            })
            .unwrap_or_default()])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("OptionalGetElement needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        Ok(vec![match inputs.first() {
            Some(Some(ValueRef::Tensor(t))) => Value::Tensor(copy_view(ctx, t)?),
            Some(Some(ValueRef::Sequence(s))) => Value::Sequence(s.to_vec()),
            Some(Some(ValueRef::None)) | Some(None) | None => {
                bail!("OptionalGetElement: the optional is empty")
            }
        }])
    }
    crate::op_as_any!();
}
