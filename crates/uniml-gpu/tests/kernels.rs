//! Every GPU kernel diffed against the CPU kernel of the same core op, on
//! random shapes and attributes (proptest). Runs on whatever Vulkan/Metal/DX12
//! adapter exists (lavapipe in CI: `bash scripts/setup-gpu.sh`); skips with a
//! loud message only when there is none (`cargo xtask gpu-test` fails then).

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use uniml_core::exec::run_once;
use uniml_core::op::ValueRef;
use uniml_core::ops::elementwise::binary::{BinOp, Binary, Pow};
use uniml_core::ops::elementwise::clip::Clip;
use uniml_core::ops::elementwise::unary::{Unary, UnaryOp};
use uniml_core::ops::nn::conv::Conv;
use uniml_core::ops::nn::conv_transpose::ConvTranspose;
use uniml_core::ops::nn::gemm::Gemm;
use uniml_core::ops::nn::global_pool::{GlobalPool, GlobalPoolKind};
use uniml_core::ops::nn::matmul::MatMul;
use uniml_core::ops::nn::norm::LayerNorm;
use uniml_core::ops::nn::padding::Window;
use uniml_core::ops::nn::pool::{Pool, PoolKind};
use uniml_core::ops::nn::resize::{AspectPolicy, Resize};
use uniml_core::ops::nn::resize_kernels::{CoordMode, InterpMode, Interp, NearestMode};
use uniml_core::ops::nn::softmax::{Softmax, SoftmaxKind};
use uniml_core::ops::nn::FusedActivation;
use uniml_core::ops::reduce::reducer::{Reduce, ReduceKind};
use uniml_core::ops::shape::concat::Concat;
use uniml_core::ops::shape::expand::Expand;
use uniml_core::ops::shape::gather::Gather;
use uniml_core::ops::shape::reshape::Reshape;
use uniml_core::ops::shape::slice::Slice;
use uniml_core::ops::shape::transpose::Transpose;
use uniml_core::{Fact, Graph, Op, Plan, Serial, SymbolicShape, Tensor};
use uniml_gpu::{Device, GpuContext, GpuPrecision, GpuSession};

fn ctx() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new() {
        Ok(c) => {
            eprintln!("GPU adapter: {}", c.describe());
            Some(c)
        }
        Err(e) => {
            assert!(std::env::var_os("UNIML_REQUIRE_GPU").is_none(), "UNIML_REQUIRE_GPU is set but there is no GPU adapter: {e}");
            eprintln!("\n!!!!! SKIPPING GPU KERNEL TESTS: no GPU adapter: {e}\n!!!!! run `bash scripts/setup-gpu.sh` (cargo xtask gpu-test does and fails without an adapter)\n");
            None
        }
    })
    .clone()
}

/// A deterministic f32 tensor with values in [-2, 2).
fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    Tensor::from_vec(shape, v).unwrap()
}

enum In {
    /// A graph input (uploaded at run time).
    Feed(Tensor),
    /// A constant (weights: uploaded at session creation; parameters: read on the host).
    Const(Tensor),
}

/// Runs one node on CPU and GPU; asserts it was placed on the GPU and the outputs agree.
fn check(op: Box<dyn Op>, inputs: Vec<Option<In>>, tol: f32) {
    check_graph(vec![(op, (0..inputs.len()).map(Some).collect())], inputs, tol)
}

/// Tolerance of f16 storage mode, relative to the output's scale (max |value|, at least 1):
/// inputs and weights are rounded to f16 (the CPU reference gets the same rounded values),
/// every stored result is rounded to f16 (relative error 2^-11 ≈ 4.9e-4 each), arithmetic is f32:
/// one output rounding is at most 4.9e-4 of the scale; 2e-3 leaves room for chained nodes.
const F16_TOL: f32 = 2e-3;

/// Ops and, per op, its inputs by index (see [`check_graph`]).
type Nodes = Vec<(Box<dyn Op>, Vec<Option<usize>>)>;

/// A chain of nodes: node k reads inputs by index into `inputs` (or the previous node's output, index usize::MAX).
/// Checked twice: f32 storage against the CPU within `tol`, f16 storage within [`F16_TOL`].
fn check_graph(nodes: Nodes, inputs: Vec<Option<In>>, tol: f32) {
    check_graph_on(ctx(), nodes, inputs, tol)
}

/// A device on the same adapter whose sessions use the tiled GEMM kernels for large products
/// (on a software adapter like lavapipe products of a small K take the direct kernel by default).
fn tiled_ctx() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    ctx()?;
    CTX.get_or_init(|| {
        let c = GpuContext::new().expect("a second device");
        c.force_tiled_gemm();
        Some(c)
    })
    .clone()
}

/// [`check`] on the device of [`tiled_ctx`].
fn check_tiled(op: Box<dyn Op>, inputs: Vec<Option<In>>, tol: f32) {
    check_graph_on(tiled_ctx(), vec![(op, (0..inputs.len()).map(Some).collect())], inputs, tol)
}

fn check_graph_on(ctx: Option<Arc<GpuContext>>, nodes: Nodes, inputs: Vec<Option<In>>, tol: f32) {
    let Some(ctx) = ctx else { return };
    let label = nodes.iter().map(|(op, _)| op.name()).collect::<Vec<_>>().join("+");
    let (mut g, plan, feeds) = build_graph(nodes, &inputs);
    run_and_compare(&ctx, &g, &plan, &feeds, GpuPrecision::F32, tol, &label);
    // f16 storage: the CPU gets the f16-rounded inputs and weights the GPU stores.
    for v in g.values.iter_mut() {
        if let Some(t) = v.fact.konst.clone() {
            v.fact.konst = Some(Arc::new(round16(&t)));
        }
    }
    let feeds16: Vec<(usize, Tensor)> = feeds.iter().map(|(v, t)| (*v, round16(t))).collect();
    run_and_compare(&ctx, &g, &plan, &feeds16, GpuPrecision::F16Storage, F16_TOL, &label);
}

/// f32 values rounded through f16 (other dtypes unchanged).
fn round16(t: &Tensor) -> Tensor {
    match t.as_slice::<f32>() {
        Ok(v) => Tensor::from_vec(t.shape(), v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect::<Vec<f32>>()).unwrap(),
        Err(_) => t.clone(),
    }
}

fn build_graph(nodes: Nodes, inputs: &[Option<In>]) -> (Graph, Plan, Vec<(usize, Tensor)>) {
    let mut g = Graph::default();
    let mut feeds = Vec::new();
    let mut ids = Vec::new();
    for (i, inp) in inputs.iter().enumerate() {
        ids.push(match inp {
            None => None,
            Some(In::Const(t)) => Some(g.add_const(format!("c{i}"), t.clone())),
            Some(In::Feed(t)) => {
                let v = g.add_value(format!("x{i}"), Fact::new(t.dtype(), SymbolicShape::known(t.shape())));
                g.inputs.push(v);
                feeds.push((v, t.clone()));
                Some(v)
            }
        });
    }
    let mut prev = None;
    for (k, (op, refs)) in nodes.into_iter().enumerate() {
        let out = g.add_value(format!("y{k}"), Fact::unknown());
        let ins = refs.iter().map(|r| r.and_then(|i| if i == usize::MAX { prev } else { ids[i] })).collect();
        g.add_node(format!("n{k}"), op, ins, vec![out]);
        prev = Some(out);
    }
    g.outputs.push(prev.unwrap());
    g.infer_facts().unwrap();
    let plan = Plan::new(&g).unwrap();
    (g, plan, feeds)
}

