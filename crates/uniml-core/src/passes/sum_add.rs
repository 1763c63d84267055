//! `Sum` of two inputs → `Add`: the same broadcast and values, in the form
//! the fusions match (Caffe2-exported ResNets, e.g. the onnx wheel's
//! `light_resnet50`, spell their residual adds as `Sum`; unfused, the Sum
//! and the Relu after it were two extra passes over every block's output).

use uniml_data::Result;

use crate::graph::Graph;
use crate::ops::elementwise::binary::{BinOp, Binary};
use crate::ops::elementwise::variadic::{Variadic, VariadicOp};

pub fn sum_pairs_to_add(g: &mut Graph) -> Result<bool> {
    let mut changed = false;
    for node in &mut g.nodes {
        let is_sum = node.op.as_any().downcast_ref::<Variadic>().is_some_and(|v| v.op == VariadicOp::Sum);
        if is_sum && node.outputs.len() == 1 && matches!(node.inputs.as_slice(), [Some(_), Some(_)]) {
            node.op = Box::new(Binary::new(BinOp::Add));
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::run_once;
    use crate::graph::ValueId;
    use crate::op::{Fact, Op};
    use crate::ops::elementwise::unary::{Unary, UnaryOp};
    use crate::ops::nn::conv::Conv;
    use crate::ops::nn::padding::{AutoPad, Window};
    use crate::ops::nn::test_util::rand_vec;
    use crate::parallel::Serial;
    use uniml_data::{DType, SymbolicShape, Tensor};

    /// `Relu(Sum(Conv(h), h))` with `h = Relu(x)`, and a three-input `Sum`:
    /// after the CPU passes the two-input Sum is a residual fused into the
    /// Conv with the Relu, the three-input one stays, and the outputs match
    /// the graph as written.
    #[test]
    fn two_input_sum_becomes_a_fused_residual() {
        let mut g = Graph::default();
        let shape = [1, 4, 5, 5];
        let x = g.add_value("x", Fact { dtype: Some(DType::F32), shape: Some(SymbolicShape::known(&shape)), konst: None, is_sequence: false });
        g.inputs.push(x);
        let node = |g: &mut Graph, name: &str, op: Box<dyn Op>, ins: &[ValueId]| {
            let out = g.add_value(format!("{name}.out"), Fact::unknown());
            g.add_node(name, op, ins.iter().map(|&v| Some(v)).collect(), vec![out]);
            out
        };
        let h = node(&mut g, "pre", Box::new(Unary::new(UnaryOp::Relu)), &[x]);
        let w = g.add_const("w", Tensor::from_vec(&[4, 4, 3, 3], rand_vec(144, 1)).unwrap());
        let window = Window { strides: vec![1, 1], auto_pad: AutoPad::SameUpper, ..Default::default() };
        let y = node(&mut g, "conv", Box::new(Conv::new(None, window, 1)), &[h, w]);
        let y = node(&mut g, "sum", Box::new(Variadic::new(VariadicOp::Sum)), &[y, h]);
        let y = node(&mut g, "relu", Box::new(Unary::new(UnaryOp::Relu)), &[y]);
        let z = node(&mut g, "sum3", Box::new(Variadic::new(VariadicOp::Sum)), &[x, x, y]);
        g.outputs = vec![y, z];
        g.infer_facts().unwrap();
        let xs = Tensor::from_vec(&shape, rand_vec(100, 2).iter().map(|v| v * 2.0 - 1.0).collect()).unwrap();
        let run = |g: &Graph| -> Vec<Vec<f32>> {
            let outs = run_once(g, &[(x, xs.view())], &Serial, u64::MAX).unwrap();
            outs.into_iter().map(|v| v.into_tensor().unwrap().as_slice::<f32>().unwrap().to_vec()).collect()
        };
        let want = run(&g);
        crate::passes::run_passes(&mut g, crate::ops::CPU_PASSES).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(ops, ["Relu", "Conv", "Sum"], "{ops:?}");
        let got = run(&g);
        for (a, b) in want.iter().zip(&got) {
            crate::ops::nn::test_util::assert_close(b, a, 1e-5);
        }
    }
}
