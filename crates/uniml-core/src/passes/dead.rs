use std::collections::HashSet;

use uniml_data::Result;

use crate::graph::Graph;

/// Removes nodes none of whose outputs reach a graph output, and unused constants' data.
pub fn remove_dead_nodes(g: &mut Graph) -> Result<bool> {
    let producers = g.producers();
    let mut live: HashSet<usize> = HashSet::new();
    let mut stack: Vec<usize> = g.outputs.iter().filter_map(|&o| producers[o]).collect();
    while let Some(n) = stack.pop() {
        if !live.insert(n) {
            continue;
        }
        for v in g.nodes[n].inputs.iter().flatten() {
            if let Some(p) = producers[*v] {
                stack.push(p);
            }
        }
    }
    let before = g.nodes.len();
    let mut i = 0;
    g.nodes.retain(|_| {
        let keep = live.contains(&i);
        i += 1;
        keep
    });
    // Drop constant data no node or output reads any more (keeps memory at the live weights).
    let uses = g.use_counts();
    for (v, info) in g.values.iter_mut().enumerate() {
        if uses[v] == 0 && info.fact.konst.is_some() {
            info.fact.konst = None;
        }
    }
    Ok(g.nodes.len() != before)
}
