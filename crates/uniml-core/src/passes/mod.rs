//! Graph passes run at session creation: cheap, local rewrites that keep the
//! graph valid after each step.

mod activation_affine;
mod attention_softmax;
mod concat_convs;
mod conv_fusion;
mod dead;
mod fold;
mod gelu;
mod hardswish;
mod identity;
mod matmul_fusion;
mod pattern;
mod sum_add;

pub use activation_affine::fuse_activation_affine;
pub use attention_softmax::fuse_attention_softmax;
pub use concat_convs::fuse_concat_convs;
pub use conv_fusion::{fold_batchnorm_into_conv, fold_channel_affine, fuse_batchnorm_activation, fuse_conv_activation, fuse_conv_residual};
pub use dead::remove_dead_nodes;
pub use fold::fold_constants;
pub use gelu::fuse_erf_gelu;
pub use hardswish::fuse_hardswish;
pub use identity::remove_identities;
pub use matmul_fusion::{fuse_matmul_activation, fuse_matmul_bias};
pub use sum_add::sum_pairs_to_add;

use uniml_data::Result;

use crate::graph::Graph;

/// Offers every node to `rewrite_at(graph, producers, use counts, node)`;
/// after a rewrite (it returns `true`) the scan starts over with fresh
/// producers and use counts, until a whole scan rewrites nothing. Returns
/// whether anything changed.
fn rewrite_until_fixed(
    g: &mut Graph,
    mut rewrite_at: impl FnMut(&mut Graph, &[Option<crate::graph::NodeId>], &[usize], crate::graph::NodeId) -> bool,
) -> bool {
    let mut changed = false;
    'scan: loop {
        let producers = g.producers();
        let uses = g.use_counts();
        for c in 0..g.nodes.len() {
            if rewrite_at(g, &producers, &uses, c) {
                changed = true;
                continue 'scan;
            }
        }
        return changed;
    }
}

/// The two operands of `node` when it is a binary `Add` with one output, as the Add fusions
/// (conv residual, MatMul bias) match it.
fn add_operands(node: &crate::graph::Node) -> Option<(crate::graph::ValueId, crate::graph::ValueId)> {
    use crate::ops::elementwise::binary::{BinOp, Binary};
    if !node.op.as_any().downcast_ref::<Binary>().is_some_and(|b| b.op == BinOp::Add) || node.outputs.len() != 1 {
        return None;
    }
    match (node.inputs.first().copied(), node.inputs.get(1).copied()) {
        (Some(Some(a)), Some(Some(b))) => Some((a, b)),
        _ => None,
    }
}

/// Removes the nodes `ids` (any order, no repeats): highest index first, so
/// the others keep theirs.
fn remove_nodes(g: &mut Graph, mut ids: Vec<crate::graph::NodeId>) {
    ids.sort_unstable();
    for n in ids.into_iter().rev() {
        g.nodes.remove(n);
    }
}

/// Graph building for the passes' tests.
#[cfg(test)]
pub(crate) mod test_graph {
    use uniml_data::{DType, SymbolicShape, Tensor};

    use crate::exec::run_once;
    use crate::graph::{Graph, ValueId};
    use crate::op::{Fact, Op};
    use crate::parallel::Serial;

    /// Adds a node of `op` on `ins`; returns its one output.
    pub fn node(g: &mut Graph, name: &str, op: Box<dyn Op>, ins: &[ValueId]) -> ValueId {
        let out = g.add_value(format!("{name}.out"), Fact::unknown());
        g.add_node(name, op, ins.iter().map(|&v| Some(v)).collect(), vec![out]);
        out
    }

    /// Adds a graph input of f32 values and shape `dims`.
    pub fn f32_input(g: &mut Graph, name: &str, dims: &[usize]) -> ValueId {
        let v = g.add_value(name, Fact { dtype: Some(DType::F32), shape: Some(SymbolicShape::known(dims)), konst: None, is_sequence: false });
        g.inputs.push(v);
        v
    }

    /// The first output's values of one serial run of `g` with input `x` = `xs`.
    pub fn first_output(g: &Graph, x: ValueId, xs: &Tensor) -> Vec<f32> {
        let outs = run_once(g, &[(x, xs.view())], &Serial, u64::MAX).unwrap();
        outs.into_iter().next().unwrap().into_tensor().unwrap().as_slice::<f32>().unwrap().to_vec()
    }
}

/// A rewrite that can be listed and run by name (e.g. BN folding, activation fusion).
pub type Pass = fn(&mut Graph) -> Result<bool>;

/// Runs the standard optimisation pipeline; `extra` passes (defined by op
/// families, e.g. BatchNormalization→Conv folding) run after constant folding.
pub fn optimize(graph: &mut Graph, extra: &[Pass], fold_limit_bytes: u64) -> Result<()> {
    remove_identities(graph)?;
    fold_constants(graph, fold_limit_bytes)?;
    for p in extra {
        p(graph)?;
    }
    remove_dead_nodes(graph)?;
    graph.infer_facts()?;
    Ok(())
}

/// Runs `passes` on an already optimised graph (e.g. the CPU-only fusions of
/// [`crate::ops::CPU_PASSES`]), then refreshes its facts.
pub fn run_passes(graph: &mut Graph, passes: &[Pass]) -> Result<()> {
    for p in passes {
        p(graph)?;
    }
    remove_dead_nodes(graph)?;
    graph.infer_facts()?;
    Ok(())
}
