//! `Add(Mul(HardSwish-Conv(x), a), b)` with scalar `a`, `b` → the Conv with
//! a `HardSwish · a + b` epilogue.
//!
//! PP-LCNet (PP-OCRv4's backbone) follows each HardSwish with a learnable
//! scalar affine, exported as a `Mul` and an `Add` by constants. Once the
//! HardSwish is in the Conv's epilogue (`fuse_hardswish`,
//! `fuse_conv_activation`), these two are the only passes left over the
//! activation: PP-OCRv4's detector has 23 pairs.

use uniml_data::{DType, Result};

use super::conv_fusion::{sole_producer, splice};
use super::pattern::{binary, scalar_beside};
use crate::graph::{Graph, NodeId, ValueId};
use crate::ops::elementwise::binary::BinOp;
use crate::ops::nn::conv::Conv;
use crate::ops::nn::FusedActivation;

/// Takes scalar `Mul`s and `Add`s after a Conv whose epilogue ends in
/// HardSwish into that epilogue, one at a time.
pub fn fuse_activation_affine(g: &mut Graph) -> Result<bool> {
    Ok(super::rewrite_until_fixed(g, |g, producers, uses, c| {
        let Some((op, y, k)) = scalar_step(g, c) else { return false };
        let Some(p) = sole_producer(g, y, producers, uses) else { return false };
        let Some(conv) = g.nodes[p].op.as_any_mut().downcast_mut::<Conv>() else { return false };
        let (scale, shift) = match conv.activation {
            FusedActivation::HardSwish => (1.0, 0.0),
            FusedActivation::HardSwishAffine { scale, shift } => (scale, shift),
            _ => return false,
        };
        let (scale, shift) = match op {
            BinOp::Mul => (scale * k, shift * k),
            _ => (scale, shift + k),
        };
        conv.activation = FusedActivation::HardSwishAffine { scale, shift };
        splice(g, p, c);
        true
    }))
}

/// `(Mul or Add, y, k)` when node `c` is `y · k` or `y + k` (either order)
/// for an f32 `y` and a constant one-element `k` that does not broadcast
/// `y` to a higher rank.
fn scalar_step(g: &Graph, c: NodeId) -> Option<(BinOp, ValueId, f32)> {
    let (op, (a, b)) = [BinOp::Mul, BinOp::Add].into_iter().find_map(|op| Some((op, binary(g, c, op)?)))?;
    [(a, b), (b, a)].into_iter().find_map(|(y, k)| {
        let value = scalar_beside(g, k, y)?;
        (g.values[y].fact.dtype == Some(DType::F32)).then_some((op, y, value))
    })
}

#[cfg(test)]
mod tests {
    use uniml_data::{SymbolicShape, Tensor};

    use super::*;
    use crate::op::Fact;
    use crate::ops::elementwise::binary::Binary;
    use crate::ops::elementwise::clip::Clip;
    use crate::ops::nn::padding::{AutoPad, Window};
    use crate::ops::nn::test_util::rand_vec;
    use crate::passes::test_graph::{first_output, node};

    /// PP-LCNet's block as paddle2onnx writes it: `Conv` (no bias) `+ B`,
    /// HardSwish spelled out, `· a + b`, then a padded depthwise Conv. After
    /// the CPU passes two Convs remain (the first with the whole chain in its
    /// epilogue) and the output matches the graph as written.
    #[test]
    fn cpu_passes_leave_one_conv_per_conv() {
        let mut g = Graph::default();
        let shape = [1, 4, 7, 7];
        let x = g.add_value("x", Fact::new(DType::F32, SymbolicShape::known(&shape)));
        g.inputs.push(x);
        let k = |g: &mut Graph, name: &str, shape: &[usize], vals: Vec<f32>| g.add_const(name, Tensor::from_vec(shape, vals).unwrap());
        let w = k(&mut g, "w", &[8, 4, 1, 1], rand_vec(32, 1).iter().map(|v| v * 4.0 - 2.0).collect());
        let bias = k(&mut g, "bias", &[1, 8, 1, 1], rand_vec(8, 2));
        let (three, lo, hi, six) = (k(&mut g, "3", &[1], vec![3.0]), k(&mut g, "0", &[], vec![0.0]), k(&mut g, "6", &[], vec![6.0]), k(&mut g, "6b", &[1], vec![6.0]));
        let (a, b) = (k(&mut g, "a", &[1], vec![0.63]), k(&mut g, "b", &[1], vec![-0.55]));
        let dw = k(&mut g, "dw", &[8, 1, 3, 3], rand_vec(72, 3));
        let window = |s| Window { strides: vec![s, s], auto_pad: AutoPad::SameUpper, ..Default::default() };
        let y = node(&mut g, "conv", Box::new(Conv::new(None, window(1), 1)), &[x, w]);
        let y = node(&mut g, "bias", Box::new(Binary::new(BinOp::Add)), &[y, bias]);
        let t = node(&mut g, "plus3", Box::new(Binary::new(BinOp::Add)), &[y, three]);
        let t = node(&mut g, "clip", Box::new(Clip::default()), &[t, lo, hi]);
        let t = node(&mut g, "times", Box::new(Binary::new(BinOp::Mul)), &[y, t]);
        let t = node(&mut g, "div", Box::new(Binary::new(BinOp::Div)), &[t, six]);
        let t = node(&mut g, "scale", Box::new(Binary::new(BinOp::Mul)), &[a, t]);
        let t = node(&mut g, "shift", Box::new(Binary::new(BinOp::Add)), &[t, b]);
        let z = node(&mut g, "dw", Box::new(Conv::new(None, window(1), 8)), &[t, dw]);
        g.outputs = vec![z];
        g.infer_facts().unwrap();

        let xs = Tensor::from_vec(&shape, rand_vec(196, 5).iter().map(|v| v * 4.0 - 2.0).collect()).unwrap();
        let want = first_output(&g, x, &xs);
        crate::passes::run_passes(&mut g, crate::ops::CPU_PASSES).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(ops, ["Conv", "Conv"], "{ops:?}");
        let conv = g.nodes[0].op.as_any().downcast_ref::<Conv>().unwrap();
        assert_eq!(conv.activation, FusedActivation::HardSwishAffine { scale: 0.63, shift: -0.55 });
        let got = first_output(&g, x, &xs);
        for (w, o) in want.iter().zip(&got) {
            assert!((w - o).abs() <= 1e-5 * w.abs().max(1.0), "{w} vs {o}");
        }
    }

    /// An `Add` of a one-element tensor of higher rank than the Conv's output
    /// broadcasts it: not taken.
    #[test]
    fn rank_raising_constants_are_left_alone() {
        let mut g = Graph::default();
        let x = g.add_value("x", Fact::new(DType::F32, SymbolicShape::known(&[1, 2, 3, 3])));
        g.inputs.push(x);
        let w = g.add_const("w", Tensor::from_vec(&[2, 2, 1, 1], rand_vec(4, 1)).unwrap());
        let b = g.add_const("b", Tensor::from_vec(&[1, 1, 1, 1, 1], vec![0.5f32]).unwrap());
        let mut conv = Conv::new(None, Window::default(), 1);
        conv.activation = FusedActivation::HardSwish;
        let y = node(&mut g, "conv", Box::new(conv), &[x, w]);
        let y = node(&mut g, "shift", Box::new(Binary::new(BinOp::Add)), &[y, b]);
        g.outputs = vec![y];
        g.infer_facts().unwrap();
        assert!(!fuse_activation_affine(&mut g).unwrap());
        assert_eq!(g.nodes.len(), 2);
    }
}
