//! (CPU only) The bias `Add` and the activation after a `MatMul` join its
//! GEMM epilogue, as transformer exports spell every dense layer:
//! `Gelu(Add(MatMul(x, W), b))` becomes one `MatMul(x, W, b)` writing each
//! output once (unfused, the Add and the Gelu were two more passes over a
//! `tokens × 1536` tensor per layer). The GPU backend does not lower the
//! fused form; these passes run only when the whole graph stays on the CPU.

use uniml_data::{DType, Result};

use super::conv_fusion::{fuse_activation, sole_producer, splice};
use crate::graph::{Graph, ValueId};
use crate::ops::nn::matmul::MatMul;
use crate::ops::nn::FusedActivation;

/// `Add(MatMul(x, W), b)` (either order) → `MatMul(x, W, b)` where `b` is an
/// f32 constant of `N` values (shape `[N]`, or ones before it up to the
/// product's rank, so the sum has the product's shape) and `W`'s last dim
/// is `N`.
pub fn fuse_matmul_bias(g: &mut Graph) -> Result<bool> {
    Ok(super::rewrite_until_fixed(g, |g, producers, uses, c| {
        let Some((a, b)) = super::add_operands(&g.nodes[c]) else { return false };
        for (y, bias) in [(a, b), (b, a)] {
            let Some(p) = sole_producer(g, y, producers, uses) else { continue };
            let mm = &g.nodes[p];
            let Some(op) = mm.op.as_any().downcast_ref::<MatMul>() else { continue };
            if op.activation != FusedActivation::None || mm.inputs.len() != 2 || mm.outputs.len() != 1 {
                continue;
            }
            let Some(Some(w)) = mm.inputs.get(1).copied() else { continue };
            if is_row_bias(g, y, w, bias) {
                g.nodes[p].inputs.push(Some(bias));
                splice(g, p, c);
                return true;
            }
        }
        false
    }))
}

/// Whether adding `bias` to the f32 product `y = x · w` is adding one
/// constant value per output column, leaving `y`'s shape as it is.
fn is_row_bias(g: &Graph, y: ValueId, w: ValueId, bias: ValueId) -> bool {
    let (fy, fw) = (&g.values[y].fact, &g.values[w].fact);
    let Some(t) = g.konst(bias) else { return false };
    let (Some(sy), Some(sw)) = (&fy.shape, &fw.shape) else { return false };
    let n = match sw.0.last().and_then(|d| d.known()) {
        Some(n) if sw.rank() >= 2 => n,
        _ => return false,
    };
    let dims = t.shape();
    fy.dtype == Some(DType::F32)
        && t.dtype() == DType::F32
        && dims.len() <= sy.rank()
        && dims.last() == Some(&n)
        && dims[..dims.len() - 1].iter().all(|&d| d == 1)
}

