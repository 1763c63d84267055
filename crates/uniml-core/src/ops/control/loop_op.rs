//! `Loop` (opset 1–25): a body run while `cond` holds and fewer than `M`
//! iterations have run (each bound optional). Body inputs: iteration number
//! (int64 scalar), condition, loop-carried values; body outputs: condition,
//! loop-carried values, then scan outputs, stacked along a new axis 0.
//! Loop-carried values may be tensors, sequences or optionals.

use uniml_data::{bail, Dim, Error, Result, SymbolicShape, Tensor, TensorView};

use super::common::{
    body_is_pure, body_output_facts, captured, concat, empty_stack, merge_facts, refs,
    release_value, scalar_bool, scalar_i64, tensor_of,
};
use crate::graph::Subgraph;
use crate::op::{EvalCtx, Fact, Op, Value, ValueRef};

#[derive(Debug)]
pub struct Loop {
    pub body: Subgraph,
    /// Formal inputs of the node: `M`, `cond`, then the initial loop-carried
    /// values; captured values follow.
    pub n_formal: usize,
}

impl Loop {
    /// Number of loop-carried values.
    pub fn n_carried(&self) -> usize {
        self.n_formal.saturating_sub(2)
    }
    /// Number of scan outputs of the body.
    pub fn n_scan(&self) -> usize {
        self.body
            .graph
            .outputs
            .len()
            .saturating_sub(1 + self.n_carried())
    }
}

impl Op for Loop {
    fn name(&self) -> &'static str {
        "Loop"
    }
    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        let n = self.n_carried();
        let body = body_output_facts(&self.body);
        let mut out = Vec::with_capacity(n_outputs);
        for i in 0..n_outputs {
            let f = if i < n {
                // The final value is either the initial one (zero iterations) or a body output.
                match (inputs.get(2 + i), body.get(1 + i)) {
                    (Some(init), Some(b)) => merge_facts(init, b),
                    _ => Fact::unknown(),
                }
            } else {
                match body.get(1 + i) {
                    Some(b) => Fact {
                        dtype: b.dtype,
                        shape: b.shape.as_ref().map(|s| {
                            let mut d = vec![Dim::Unknown];
                            d.extend(s.0.iter().cloned());
                            SymbolicShape(d)
                        }),
                        konst: None,
                        is_sequence: false,
                    },
                    None => Fact::unknown(),
                }
            };
            out.push(f);
        }
        Ok(out)
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("Loop needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let n = self.n_carried();
        let k = self.n_scan();
        let max_trips = match inputs.first() {
            Some(Some(ValueRef::None)) | Some(None) | None => None,
            Some(Some(v)) => Some(scalar_i64(&tensor_of(v, "Loop M")?, "Loop M")?),
        };
        let mut cond = match inputs.get(1) {
            Some(Some(ValueRef::None)) | Some(None) | None => true,
            Some(Some(v)) => scalar_bool(&tensor_of(v, "Loop cond")?, "Loop cond")?,
        };
        let caps = captured(&self.body, inputs, self.n_formal)?;
        let initial: Vec<ValueRef> = (0..n)
            .map(|i| {
                inputs
                    .get(2 + i)
                    .cloned()
                    .flatten()
                    .unwrap_or(ValueRef::None)
            })
            .collect();
        // Loop-carried values after the latest iteration (None before the first).
        let mut carried: Option<Vec<Value>> = None;
        let mut scans: Vec<Vec<Tensor>> = (0..k).map(|_| Vec::new()).collect();
        let mut it: i64 = 0;
        // A negative M runs no iteration (as onnxruntime does).
        while cond && max_trips.is_none_or(|m| it < m) {
            let mut args = Vec::with_capacity(2 + n + caps.len());
            let iter_t = Tensor::scalar(it);
            let cond_t = Tensor::from_bools(&[], &[cond])?;
            args.push(ValueRef::Tensor(iter_t.view()));
            args.push(ValueRef::Tensor(cond_t.view()));
            match &carried {
                Some(vals) => args.extend(refs(vals)),
                None => args.extend(initial.iter().cloned()),
            }
            args.extend(caps.iter().cloned());
            let outs = ctx.run_subgraph(&self.body, args)?;
            if outs.len() < 1 + n + k {
                bail!(
                    "the Loop body produced {} outputs, expected {}",
                    outs.len(),
                    1 + n + k
                );
            }
            let mut outs = outs.into_iter();
            let c = outs.next().unwrap_or(Value::None);
            cond = match &c {
                Value::Tensor(t) => scalar_bool(&t.view(), "the Loop body's condition output")?,
                _ => bail!("the Loop body's condition output must be a bool tensor"),
            };
            release_value(ctx, c);
            let new: Vec<Value> = outs.by_ref().take(n).collect();
            if let Some(old) = carried.replace(new) {
                for v in old {
                    release_value(ctx, v);
                }
            }
            for (j, v) in outs.take(k).enumerate() {
                match v {
                    Value::Tensor(t) => scans[j].push(t),
                    _ => bail!("Loop scan output {j} must be a tensor"),
                }
            }
            it = it
                .checked_add(1)
                .ok_or_else(|| Error::Other("Loop iteration count overflows int64".into()))?;
        }
        let mut results: Vec<Value> = match carried {
            Some(vals) => vals,
            None => initial.iter().map(|v| v.to_owned()).collect(),
        };
        let facts = body_output_facts(&self.body);
        for (j, parts) in scans.into_iter().enumerate() {
            let t = if parts.is_empty() {
                empty_stack(ctx, facts.get(1 + n + j).unwrap_or(&Fact::unknown()), 0)?
            } else {
                let views: Vec<TensorView> = parts.iter().map(|t| t.view()).collect();
                let t = concat(ctx, &views, 0, true)
                    .map_err(|e| Error::Other(format!("Loop scan output {j}: {e}")))?;
                parts.into_iter().for_each(|p| ctx.release(p));
                t
            };
            results.push(Value::Tensor(t));
        }
        Ok(results)
    }
    fn is_pure(&self) -> bool {
        body_is_pure(&self.body)
    }
    crate::op_as_any!();
}
