//! Runs a [`Plan`] over a [`Graph`] with a recycling buffer pool.

use uniml_data::{Error, Result, TensorView};

use crate::graph::{Graph, ValueId};
use crate::op::{BufferPool, EvalCtx, Value, ValueRef};
use crate::parallel::Parallelism;
use crate::plan::Plan;

/// Memory statistics of the last run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    /// Peak bytes held by the pool (live intermediates plus cached free buffers).
    pub peak_pool_bytes: u64,
    /// Allocations that could not be served from recycled buffers.
    pub fresh_allocations: u64,
}

/// Per-session mutable state reused across runs.
#[derive(Debug, Default)]
pub struct ExecState {
    pub pool: BufferPool,
}

impl ExecState {
    pub fn new(limit_bytes: u64) -> Self {
        ExecState { pool: BufferPool::new(limit_bytes) }
    }
}

enum Slot<'a> {
    Empty,
    Borrowed(ValueRef<'a>),
    Owned(Value),
}

/// Hooks around each executed node (by index into `Graph::nodes`), for
/// profilers and progress reporting at the edges: the core itself has no clock.
pub trait StepObserver: Sync {
    fn before(&self, node: usize);
    fn after(&self, node: usize);
}

/// Executes a graph according to its plan.
pub struct Executor<'g> {
    pub graph: &'g Graph,
    pub plan: &'g Plan,
    observer: Option<&'g dyn StepObserver>,
}

impl<'g> Executor<'g> {
    pub fn new(graph: &'g Graph, plan: &'g Plan) -> Self {
        Executor { graph, plan, observer: None }
    }

    /// Calls `observer` before and after every node of this (top-level) run.
    pub fn with_observer(mut self, observer: &'g dyn StepObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs with `inputs` bound to graph input values; returns the graph outputs in order.
    pub fn run<'a>(
        &self,
        state: &mut ExecState,
        par: &dyn Parallelism,
        inputs: Vec<(ValueId, ValueRef<'a>)>,
    ) -> Result<Vec<Value>>
    where
        'g: 'a,
    {
        self.run_with_pool(&mut state.pool, par, inputs)
    }

    /// Like [`Executor::run`] with an explicit buffer pool (used by control-flow ops for their bodies).
    pub fn run_with_pool<'a>(
        &self,
        pool: &mut BufferPool,
        par: &dyn Parallelism,
        inputs: Vec<(ValueId, ValueRef<'a>)>,
    ) -> Result<Vec<Value>>
    where
        'g: 'a,
    {
        let g = self.graph;
        let mut slots: Vec<Slot<'a>> = Vec::with_capacity(g.values.len());
        for v in &g.values {
            slots.push(match &v.fact.konst {
                Some(t) => Slot::Borrowed(ValueRef::Tensor(t.view())),
                None => Slot::Empty,
            });
        }
        for (id, v) in inputs {
            slots[id] = Slot::Borrowed(v);
        }
        for (step, &n) in self.plan.order.iter().enumerate() {
            let node = &g.nodes[n];
            // An input buffer the kernel may write its output into: only a
            // tensor this run owns, read by no other input of the node, whose
            // last use is this step.
            let donated = node.op.output_reuses_input().and_then(|i| {
                let v = (*node.inputs.get(i)?)?;
                let once = node.inputs.iter().filter(|x| **x == Some(v)).count() == 1;
                if !once || !self.plan.free_after[step].contains(&v) || !matches!(slots[v], Slot::Owned(Value::Tensor(_))) {
                    return None;
                }
                match std::mem::replace(&mut slots[v], Slot::Empty) {
                    Slot::Owned(Value::Tensor(t)) => Some((v, t)),
                    _ => None,
                }
            });
            let outs = {
                let mut args: Vec<Option<ValueRef<'_>>> = Vec::with_capacity(node.inputs.len());
                for inp in &node.inputs {
                    if donated.as_ref().is_some_and(|(v, _)| Some(*v) == *inp) {
                        args.push(None);
                        continue;
                    }
                    args.push(match inp {
                        None => None,
                        Some(v) => Some(match &slots[*v] {
                            Slot::Borrowed(r) => r.clone(),
                            Slot::Owned(val) => val.as_ref(),
                            Slot::Empty => {
                                return Err(Error::Node {
                                    node: node.name.clone(),
                                    op: node.op.name().into(),
                                    message: format!("input '{}' has no value (was it fed?)", g.values[*v].name),
                                })
                            }
                        }),
                    });
                }
                if let Some(o) = self.observer {
                    o.before(n);
                }
                let mut ctx = EvalCtx::new(par, pool);
                if let Some((_, t)) = donated {
                    ctx.donate(t);
                }
                let outs = node.op.eval_values(&mut ctx, &args).map_err(|e| e.in_node(&node.name, node.op.name()));
                // A donated buffer the kernel did not use goes back to the pool.
                if let Some(t) = ctx.take_donated() {
                    pool.give(t);
                }
                let outs = outs?;
                if let Some(o) = self.observer {
                    o.after(n);
                }
                outs
            };
            if outs.len() < node.outputs.len() {
                return Err(Error::Node {
                    node: node.name.clone(),
                    op: node.op.name().into(),
                    message: format!("kernel produced {} outputs, node declares {}", outs.len(), node.outputs.len()),
                });
            }
            for (&o, v) in node.outputs.iter().zip(outs) {
                slots[o] = Slot::Owned(v);
            }
            for &v in &self.plan.free_after[step] {
                if let Slot::Owned(Value::Tensor(t)) = std::mem::replace(&mut slots[v], Slot::Empty) {
                    pool.give(t);
                }
            }
        }
        let mut result = Vec::with_capacity(g.outputs.len());
        for (i, &o) in g.outputs.iter().enumerate() {
            // The same value may be listed twice as an output: only then is it
            // copied (a copy of every output was a full pass over fresh memory).
            let again = g.outputs[i + 1..].contains(&o);
            result.push(match std::mem::replace(&mut slots[o], Slot::Empty) {
                Slot::Owned(v) if again => {
                    slots[o] = Slot::Owned(v.clone());
                    v
                }
                Slot::Owned(v) => v,
                Slot::Borrowed(r) => {
                    let v = r.to_owned();
                    slots[o] = Slot::Borrowed(r);
                    v
                }
                Slot::Empty => return Err(Error::Other(format!("graph output '{}' was not computed", g.values[o].name))),
            });
        }
        Ok(result)
    }
}

/// Convenience for tests and folding: evaluate a graph once with tensor views.
pub fn run_once(graph: &Graph, inputs: &[(ValueId, TensorView)], par: &dyn Parallelism, limit: u64) -> Result<Vec<Value>> {
    let plan = Plan::new(graph)?;
    let mut state = ExecState::new(limit);
    let inputs = inputs.iter().map(|(i, v)| (*i, ValueRef::Tensor(v.clone()))).collect();
    Executor::new(graph, &plan).run(&mut state, par, inputs)
}
