//! Rewrites around convolutions: BatchNormalization folded into the conv's
//! constant weights, a following activation fused into the conv's epilogue,
//! and (CPU only) a residual `Add` fused into it.

use std::sync::Arc;

use uniml_data::{DType, Result, Tensor};

use crate::graph::{Graph, NodeId, ValueId};
use crate::op::Fact;
use crate::ops::elementwise::binary::{BinOp, Binary};
use crate::ops::elementwise::clip::Clip;
use crate::ops::elementwise::unary::{Unary, UnaryOp};
use crate::ops::nn::batchnorm::{scale_shift, BatchNorm};
use crate::ops::nn::conv::{fold_batchnorm, Conv};
use crate::ops::nn::FusedActivation;

fn f32s(g: &Graph, v: Option<ValueId>) -> Option<Vec<f32>> {
    let t = g.konst(v?)?;
    (t.dtype() == DType::F32).then(|| t.as_slice::<f32>().ok().map(|s| s.to_vec())).flatten()
}

/// The single producer of `v` if `v` is read by exactly one node and is not a graph output.
pub(super) fn sole_producer(g: &Graph, v: ValueId, producers: &[Option<NodeId>], uses: &[usize]) -> Option<NodeId> {
    (uses[v] == 1 && !g.outputs.contains(&v)).then(|| producers[v]).flatten()
}

/// Redirects the producer `p` to write `out` (the consumer's output) and drops node `c`.
pub(super) fn splice(g: &mut Graph, p: NodeId, c: NodeId) {
    let out = g.nodes[c].outputs[0];
    g.nodes[p].outputs[0] = out;
    g.nodes.remove(c);
}

/// `BatchNormalization(Conv(x, W, B))` with constant parameters → `Conv(x, W', B')`.
pub fn fold_batchnorm_into_conv(g: &mut Graph) -> Result<bool> {
    let mut changed = false;
    'scan: loop {
        let producers = g.producers();
        let uses = g.use_counts();
        for c in 0..g.nodes.len() {
            let bn_node = &g.nodes[c];
            let Some(bn) = bn_node.op.as_any().downcast_ref::<BatchNorm>() else { continue };
            if bn.training || bn.activation != FusedActivation::None || bn_node.outputs.len() != 1 || bn_node.inputs.len() < 5 {
                continue;
            }
            let Some(Some(x)) = bn_node.inputs.first().copied() else { continue };
            let Some(p) = sole_producer(g, x, &producers, &uses) else { continue };
            let Some(conv) = g.nodes[p].op.as_any().downcast_ref::<Conv>() else { continue };
            if conv.activation != FusedActivation::None {
                continue;
            }
            let param = |i: usize| f32s(g, bn_node.inputs.get(i).copied().flatten());
            let (Some(scale), Some(bias), Some(mean), Some(var)) = (param(1), param(2), param(3), param(4)) else { continue };
            let Some(Some(wv)) = g.nodes[p].inputs.get(1).copied() else { continue };
            let Some(w) = g.konst(wv).cloned() else { continue };
            let b = match g.nodes[p].inputs.get(2).copied().flatten() {
                Some(bv) => match g.konst(bv) {
                    Some(t) => Some(t.clone()),
                    None => continue,
                },
                None => None,
            };
            if w.dtype() != DType::F32 || b.as_ref().is_some_and(|b| b.dtype() != DType::F32) {
                continue;
            }
            let (a, shift) = scale_shift(&scale, &bias, &mean, &var, bn.epsilon);
            let Ok((nw, nb)) = fold_batchnorm(&w, b.as_deref(), &a, &shift) else { continue };
            let base = g.nodes[p].name.clone();
            let nw = g.add_value(format!("{base}.weight_bn"), Fact::constant(Arc::new(nw)));
            let nb = g.add_value(format!("{base}.bias_bn"), Fact::constant(Arc::new(nb)));
            let inputs = &mut g.nodes[p].inputs;
            inputs[1] = Some(nw);
            if inputs.len() > 2 {
                inputs[2] = Some(nb);
            } else {
                inputs.push(Some(nb));
            }
            splice(g, p, c);
            changed = true;
            continue 'scan;
        }
        break;
    }
    Ok(changed)
}

