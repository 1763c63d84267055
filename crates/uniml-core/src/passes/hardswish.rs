//! HardSwish spelled out in elementwise nodes → one `HardSwish` node, which
//! the Conv before it then takes into its epilogue: no pass over the
//! activation instead of four.
//!
//! Two spellings: `Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)` (paddle2onnx:
//! PP-OCRv4's detector has 24, a third of its run in these elementwise
//! nodes) and `Mul(x, Div(Clip(Add(x, 3), 0, 6), 6))`; either division also
//! as a `Mul` by 1/6, and the commutative operands in either order.

use uniml_data::{DType, Result};

use super::conv_fusion::{activation_of, sole_producer};
use super::pattern::{binary, close, other_operand, scalar_beside, sole_consumer};
use crate::graph::{Graph, NodeId, ValueId};
use crate::ops::elementwise::binary::BinOp;
use crate::ops::elementwise::unary::{Unary, UnaryOp};
use crate::ops::nn::FusedActivation;

/// `HardSwish(x)` for its elementwise spellings, when every intermediate
/// value is used only inside the pattern.
pub fn fuse_hardswish(g: &mut Graph) -> Result<bool> {
    Ok(super::rewrite_until_fixed(g, |g, producers, uses, clip| {
        match hardswish_at(g, producers, uses, clip) {
            Some((x, last, dead)) => {
                let node = &mut g.nodes[last];
                node.op = Box::new(Unary::new(UnaryOp::HardSwish));
                node.inputs = vec![Some(x)];
                super::remove_nodes(g, dead.to_vec());
                true
            }
            None => false,
        }
    }))
}

/// For a `Clip(·, 0, 6)` node `clip` inside a HardSwish spelling: `x`, the
/// pattern's last node (which becomes the HardSwish) and the other three.
fn hardswish_at(g: &Graph, producers: &[Option<NodeId>], uses: &[usize], clip: NodeId) -> Option<(ValueId, NodeId, [NodeId; 3])> {
    if activation_of(g, clip) != Some(FusedActivation::Clip { min: 0.0, max: 6.0 }) {
        return None;
    }
    let a = g.nodes[clip].inputs.first().copied().flatten()?;
    let add = sole_producer(g, a, producers, uses)?;
    // Constants that broadcast x to a higher rank are not HardSwish's.
    let beside = |v: ValueId, x: ValueId, want: f32| scalar_beside(g, v, x).is_some_and(|k| close(k, want));
    let x = match binary(g, add, BinOp::Add)? {
        (x, k) if beside(k, x, 3.0) => x,
        (k, x) if beside(k, x, 3.0) => x,
        _ => return None,
    };
    if g.values[x].fact.dtype != Some(DType::F32) {
        return None;
    }
    let is = |v: ValueId, want: f32| beside(v, x, want);
    let consumer = |v: ValueId| sole_consumer(g, uses, v);
    // `Div(v, 6)`, `Mul(v, 1/6)` or `Mul(1/6, v)`.
    let sixth_of = |n: NodeId, v: ValueId| -> bool {
        matches!(binary(g, n, BinOp::Div), Some((a, k)) if a == v && is(k, 6.0))
            || other_operand(g, n, BinOp::Mul, v).is_some_and(|k| is(k, 1.0 / 6.0))
    };
    let clipped = *g.nodes[clip].outputs.first()?;
    let first = consumer(clipped)?;
    let first_out = *g.nodes[first].outputs.first()?;
    let last = consumer(first_out)?;
    let times_x = |n: NodeId, v: ValueId| other_operand(g, n, BinOp::Mul, v) == Some(x);
    let spelled = (times_x(first, clipped) && sixth_of(last, first_out)) || (sixth_of(first, clipped) && times_x(last, first_out));
    spelled.then_some((x, last, [add, clip, first]))
}

#[cfg(test)]
mod tests {
    use uniml_data::{DType, SymbolicShape, Tensor};

    use super::*;
    use crate::op::{Fact, Op};
    use crate::ops::elementwise::binary::Binary;
    use crate::ops::elementwise::clip::Clip;
    use crate::ops::nn::test_util::{assert_close, rand_vec};
    use crate::passes::test_graph::first_output;

    fn op<T: Op>(o: T) -> Box<dyn Op> {
        Box::new(o)
    }

    /// The spellings under test.
    #[derive(Clone, Copy, PartialEq)]
    enum Spelling {
        /// `Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`, Clip bounds as inputs.
        DivLast,
        /// `Mul(Div(Clip(Add(3, x)), 6) → Mul(1/6, ·), x)`, Clip bounds as attributes.
        SixthFirst,
    }

