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
fn sole_producer(g: &Graph, v: ValueId, producers: &[Option<NodeId>], uses: &[usize]) -> Option<NodeId> {
    (uses[v] == 1 && !g.outputs.contains(&v)).then(|| producers[v]).flatten()
}

/// Redirects the producer `p` to write `out` (the consumer's output) and drops node `c`.
fn splice(g: &mut Graph, p: NodeId, c: NodeId) {
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
fn activation_of(g: &Graph, n: NodeId) -> Option<FusedActivation> {
    let node = &g.nodes[n];
    if let Some(u) = node.op.as_any().downcast_ref::<Unary>() {
        return match u.op {
            UnaryOp::Relu => Some(FusedActivation::Relu),
            UnaryOp::Sigmoid => Some(FusedActivation::Sigmoid),
            UnaryOp::HardSwish => Some(FusedActivation::HardSwish),
            UnaryOp::LeakyRelu { alpha } => Some(FusedActivation::LeakyRelu { alpha }),
            UnaryOp::HardSigmoid { alpha, beta } => Some(FusedActivation::HardSigmoid { alpha, beta }),
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
    let mut changed = false;
    'scan: loop {
        let producers = g.producers();
        let uses = g.use_counts();
        for c in 0..g.nodes.len() {
            let Some(act) = activation_of(g, c) else { continue };
            let Some(Some(x)) = g.nodes[c].inputs.first().copied() else { continue };
            if g.values[x].fact.dtype != Some(DType::F32) {
                continue;
            }
            let Some(p) = sole_producer(g, x, &producers, &uses) else { continue };
            let Some(conv) = g.nodes[p].op.as_any_mut().downcast_mut::<Conv>() else { continue };
            if conv.activation != FusedActivation::None {
                continue;
            }
            conv.activation = act;
            splice(g, p, c);
            changed = true;
            continue 'scan;
        }
        break;
    }
    Ok(changed)
}

/// `Add(Conv(x), z)` (either order, `z` of the conv output's exact shape,
/// no activation yet) → `Conv(x, W, B, z)` with [`Conv::residual`]; run
/// [`fuse_conv_activation`] after it so that `Relu(Add(..))` joins too. The
/// output then overwrites `z`'s buffer when `z` dies there (ResNet blocks,
/// MobileNet's inverted residuals): no separate pass over the tensor. CPU
/// only: the GPU backend does not lower a residual Conv.
pub fn fuse_conv_residual(g: &mut Graph) -> Result<bool> {
    let mut changed = false;
    'scan: loop {
        let producers = g.producers();
        let uses = g.use_counts();
        for c in 0..g.nodes.len() {
            let add = &g.nodes[c];
            if !add.op.as_any().downcast_ref::<Binary>().is_some_and(|b| b.op == BinOp::Add) || add.outputs.len() != 1 {
                continue;
            }
            let (Some(Some(a)), Some(Some(b))) = (add.inputs.first().copied(), add.inputs.get(1).copied()) else { continue };
            for (y, z) in [(a, b), (b, a)] {
                if y == z || !same_f32_shape(g, y, z) {
                    continue;
                }
                let Some(p) = sole_producer(g, y, &producers, &uses) else { continue };
                let Some(conv) = g.nodes[p].op.as_any_mut().downcast_mut::<Conv>() else { continue };
                if conv.activation != FusedActivation::None || conv.residual {
                    continue;
                }
                conv.residual = true;
                let inputs = &mut g.nodes[p].inputs;
                inputs.resize(3, None);
                inputs.push(Some(z));
                splice(g, p, c);
                changed = true;
                continue 'scan;
            }
        }
        break;
    }
    Ok(changed)
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
