//! (CPU only) A batch-1 channel `Concat` of convolutions → one
//! [`ConvConcat`] in which each convolution read only by the `Concat`
//! writes its channels of the output in place (no copy of its result).

use uniml_data::{DType, Result};

use super::conv_fusion::sole_producer;
use crate::graph::Graph;
use crate::ops::nn::conv::Conv;
use crate::ops::nn::conv_concat::{ConcatPart, ConvConcat};
use crate::ops::shape::concat::Concat;
use crate::ops::util::norm_axis;

/// Run after the conv activation and residual fusions (their outputs are
/// then the Concat's inputs). Needs a known batch of 1 and f32 throughout.
pub fn fuse_concat_convs(g: &mut Graph) -> Result<bool> {
    Ok(super::rewrite_until_fixed(g, |g, producers, uses, c| {
        let node = &g.nodes[c];
        let Some(cat) = node.op.as_any().downcast_ref::<Concat>() else { return false };
        let fact = match node.outputs.as_slice() {
            [out] => &g.values[*out].fact,
            _ => return false,
        };
        let Some(shape) = &fact.shape else { return false };
        if fact.dtype != Some(DType::F32) || shape.rank() < 3 || shape.0[0].known() != Some(1) || norm_axis(cat.axis, shape.rank()).ok() != Some(1) {
            return false;
        }
        let Some(values) = node.inputs.iter().copied().collect::<Option<Vec<_>>>() else { return false };
        if values.iter().any(|&v| g.values[v].fact.dtype != Some(DType::F32)) {
            return false;
        }
        let (mut parts, mut inputs, mut convs) = (Vec::new(), Vec::new(), Vec::new());
        for v in values {
            let conv = sole_producer(g, v, producers, uses).and_then(|p| {
                let n = &g.nodes[p];
                let conv = n.op.as_any().downcast_ref::<Conv>()?;
                (!conv.residual && n.outputs.len() == 1).then(|| (p, conv.clone()))
            });
            match conv {
                Some((p, conv)) if !convs.contains(&p) => {
                    parts.push(ConcatPart::Conv(conv, g.nodes[p].inputs.len()));
                    inputs.extend(g.nodes[p].inputs.iter().copied());
                    convs.push(p);
                }
                _ => {
                    parts.push(ConcatPart::Copy);
                    inputs.push(Some(v));
                }
            }
        }
        if convs.is_empty() {
            return false;
        }
        g.nodes[c].op = Box::new(ConvConcat { parts });
        g.nodes[c].inputs = inputs;
        super::remove_nodes(g, convs);
        true
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::elementwise::unary::{Unary, UnaryOp};
    use crate::ops::nn::padding::{AutoPad, Window};
    use crate::ops::nn::test_util::rand_vec;
    use crate::passes::test_graph::{f32_input, first_output, node};
    use uniml_data::{SymbolicShape, Tensor};

    /// A fire module (`s = Relu(Conv1x1(x))`, then `Concat(Relu(Conv1x1(s)),
    /// Relu(Conv3x3(s)), s)`) and a batch-2 copy of it: after the CPU passes the
    /// batch-1 Concat is one ConvConcat (both convs in place, `s` copied), the
    /// batch-2 graph keeps its Concat, and every output matches the graph as
    /// written.
    #[test]
    fn fire_module_convs_write_into_the_concat() {
        for batch in [1usize, 2] {
            let mut g = Graph::default();
            let shape = [batch, 6, 7, 5];
            let x = f32_input(&mut g, "x", &shape);
            let konst = |g: &mut Graph, name: &str, shape: &[usize], seed: u64| {
                let n = shape.iter().product();
                g.add_const(name, Tensor::from_vec(shape, rand_vec(n, seed).iter().map(|v| v - 0.5).collect()).unwrap())
            };
            let same = || Window { strides: vec![1, 1], auto_pad: AutoPad::SameUpper, ..Default::default() };
            let (ws, bs) = (konst(&mut g, "ws", &[4, 6, 1, 1], 1), konst(&mut g, "bs", &[4], 2));
            let s = node(&mut g, "squeeze", Box::new(Conv::new(None, same(), 1)), &[x, ws, bs]);
            let s = node(&mut g, "relu_s", Box::new(Unary::new(UnaryOp::Relu)), &[s]);
            let (w1, w3) = (konst(&mut g, "w1", &[5, 4, 1, 1], 3), konst(&mut g, "w3", &[8, 4, 3, 3], 4));
            let b3 = konst(&mut g, "b3", &[8], 5);
            let e1 = node(&mut g, "e1", Box::new(Conv::new(None, same(), 1)), &[s, w1]);
            let e1 = node(&mut g, "relu1", Box::new(Unary::new(UnaryOp::Relu)), &[e1]);
            let e3 = node(&mut g, "e3", Box::new(Conv::new(None, same(), 1)), &[s, w3, b3]);
            let e3 = node(&mut g, "relu3", Box::new(Unary::new(UnaryOp::Relu)), &[e3]);
            let y = node(&mut g, "cat", Box::new(Concat { axis: -3 }), &[e1, e3, s]);
            g.outputs = vec![y];
            g.infer_facts().unwrap();
            let xs = Tensor::from_vec(&shape, rand_vec(shape.iter().product(), 6).iter().map(|v| v * 2.0 - 1.0).collect()).unwrap();
            let want = first_output(&g, x, &xs);
            crate::passes::run_passes(&mut g, crate::ops::CPU_PASSES).unwrap();
            let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
            let fused = if batch == 1 { vec!["Conv", "ConvConcat"] } else { vec!["Conv", "Conv", "Conv", "Concat"] };
            assert_eq!(ops, fused, "batch {batch}");
            assert_eq!(g.values[g.outputs[0]].fact.shape, Some(SymbolicShape::known(&[batch, 17, 7, 5])));
            let got = first_output(&g, x, &xs);
            crate::ops::nn::test_util::assert_close(&got, &want, 1e-5);
            assert!(want.iter().any(|&v| v > 0.0) && want.contains(&0.0), "the Relus cut somewhere");
        }
    }

    /// The op itself at batch 2 (the pass never builds that, the op still
    /// computes it) and with a part whose spatial dims differ (an error
    /// naming both shapes).
    #[test]
    fn batch_two_and_mismatched_parts() {
        let conv = Conv::new(None, Window { strides: vec![1, 1], ..Default::default() }, 1);
        let op = ConvConcat { parts: vec![ConcatPart::Copy, ConcatPart::Conv(conv.clone(), 2)] };
        let x = Tensor::from_vec(&[2, 3, 4, 4], rand_vec(96, 1)).unwrap();
        let w = Tensor::from_vec(&[2, 3, 1, 1], rand_vec(6, 2)).unwrap();
        let got = crate::ops::nn::test_util::run(&op, &[Some(&x), Some(&x), Some(&w)]).unwrap().remove(0);
        let c = crate::ops::nn::test_util::run(&conv, &[Some(&x), Some(&w)]).unwrap().remove(0);
        let want = crate::ops::nn::test_util::run(&Concat { axis: 1 }, &[Some(&x), Some(&c)]).unwrap().remove(0);
        assert_eq!(got.shape(), &[2, 5, 4, 4]);
        assert_eq!(got.as_slice::<f32>().unwrap(), want.as_slice::<f32>().unwrap());
        let small = Tensor::from_vec(&[2, 3, 3, 4], rand_vec(72, 3)).unwrap();
        let err = crate::ops::nn::test_util::run(&op, &[Some(&small), Some(&x), Some(&w)]).unwrap_err();
        assert!(err.to_string().contains("differ outside axis 1"), "{err}");
    }
}