    /// `x → HardSwish spelled out → y`; with `extra_use` the Clip's output is
    /// a graph output too (then nothing may be fused).
    fn graph(spelling: Spelling, extra_use: bool) -> (Graph, ValueId) {
        let mut g = Graph::default();
        let x = g.add_value("x", Fact::new(DType::F32, SymbolicShape::known(&[3, 41])));
        let k = |g: &mut Graph, name: &str, v: f32| g.add_const(name, Tensor::from_vec(&[], vec![v]).unwrap());
        let v = |g: &mut Graph, name: &str| g.add_value(name, Fact::default());
        let (a, c, m, y) = (v(&mut g, "a"), v(&mut g, "c"), v(&mut g, "m"), v(&mut g, "y"));
        let three = k(&mut g, "three", 3.0);
        match spelling {
            Spelling::DivLast => {
                let (lo, hi, six) = (k(&mut g, "lo", 0.0), k(&mut g, "hi", 6.0), k(&mut g, "six", 6.0));
                g.add_node("add", op(Binary::new(BinOp::Add)), vec![Some(x), Some(three)], vec![a]);
                g.add_node("clip", op(Clip::default()), vec![Some(a), Some(lo), Some(hi)], vec![c]);
                g.add_node("mul", op(Binary::new(BinOp::Mul)), vec![Some(x), Some(c)], vec![m]);
                g.add_node("div", op(Binary::new(BinOp::Div)), vec![Some(m), Some(six)], vec![y]);
            }
            Spelling::SixthFirst => {
                let sixth = k(&mut g, "sixth", 1.0 / 6.0);
                g.add_node("add", op(Binary::new(BinOp::Add)), vec![Some(three), Some(x)], vec![a]);
                g.add_node("clip", op(Clip { min: Some(0.0), max: Some(6.0) }), vec![Some(a)], vec![c]);
                g.add_node("scale", op(Binary::new(BinOp::Mul)), vec![Some(sixth), Some(c)], vec![m]);
                g.add_node("mul", op(Binary::new(BinOp::Mul)), vec![Some(m), Some(x)], vec![y]);
            }
        }
        g.inputs = vec![x];
        g.outputs = vec![y];
        if extra_use {
            g.outputs.push(c);
        }
        g.infer_facts().unwrap();
        (g, x)
    }

    #[test]
    fn both_spellings_become_one_node_with_the_same_values() {
        // Values across both knees (−3 and 3) and beyond.
        let data = Tensor::from_vec(&[3, 41], rand_vec(3 * 41, 11).iter().map(|v| v * 10.0).collect()).unwrap();
        for spelling in [Spelling::DivLast, Spelling::SixthFirst] {
            let (mut g, x) = graph(spelling, false);
            let want = first_output(&g, x, &data);
            assert!(fuse_hardswish(&mut g).unwrap());
            assert_eq!(g.nodes.len(), 1);
            assert_eq!(g.nodes[0].op.name(), "HardSwish");
            assert_close(&first_output(&g, x, &data), &want, 1e-6);
        }
    }

    #[test]
    fn shared_intermediates_and_other_constants_are_left_alone() {
        let (mut g, _) = graph(Spelling::DivLast, true);
        assert!(!fuse_hardswish(&mut g).unwrap());
        assert_eq!(g.nodes.len(), 4);
        // Clip(·, 0, 5) is not HardSwish's.
        let (mut g, _) = graph(Spelling::SixthFirst, false);
        let clip = g.nodes.iter().position(|n| n.op.name() == "Clip").unwrap();
        g.nodes[clip].op = op(Clip { min: Some(0.0), max: Some(5.0) });
        assert!(!fuse_hardswish(&mut g).unwrap());
        assert_eq!(g.nodes.len(), 4);
        // A 3 of shape [1, 1, 1] broadcasts x ([3, 41]) to rank 3.
        let (mut g, _) = graph(Spelling::DivLast, false);
        let three = g.add_const("three3", Tensor::from_vec(&[1, 1, 1], vec![3.0f32]).unwrap());
        let add = g.nodes.iter().position(|n| n.name == "add").unwrap();
        g.nodes[add].inputs[1] = Some(three);
        g.infer_facts().unwrap();
        assert!(!fuse_hardswish(&mut g).unwrap());
        assert_eq!(g.nodes.len(), 4);
    }
}