/// `Act(MatMul(..))` → the activation in the MatMul's epilogue (after its
/// bias, if [`fuse_matmul_bias`] gave it one).
pub fn fuse_matmul_activation(g: &mut Graph) -> Result<bool> {
    fuse_activation(g, |op, act| match op.downcast_mut::<MatMul>() {
        Some(mm) if mm.activation == FusedActivation::None => {
            mm.activation = act;
            true
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::run_once;
    use crate::ops::elementwise::binary::{BinOp, Binary};
    use crate::ops::elementwise::unary::{Unary, UnaryOp};
    use crate::ops::nn::test_util::rand_vec;
    use crate::parallel::Serial;
    use crate::passes::test_graph::{f32_input, node};
    use uniml_data::Tensor;

    /// A BERT feed-forward block, `Gelu(Add(b1, MatMul(x, W1)))` then
    /// `Add(MatMul(h, W2), b2)` with `b2` shaped `[1, 1, N]`, plus forms that
    /// must stay apart: a bias that broadcasts the product to a larger shape,
    /// and a product read twice. After the CPU passes the two dense layers
    /// are single MatMuls and the outputs match the graph as written.
    #[test]
    fn dense_layers_take_bias_and_gelu() {
        let mut g = Graph::default();
        let (t, d, f) = (7usize, 24usize, 40usize);
        let x = f32_input(&mut g, "x", &[1, t, d]);
        let konst = |g: &mut Graph, name: &str, shape: &[usize], seed: u64| {
            let n = shape.iter().product();
            g.add_const(name, Tensor::from_vec(shape, rand_vec(n, seed).iter().map(|v| v - 0.5).collect()).unwrap())
        };
        let w1 = konst(&mut g, "w1", &[d, f], 1);
        let b1 = konst(&mut g, "b1", &[f], 2);
        let w2 = konst(&mut g, "w2", &[f, d], 3);
        let b2 = konst(&mut g, "b2", &[1, 1, d], 4);
        let h = node(&mut g, "mm1", Box::new(MatMul::default()), &[x, w1]);
        let h = node(&mut g, "add1", Box::new(Binary::new(BinOp::Add)), &[b1, h]);
        let h = node(&mut g, "gelu", Box::new(Unary::new(UnaryOp::Gelu { tanh: false })), &[h]);
        let y = node(&mut g, "mm2", Box::new(MatMul::default()), &[h, w2]);
        let y = node(&mut g, "add2", Box::new(Binary::new(BinOp::Add)), &[y, b2]);
        // [2, 1, d] broadcasts [1, t, d] to [2, t, d]: not a row bias.
        let wide = konst(&mut g, "wide", &[2, 1, d], 5);
        let z = node(&mut g, "mm3", Box::new(MatMul::default()), &[h, w2]);
        let z2 = node(&mut g, "add3", Box::new(Binary::new(BinOp::Add)), &[z, wide]);
        // The product also read by a Relu: the Add must not swallow it.
        let r = node(&mut g, "relu", Box::new(Unary::new(UnaryOp::Relu)), &[z]);
        g.outputs = vec![y, z2, r];
        g.infer_facts().unwrap();

        let xs = Tensor::from_vec(&[1, t, d], rand_vec(t * d, 6).iter().map(|v| v * 4.0 - 2.0).collect()).unwrap();
        let run = |g: &Graph| -> Vec<Vec<f32>> {
            let outs = run_once(g, &[(x, xs.view())], &Serial, u64::MAX).unwrap();
            outs.into_iter().map(|v| v.into_tensor().unwrap().as_slice::<f32>().unwrap().to_vec()).collect()
        };
        let want = run(&g);
        crate::passes::run_passes(&mut g, crate::ops::CPU_PASSES).unwrap();
        let ops: Vec<String> = g.nodes.iter().map(|n| format!("{}/{}", n.op.name(), n.inputs.len())).collect();
        assert_eq!(ops, ["MatMul/3", "MatMul/3", "MatMul/2", "Add/2", "Relu/1"], "{ops:?}");
        let mm1 = g.nodes[0].op.as_any().downcast_ref::<MatMul>().unwrap();
        assert_eq!(mm1.activation, FusedActivation::Gelu);
        let got = run(&g);
        for (w, o) in want.iter().zip(&got) {
            crate::ops::nn::test_util::assert_close(o, w, 1e-5);
        }
        assert!(want[0].iter().any(|&v| v < -0.05), "the GELU's negative side is exercised");
    }

    /// A fused bias of the wrong length is a clear error, not a wrong read.
    #[test]
    fn wrong_bias_length_is_an_error() {
        let a = Tensor::from_vec(&[2, 3], vec![1.0; 6]).unwrap();
        let b = Tensor::from_vec(&[3, 4], vec![1.0; 12]).unwrap();
        let bias = Tensor::from_vec(&[3], vec![1.0; 3]).unwrap();
        let err = crate::ops::nn::test_util::run(&MatMul::default(), &[Some(&a), Some(&b), Some(&bias)]).unwrap_err();
        assert!(err.to_string().contains("bias has 3 values for 4 output columns"), "{err}");
    }
}