/// The fused form of an activation node, if it has one.
pub(super) fn activation_of(g: &Graph, n: NodeId) -> Option<FusedActivation> {
    let node = &g.nodes[n];
    if let Some(u) = node.op.as_any().downcast_ref::<Unary>() {
        return match u.op {
            UnaryOp::Relu => Some(FusedActivation::Relu),
            UnaryOp::Sigmoid => Some(FusedActivation::Sigmoid),
            UnaryOp::HardSwish => Some(FusedActivation::HardSwish),
            UnaryOp::LeakyRelu { alpha } => Some(FusedActivation::LeakyRelu { alpha }),
            UnaryOp::HardSigmoid { alpha, beta } => Some(FusedActivation::HardSigmoid { alpha, beta }),
            UnaryOp::Gelu { tanh: false } => Some(FusedActivation::Gelu),
            _ => None,
        };
    }
    if let Some(c) = node.op.as_any().downcast_ref::<Clip>() {
        let bound = |i: usize, attr: Option<f32>, default: f32| -> Option<f32> {
            match node.inputs.get(i).copied().flatten() {
                Some(v) => {
                    let t: &Tensor = g.konst(v)?;
                    (t.dtype() == DType::F32 && t.len() == 1).then(|| t.as_slice::<f32>().ok().map(|s| s[0])).flatten()
                }
                None => Some(attr.unwrap_or(default)),
            }
        };
        return Some(FusedActivation::Clip { min: bound(1, c.min, f32::NEG_INFINITY)?, max: bound(2, c.max, f32::INFINITY)? });
    }
    None
}

/// `Act(Conv(x))` → `Conv(x)` with the activation in its epilogue.
pub fn fuse_conv_activation(g: &mut Graph) -> Result<bool> {
    fuse_activation(g, |op, act| match op.downcast_mut::<Conv>() {
        Some(conv) if conv.activation == FusedActivation::None => {
            conv.activation = act;
            true
        }
        _ => false,
    })
}

/// Splices every activation node into its f32 input's sole producer when
/// `take(producer op, activation)` accepts it (and records it there).
pub(super) fn fuse_activation(g: &mut Graph, take: impl Fn(&mut dyn std::any::Any, FusedActivation) -> bool) -> Result<bool> {
    Ok(super::rewrite_until_fixed(g, |g, producers, uses, c| {
        let Some(act) = activation_of(g, c) else { return false };
        let Some(Some(x)) = g.nodes[c].inputs.first().copied() else { return false };
        if g.values[x].fact.dtype != Some(DType::F32) {
            return false;
        }
        let Some(p) = sole_producer(g, x, producers, uses) else { return false };
        if g.nodes[p].outputs.len() != 1 || !take(g.nodes[p].op.as_any_mut(), act) {
            return false;
        }
        splice(g, p, c);
        true
    }))
}

/// `Add(Conv(x), z)` (either order, `z` of the conv output's exact shape,
/// no activation yet) → `Conv(x, W, B, z)` with [`Conv::residual`]; run
/// [`fuse_conv_activation`] after it so that `Relu(Add(..))` joins too. The
/// output then overwrites `z`'s buffer when `z` dies there (ResNet blocks,
/// MobileNet's inverted residuals): no separate pass over the tensor. CPU
/// only: the GPU backend does not lower a residual Conv.
pub fn fuse_conv_residual(g: &mut Graph) -> Result<bool> {
    Ok(super::rewrite_until_fixed(g, |g, producers, uses, c| {
        let Some((a, b)) = super::add_operands(&g.nodes[c]) else { return false };
        for (y, z) in [(a, b), (b, a)] {
            if y == z || !same_f32_shape(g, y, z) {
                continue;
            }
            let Some(p) = sole_producer(g, y, producers, uses) else { continue };
            let Some(conv) = g.nodes[p].op.as_any_mut().downcast_mut::<Conv>() else { continue };
            if conv.activation != FusedActivation::None || conv.residual {
                continue;
            }
            conv.residual = true;
            let inputs = &mut g.nodes[p].inputs;
            inputs.resize(3, None);
            inputs.push(Some(z));
            splice(g, p, c);
            return true;
        }
        false
    }))
}

