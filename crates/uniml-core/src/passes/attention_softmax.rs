//! (CPU only) `Softmax(Add(Div(scores, c), mask))` over the last axis → one
//! [`MaskedSoftmax`]: how BERT-family exports spell attention weights (the
//! `Div` by √d and the mask `Add` were two extra passes over the
//! `heads × tokens × tokens` scores). `Mul` by a constant works like the
//! `Div`; either of the `Add` and the scaling may be absent.

use uniml_data::{DType, Result};

use super::conv_fusion::sole_producer;
use super::pattern::scalar;
use crate::graph::{Graph, NodeId, ValueId};
use crate::ops::elementwise::binary::{BinOp, Binary};
use crate::ops::nn::softmax::{MaskedSoftmax, Softmax, SoftmaxKind};
use crate::ops::util::norm_axis;

pub fn fuse_attention_softmax(g: &mut Graph) -> Result<bool> {
    Ok(super::rewrite_until_fixed(g, |g, producers, uses, c| {
        let node = &g.nodes[c];
        let Some(sm) = node.op.as_any().downcast_ref::<Softmax>() else { return false };
        let Some(Some(s)) = node.inputs.first().copied() else { return false };
        let Some(shape) = g.values[s].fact.shape.clone() else { return false };
        if sm.kind != SoftmaxKind::Softmax || node.outputs.len() != 1 || g.values[s].fact.dtype != Some(DType::F32) {
            return false;
        }
        // Over the last axis (opset < 13's flattened tail is the same there).
        if shape.rank() == 0 || norm_axis(sm.axis, shape.rank()).ok() != Some(shape.rank() - 1) {
            return false;
        }
        let mut gone: Vec<NodeId> = Vec::new();
        // The mask `Add`: the scores are the operand of the sum's own shape.
        let (mut x, mut mask) = (s, None);
        if let Some(p) = sole_producer(g, s, producers, uses).filter(|&p| is_binary(g, p, BinOp::Add)) {
            if let [Some(a), Some(b)] = g.nodes[p].inputs[..] {
                let full = |v: ValueId| g.values[v].fact.shape.as_ref() == Some(&shape) && g.values[v].fact.dtype == Some(DType::F32);
                let pick = if full(a) { Some((a, b)) } else if full(b) { Some((b, a)) } else { None };
                if let Some((sc, m)) = pick.filter(|&(_, m)| g.values[m].fact.dtype == Some(DType::F32)) {
                    (x, mask) = (sc, Some(m));
                    gone.push(p);
                }
            }
        }
        // The scaling by a constant scalar.
        let mut scale = 1.0f32;
        if let Some(p) = sole_producer(g, x, producers, uses) {
            let inputs = &g.nodes[p].inputs;
            let scalar = |v: Option<ValueId>| v.and_then(|v| scalar(g, v));
            let (a, b) = (inputs.first().copied().flatten(), inputs.get(1).copied().flatten());
            let full = |v: Option<ValueId>| v.is_some_and(|v| g.values[v].fact.shape.as_ref() == Some(&shape));
            let found = if is_binary(g, p, BinOp::Div) && full(a) {
                scalar(b).filter(|d| *d != 0.0).map(|d| (a, 1.0 / d))
            } else if is_binary(g, p, BinOp::Mul) {
                match (scalar(b), scalar(a)) {
                    (Some(k), _) if full(a) => Some((a, k)),
                    (_, Some(k)) if full(b) => Some((b, k)),
                    _ => None,
                }
            } else {
                None
            };
            if let Some((Some(v), k)) = found {
                (x, scale) = (v, k);
                gone.push(p);
            }
        }
        if gone.is_empty() {
            return false;
        }
        g.nodes[c].op = Box::new(MaskedSoftmax { scale });
        g.nodes[c].inputs = vec![Some(x), mask];
        super::remove_nodes(g, gone);
        true
    }))
}