/// Runs the graph on the CPU and on `ctx` with `precision`; asserts every node ran on the
/// GPU and the outputs agree within `tol` × scale. Returns the largest |diff| / scale.
fn run_and_compare(ctx: &Arc<GpuContext>, g: &Graph, plan: &Plan, feeds: &[(usize, Tensor)], precision: GpuPrecision, tol: f32, label: &str) -> f32 {
    let views: Vec<_> = feeds.iter().map(|(v, t)| (*v, t.view())).collect();
    let want = run_once(g, &views, &Serial, 1 << 30).unwrap().pop().unwrap().into_tensor().unwrap();
    let sess = GpuSession::with_precision(ctx.clone(), g, plan, 1 << 30, precision).unwrap();
    LAST_CLEARS.with(|c| c.set(u32::MAX));
    let p = sess.placement();
    assert_eq!(p.gpu_nodes(), g.nodes.len(), "every node must be on the GPU:\n{}", p.table());
    let bound = feeds.iter().map(|(v, t)| (*v, ValueRef::Tensor(t.view()))).collect();
    let got = sess.run(g, plan, &Serial, bound).unwrap().pop().unwrap().into_tensor().unwrap();
    assert_eq!(got.shape(), want.shape());
    let (a, b) = (got.as_slice::<f32>().unwrap(), want.as_slice::<f32>().unwrap());
    let scale = b.iter().fold(1f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
    let mut worst = 0f32;
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let same_special = (x.is_nan() && y.is_nan()) || (x.is_infinite() && x == y);
        assert!((x - y).abs() <= tol * scale || same_special, "{label} ({precision:?}) element {i}: gpu {x} vs cpu {y} (scale {scale})");
        if !same_special {
            worst = worst.max((x - y).abs() / scale);
        }
    }
    if precision == GpuPrecision::F16Storage {
        eprintln!("f16-error {label}: {worst:.2e} of scale {scale}");
    }
    let st = sess.last_stats();
    assert!(st.submits <= 2, "one run should need one submit (plus the output download): {st:?}");
    if precision == GpuPrecision::F32 {
        assert_eq!(st.cleared_outputs, 0, "f32 storage never clears outputs");
    }
    LAST_CLEARS.with(|c| c.set(st.cleared_outputs));
    worst
}

thread_local! {
    /// `cleared_outputs` of the last [`run_and_compare`] on this thread.
    static LAST_CLEARS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// [`check_graph_on`] for one node; returns how many outputs the f16-storage run cleared
/// (kernels whose threads cannot own whole f16 words fall back to cleared, atomic stores).
fn f16_clears_on(ctx: Option<Arc<GpuContext>>, op: Box<dyn Op>, inputs: Vec<Option<In>>, tol: f32) -> Option<u32> {
    ctx.as_ref()?;
    check_graph_on(ctx, vec![(op, (0..inputs.len()).map(Some).collect())], inputs, tol);
    Some(LAST_CLEARS.with(|c| c.get()))
}

/// Asserts the f16 run of one node stored whole words (`paired`: no output cleared) or fell back
/// to per-element stores (one output cleared).
fn expect_paired(ctx: Option<Arc<GpuContext>>, what: &str, paired: bool, op: Box<dyn Op>, inputs: Vec<Option<In>>, tol: f32) {
    if let Some(c) = f16_clears_on(ctx, op, inputs, tol) {
        assert_eq!(c, if paired { 0 } else { 1 }, "{what}: f16 outputs cleared (0 = paired stores, 1 = atomic fallback)");
    }
}

fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_slice(&[v.len()], v).unwrap()
}

