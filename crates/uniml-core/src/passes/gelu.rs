//! GELU spelled out in elementwise nodes, `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)`
//! (how PyTorch exports BERT-family models), → one `Gelu` node: one pass over
//! the tensor instead of five, with the vectorised `erf`.

use uniml_data::{DType, Result};

use super::pattern::{binary, close, other_operand, scalar_beside, sole_consumer};
use crate::graph::{Graph, NodeId, ValueId};
use crate::ops::elementwise::binary::BinOp;
use crate::ops::elementwise::unary::{Unary, UnaryOp};

/// `Gelu(x)` for the erf form of GELU in elementwise nodes (either operand
/// order of the commutative ones; `x/√2` also as `x·(1/√2)`), when every
/// intermediate value is used only inside the pattern.
pub fn fuse_erf_gelu(g: &mut Graph) -> Result<bool> {
    let mut changed = false;
    'scan: loop {
        let producers = g.producers();
        let uses = g.use_counts();
        // The sole consumer of `v` and its output, when it is the commutative
        // `op` with an other operand that `other` accepts.
        let next = |g: &Graph, v: ValueId, op: BinOp, other: &dyn Fn(ValueId) -> bool| -> Option<(NodeId, ValueId)> {
            let n = sole_consumer(g, &uses, v)?;
            other_operand(g, n, op, v).filter(|&o| other(o))?;
            Some((n, g.nodes[n].outputs[0]))
        };
        for e in 0..g.nodes.len() {
            let is_erf = g.nodes[e].op.as_any().downcast_ref::<Unary>().is_some_and(|u| u.op == UnaryOp::Erf);
            let (Some(Some(d)), true) = (g.nodes[e].inputs.first().copied(), is_erf) else { continue };
            let Some(div) = producers[d].filter(|_| uses[d] == 1) else { continue };
            // Constants must not broadcast to a higher rank than the value
            // beside them: dropping them would change the output's shape.
            let is = |k: ValueId, beside: ValueId, want: f32| scalar_beside(g, k, beside).is_some_and(|c| close(c, want));
            let x = match binary(g, div, BinOp::Div) {
                Some((x, c)) if is(c, x, std::f32::consts::SQRT_2) => x,
                _ => match binary(g, div, BinOp::Mul) {
                    Some((a, b)) if is(b, a, std::f32::consts::FRAC_1_SQRT_2) => a,
                    Some((a, b)) if is(a, b, std::f32::consts::FRAC_1_SQRT_2) => b,
                    _ => continue,
                },
            };
            if g.values[x].fact.dtype != Some(DType::F32) {
                continue;
            }
            let erf_out = g.nodes[e].outputs[0];
            let Some((add, add_out)) = next(g, erf_out, BinOp::Add, &|o| scalar_beside(g, o, erf_out) == Some(1.0)) else { continue };
            let Some((mul, mul_out)) = next(g, add_out, BinOp::Mul, &|o| o == x) else { continue };
            let Some((half, y)) = next(g, mul_out, BinOp::Mul, &|o| scalar_beside(g, o, mul_out) == Some(0.5)) else { continue };
            // The Div node becomes the Gelu; the other four go.
            let node = &mut g.nodes[div];
            node.op = Box::new(Unary::new(UnaryOp::Gelu { tanh: false }));
            node.inputs = vec![Some(x)];
            node.outputs = vec![y];
            super::remove_nodes(g, vec![e, add, mul, half]);
            changed = true;
            continue 'scan;
        }
        break;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use uniml_data::{DType, SymbolicShape, Tensor};

    use super::*;
    use crate::exec::run_once;
    use crate::ops::elementwise::binary::Binary;
    use crate::op::{Fact, Op};
    use crate::ops::nn::test_util::{assert_close, rand_vec, FakePar};

    fn op<T: Op>(o: T) -> Box<dyn Op> {
        Box::new(o)
    }

    /// `x → Div(x, √2) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, 0.5)`, with
    /// `extra_use` reading the Erf output too (then nothing may be fused),
    /// and the 0.5 of shape `half_shape`.
    fn gelu_graph(extra_use: bool, half_shape: &[usize]) -> (Graph, ValueId, Vec<ValueId>) {
        let mut g = Graph::default();
        let x = g.add_value("x", Fact::new(DType::F32, SymbolicShape::known(&[4, 37])));
        let k = |g: &mut Graph, name: &str, v: f32| g.add_const(name, Tensor::from_vec(&[], vec![v]).unwrap());
        let (sqrt2, one) = (k(&mut g, "sqrt2", std::f32::consts::SQRT_2), k(&mut g, "one", 1.0));
        let half = g.add_const("half", Tensor::from_vec(half_shape, vec![0.5f32]).unwrap());
        let v = |g: &mut Graph, name: &str| g.add_value(name, Fact::default());
        let (d, e, a, m, y) = (v(&mut g, "d"), v(&mut g, "e"), v(&mut g, "a"), v(&mut g, "m"), v(&mut g, "y"));
        g.add_node("div", op(Binary::new(BinOp::Div)), vec![Some(x), Some(sqrt2)], vec![d]);
        g.add_node("erf", op(Unary::new(UnaryOp::Erf)), vec![Some(d)], vec![e]);
        g.add_node("add", op(Binary::new(BinOp::Add)), vec![Some(one), Some(e)], vec![a]);
        g.add_node("mul", op(Binary::new(BinOp::Mul)), vec![Some(a), Some(x)], vec![m]);
        g.add_node("half", op(Binary::new(BinOp::Mul)), vec![Some(m), Some(half)], vec![y]);
        g.inputs = vec![x];
        g.outputs = vec![y];
        if extra_use {
            let z = v(&mut g, "z");
            g.add_node("neg", op(Unary::new(UnaryOp::Neg)), vec![Some(e)], vec![z]);
            g.outputs.push(z);
        }
        g.infer_facts().unwrap();
        (g, x, vec![y])
    }

    fn eval(g: &Graph, x: ValueId, data: &[f32]) -> Vec<f32> {
        let t = Tensor::from_vec(&[4, 37], data.to_vec()).unwrap();
        let out = run_once(g, &[(x, t.view())], &FakePar, u64::MAX).unwrap();
        let y = out.into_iter().next().unwrap().into_tensor().unwrap();
        y.as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn erf_gelu_becomes_one_node_with_the_same_values() {
        let (mut g, x, _) = gelu_graph(false, &[]);
        let data: Vec<f32> = rand_vec(4 * 37, 7).iter().map(|v| v * 8.0).collect();
        let want = eval(&g, x, &data);
        assert!(fuse_erf_gelu(&mut g).unwrap());
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].op.name(), "Gelu");
        assert_close(&eval(&g, x, &data), &want, 1e-6);
    }

    #[test]
    fn shared_intermediates_are_left_alone() {
        let (mut g, _, _) = gelu_graph(true, &[]);
        assert!(!fuse_erf_gelu(&mut g).unwrap());
        assert_eq!(g.nodes.len(), 6);
    }

    /// A one-element constant of higher rank than `x` broadcasts the output
    /// to that rank: fusing would drop it and change the output's shape.
    #[test]
    fn higher_rank_constants_are_left_alone() {
        let (mut g, _, _) = gelu_graph(false, &[1, 1, 1]);
        assert!(!fuse_erf_gelu(&mut g).unwrap());
        assert_eq!(g.nodes.len(), 5);
        let (mut g, _, _) = gelu_graph(false, &[1, 1]);
        assert!(fuse_erf_gelu(&mut g).unwrap());
    }
}