fn is_binary(g: &Graph, n: NodeId, op: BinOp) -> bool {
    g.nodes[n].op.as_any().downcast_ref::<Binary>().is_some_and(|b| b.op == op) && g.nodes[n].outputs.len() == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::run_once;
    use crate::ops::nn::test_util::rand_vec;
    use crate::parallel::Serial;
    use crate::passes::test_graph::{f32_input, node};
    use uniml_data::Tensor;

    fn softmax(axis: i64) -> Box<Softmax> {
        Box::new(Softmax { kind: SoftmaxKind::Softmax, axis, flatten_tail: false })
    }

    /// BERT's attention weights (`Softmax(Add(mask, Div(s, 2.5)))`, mask
    /// `[2, 1, 1, 7]` fed at run time), a `Mul`-scaled softmax with a `[7]`
    /// constant mask, a scaled softmax without a mask, and one over another
    /// axis that must stay: after the CPU passes three MaskedSoftmax nodes and
    /// the plain Softmax remain, and every output matches the graph as written.
    #[test]
    fn attention_scores_scale_and_mask_in_the_softmax() {
        let mut g = Graph::default();
        let shape = [2, 3, 5, 7];
        let s = f32_input(&mut g, "s", &shape);
        let m = f32_input(&mut g, "m", &[2, 1, 1, 7]);
        let c = g.add_const("c", Tensor::from_vec(&[], vec![2.5f32]).unwrap());
        let row = g.add_const("row", Tensor::from_vec(&[7], rand_vec(7, 3).iter().map(|v| v * 4.0 - 2.0).collect()).unwrap());
        let y = node(&mut g, "div", Box::new(Binary::new(BinOp::Div)), &[s, c]);
        let y = node(&mut g, "add", Box::new(Binary::new(BinOp::Add)), &[m, y]);
        let y = node(&mut g, "sm", softmax(-1), &[y]);
        let z = node(&mut g, "mul", Box::new(Binary::new(BinOp::Mul)), &[c, s]);
        let z = node(&mut g, "add2", Box::new(Binary::new(BinOp::Add)), &[z, row]);
        let z = node(&mut g, "sm2", softmax(3), &[z]);
        let u = node(&mut g, "div3", Box::new(Binary::new(BinOp::Div)), &[s, c]);
        let u = node(&mut g, "sm3", softmax(-1), &[u]);
        let v = node(&mut g, "div4", Box::new(Binary::new(BinOp::Div)), &[s, c]);
        let v = node(&mut g, "sm4", softmax(2), &[v]);
        g.outputs = vec![y, z, u, v];
        g.infer_facts().unwrap();
        let sv = Tensor::from_vec(&shape, rand_vec(210, 5).iter().map(|v| v * 20.0 - 10.0).collect()).unwrap();
        let mut mv: Vec<f32> = rand_vec(14, 6);
        mv[3] = -10000.0; // a masked-out token
        let mv = Tensor::from_vec(&[2, 1, 1, 7], mv).unwrap();
        let run = |g: &Graph| -> Vec<Vec<f32>> {
            let outs = run_once(g, &[(s, sv.view()), (m, mv.view())], &Serial, u64::MAX).unwrap();
            outs.into_iter().map(|v| v.into_tensor().unwrap().as_slice::<f32>().unwrap().to_vec()).collect()
        };
        let want = run(&g);
        crate::passes::run_passes(&mut g, crate::ops::CPU_PASSES).unwrap();
        let mut ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        ops.sort_unstable();
        assert_eq!(ops, ["Div", "MaskedSoftmax", "MaskedSoftmax", "MaskedSoftmax", "Softmax"], "{ops:?}");
        let got = run(&g);
        for (w, o) in want.iter().zip(&got) {
            crate::ops::nn::test_util::assert_close(o, w, 1e-6);
        }
        assert!(want[0].iter().any(|&p| p < 1e-6), "the mask removes a token");
    }

    /// A mask that does not broadcast to the scores is an error naming both shapes.
    #[test]
    fn mask_shape_mismatch_is_an_error() {
        let x = Tensor::from_vec(&[2, 4], vec![0.0; 8]).unwrap();
        let m = Tensor::from_vec(&[3], vec![0.0; 3]).unwrap();
        let err = crate::ops::nn::test_util::run(&MaskedSoftmax { scale: 1.0 }, &[Some(&x), Some(&m)]).unwrap_err();
        assert!(err.to_string().contains("[3] does not broadcast to the input's [2, 4]"), "{err}");
    }
}
