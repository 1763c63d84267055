//! Sequence ops (opset 11+): `SequenceEmpty`, `SequenceConstruct`,
//! `SequenceAt`, `SequenceInsert`, `SequenceErase`, `SequenceLength`.
//! A sequence is a list of tensors of one dtype (shapes may differ).
//! Positions may be negative (counted from the back); out-of-range positions
//! are errors naming the position and the length.

use uniml_data::{bail, ensure, DType, Error, Result, SymbolicShape, Tensor, TensorView};

use super::common::{copy_view, merge_facts, scalar_i64, sequence_of, tensor_of};
use crate::op::{EvalCtx, Fact, Op, Value, ValueRef};

fn seq_fact(dtype: Option<DType>, shape: Option<SymbolicShape>) -> Fact {
    Fact {
        dtype,
        shape,
        konst: None,
        is_sequence: true,
    }
}

fn needs_values(op: &str) -> Result<Vec<Tensor>> {
    Err(Error::Other(format!(
        "{op} needs eval_values (it works on sequences)"
    )))
}

/// Resolves a possibly negative `position` against a sequence of `len`
/// elements; `allow_end` admits `len` itself (insertion at the back).
fn resolve_position(pos: i64, len: usize, allow_end: bool, op: &str) -> Result<usize> {
    let n = len as i64;
    let p = if pos < 0 { pos + n } else { pos };
    let hi = if allow_end { n } else { n - 1 };
    ensure!(
        p >= 0 && p <= hi,
        "{op}: position {pos} is out of range for a sequence of length {len} (allowed {}..={})",
        -n,
        hi
    );
    Ok(p as usize)
}

/// Reads the optional `position` input `i`.
fn position(inputs: &[Option<ValueRef>], i: usize, op: &str) -> Result<Option<i64>> {
    match inputs.get(i) {
        Some(Some(ValueRef::None)) | Some(None) | None => Ok(None),
        Some(Some(v)) => Ok(Some(scalar_i64(
            &tensor_of(v, "position")?,
            &format!("{op} position"),
        )?)),
    }
}

/// `SequenceEmpty`: an empty sequence of `dtype` (default float).
#[derive(Debug, Clone)]
pub struct SequenceEmpty {
    pub dtype: DType,
}

impl Op for SequenceEmpty {
    fn name(&self) -> &'static str {
        "SequenceEmpty"
    }
    fn output_facts(&self, _inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![seq_fact(Some(self.dtype), None)])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        needs_values(self.name())
    }
    fn eval_values(&self, _ctx: &mut EvalCtx, _inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        Ok(vec![Value::Sequence(Vec::new())])
    }
    crate::op_as_any!();
}

/// `SequenceConstruct`: a sequence of its (one or more) tensor inputs, which share a dtype.
#[derive(Debug, Clone, Default)]
pub struct SequenceConstruct;

impl Op for SequenceConstruct {
    fn name(&self) -> &'static str {
        "SequenceConstruct"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(first) = inputs.first() else {
            return Ok(vec![seq_fact(None, None)]);
        };
        let mut f = Fact {
            is_sequence: false,
            konst: None,
            ..(*first).clone()
        };
        for x in &inputs[1..] {
            if let (Some(a), Some(b)) = (f.dtype, x.dtype) {
                ensure!(
                    a == b,
                    "SequenceConstruct inputs must share a dtype, got {a} and {b}"
                );
            }
            f = merge_facts(&f, x);
        }
        Ok(vec![seq_fact(f.dtype.or(first.dtype), f.shape)])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        needs_values(self.name())
    }
    fn eval_values(&self, _ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        ensure!(
            !inputs.is_empty(),
            "SequenceConstruct needs at least one input"
        );
        let mut out = Vec::with_capacity(inputs.len());
        for (i, v) in inputs.iter().enumerate() {
            let t = match v {
                Some(v) => tensor_of(v, &format!("SequenceConstruct input {i}"))?,
                None => bail!("SequenceConstruct input {i} is missing"),
            };
            if let Some(first) = out.first().map(Tensor::dtype) {
                ensure!(
                    t.dtype() == first,
                    "SequenceConstruct input {i} has dtype {}, input 0 has {first}",
                    t.dtype()
                );
            }
            out.push(t.to_owned());
        }
        Ok(vec![Value::Sequence(out)])
    }
    crate::op_as_any!();
}

/// `SequenceAt`: the element at `position` (negative counts from the back).
#[derive(Debug, Clone, Default)]
pub struct SequenceAt;

