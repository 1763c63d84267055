use uniml_data::Result;

use crate::graph::{Graph, ValueId};

/// Removes `Identity` and inference-mode `Dropout` nodes by rewiring their
/// readers to the input. Nodes whose output is a graph output are kept when
/// the input is also a graph input (an output must be a distinct value).
pub fn remove_identities(g: &mut Graph) -> Result<bool> {
    let mut changed = false;
    let mut n = 0;
    while n < g.nodes.len() {
        let node = &g.nodes[n];
        let is_identity = match node.op.name() {
            "Identity" => true,
            // Training-mode Dropout is random, not a pass-through.
            "Dropout" => node
                .op
                .as_any()
                .downcast_ref::<crate::ops::elementwise::Dropout>()
                .is_some_and(|d| !d.may_train),
            _ => false,
        };
        let extra_outputs_unused = node.outputs.len() == 1 || {
            let uses = g.use_counts();
            node.outputs[1..].iter().all(|&o| uses[o] == 0)
        };
        let (Some(Some(src)), Some(&dst)) = (node.inputs.first(), node.outputs.first()) else {
            n += 1;
            continue;
        };
        let src: ValueId = *src;
        if !is_identity || !extra_outputs_unused || g.values[src].fact.is_sequence {
            n += 1;
            continue;
        }
        if g.outputs.contains(&dst) {
            // Rename: the producer of src now produces dst, unless src is an input/const/output.
            let producers = g.producers();
            let src_is_output = g.outputs.contains(&src);
            match producers[src] {
                Some(p) if !src_is_output => {
                    for o in g.nodes[p].outputs.iter_mut() {
                        if *o == src {
                            *o = dst;
                        }
                    }
                    for other in g.nodes.iter_mut() {
                        for i in other.inputs.iter_mut().flatten() {
                            if *i == src {
                                *i = dst;
                            }
                        }
                    }
                }
                _ => {
                    n += 1;
                    continue;
                }
            }
        } else {
            for other in g.nodes.iter_mut() {
                for i in other.inputs.iter_mut().flatten() {
                    if *i == dst {
                        *i = src;
                    }
                }
            }
        }
        g.nodes.remove(n);
        changed = true;
    }
    Ok(changed)
}
