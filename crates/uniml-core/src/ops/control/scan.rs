//! `Scan`: a body run once per slice of its scan inputs, threading state
//! variables through the iterations and stacking per-iteration scan outputs.
//!
//! - Opset 9+: inputs are the initial states then the scan inputs; each scan
//!   input is sliced along `scan_input_axes[i]` (forward or reverse per
//!   `scan_input_directions`), each scan output is stacked along
//!   `scan_output_axes[j]` (in reverse order per `scan_output_directions`).
//! - Opset 8 (`batched`): input 0 is the optional `sequence_lens`, every input
//!   has a leading batch axis and scan inputs are sliced along axis 1; batch
//!   entries run independently, each for its own sequence length, and scan
//!   outputs are zero-padded to the full length.

use uniml_data::{bail, ensure, DType, Dim, Error, Result, SymbolicShape, Tensor, TensorView};

use super::common::{
    body_is_pure, body_output_facts, captured, concat, empty_stack, refs, release_value,
    slice_axis, tensor_of,
};
use crate::graph::Subgraph;
use crate::op::{EvalCtx, Fact, Op, Value, ValueRef};
use crate::ops::util::{norm_axis, read_i64s};

#[derive(Debug)]
pub struct Scan {
    pub body: Subgraph,
    /// Formal inputs of the node (including opset 8's `sequence_lens`); captured values follow.
    pub n_formal: usize,
    pub num_scan_inputs: usize,
    /// Opset 8 form: `sequence_lens` first, a leading batch axis on every input.
    pub batched: bool,
    /// Scan axis of each scan input (opset 9+; opset 8 scans axis 1 of the batched input).
    pub input_axes: Vec<i64>,
    /// Whether each scan input is read back to front.
    pub input_reverse: Vec<bool>,
    /// Stacking axis of each scan output (missing entries mean 0).
    pub output_axes: Vec<i64>,
    /// Whether each scan output is stacked back to front (missing entries mean forward).
    pub output_reverse: Vec<bool>,
}

/// What one run over the scan axis leaves: final states and per-iteration scan outputs.
struct Pass {
    states: Vec<Value>,
    scans: Vec<Vec<Tensor>>,
}

impl Scan {
    fn first_state(&self) -> usize {
        usize::from(self.batched)
    }
    fn n_states(&self) -> usize {
        self.n_formal
            .saturating_sub(self.first_state() + self.num_scan_inputs)
    }
    fn n_scan_outputs(&self) -> usize {
        self.body
            .graph
            .outputs
            .len()
            .saturating_sub(self.n_states())
    }

    /// Runs the body `len` times; scan input `j` is sliced along `axes[j]`.
    fn run_pass(
        &self,
        ctx: &mut EvalCtx,
        states: Vec<ValueRef>,
        scans: &[TensorView],
        axes: &[usize],
        len: usize,
        caps: &[ValueRef],
    ) -> Result<Pass> {
        let n = states.len();
        let k = self.n_scan_outputs();
        let mut carried: Option<Vec<Value>> = None;
        let mut outs_acc: Vec<Vec<Tensor>> = (0..k).map(|_| Vec::with_capacity(len)).collect();
        for t in 0..len {
            let mut slices = Vec::with_capacity(scans.len());
            for (j, (x, &axis)) in scans.iter().zip(axes).enumerate() {
                let idx = if self.input_reverse.get(j).copied().unwrap_or(false) {
                    len - 1 - t
                } else {
                    t
                };
                slices.push(slice_axis(ctx, x, axis, idx, 1, false)?);
            }
            let mut args = Vec::with_capacity(n + slices.len() + caps.len());
            match &carried {
                Some(v) => args.extend(refs(v)),
                None => args.extend(states.iter().cloned()),
            }
            args.extend(slices.iter().map(|s| ValueRef::Tensor(s.view())));
            args.extend(caps.iter().cloned());
            let outs = ctx.run_subgraph(&self.body, args)?;
            slices.into_iter().for_each(|s| ctx.release(s));
            if outs.len() < n + k {
                bail!(
                    "the Scan body produced {} outputs, expected {}",
                    outs.len(),
                    n + k
                );
            }
            let mut outs = outs.into_iter();
            let new: Vec<Value> = outs.by_ref().take(n).collect();
            if let Some(old) = carried.replace(new) {
                old.into_iter().for_each(|v| release_value(ctx, v));
            }
            for (j, v) in outs.take(k).enumerate() {
                match v {
                    Value::Tensor(t) => outs_acc[j].push(t),
                    _ => bail!("Scan output {j} of the body must be a tensor"),
                }
            }
        }
        let states = match carried {
            Some(v) => v,
            None => states.iter().map(|v| v.to_owned()).collect(),
        };
        Ok(Pass {
            states,
            scans: outs_acc,
        })
    }