fn act_strategy() -> impl Strategy<Value = FusedActivation> {
    prop_oneof![
        Just(FusedActivation::None),
        Just(FusedActivation::Relu),
        Just(FusedActivation::Clip { min: 0.0, max: 6.0 }),
        Just(FusedActivation::Clip { min: f32::NEG_INFINITY, max: 1.0 }),
        Just(FusedActivation::HardSwish),
        Just(FusedActivation::HardSwishAffine { scale: 0.63, shift: -0.55 }),
        Just(FusedActivation::Sigmoid),
        Just(FusedActivation::SiLU),
        Just(FusedActivation::Gelu),
        Just(FusedActivation::LeakyRelu { alpha: 0.1 }),
        Just(FusedActivation::HardSigmoid { alpha: 0.2, beta: 0.5 }),
    ]
}

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn matmul_batched_broadcast(m in 1usize..70, k in 1usize..40, n in 1usize..70, ba in 0usize..3, bb in 0usize..3, seed in any::<u64>()) {
        let batch = [2usize, 3];
        let a: Vec<usize> = batch[2 - ba..].iter().copied().chain([m, k]).collect();
        let mut b: Vec<usize> = batch[2 - bb..].iter().copied().chain([k, n]).collect();
        if bb == 2 { b[0] = 1; } // broadcast a unit batch dim against A's
        check(Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&a, seed))), Some(In::Const(rand_tensor(&b, seed + 1)))], 1e-4);
    }

    #[test]
    fn gemm_transposes_bias_activation(m in 1usize..50, k in 1usize..50, n in 1usize..50, ta: bool, tb: bool, c in 0usize..4, alpha in -2f32..2.0, beta in -2f32..2.0, act in act_strategy(), seed in any::<u64>()) {
        let mut gm = Gemm::new(alpha, beta, ta, tb);
        gm.activation = act;
        let a = if ta { vec![k, m] } else { vec![m, k] };
        let b = if tb { vec![n, k] } else { vec![k, n] };
        let cs: Option<Vec<usize>> = [None, Some(vec![n]), Some(vec![m, n]), Some(vec![1])][c].clone();
        let mut ins = vec![Some(In::Feed(rand_tensor(&a, seed))), Some(In::Const(rand_tensor(&b, seed + 1)))];
        if let Some(cs) = cs { ins.push(Some(In::Const(rand_tensor(&cs, seed + 2)))); }
        check(Box::new(gm), ins, 1e-4);
    }

    #[test]
    fn conv_grouped_strided_padded_dilated(n in 1usize..3, cg in 1usize..5, mg in 1usize..6, group in 1usize..3, kh in 1usize..4, kw in 1usize..4,
        s in 1usize..3, d in 1usize..3, p in 0usize..3, h in 3usize..12, w in 3usize..12, one_d: bool, bias: bool, act in act_strategy(), seed in any::<u64>()) {
        let (c, m) = (cg * group, mg * group);
        let (xs, ws, win) = if one_d {
            (vec![n, c, w], vec![m, cg, kw], Window { strides: vec![s], dilations: vec![d], pads: vec![p, p + 1], ..Default::default() })
        } else {
            (vec![n, c, h, w], vec![m, cg, kh, kw], Window { strides: vec![s, 1], dilations: vec![d, 1], pads: vec![p, 1, p + 1, 0], ..Default::default() })
        };
        let span = (xs[xs.len() - 1] + 2 * p + 1).saturating_sub((ws[ws.len() - 1] - 1) * d + 1);
        prop_assume!(span > 0 && h + 2 * p + 1 > (kh - 1) * d + 1);
        let mut conv = Conv::new(None, win, group);
        conv.activation = act;
        let mut ins = vec![Some(In::Feed(rand_tensor(&xs, seed))), Some(In::Const(rand_tensor(&ws, seed + 1)))];
        if bias { ins.push(Some(In::Const(rand_tensor(&[m], seed + 2)))); }
        check(Box::new(conv), ins, 1e-4);
    }

    #[test]
    fn depthwise_conv(n in 1usize..3, c in 2usize..9, k in 1usize..6, s in 1usize..3, p in 0usize..3, h in 5usize..14, act in act_strategy(), seed in any::<u64>()) {
        let win = Window { strides: vec![s, s], pads: vec![p, p, p, p], ..Default::default() };
        let mut conv = Conv::new(None, win, c);
        conv.activation = act;
        prop_assume!(h + 2 * p >= k);
        check(Box::new(conv), vec![Some(In::Feed(rand_tensor(&[n, c, h, h + 1], seed))), Some(In::Const(rand_tensor(&[c, 1, k, k], seed + 1))), Some(In::Const(rand_tensor(&[c], seed + 2)))], 1e-4);
    }

    #[test]
    fn binary_broadcast(op in 0usize..8, a in proptest::collection::vec(1usize..5, 0..4), mask in proptest::collection::vec(any::<bool>(), 4), seed in any::<u64>()) {
        let b: Vec<usize> = a.iter().zip(&mask).map(|(&d, &m)| if m { 1 } else { d }).skip(if mask[3] { 1 } else { 0 }).collect();
        let opx: Box<dyn Op> = match op {
            0 => Box::new(Binary::new(BinOp::Add)),
            1 => Box::new(Binary::new(BinOp::Sub)),
            2 => Box::new(Binary::new(BinOp::Mul)),
            3 => Box::new(Binary::new(BinOp::Div)),
            4 => Box::new(Binary::new(BinOp::Max)),
            5 => Box::new(Binary::new(BinOp::Min)),
            6 => Box::new(Binary::new(BinOp::PRelu)),
            _ => Box::new(Pow),
        };
        let bt = if op == 7 { Tensor::from_vec(&b, vec![2.0f32; b.iter().product()]).unwrap() } else { rand_tensor(&b, seed + 1) };
        // Division by values near 0 is ill-conditioned; keep the divisor away from 0.
        let bt = if op == 3 { Tensor::from_vec(&b, bt.as_slice::<f32>().unwrap().iter().map(|v| if v.abs() < 0.25 { 0.25 } else { *v }).collect()).unwrap() } else { bt };
        let swap = mask[0] && op != 6 && op != 7;
        let (x, y) = (In::Feed(rand_tensor(&a, seed)), In::Feed(bt));
        check(opx, if swap { vec![Some(y), Some(x)] } else { vec![Some(x), Some(y)] }, 1e-5);
    }

    #[test]
    fn unary_ops(op in 0usize..22, shape in proptest::collection::vec(1usize..9, 1..4), seed in any::<u64>()) {
        let u = [UnaryOp::Abs, UnaryOp::Neg, UnaryOp::Relu, UnaryOp::Exp, UnaryOp::Erf, UnaryOp::Tanh, UnaryOp::Sigmoid,
            UnaryOp::LeakyRelu { alpha: 0.01 }, UnaryOp::HardSigmoid { alpha: 0.2, beta: 0.5 }, UnaryOp::HardSwish, UnaryOp::Softplus,
            UnaryOp::Gelu { tanh: false }, UnaryOp::Gelu { tanh: true }, UnaryOp::Elu { alpha: 1.0 }, UnaryOp::Softsign, UnaryOp::Floor,
            UnaryOp::Ceil, UnaryOp::Sin, UnaryOp::Cos, UnaryOp::Mish, UnaryOp::Selu { alpha: 1.67, gamma: 1.05 }, UnaryOp::Sqrt][op];
        let x = rand_tensor(&shape, seed);
        let x = if matches!(u, UnaryOp::Sqrt) { Tensor::from_vec(&shape, x.as_slice::<f32>().unwrap().iter().map(|v| v.abs()).collect()).unwrap() } else { x };
        check(Box::new(Unary::new(u)), vec![Some(In::Feed(x))], 2e-5);
    }

    #[test]
    fn clip_with_inputs_and_attributes(lo in -1f32..0.0, hi in 0f32..1.0, form in 0usize..3, seed in any::<u64>()) {
        let x = Some(In::Feed(rand_tensor(&[3, 7], seed)));
        let scalar = |v: f32| Some(In::Const(Tensor::from_vec(&[], vec![v]).unwrap()));
        match form {
            0 => check(Box::new(Clip { min: Some(lo), max: Some(hi) }), vec![x], 0.0),
            1 => check(Box::new(Clip::default()), vec![x, scalar(lo), scalar(hi)], 0.0),
            _ => check(Box::new(Clip::default()), vec![x, None, scalar(hi)], 0.0),
        }
    }

    #[test]
    fn pools(max: bool, include_pad: bool, k in 1usize..4, s in 1usize..3, p in 0usize..2, ceil: bool, h in 4usize..11, seed in any::<u64>()) {
        prop_assume!(p < k);
        let kind = if max { PoolKind::Max } else { PoolKind::Average { count_include_pad: include_pad } };
        let win = Window { strides: vec![s, s], pads: vec![p, p, p, p], ceil_mode: ceil, ..Default::default() };
        let pool = Pool { kind, kernel_shape: vec![k, k], window: win, storage_order: 0, with_indices: false };
        check(Box::new(pool), vec![Some(In::Feed(rand_tensor(&[2, 3, h, h + 2], seed)))], 1e-5);
    }

    #[test]
    fn rows_reduce_softmax_layernorm(which in 0usize..7, shape in proptest::collection::vec(1usize..7, 2..5), a in 0usize..4, seed in any::<u64>()) {
        let rank = shape.len();
        let a = a % rank;
        let x = Some(In::Feed(rand_tensor(&shape, seed)));
        match which {
            0 => check(Box::new(Reduce::new(ReduceKind::Mean, Some(vec![a as i64]), true, false)), vec![x], 1e-5),
            1 => check(Box::new(Reduce::new(ReduceKind::Sum, Some((a as i64..rank as i64).collect()), false, false)), vec![x], 1e-5),
            2 => check(Box::new(Reduce::new(ReduceKind::Max, None, true, false)), vec![x, Some(In::Const(i64s(&[-1])))], 0.0),
            3 => check(Box::new(Softmax { kind: SoftmaxKind::Softmax, axis: a as i64 - rank as i64, flatten_tail: false }), vec![x], 1e-5),
            4 => check(Box::new(Softmax { kind: SoftmaxKind::LogSoftmax, axis: a as i64, flatten_tail: true }), vec![x], 1e-5),
            5 => {
                let r: Vec<usize> = shape[a..].to_vec();
                check(Box::new(LayerNorm { axis: a as i64, epsilon: 1e-5 }), vec![x, Some(In::Const(rand_tensor(&r, seed + 1))), Some(In::Const(rand_tensor(&r, seed + 2)))], 1e-4)
            }
            _ => {
                let mut s4 = shape.clone();
                while s4.len() < 3 { s4.push(3); }
                check(Box::new(GlobalPool { kind: GlobalPoolKind::Average }), vec![Some(In::Feed(rand_tensor(&s4, seed)))], 1e-5)
            }
        }
    }

    #[test]
    fn layout_ops(which in 0usize..5, shape in proptest::collection::vec(1usize..6, 1..5), seed in any::<u64>(), pick in any::<u64>()) {
        let rank = shape.len();
        let x = rand_tensor(&shape, seed);
        match which {
            0 => {
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.rotate_left((pick as usize) % rank);
                check(Box::new(Transpose { perm: Some(perm) }), vec![Some(In::Feed(x))], 0.0)
            }
            1 => {
                let ax = (pick as usize) % rank;
                let d = shape[ax] as i64;
                let (st, en, step) = if pick % 2 == 0 { (1.min(d - 1), d, 1 + (pick / 7 % 2) as i64) } else { (d - 1, -d - 1, -1) };
                check(Box::new(Slice::default()), vec![Some(In::Feed(x)), Some(In::Const(i64s(&[st]))), Some(In::Const(i64s(&[en]))), Some(In::Const(i64s(&[ax as i64]))), Some(In::Const(i64s(&[step])))], 0.0)
            }
            2 => {
                let ax = (pick as usize) % rank;
                let mut s2 = shape.clone();
                s2[ax] = 1 + (pick as usize / 3) % 3;
                check(Box::new(Concat { axis: ax as i64 }), vec![Some(In::Feed(x)), Some(In::Const(rand_tensor(&s2, seed + 1))), Some(In::Feed(rand_tensor(&shape, seed + 2)))], 0.0)
            }
            3 => {
                let ax = (pick as usize) % rank;
                let d = shape[ax] as i64;
                let idx: Vec<i64> = (0..5).map(|i| (((pick % 1000) as i64 + i * 3) % (2 * d)) - d).collect();
                let idx = Tensor::from_vec(&[5], idx).unwrap();
                check(Box::new(Gather { axis: ax as i64 }), vec![Some(In::Const(x)), Some(In::Feed(idx))], 0.0)
            }
            _ => {
                let mut target: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let small: Vec<usize> = shape.iter().enumerate().map(|(i, &d)| if (pick >> i) & 1 == 1 { 1 } else { d }).collect();
                target.insert(0, 2);
                check(Box::new(Expand), vec![Some(In::Feed(rand_tensor(&small, seed))), Some(In::Const(i64s(&target)))], 0.0)
            }
        }
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn conv_transpose(n in 1usize..3, cg in 1usize..4, mg in 1usize..4, group in 1usize..3, k in 1usize..4, s in 1usize..3, d in 1usize..3,
        p in 0usize..2, op in 0usize..2, h in 2usize..7, one_d: bool, bias: bool, act in act_strategy(), seed in any::<u64>()) {
        prop_assume!(op < s.max(d) && p < k);
        let (c, m) = (cg * group, mg * group);
        let nd = if one_d { 1 } else { 2 };
        let ct = ConvTranspose {
            kernel_shape: None, strides: vec![s; nd], dilations: vec![d; nd], pads: Some(vec![p; 2 * nd]), output_padding: vec![op; nd],
            output_shape: None, auto_pad: Default::default(), group, activation: act, packed: Default::default(),
        };
        let (xs, ws) = if one_d { (vec![n, c, h], vec![c, mg, k]) } else { (vec![n, c, h, h + 1], vec![c, mg, k, k]) };
        let mut ins = vec![Some(In::Feed(rand_tensor(&xs, seed))), Some(In::Const(rand_tensor(&ws, seed + 1)))];
        if bias { ins.push(Some(In::Const(rand_tensor(&[m], seed + 2)))); }
        check(Box::new(ct), ins, 1e-4);
    }

    #[test]
    fn resize_modes(mode in 0usize..5, coord in 0usize..5, by_sizes: bool, h in 2usize..9, oh in 1usize..17, ow in 1usize..17, seed in any::<u64>()) {
        let mode = [InterpMode::Nearest(NearestMode::RoundPreferFloor), InterpMode::Nearest(NearestMode::Floor), InterpMode::Linear,
            InterpMode::Cubic { a: -0.75 }, InterpMode::Nearest(NearestMode::Ceil)][mode];
        let coord = [CoordMode::HalfPixel, CoordMode::AlignCorners, CoordMode::Asymmetric, CoordMode::PytorchHalfPixel, CoordMode::HalfPixelSymmetric][coord];
        let r = Resize {
            interp: Interp { mode, coord, exclude_outside: false, antialias: false, extrapolation_value: 0.0 },
            keep_aspect: AspectPolicy::Stretch, axes: None, roi_input: Some(1), scales_input: Some(2), sizes_input: Some(3),
            const_scales: None, op_name: "Resize",
        };
        let x = Some(In::Feed(rand_tensor(&[1, 2, h, h + 1], seed)));
        let (scales, sizes) = if by_sizes {
            (None, Some(In::Const(i64s(&[1, 2, oh as i64, ow as i64]))))
        } else {
            let (a, b) = (oh as f32 / 4.0 + 0.25, ow as f32 / 4.0 + 0.25);
            (Some(In::Const(Tensor::from_vec(&[4], vec![1.0f32, 1.0, a, b]).unwrap())), None)
        };
        check(Box::new(r), vec![x, None, scales, sizes], 1e-5);
    }
}

