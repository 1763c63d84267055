//! Small matchers the elementwise-pattern passes share (GELU, HardSwish,
//! the scalar affine after an activation).

use uniml_data::DType;

use crate::graph::{Graph, NodeId, ValueId};
use crate::ops::elementwise::binary::{BinOp, Binary};

/// Whether a constant read from a model is `want` (to f32 rounding of an
/// exporter's literal, e.g. 1/√2 or 1/6).
pub(super) fn close(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(1.0)
}

/// The node reading `v` when `v` is read once and is not a graph output.
pub(super) fn sole_consumer(g: &Graph, uses: &[usize], v: ValueId) -> Option<NodeId> {
    if uses[v] != 1 || g.outputs.contains(&v) {
        return None;
    }
    g.nodes.iter().position(|n| n.inputs.contains(&Some(v)))
}

/// The value of an f32 constant holding one element.
pub(super) fn scalar(g: &Graph, v: ValueId) -> Option<f32> {
    let t = g.konst(v)?;
    (t.dtype() == DType::F32 && t.len() == 1).then(|| t.as_slice::<f32>().ok().map(|s| s[0])).flatten()
}

/// [`scalar`] for a constant combined elementwise with `y`, when it does not
/// broadcast `y` to a higher rank (so that dropping it keeps `y`'s shape;
/// `y`'s rank must be known).
pub(super) fn scalar_beside(g: &Graph, k: ValueId, y: ValueId) -> Option<f32> {
    let rank = g.values[y].fact.shape.as_ref()?.rank();
    (g.konst(k)?.rank() <= rank).then(|| scalar(g, k)).flatten()
}

/// The two operands of node `n` when it is the binary `op` with one output.
pub(super) fn binary(g: &Graph, n: NodeId, op: BinOp) -> Option<(ValueId, ValueId)> {
    let node = &g.nodes[n];
    let b = node.op.as_any().downcast_ref::<Binary>()?;
    match (b.op == op, node.inputs.as_slice(), node.outputs.len()) {
        (true, [Some(a), Some(b)], 1) => Some((*a, *b)),
        _ => None,
    }
}

/// The operand of the commutative `op` node `n` that is not `v`, when `v` is one.
pub(super) fn other_operand(g: &Graph, n: NodeId, op: BinOp, v: ValueId) -> Option<ValueId> {
    let (a, b) = binary(g, n, op)?;
    if a == v {
        Some(b)
    } else if b == v {
        Some(a)
    } else {
        None
    }
}