/// Whether `a` and `b` are f32 tensors of one fully determined shape (every
/// dim a number or the same symbol), so adding them needs no broadcasting.
fn same_f32_shape(g: &Graph, a: ValueId, b: ValueId) -> bool {
    let (fa, fb) = (&g.values[a].fact, &g.values[b].fact);
    let determined = |s: &uniml_data::SymbolicShape| s.0.iter().all(|d| !matches!(d, uniml_data::Dim::Unknown));
    fa.dtype == Some(DType::F32)
        && fb.dtype == Some(DType::F32)
        && !fa.is_sequence
        && !fb.is_sequence
        && matches!((&fa.shape, &fb.shape), (Some(sa), Some(sb)) if sa == sb && determined(sa))
}

/// The per-channel values of a constant `k` broadcast against a tensor of
/// rank `rank` with `c` channels on axis 1 (shapes `[c,1,1]`, `[1,c,1,1]`,
/// `[1]`, `[]`, ...), without `k` broadcasting the tensor to a larger shape.
fn per_channel(k: &Tensor, rank: usize, c: usize) -> Option<Vec<f32>> {
    let ks = k.shape();
    if k.dtype() != DType::F32 || ks.len() > rank || rank < 2 {
        return None;
    }
    let v = k.as_slice::<f32>().ok()?;
    // Axis 1 of the tensor, counted in k's right-aligned dims.
    let ch_axis = (ks.len() + 1).checked_sub(rank);
    for (i, &d) in ks.iter().enumerate() {
        if d != 1 && !(Some(i) == ch_axis && d == c) {
            return None;
        }
    }
    match v.len() {
        1 => Some(vec![v[0]; c]),
        n if n == c => Some(v.to_vec()),
        _ => None,
    }
}

/// `Mul(y, s)` / `Add(y, t)` with `s`, `t` constant per channel and `y` the
/// sole use of a Conv's (or an inference BatchNormalization's) output →
/// folded into that node's constants: `W·s, B·s` / `B + t` for the Conv,
/// `scale·s, bias·s` / `bias + t` for the BatchNormalization. Exporters
/// often write a normalisation as BatchNormalization (or a bare Conv)
/// followed by such a Mul and Add (light_densenet121 has 121 of each); left
/// alone, each is a pass over the whole activation.
pub fn fold_channel_affine(g: &mut Graph) -> Result<bool> {
    let mut changed = false;
    'scan: loop {
        let producers = g.producers();
        let uses = g.use_counts();
        for c in 0..g.nodes.len() {
            let node = &g.nodes[c];
            let Some(op) = node.op.as_any().downcast_ref::<Binary>().map(|b| b.op) else { continue };
            if !matches!(op, BinOp::Mul | BinOp::Add) || node.outputs.len() != 1 {
                continue;
            }
            let (Some(Some(a)), Some(Some(b))) = (node.inputs.first().copied(), node.inputs.get(1).copied()) else { continue };
            for (y, k) in [(a, b), (b, a)] {
                let Some(kt) = g.konst(k) else { continue };
                let Some(shape) = g.values[y].fact.shape.as_ref() else { continue };
                let Some(ch) = shape.0.get(1).and_then(|d| d.known()) else { continue };
                if g.values[y].fact.dtype != Some(DType::F32) {
                    continue;
                }
                let Some(vals) = per_channel(kt, shape.rank(), ch) else { continue };
                let Some(p) = sole_producer(g, y, &producers, &uses) else { continue };
                let folded = if g.nodes[p].op.as_any().is::<Conv>() {
                    fold_into_conv(g, p, op, &vals)
                } else if g.nodes[p].op.as_any().is::<BatchNorm>() {
                    fold_into_batchnorm(g, p, op, &vals)
                } else {
                    false
                };
                if folded {
                    splice(g, p, c);
                    changed = true;
                    continue 'scan;
                }
            }
        }
        break;
    }
    Ok(changed)
}

