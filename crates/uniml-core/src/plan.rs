//! The compiled plan: execution order and buffer lifetimes.

use uniml_data::Result;

use crate::graph::{Graph, ValueId};

/// Execution order plus, for each step, the values whose last use it is, so
/// the executor can hand their buffers back to the pool right away. Peak
/// memory is therefore the largest live set, not the sum of all tensors.
#[derive(Debug, Clone)]
pub struct Plan {
    pub order: Vec<usize>,
    pub free_after: Vec<Vec<ValueId>>,
}

impl Plan {
    pub fn new(graph: &Graph) -> Result<Plan> {
        let order = graph.topo_order()?;
        let mut last_use: Vec<Option<usize>> = vec![None; graph.values.len()];
        for (step, &n) in order.iter().enumerate() {
            for v in graph.nodes[n].inputs.iter().flatten() {
                last_use[*v] = Some(step);
            }
            // A node output nobody reads dies right after its producer.
            for &o in &graph.nodes[n].outputs {
                if last_use[o].is_none() {
                    last_use[o] = Some(step);
                }
            }
        }
        let mut free_after = vec![Vec::new(); order.len()];
        for (v, lu) in last_use.iter().enumerate() {
            let keep = graph.outputs.contains(&v) || graph.values[v].fact.konst.is_some() || graph.inputs.contains(&v);
            if let (Some(step), false) = (lu, keep) {
                free_after[*step].push(v);
            }
        }
        Ok(Plan { order, free_after })
    }
}
