//! The typed graph IR: values (with facts) and nodes (with ops), in SSA form.

use std::collections::HashMap;
use std::sync::Arc;

use uniml_data::{Error, Result, Tensor};

use crate::op::{Fact, Op};

pub type ValueId = usize;
pub type NodeId = usize;

/// A control-flow body (If branch, Loop/Scan body) with its plan. Its graph
/// inputs are the formal inputs followed by values captured from the
/// enclosing scope; `captures[i]` is the index, among the owning node's extra
/// inputs (those after its formal inputs), that feeds captured value `i`.
#[derive(Debug)]
pub struct Subgraph {
    pub graph: Graph,
    pub plan: crate::plan::Plan,
    pub captures: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub fact: Fact,
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub op: Box<dyn Op>,
    /// `None` for an absent optional input.
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
}

/// A model graph. Constants (initializers, folded values) are values whose
/// fact carries `konst`; graph inputs are values fed at run time.
#[derive(Debug, Default)]
pub struct Graph {
    pub values: Vec<ValueInfo>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

impl Graph {
    pub fn add_value(&mut self, name: impl Into<String>, fact: Fact) -> ValueId {
        self.values.push(ValueInfo { name: name.into(), fact });
        self.values.len() - 1
    }

    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        self.add_value(name, Fact::constant(Arc::new(t)))
    }

    pub fn add_node(&mut self, name: impl Into<String>, op: Box<dyn Op>, inputs: Vec<Option<ValueId>>, outputs: Vec<ValueId>) -> NodeId {
        self.nodes.push(Node { name: name.into(), op, inputs, outputs });
        self.nodes.len() - 1
    }

    pub fn konst(&self, v: ValueId) -> Option<&Arc<Tensor>> {
        self.values[v].fact.konst.as_ref()
    }

    pub fn value_by_name(&self) -> HashMap<&str, ValueId> {
        self.values.iter().enumerate().map(|(i, v)| (v.name.as_str(), i)).collect()
    }

    /// For each value, the node producing it (if any).
    pub fn producers(&self) -> Vec<Option<NodeId>> {
        let mut p = vec![None; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                p[o] = Some(i);
            }
        }
        p
    }

    /// For each value, how many node inputs (plus graph outputs) read it.
    pub fn use_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.values.len()];
        for n in &self.nodes {
            for v in n.inputs.iter().flatten() {
                c[*v] += 1;
            }
        }
        for &o in &self.outputs {
            c[o] += 1;
        }
        c
    }

    /// Nodes in an order where every input is produced before use. Errors on
    /// cycles or on inputs that nothing produces.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        let producers = self.producers();
        let mut state = vec![0u8; self.nodes.len()]; // 0 new, 1 visiting, 2 done
        let mut order = Vec::with_capacity(self.nodes.len());
        for root in 0..self.nodes.len() {
            if state[root] != 0 {
                continue;
            }
            // Iterative DFS: (node, next input index).
            let mut stack = vec![(root, 0usize)];
            state[root] = 1;
            while let Some(&mut (n, ref mut next)) = stack.last_mut() {
                let inputs = &self.nodes[n].inputs;
                if *next < inputs.len() {
                    let inp = inputs[*next];
                    *next += 1;
                    if let Some(v) = inp {
                        if let Some(p) = producers[v] {
                            match state[p] {
                                0 => {
                                    state[p] = 1;
                                    stack.push((p, 0));
                                }
                                1 => {
                                    return Err(Error::InvalidModel(format!(
                                        "the graph has a cycle through node '{}'",
                                        self.nodes[p].name
                                    )))
                                }
                                _ => {}
                            }
                        } else if self.values[v].fact.konst.is_none() && !self.inputs.contains(&v) {
                            return Err(Error::InvalidModel(format!(
                                "node '{}' reads '{}', which is neither a graph input, an initializer nor a node output",
                                self.nodes[n].name, self.values[v].name
                            )));
                        }
                    }
                } else {
                    state[n] = 2;
                    order.push(n);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }

    /// Lets every op prepare its constant inputs for the CPU kernels
    /// ([`Op::pack_constants`]); call once the graph is final (facts inferred).
    pub fn pack_constants(&self) {
        let absent = Fact::unknown();
        for node in &self.nodes {
            let facts: Vec<&Fact> = node.inputs.iter().map(|v| v.map_or(&absent, |v| &self.values[v].fact)).collect();
            node.op.pack_constants(&facts);
        }
    }

    /// Shape and dtype inference over the whole graph, with symbolic dims.
    /// Declared facts (from the model's value_info) fill in what rules leave unknown.
    pub fn infer_facts(&mut self) -> Result<()> {
        let order = self.topo_order()?;
        for n in order {
            let node = &self.nodes[n];
            let facts: Vec<Fact> = node.inputs.iter().map(|v| v.map(|v| self.values[v].fact.clone()).unwrap_or_default()).collect();
            let refs: Vec<&Fact> = facts.iter().collect();
            let out = node.op.output_facts(&refs, node.outputs.len()).map_err(|e| e.in_node(&node.name, node.op.name()))?;
            for (&o, f) in node.outputs.clone().iter().zip(out) {
                let slot = &mut self.values[o].fact;
                if f.dtype.is_some() {
                    slot.dtype = f.dtype;
                }
                if let Some(s) = f.shape {
                    // Prefer the more specific of inferred vs declared shapes.
                    let declared_known = slot.shape.as_ref().map(|d| d.0.iter().filter(|x| x.known().is_some()).count());
                    let inferred_known = s.0.iter().filter(|x| x.known().is_some()).count();
                    if declared_known.is_none_or(|d| inferred_known >= d) {
                        slot.shape = Some(s);
                    }
                }
                slot.is_sequence |= f.is_sequence;
                if f.konst.is_some() {
                    slot.konst = f.konst;
                }
            }
        }
        Ok(())
    }

    /// Total bytes of constant tensors.
    pub fn constant_bytes(&self) -> u64 {
        self.values.iter().filter_map(|v| v.fact.konst.as_ref()).map(|t| t.as_bytes().len() as u64).sum()
    }
}