/// `Conv → Mul/Add by vals[out channel]` into the conv's weights and bias.
fn fold_into_conv(g: &mut Graph, p: NodeId, op: BinOp, vals: &[f32]) -> bool {
    let Some(conv) = g.nodes[p].op.as_any().downcast_ref::<Conv>() else { return false };
    if conv.activation != FusedActivation::None || conv.residual {
        return false;
    }
    let Some(Some(wv)) = g.nodes[p].inputs.get(1).copied() else { return false };
    let Some(w) = g.konst(wv).cloned() else { return false };
    let bias = match g.nodes[p].inputs.get(2).copied().flatten() {
        Some(bv) => match f32s(g, Some(bv)) {
            Some(b) => Some(b),
            None => return false,
        },
        None => None,
    };
    let m = vals.len();
    if w.dtype() != DType::F32 || w.shape().first() != Some(&m) || bias.as_ref().is_some_and(|b| b.len() != m) {
        return false;
    }
    let base = g.nodes[p].name.clone();
    let inputs_len = g.nodes[p].inputs.len();
    let mut nb = bias.unwrap_or_else(|| vec![0.0; m]);
    if op == BinOp::Mul {
        let Ok(wd) = w.as_slice::<f32>() else { return false };
        let per = wd.len() / m;
        let nw: Vec<f32> = wd.iter().enumerate().map(|(i, &v)| v * vals[i / per.max(1)]).collect();
        nb.iter_mut().zip(vals).for_each(|(b, s)| *b *= s);
        let Ok(nw) = Tensor::from_vec(w.shape(), nw) else { return false };
        let nw = g.add_value(format!("{base}.weight_scaled"), Fact::constant(Arc::new(nw)));
        g.nodes[p].inputs[1] = Some(nw);
    } else {
        nb.iter_mut().zip(vals).for_each(|(b, t)| *b += t);
    }
    let Ok(nb) = Tensor::from_vec(&[m], nb) else { return false };
    let nb = g.add_value(format!("{base}.bias_shifted"), Fact::constant(Arc::new(nb)));
    let inputs = &mut g.nodes[p].inputs;
    if inputs_len > 2 {
        inputs[2] = Some(nb);
    } else {
        inputs.push(Some(nb));
    }
    true
}

/// `BatchNormalization → Mul/Add by vals[channel]` into its scale and bias.
fn fold_into_batchnorm(g: &mut Graph, p: NodeId, op: BinOp, vals: &[f32]) -> bool {
    let Some(bn) = g.nodes[p].op.as_any().downcast_ref::<BatchNorm>() else { return false };
    if bn.training || bn.activation != FusedActivation::None || g.nodes[p].outputs.len() != 1 || g.nodes[p].inputs.len() < 5 {
        return false;
    }
    let param = |i: usize| f32s(g, g.nodes[p].inputs.get(i).copied().flatten());
    let (Some(mut scale), Some(mut bias)) = (param(1), param(2)) else { return false };
    if scale.len() != vals.len() || bias.len() != vals.len() {
        return false;
    }
    if op == BinOp::Mul {
        scale.iter_mut().zip(vals).for_each(|(v, s)| *v *= s);
        bias.iter_mut().zip(vals).for_each(|(v, s)| *v *= s);
    } else {
        bias.iter_mut().zip(vals).for_each(|(v, t)| *v += t);
    }
    let base = g.nodes[p].name.clone();
    let n = vals.len();
    for (i, v, what) in [(1, scale, "scale"), (2, bias, "bias")] {
        let Ok(t) = Tensor::from_vec(&[n], v) else { return false };
        let id = g.add_value(format!("{base}.{what}_folded"), Fact::constant(Arc::new(t)));
        g.nodes[p].inputs[i] = Some(id);
    }
    true
}