#[test]
fn reshape_is_a_zero_copy_view_between_kernels() {
    let x = rand_tensor(&[2, 3, 4], 7);
    check_graph(
        vec![
            (Box::new(Unary::new(UnaryOp::Relu)), vec![Some(0)]),
            (Box::new(Reshape { allowzero: false }), vec![Some(usize::MAX), Some(1)]),
            (Box::new(Unary::new(UnaryOp::Neg)), vec![Some(usize::MAX)]),
        ],
        vec![Some(In::Feed(x)), Some(In::Const(i64s(&[6, -1])))],
        0.0,
    );
}

#[test]
fn gather_rejects_out_of_range_indices_without_panicking() {
    let Some(ctx) = ctx() else { return };
    let mut g = Graph::default();
    let data = g.add_const("data", rand_tensor(&[4, 3], 1));
    let idx = g.add_value("idx", Fact::new(uniml_core::DType::I64, SymbolicShape::known(&[2])));
    g.inputs.push(idx);
    let y = g.add_value("y", Fact::unknown());
    g.add_node("gather", Box::new(Gather { axis: 0 }), vec![Some(data), Some(idx)], vec![y]);
    g.outputs.push(y);
    g.infer_facts().unwrap();
    let plan = Plan::new(&g).unwrap();
    let sess = GpuSession::new(ctx, &g, &plan, 1 << 30).unwrap();
    assert_eq!(sess.placement().nodes[0].device, Device::Gpu);
    let bad = Tensor::from_vec(&[2], vec![0i64, 9]).unwrap();
    let err = sess.run(&g, &plan, &Serial, vec![(idx, ValueRef::Tensor(bad.view()))]).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    // The session stays usable.
    let ok = Tensor::from_vec(&[2], vec![3i64, -1]).unwrap();
    sess.run(&g, &plan, &Serial, vec![(idx, ValueRef::Tensor(ok.view()))]).unwrap();
}

