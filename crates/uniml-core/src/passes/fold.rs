use std::sync::Arc;

use uniml_data::Result;

use crate::graph::Graph;
use crate::op::{BufferPool, EvalCtx, Fact, Value, ValueRef};
use crate::parallel::Serial;

/// Evaluates, at load time, every pure node whose inputs are all constants,
/// and turns its outputs into constants. Outputs larger than `limit_bytes`
/// stay computed at run time (folding must not blow up model memory).
pub fn fold_constants(g: &mut Graph, limit_bytes: u64) -> Result<bool> {
    let order = g.topo_order()?;
    let mut folded = vec![false; g.nodes.len()];
    let mut pool = BufferPool::new(limit_bytes);
    for n in order {
        let node = &g.nodes[n];
        if !node.op.is_pure() || node.inputs.iter().flatten().any(|v| g.values[*v].fact.konst.is_none()) {
            continue;
        }
        let args: Vec<Option<ValueRef>> = node
            .inputs
            .iter()
            .map(|v| v.and_then(|v| g.values[v].fact.konst.as_ref()).map(|t| ValueRef::Tensor(t.view())))
            .collect();
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let outs = match node.op.eval_values(&mut ctx, &args) {
            Ok(o) => o,
            // Folding is an optimisation: a node that fails here reports its error at run time.
            Err(_) => continue,
        };
        if outs.len() < node.outputs.len() || outs.iter().any(|o| !matches!(o, Value::Tensor(t) if (t.as_bytes().len() as u64) <= limit_bytes)) {
            continue;
        }
        let outputs = node.outputs.clone();
        for (o, v) in outputs.into_iter().zip(outs) {
            if let Value::Tensor(t) = v {
                g.values[o].fact = Fact::constant(Arc::new(t));
            }
        }
        folded[n] = true;
    }
    let mut i = 0;
    let any = folded.iter().any(|&f| f);
    g.nodes.retain(|_| {
        let keep = !folded[i];
        i += 1;
        keep
    });
    Ok(any)
}