/// `Act(BatchNormalization(x))` (inference) → the activation applied in the
/// normalisation's own pass (CPU only: the GPU backend runs no
/// BatchNormalization kernel).
pub fn fuse_batchnorm_activation(g: &mut Graph) -> Result<bool> {
    fuse_activation(g, |op, act| match op.downcast_mut::<BatchNorm>() {
        Some(bn) if !bn.training && bn.activation == FusedActivation::None => {
            bn.activation = act;
            true
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::run_once;
    use crate::ops::elementwise::unary::{Unary, UnaryOp};
    use crate::ops::nn::padding::{AutoPad, Window};
    use crate::ops::nn::test_util::rand_vec;
    use crate::parallel::Serial;
    use uniml_data::SymbolicShape;

    fn konst(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> ValueId {
        let n = shape.iter().product();
        g.add_const(name, Tensor::from_vec(shape, rand_vec(n, seed)).unwrap())
    }

    fn node(g: &mut Graph, name: &str, op: Box<dyn crate::op::Op>, inputs: &[ValueId]) -> ValueId {
        let out = g.add_value(format!("{name}.out"), Fact::unknown());
        g.add_node(name, op, inputs.iter().map(|&v| Some(v)).collect(), vec![out]);
        out
    }

    /// `h = Relu(x)`; `Relu(Add(Add(Mul(Conv(h), s), t), h))` and
    /// `Relu(Add(Mul(BN(x), s), t))`: after the CPU passes one Conv (per-channel
    /// affine folded, residual `h` donated, Relu fused) and one BatchNormalization
    /// (affine folded, Relu fused) remain, and the outputs match the graph as written.
    #[test]
    fn cpu_passes_fold_affine_residual_and_activations() {
        let mut g = Graph::default();
        let shape = [1, 4, 6, 6];
        let x = g.add_value("x", Fact { dtype: Some(DType::F32), shape: Some(SymbolicShape::known(&shape)), konst: None, is_sequence: false });
        g.inputs.push(x);
        let h = node(&mut g, "pre", Box::new(Unary::new(UnaryOp::Relu)), &[x]);
        let w = konst(&mut g, "w", &[4, 4, 3, 3], 1);
        let b = konst(&mut g, "b", &[4], 2);
        let window = Window { strides: vec![1, 1], auto_pad: AutoPad::SameUpper, ..Default::default() };
        let y = node(&mut g, "conv", Box::new(Conv::new(None, window, 1)), &[h, w, b]);
        let s = konst(&mut g, "s", &[4, 1, 1], 3);
        let t = konst(&mut g, "t", &[1, 4, 1, 1], 4);
        let y = node(&mut g, "mul", Box::new(Binary::new(BinOp::Mul)), &[y, s]);
        let y = node(&mut g, "add", Box::new(Binary::new(BinOp::Add)), &[t, y]);
        let y = node(&mut g, "res", Box::new(Binary::new(BinOp::Add)), &[y, h]);
        let y = node(&mut g, "relu", Box::new(Unary::new(UnaryOp::Relu)), &[y]);
        let params: Vec<ValueId> = (0..4u64).map(|i| konst(&mut g, &format!("bn{i}"), &[4], 10 + i)).collect();
        let var = g.add_const("var", Tensor::from_vec(&[4], vec![0.5, 1.0, 2.0, 0.25]).unwrap());
        let bn = BatchNorm { epsilon: 1e-5, momentum: 0.9, training: false, activation: FusedActivation::None };
        let z = node(&mut g, "bn", Box::new(bn), &[x, params[0], params[1], params[2], var]);
        let z = node(&mut g, "bn_mul", Box::new(Binary::new(BinOp::Mul)), &[z, s]);
        let z = node(&mut g, "bn_add", Box::new(Binary::new(BinOp::Add)), &[z, t]);
        let z = node(&mut g, "bn_relu", Box::new(Unary::new(UnaryOp::Relu)), &[z]);
        g.outputs = vec![y, z];
        g.infer_facts().unwrap();

        let xs = Tensor::from_vec(&shape, rand_vec(144, 5).iter().map(|v| v * 2.0 - 1.0).collect()).unwrap();
        let run = |g: &Graph| -> Vec<Vec<f32>> {
            let outs = run_once(g, &[(x, xs.view())], &Serial, u64::MAX).unwrap();
            outs.into_iter().map(|v| v.into_tensor().unwrap().as_slice::<f32>().unwrap().to_vec()).collect()
        };
        let want = run(&g);
        crate::passes::run_passes(&mut g, crate::ops::CPU_PASSES).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(ops, ["Relu", "Conv", "BatchNormalization"], "{ops:?}");
        let got = run(&g);
        for (w, o) in want.iter().zip(&got) {
            assert_eq!(w.len(), o.len());
            for (a, b) in w.iter().zip(o) {
                assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
        assert!(want[0].iter().any(|&v| v > 0.0) && want[0].contains(&0.0), "the Relu cuts somewhere");
    }
}