/// Products of at least 512×512 take the 8×8 block with vec4 fragment reads (128×128 tiles):
/// ragged edges in every dim, and a batched broadcast.
#[test]
fn large_matmul_uses_the_vec4_block_and_matches_the_cpu() {
    for (a, b) in [(vec![520, 37], vec![37, 530]), (vec![2, 515, 129], vec![129, 700])] {
        check_tiled(Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&a, 11))), Some(In::Const(rand_tensor(&b, 12)))], 1e-4);
    }
}

/// Products of more than 8192 outputs (and below 512×512) take the tiled 4×4 block (on a software
/// adapter, for K ≤ 32, only with `force_tiled_gemm`); smaller ones (the proptests above, mostly)
/// the direct one-thread-per-output kernel. Ragged tiles in every dim.
#[test]
fn medium_products_use_the_tiled_4x4_block_and_match_the_cpu() {
    for (a, b) in [(vec![130, 37], vec![37, 70]), (vec![3, 65, 20], vec![20, 50])] {
        check_tiled(Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&a, 21))), Some(In::Const(rand_tensor(&b, 22)))], 1e-4);
        // The same product on the default device (K ≤ 32: the direct kernel where the adapter is a software one).
        check(Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&a, 21))), Some(In::Const(rand_tensor(&b, 22)))], 1e-4);
    }
    let mut gm = Gemm::new(0.7, -1.3, true, true);
    gm.activation = FusedActivation::Relu;
    let ins = vec![Some(In::Feed(rand_tensor(&[33, 100], 23))), Some(In::Const(rand_tensor(&[90, 33], 24))), Some(In::Const(rand_tensor(&[90], 25)))];
    check_tiled(Box::new(gm), ins, 1e-4);
    let win = Window { strides: vec![2, 1], dilations: vec![1, 2], pads: vec![1, 2, 0, 1], ..Default::default() };
    let mut conv = Conv::new(None, win, 2);
    conv.activation = FusedActivation::Relu;
    let ins = vec![Some(In::Feed(rand_tensor(&[2, 6, 40, 23], 26))), Some(In::Const(rand_tensor(&[12, 3, 3, 2], 27))), Some(In::Const(rand_tensor(&[12], 28)))];
    check_tiled(Box::new(conv), ins, 1e-4);
}

/// Bytes of the lowered binding limit of [`small_ctx`].
const SMALL_BINDING: u64 = 64 << 10;

/// A second device whose `max_storage_buffer_binding_size` is lowered to 64 KiB, so
/// ordinary tensors exceed it and must be bound as several ranges.
fn small_ctx() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    ctx()?;
    CTX.get_or_init(|| {
        let c = GpuContext::with_max_binding(SMALL_BINDING).expect("a device with a lowered binding limit");
        c.force_tiled_gemm();
        assert!(c.limits.max_storage_buffer_binding_size <= SMALL_BINDING, "{:?}", c.limits.max_storage_buffer_binding_size);
        Some(c)
    })
    .clone()
}

/// One node with tensors above the binding limit, in f32 and f16 storage, against the CPU.
fn check_split(op: Box<dyn Op>, inputs: Vec<Option<In>>, tol: f32) {
    let Some(ctx) = small_ctx() else { return };
    let big = inputs.iter().flatten().any(|i| match i {
        In::Feed(t) | In::Const(t) => t.as_bytes().len() as u64 > 2 * ctx.limits.max_storage_buffer_binding_size,
    });
    assert!(big, "the test needs a tensor over twice the binding limit");
    let label = format!("{} (split)", op.name());
    let n = inputs.len();
    let (mut g, plan, feeds) = build_graph(vec![(op, (0..n).map(Some).collect())], &inputs);
    run_and_compare(&ctx, &g, &plan, &feeds, GpuPrecision::F32, tol, &label);
    for v in g.values.iter_mut() {
        if let Some(t) = v.fact.konst.clone() {
            v.fact.konst = Some(Arc::new(round16(&t)));
        }
    }
    let feeds16: Vec<(usize, Tensor)> = feeds.iter().map(|(v, t)| (*v, round16(t))).collect();
    run_and_compare(&ctx, &g, &plan, &feeds16, GpuPrecision::F16Storage, F16_TOL, &label);
}

/// [`check_split`] asserting the f16 run's store path (see [`expect_paired`]).
fn check_split_paired(paired: bool, op: Box<dyn Op>, inputs: Vec<Option<In>>, tol: f32) {
    if small_ctx().is_none() {
        return;
    }
    let what = format!("{} (split)", op.name());
    check_split(op, inputs, tol);
    assert_eq!(LAST_CLEARS.with(|c| c.get()), if paired { 0 } else { 1 }, "{what}: f16 outputs cleared (0 = paired stores)");
}

#[test]
fn gather_on_a_table_above_the_binding_limit() {
    // 3000 × 37 f32 = 444 KB: 7 ranges of 64 KiB (4 in f16).
    let idx: Vec<i64> = (0..50).map(|i| (i * 997 % 3000) as i64 - if i % 3 == 0 { 3000 } else { 0 }).collect();
    check_split(Box::new(Gather { axis: 0 }), vec![Some(In::Const(rand_tensor(&[3000, 37], 3))), Some(In::Feed(Tensor::from_vec(&[5, 10], idx).unwrap()))], 0.0);
}

#[test]
fn matmul_and_gemm_with_weights_above_the_binding_limit() {
    // 300 × 250 f32 = 300 KB weights.
    check_split(Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&[2, 3, 300], 4))), Some(In::Const(rand_tensor(&[300, 250], 5)))], 1e-4);
    check_split(Box::new(Gemm::new(1.0, 1.0, false, true)), vec![Some(In::Feed(rand_tensor(&[5, 300], 6))), Some(In::Const(rand_tensor(&[250, 300], 7))), Some(In::Const(rand_tensor(&[250], 8)))], 1e-4);
}