impl Op for SequenceAt {
    fn name(&self) -> &'static str {
        "SequenceAt"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let f = inputs.first().map(|f| Fact {
            dtype: f.dtype,
            shape: f.shape.clone(),
            ..Fact::default()
        });
        Ok(vec![f.unwrap_or_default()])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        needs_values(self.name())
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let seq = sequence_of(inputs.first(), "SequenceAt input_sequence")?;
        let Some(pos) = position(inputs, 1, "SequenceAt")? else {
            bail!("SequenceAt: position is missing")
        };
        let i = resolve_position(pos, seq.len(), false, "SequenceAt")?;
        Ok(vec![Value::Tensor(copy_view(ctx, &seq[i].view())?)])
    }
    crate::op_as_any!();
}

/// `SequenceInsert`: the sequence with `tensor` inserted at `position` (default: at the back).
#[derive(Debug, Clone, Default)]
pub struct SequenceInsert;

impl Op for SequenceInsert {
    fn name(&self) -> &'static str {
        "SequenceInsert"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let (Some(s), Some(t)) = (inputs.first(), inputs.get(1)) else {
            return Ok(vec![seq_fact(None, None)]);
        };
        let dtype = s.dtype.or(t.dtype);
        if let (Some(a), Some(b)) = (s.dtype, t.dtype) {
            ensure!(
                a == b,
                "SequenceInsert: the tensor's dtype {b} differs from the sequence's {a}"
            );
        }
        let shape = merge_facts(s, t).shape;
        Ok(vec![seq_fact(dtype, shape)])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        needs_values(self.name())
    }
    fn eval_values(&self, _ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let seq = sequence_of(inputs.first(), "SequenceInsert input_sequence")?;
        let t = match inputs.get(1) {
            Some(Some(v)) => tensor_of(v, "SequenceInsert tensor")?,
            _ => bail!("SequenceInsert: the tensor to insert is missing"),
        };
        if let Some(first) = seq.first() {
            ensure!(
                first.dtype() == t.dtype(),
                "SequenceInsert: the tensor's dtype {} differs from the sequence's {}",
                t.dtype(),
                first.dtype()
            );
        }
        let at = match position(inputs, 2, "SequenceInsert")? {
            Some(p) => resolve_position(p, seq.len(), true, "SequenceInsert")?,
            None => seq.len(),
        };
        let mut out = Vec::with_capacity(seq.len() + 1);
        out.extend_from_slice(&seq[..at]);
        out.push(t.to_owned());
        out.extend_from_slice(&seq[at..]);
        Ok(vec![Value::Sequence(out)])
    }
    crate::op_as_any!();
}

/// `SequenceErase`: the sequence without the element at `position` (default: the last).
#[derive(Debug, Clone, Default)]
pub struct SequenceErase;

impl Op for SequenceErase {
    fn name(&self) -> &'static str {
        "SequenceErase"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let f = inputs.first().map(|f| seq_fact(f.dtype, f.shape.clone()));
        Ok(vec![f.unwrap_or_else(|| seq_fact(None, None))])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        needs_values(self.name())
    }
    fn eval_values(&self, _ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let seq = sequence_of(inputs.first(), "SequenceErase input_sequence")?;
        ensure!(
            !seq.is_empty(),
            "SequenceErase: cannot erase from an empty sequence"
        );
        let at = match position(inputs, 1, "SequenceErase")? {
            Some(p) => resolve_position(p, seq.len(), false, "SequenceErase")?,
            None => seq.len() - 1,
        };
        let out = seq
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(_, t)| t.clone())
            .collect();
        Ok(vec![Value::Sequence(out)])
    }
    crate::op_as_any!();
}

/// `SequenceLength`: the number of elements, as an int64 scalar.
#[derive(Debug, Clone, Default)]
pub struct SequenceLength;

impl Op for SequenceLength {
    fn name(&self) -> &'static str {
        "SequenceLength"
    }
    fn output_facts(&self, _inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        Ok(vec![Fact::new(DType::I64, SymbolicShape::known(&[]))])
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        needs_values(self.name())
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let seq = sequence_of(inputs.first(), "SequenceLength input_sequence")?;
        let mut out = ctx.alloc(DType::I64, &[])?;
        out.as_slice_mut::<i64>()?[0] = seq.len() as i64;
        Ok(vec![Value::Tensor(out)])
    }
    crate::op_as_any!();
}