    /// Stacks the per-iteration values of scan output `j` along `axis`.
    fn stack(
        &self,
        ctx: &mut EvalCtx,
        j: usize,
        mut parts: Vec<Tensor>,
        axis: i64,
        elem: &Fact,
    ) -> Result<Tensor> {
        if parts.is_empty() {
            return empty_stack(ctx, elem, axis);
        }
        if self.output_reverse.get(j).copied().unwrap_or(false) {
            parts.reverse();
        }
        let views: Vec<TensorView> = parts.iter().map(|t| t.view()).collect();
        let out = concat(ctx, &views, axis, true)
            .map_err(|e| Error::Other(format!("Scan output {j}: {e}")))?;
        parts.into_iter().for_each(|p| ctx.release(p));
        Ok(out)
    }

    fn eval_unbatched(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let n = self.n_states();
        let caps = captured(&self.body, inputs, self.n_formal)?;
        let states: Vec<ValueRef> = (0..n)
            .map(|i| inputs.get(i).cloned().flatten().unwrap_or(ValueRef::None))
            .collect();
        let mut scans = Vec::with_capacity(self.num_scan_inputs);
        let mut axes = Vec::with_capacity(self.num_scan_inputs);
        let mut len = None;
        for j in 0..self.num_scan_inputs {
            let x = match inputs.get(n + j) {
                Some(Some(v)) => tensor_of(v, "Scan input")?,
                _ => bail!("Scan: scan input {j} (node input {}) is missing", n + j),
            };
            let axis = norm_axis(
                self.input_axes.get(j).copied().unwrap_or(0),
                x.shape().len(),
            )?;
            ensure!(
                !x.shape().is_empty(),
                "Scan input {j} must have rank >= 1, got a scalar"
            );
            let l = x.shape()[axis];
            match len {
                None => len = Some(l),
                Some(l0) => ensure!(
                    l0 == l,
                    "Scan input {j} has length {l} along axis {axis}, scan input 0 has {l0}"
                ),
            }
            scans.push(x);
            axes.push(axis);
        }
        let pass = self.run_pass(ctx, states, &scans, &axes, len.unwrap_or(0), &caps)?;
        let facts = body_output_facts(&self.body);
        let mut results = pass.states;
        for (j, parts) in pass.scans.into_iter().enumerate() {
            let axis = self.output_axes.get(j).copied().unwrap_or(0);
            let elem = facts.get(n + j).cloned().unwrap_or_default();
            results.push(Value::Tensor(self.stack(ctx, j, parts, axis, &elem)?));
        }
        Ok(results)
    }

    fn eval_batched(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let n = self.n_states();
        let caps = captured(&self.body, inputs, self.n_formal)?;
        let mut all = Vec::with_capacity(n + self.num_scan_inputs);
        for i in 0..n + self.num_scan_inputs {
            let x = match inputs.get(1 + i) {
                Some(Some(v)) => tensor_of(v, "Scan input")?,
                _ => bail!("Scan: input {} is missing", 1 + i),
            };
            ensure!(
                !x.shape().is_empty(),
                "Scan (opset 8) input {} must have a batch axis, got a scalar",
                1 + i
            );
            all.push(x);
        }
        let (batch, max_len) = match all.get(n) {
            Some(x) => {
                ensure!(
                    x.shape().len() >= 2,
                    "Scan (opset 8) scan inputs need [batch, sequence, ...], got {:?}",
                    x.shape()
                );
                (x.shape()[0], x.shape()[1])
            }
            None => bail!("Scan needs at least one scan input"),
        };
        for (i, x) in all.iter().enumerate() {
            ensure!(
                x.shape()[0] == batch,
                "Scan input {} has batch size {}, expected {batch}",
                1 + i,
                x.shape()[0]
            );
            if i >= n {
                ensure!(
                    x.shape().len() >= 2 && x.shape()[1] == max_len,
                    "Scan input {} has shape {:?}, expected [{batch}, {max_len}, ...]",
                    1 + i,
                    x.shape()
                );
            }
        }
        let lens: Vec<usize> = match inputs.first() {
            Some(Some(ValueRef::Tensor(t))) => {
                let v = read_i64s(t)?;
                ensure!(
                    v.len() == batch,
                    "sequence_lens has {} entries, batch size is {batch}",
                    v.len()
                );
                v.iter()
                    .map(|&l| {
                        ensure!(
                            l >= 0 && l as u64 <= max_len as u64,
                            "sequence length {l} is outside 0..={max_len}"
                        );
                        Ok(l as usize)
                    })
                    .collect::<Result<_>>()?
            }
            _ => vec![max_len; batch],
        };
        let facts = body_output_facts(&self.body);
        let k = self.n_scan_outputs();
        let mut state_parts: Vec<Vec<Tensor>> = (0..n).map(|_| Vec::with_capacity(batch)).collect();
        let mut scan_parts: Vec<Vec<Tensor>> = (0..k).map(|_| Vec::with_capacity(batch)).collect();
        for (b, &len) in lens.iter().enumerate() {
            let mut sliced = Vec::with_capacity(all.len());
            for x in &all {
                sliced.push(slice_axis(ctx, x, 0, b, 1, false)?);
            }
            let states: Vec<ValueRef> = sliced[..n]
                .iter()
                .map(|t| ValueRef::Tensor(t.view()))
                .collect();
            let scans: Vec<TensorView> = sliced[n..].iter().map(|t| t.view()).collect();
            let axes = vec![0; scans.len()];
            let pass = self.run_pass(ctx, states, &scans, &axes, len, &caps)?;
            sliced.into_iter().for_each(|t| ctx.release(t));
            for (i, v) in pass.states.into_iter().enumerate() {
                state_parts[i].push(v.into_tensor()?);
            }
            for (j, parts) in pass.scans.into_iter().enumerate() {
                let elem = facts.get(n + j).cloned().unwrap_or_default();
                let t = self.stack(ctx, j, parts, 0, &elem)?;
                scan_parts[j].push(pad_leading(ctx, t, max_len)?);
            }
        }
        let mut results = Vec::with_capacity(n + k);
        for (i, parts) in state_parts.into_iter().chain(scan_parts).enumerate() {
            let views: Vec<TensorView> = parts.iter().map(|t| t.view()).collect();
            let t = concat(ctx, &views, 0, true)
                .map_err(|e| Error::Other(format!("Scan output {i}: {e}")))?;
            parts.into_iter().for_each(|p| ctx.release(p));
            results.push(Value::Tensor(t));
        }
        Ok(results)
    }
}