#[test]
fn elementwise_and_softmax_above_the_binding_limit() {
    // 70 000 f32 activations = 280 KB in, out and in the second operand.
    check_split(Box::new(Binary::new(BinOp::Add)), vec![Some(In::Feed(rand_tensor(&[7, 10000], 9))), Some(In::Const(rand_tensor(&[7, 10000], 10)))], 1e-6);
    check_split(Box::new(Softmax { kind: SoftmaxKind::Softmax, axis: -1, flatten_tail: false }), vec![Some(In::Feed(rand_tensor(&[7, 10000], 11)))], 1e-5);
}

#[test]
fn f16_storage_saturates_instead_of_overflowing() {
    // x · 1000 exceeds f16's range (65504) for |x| > 65.5: stored as ±65504, never inf,
    // so the following Sub stays finite; the f32 model's values are finite throughout.
    let Some(ctx) = ctx() else { return };
    let x = Tensor::from_vec(&[4], vec![1.0f32, -100.0, 100.0, 50.0]).unwrap();
    let k = Tensor::from_vec(&[1], vec![1000.0f32]).unwrap();
    let (g, plan, feeds) = build_graph(
        vec![(Box::new(Binary::new(BinOp::Mul)), vec![Some(0), Some(1)]), (Box::new(Binary::new(BinOp::Sub)), vec![Some(usize::MAX), Some(1)])],
        &[Some(In::Feed(x)), Some(In::Const(k))],
    );
    let sess = GpuSession::with_precision(ctx, &g, &plan, 1 << 30, GpuPrecision::F16Storage).unwrap();
    let bound = feeds.iter().map(|(v, t)| (*v, ValueRef::Tensor(t.view()))).collect();
    let got = sess.run(&g, &plan, &Serial, bound).unwrap().pop().unwrap().into_tensor().unwrap();
    // f32: [0, -101000, 99000, 49000]; f16 storage: the product saturates at ±65504, each
    // stored result is rounded to f16.
    let r = |v: f32| half::f16::from_f32(v.clamp(-65504.0, 65504.0)).to_f32();
    let want: Vec<f32> = [1.0f32, -100.0, 100.0, 50.0].iter().map(|&x| r(r(x * 1000.0) - 1000.0)).collect();
    assert_eq!(want[1], -65504.0);
    assert_eq!(got.as_slice::<f32>().unwrap(), &want[..]);
}

#[test]
fn f16_storage_halves_weight_memory_and_takes_f16_models() {
    let Some(ctx) = ctx() else { return };
    // An f16 model: f16 input, f16 weights; the GPU keeps them f16 (f16 storage) or widens them (f32).
    let w = rand_tensor(&[64, 32], 12);
    let w16 = Tensor::from_vec(&[64, 32], w.as_slice::<f32>().unwrap().iter().map(|&v| half::f16::from_f32(v)).collect::<Vec<_>>()).unwrap();
    let x = rand_tensor(&[3, 64], 13);
    let x16 = Tensor::from_vec(&[3, 64], x.as_slice::<f32>().unwrap().iter().map(|&v| half::f16::from_f32(v)).collect::<Vec<_>>()).unwrap();
    let (g, plan, _) = build_graph(vec![(Box::new(MatMul::default()), vec![Some(0), Some(1)])], &[Some(In::Feed(x16.clone())), Some(In::Const(w16))]);
    let want = run_once(&g, &[(g.inputs[0], x16.view())], &Serial, 1 << 30).unwrap().pop().unwrap().into_tensor().unwrap();
    let want: Vec<f32> = want.as_slice::<half::f16>().unwrap().iter().map(|v| v.to_f32()).collect();
    let mut bytes = Vec::new();
    for p in [GpuPrecision::F32, GpuPrecision::F16Storage] {
        let sess = GpuSession::with_precision(ctx.clone(), &g, &plan, 1 << 30, p).unwrap();
        assert_eq!(sess.placement().gpu_nodes(), 1, "{}", sess.placement().table());
        let got = sess.run(&g, &plan, &Serial, vec![(g.inputs[0], ValueRef::Tensor(x16.view()))]).unwrap().pop().unwrap().into_tensor().unwrap();
        assert_eq!(got.dtype(), uniml_core::DType::F16);
        for (a, b) in got.as_slice::<half::f16>().unwrap().iter().zip(&want) {
            assert!((a.to_f32() - b).abs() <= F16_TOL * 8.0, "{p:?}: {a} vs {b}");
        }
        bytes.push(sess.last_stats().weight_bytes);
    }
    assert_eq!(bytes, vec![64 * 32 * 4, 64 * 32 * 2]);
}

#[test]
fn max_reductions_of_all_negative_infinity_rows_stay_infinite() {
    // Found by the GPU conformance run (Attention's NaN-robust expansion tests ReduceMax == -inf).
    let ninf = f32::NEG_INFINITY;
    let x = Tensor::from_vec(&[2, 3], vec![ninf, ninf, ninf, 1.0, -2.0, 0.5]).unwrap();
    check(Box::new(Reduce::new(ReduceKind::Max, Some(vec![1]), true, false)), vec![Some(In::Feed(x.clone()))], 0.0);
    check(Box::new(GlobalPool { kind: GlobalPoolKind::Max }), vec![Some(In::Feed(Tensor::from_vec(&[1, 2, 3], x.as_slice::<f32>().unwrap().to_vec()).unwrap()))], 0.0);
    let y = Tensor::from_vec(&[2, 2], vec![f32::INFINITY, f32::INFINITY, 1.0, f32::INFINITY]).unwrap();
    check(Box::new(Reduce::new(ReduceKind::Min, Some(vec![0]), false, false)), vec![Some(In::Feed(y))], 0.0);
}

#[test]
fn prelu_with_a_per_channel_1d_slope() {
    // Found by the GPU conformance run (pytorch-converted PReLU_*_multiparam): a 1-D slope that does
    // not broadcast aligns with x's dim of its size, as the CPU kernel does.
    check(Box::new(Binary::new(BinOp::PRelu)), vec![Some(In::Feed(rand_tensor(&[2, 5, 3], 1))), Some(In::Const(rand_tensor(&[5], 2)))], 1e-6);
    check(Box::new(Binary::new(BinOp::PRelu)), vec![Some(In::Feed(rand_tensor(&[2, 4, 3, 3], 3))), Some(In::Const(rand_tensor(&[4], 4)))], 1e-6);
}

/// f16 storage writes whole words (two halves) with plain stores: every 1-D kernel and the row
/// kernels pair elements whatever the parity of the total (the last odd element's partner is the
/// padding half), the GEMM blocks pair columns when the row length N is even. An odd N in a tiled
/// GEMM (and a strided or odd-length Softmax row, an unaligned Concat) falls back to cleared,
/// atomic per-element stores. Each case: f32 and f16 storage against the CPU.
#[test]
fn f16_paired_stores_for_odd_and_even_sizes_in_every_family() {
    let feed = |s: &[usize], seed: u64| Some(In::Feed(rand_tensor(s, seed)));
    let konst = |s: &[usize], seed: u64| Some(In::Const(rand_tensor(s, seed)));
    for (shape, seed) in [(vec![3usize, 5, 7], 1u64), (vec![2, 6], 2), (vec![1], 3), (vec![4, 1, 9], 4)] {
        let what = format!("elementwise {shape:?}");
        expect_paired(ctx(), &what, true, Box::new(Unary::new(UnaryOp::Sigmoid)), vec![feed(&shape, seed)], 2e-5);
        expect_paired(ctx(), &what, true, Box::new(Binary::new(BinOp::Add)), vec![feed(&shape, seed), konst(&shape, seed + 1)], 1e-5);
        expect_paired(ctx(), &what, true, Box::new(Binary::new(BinOp::Mul)), vec![feed(&shape, seed), konst(&[1], seed + 1)], 1e-5);
        let last = vec![*shape.last().unwrap()];
        expect_paired(ctx(), &what, true, Box::new(Binary::new(BinOp::Sub)), vec![konst(&last, seed + 2), feed(&shape, seed)], 1e-5);
        expect_paired(ctx(), &what, true, Box::new(Clip { min: Some(-0.5), max: Some(0.5) }), vec![feed(&shape, seed)], 0.0);
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        perm.reverse();
        expect_paired(ctx(), &what, true, Box::new(Transpose { perm: Some(perm) }), vec![feed(&shape, seed)], 0.0);
    }
    // Row kernels: reductions pair rows (odd and even row counts), Softmax/LayerNorm pair within even rows.
    for (shape, seed) in [(vec![3usize, 5], 5u64), (vec![4, 6], 6), (vec![5, 2, 3], 7), (vec![1, 7], 8)] {
        let what = format!("rows {shape:?}");
        let x = || feed(&shape, seed);
        expect_paired(ctx(), &what, true, Box::new(Reduce::new(ReduceKind::Mean, Some(vec![-1]), true, false)), vec![x()], 1e-5);
        expect_paired(ctx(), &what, true, Box::new(Reduce::new(ReduceKind::Max, Some(vec![0]), false, false)), vec![x()], 0.0);
        let even = shape.last().unwrap() % 2 == 0;
        expect_paired(ctx(), &what, even, Box::new(Softmax { kind: SoftmaxKind::Softmax, axis: -1, flatten_tail: false }), vec![x()], 1e-5);
        // Softmax over a strided axis (inner > 1): per-element stores.
        expect_paired(ctx(), &what, false, Box::new(Softmax { kind: SoftmaxKind::LogSoftmax, axis: 0, flatten_tail: false }), vec![x()], 1e-5);
        let r = vec![*shape.last().unwrap()];
        expect_paired(ctx(), &what, even, Box::new(LayerNorm { axis: -1, epsilon: 1e-5 }), vec![x(), konst(&r, seed + 1), konst(&r, seed + 2)], 1e-4);
    }
    for (h, seed) in [(5usize, 9u64), (6, 10)] {
        let s = [2usize, 3, h, h + 1];
        expect_paired(ctx(), "global pool", true, Box::new(GlobalPool { kind: GlobalPoolKind::Average }), vec![feed(&s[..3], seed)], 1e-5);
        let win = Window { strides: vec![2, 2], pads: vec![1, 1, 1, 1], ..Default::default() };
        let pool = Pool { kind: PoolKind::Max, kernel_shape: vec![3, 3], window: win, storage_order: 0, with_indices: false };
        expect_paired(ctx(), "pool", true, Box::new(pool), vec![feed(&s, seed)], 0.0);
        let win = Window { strides: vec![1, 1], pads: vec![1, 1, 1, 1], ..Default::default() };
        expect_paired(ctx(), "depthwise", true, Box::new(Conv::new(None, win, 3)), vec![feed(&s, seed), konst(&[3, 1, 3, 3], seed + 1)], 1e-4);
        let ct = ConvTranspose {
            kernel_shape: None, strides: vec![2, 2], dilations: vec![1, 1], pads: Some(vec![0; 4]), output_padding: vec![0, 0],
            output_shape: None, auto_pad: Default::default(), group: 1, activation: FusedActivation::None, packed: Default::default(),
        };
        expect_paired(ctx(), "conv_transpose", true, Box::new(ct), vec![feed(&s, seed), konst(&[3, 2, 1, 2], seed + 1)], 1e-4);
        let idx = Tensor::from_vec(&[3], vec![2i64, 0, -1]).unwrap();
        expect_paired(ctx(), "gather", true, Box::new(Gather { axis: 3 }), vec![Some(In::Const(rand_tensor(&s, seed))), Some(In::Feed(idx))], 0.0);
        let r = Resize {
            interp: Interp { mode: InterpMode::Linear, coord: CoordMode::HalfPixel, exclude_outside: false, antialias: false, extrapolation_value: 0.0 },
            keep_aspect: AspectPolicy::Stretch, axes: None, roi_input: Some(1), scales_input: Some(2), sizes_input: Some(3),
            const_scales: None, op_name: "Resize",
        };
        let sizes = Some(In::Const(i64s(&[2, 3, 2 * h as i64 + 1, h as i64 + 2])));
        expect_paired(ctx(), "resize", true, Box::new(r), vec![feed(&s, seed), None, None, sizes], 1e-5);
        let (st, en, ax, step) = (i64s(&[1]), i64s(&[h as i64]), i64s(&[2]), i64s(&[2]));
        expect_paired(ctx(), "slice", true, Box::new(Slice::default()), vec![feed(&s, seed), Some(In::Const(st)), Some(In::Const(en)), Some(In::Const(ax)), Some(In::Const(step))], 0.0);
        expect_paired(ctx(), "expand", true, Box::new(Expand), vec![feed(&[3, 1, h], seed), Some(In::Const(i64s(&[2, 3, 5, h as i64])))], 0.0);
    }
    // Concat: paired when every input's block along the axis has even length.
    let x = |s: &[usize], seed: u64| Some(In::Feed(rand_tensor(s, seed)));
    expect_paired(ctx(), "concat even blocks", true, Box::new(Concat { axis: 1 }), vec![x(&[3, 2, 3], 1), x(&[3, 4, 3], 2)], 0.0);
    expect_paired(ctx(), "concat odd blocks", false, Box::new(Concat { axis: 1 }), vec![x(&[3, 1, 3], 1), x(&[3, 2, 3], 2)], 0.0);
}