/// Zero-pads `t` along its leading axis to `len` entries.
fn pad_leading(ctx: &mut EvalCtx, t: Tensor, len: usize) -> Result<Tensor> {
    let Some(&have) = t.shape().first() else {
        bail!("internal: padding a scalar")
    };
    if have == len {
        return Ok(t);
    }
    ensure!(
        have < len,
        "internal: scan output has {have} entries, more than {len}"
    );
    let mut shape = t.shape().to_vec();
    shape[0] = len;
    let mut out = ctx.alloc(t.dtype(), &shape)?;
    if t.dtype() == DType::String {
        let src = t.as_strings()?;
        let dst = out.as_strings_mut()?;
        if let Some(d) = dst.get_mut(..src.len()) {
            d.clone_from_slice(src);
        }
    } else {
        let src = t.as_bytes();
        if let Some(d) = out.as_bytes_mut().get_mut(..src.len()) {
            d.copy_from_slice(src);
        }
    }
    ctx.release(t);
    Ok(out)
}

impl Op for Scan {
    fn name(&self) -> &'static str {
        "Scan"
    }
    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        let n = self.n_states();
        let first = self.first_state();
        let body = body_output_facts(&self.body);
        let scan0 = inputs.get(first + n).and_then(|f| f.shape.as_ref());
        let (batch_dim, len_dim) = if self.batched {
            (
                scan0.and_then(|s| s.0.first().cloned()),
                scan0.and_then(|s| s.0.get(1).cloned()),
            )
        } else {
            let len = scan0.and_then(|s| {
                let a = norm_axis(self.input_axes.first().copied().unwrap_or(0), s.rank()).ok()?;
                s.0.get(a).cloned()
            });
            (None, len)
        };
        let mut out = Vec::with_capacity(n_outputs);
        for i in 0..n_outputs {
            let b = body.get(i).cloned().unwrap_or_default();
            let f = if i < n {
                match inputs.get(first + i) {
                    Some(init) if init.shape.is_some() => Fact {
                        konst: None,
                        ..(*init).clone()
                    },
                    _ => Fact {
                        dtype: b.dtype,
                        shape: if self.batched { None } else { b.shape },
                        konst: None,
                        is_sequence: false,
                    },
                }
            } else {
                let shape = b.shape.and_then(|s| {
                    let mut d = s.0;
                    if self.batched {
                        d.insert(0, len_dim.clone().unwrap_or(Dim::Unknown));
                        d.insert(0, batch_dim.clone().unwrap_or(Dim::Unknown));
                    } else {
                        let a = norm_axis(
                            self.output_axes.get(i - n).copied().unwrap_or(0),
                            d.len() + 1,
                        )
                        .ok()?;
                        d.insert(a, len_dim.clone().unwrap_or(Dim::Unknown));
                    }
                    Some(SymbolicShape(d))
                });
                Fact {
                    dtype: b.dtype,
                    shape,
                    konst: None,
                    is_sequence: false,
                }
            };
            out.push(f);
        }
        Ok(out)
    }
    fn eval(&self, _ctx: &mut EvalCtx, _inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        Err(Error::Other("Scan needs eval_values".into()))
    }
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        if self.batched {
            self.eval_batched(ctx, inputs)
        } else {
            self.eval_unbatched(ctx, inputs)
        }
    }
    fn is_pure(&self) -> bool {
        body_is_pure(&self.body)
    }
    crate::op_as_any!();
}