/// GEMM row lengths: the direct kernel pairs the flat output (one thread per pair, A's loads
/// shared when N is even), the tiled 4×4 and vec4 8×8 blocks pair columns when N is even; an odd
/// N ≤ 64 with an even M goes through workgroup memory in the 4×4 block (whole tile rows, written
/// by flat pairs); other odd N fall back to atomic stores. Odd and even M, K and N; batched and
/// ragged tiles.
#[test]
fn f16_paired_gemm_stores_for_odd_and_even_row_lengths() {
    let mm = |a: &[usize], b: &[usize], seed: u64| vec![Some(In::Feed(rand_tensor(a, seed))), Some(In::Const(rand_tensor(b, seed + 1)))];
    for (m, k, n) in [(7usize, 5usize, 9usize), (6, 4, 8), (3, 33, 10), (5, 2, 1)] {
        expect_paired(ctx(), &format!("direct {m}x{k}x{n}"), true, Box::new(MatMul::default()), mm(&[2, m, k], &[k, n], 40), 1e-4);
    }
    for (m, k, n) in [(130usize, 37usize, 70usize), (129, 20, 71), (65, 16, 130), (3 * 65, 9, 51), (200, 37, 49), (140, 20, 63), (170, 5, 1)] {
        let paired = n % 2 == 0 || (n <= 64 && m % 2 == 0);
        expect_paired(tiled_ctx(), &format!("tiled 4x4 {m}x{k}x{n}"), paired, Box::new(MatMul::default()), mm(&[m, k], &[k, n], 41), 1e-4);
    }
    // Batched, staged (odd N ≤ 64, even M: every batch's rows start on a word) and not (odd M).
    expect_paired(tiled_ctx(), "tiled 4x4 batched staged", true, Box::new(MatMul::default()), mm(&[3, 66, 20], &[20, 49], 45), 1e-4);
    expect_paired(tiled_ctx(), "tiled 4x4 batched odd M", false, Box::new(MatMul::default()), mm(&[3, 67, 20], &[20, 49], 46), 1e-4);
    for (m, k, n) in [(520usize, 37usize, 530usize), (515, 20, 513), (516, 36, 514)] {
        let paired = n % 2 == 0;
        expect_paired(tiled_ctx(), &format!("tiled vec4 {m}x{k}x{n}"), paired, Box::new(MatMul::default()), mm(&[m, k], &[k, n], 42), 1e-4);
    }
    // Gemm with C and an activation: the second value of a pair gets its own column of C.
    for n in [90usize, 91] {
        let mut gm = Gemm::new(0.7, -1.3, false, true);
        gm.activation = FusedActivation::Relu;
        let ins = vec![Some(In::Feed(rand_tensor(&[100, 33], 43))), Some(In::Const(rand_tensor(&[n, 33], 44))), Some(In::Const(rand_tensor(&[n], 45)))];
        expect_paired(tiled_ctx(), &format!("gemm N={n}"), n % 2 == 0, Box::new(gm), ins, 1e-4);
    }
    // Pair loads (one f16 word per two values): A by k pairs (even K), B by n pairs (even N,
    // B contiguous in n: MatMul, Gemm without transB, a pointwise conv). Tiled and direct.
    let mut gm = Gemm::new(1.1, 0.5, false, false);
    gm.activation = FusedActivation::HardSwish;
    let ins = vec![Some(In::Feed(rand_tensor(&[100, 34], 49))), Some(In::Const(rand_tensor(&[34, 90], 50))), Some(In::Const(rand_tensor(&[100, 90], 51)))];
    expect_paired(tiled_ctx(), "gemm pair loads", true, Box::new(gm), ins, 1e-4);
    for (batch, c, h, w, m) in [(2usize, 6usize, 8usize, 12usize, 70usize), (2, 5, 8, 12, 70), (2, 6, 8, 12, 6), (3, 8, 7, 7, 66)] {
        let mut conv = Conv::new(None, Window::default(), 1);
        conv.activation = FusedActivation::Clip { min: 0.0, max: 6.0 };
        let ins = vec![Some(In::Feed(rand_tensor(&[batch, c, h, w], 52))), Some(In::Const(rand_tensor(&[m, c, 1, 1], 53))), Some(In::Const(rand_tensor(&[m], 54)))];
        expect_paired(tiled_ctx(), &format!("pointwise conv {batch}x{c}x{h}x{w} -> {m}"), true, Box::new(conv), ins, 1e-4);
    }
    // Conv as implicit GEMM: N = oh·ow (even 20·24; odd 21·23 > 64; odd 7·7 with an even and an
    // odd number of output channels); bias per output channel.
    for (batch, h, w, m) in [(2usize, 20usize, 24usize, 70usize), (2, 21, 23, 70), (4, 7, 7, 70), (4, 7, 7, 71)] {
        let win = Window { strides: vec![1, 1], pads: vec![1, 1, 1, 1], ..Default::default() };
        let mut conv = Conv::new(None, win, 1);
        conv.activation = FusedActivation::Relu;
        let ins = vec![Some(In::Feed(rand_tensor(&[batch, 4, h, w], 46))), Some(In::Const(rand_tensor(&[m, 4, 3, 3], 47))), Some(In::Const(rand_tensor(&[m], 48)))];
        let paired = (h * w) % 2 == 0 || (h * w <= 64 && m % 2 == 0);
        expect_paired(tiled_ctx(), &format!("conv {batch}x{h}x{w}, {m} channels"), paired, Box::new(conv), ins, 1e-4);
    }
}

/// Paired f16 stores into tensors bound as several 64 KiB ranges (a pair never straddles two
/// ranges: an f16 range holds whole words), odd totals included.
#[test]
fn f16_paired_stores_across_binding_ranges() {
    // 3 × 33 333 = 99 999 elements (400 KB f32, 200 KB f16): odd total, split output.
    check_split_paired(true, Box::new(Unary::new(UnaryOp::Tanh)), vec![Some(In::Feed(rand_tensor(&[3, 33333], 50)))], 2e-5);
    check_split_paired(true, Box::new(Binary::new(BinOp::Mul)), vec![Some(In::Feed(rand_tensor(&[3, 33333], 51))), Some(In::Const(rand_tensor(&[33333], 52)))], 1e-5);
    check_split_paired(true, Box::new(Reduce::new(ReduceKind::Sum, Some(vec![1]), false, false)), vec![Some(In::Feed(rand_tensor(&[33333, 3], 53)))], 1e-5);
    check_split_paired(true, Box::new(LayerNorm { axis: -1, epsilon: 1e-5 }), vec![Some(In::Feed(rand_tensor(&[30, 4000], 54))), Some(In::Const(rand_tensor(&[4000], 55))), Some(In::Const(rand_tensor(&[4000], 56)))], 1e-4);
    check_split_paired(true, Box::new(Transpose { perm: Some(vec![1, 0]) }), vec![Some(In::Feed(rand_tensor(&[333, 301], 57)))], 0.0);
    // Tiled GEMM outputs above the limit: even N paired, odd N atomic.
    check_split_paired(true, Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&[300, 120], 58))), Some(In::Const(rand_tensor(&[120, 250], 59)))], 1e-4);
    check_split_paired(false, Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&[300, 120], 60))), Some(In::Const(rand_tensor(&[120, 251], 61)))], 1e-4);
    // Odd N ≤ 64, even M: the staged 4×4 epilogue across output ranges (2000 × 49 = 98 000 halves).
    check_split_paired(true, Box::new(MatMul::default()), vec![Some(In::Feed(rand_tensor(&[2000, 40], 62))), Some(In::Const(rand_tensor(&[40, 49], 63)))], 1e-4);
}
