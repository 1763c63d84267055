//! Golden tests on the GPU backend: real models run by uniml on the GPU
//! (lavapipe in CI) and by onnxruntime (computed now by `scripts/reference.py`)
//! on the same inputs; outputs must agree within 1e-3 of the output's scale.
//! The `*_f16` tests run the same models with f16 storage
//! (`GpuPrecision::F16Storage`: weights and activations stored as f16, f32
//! arithmetic) within [`F16_TOL`] of the output's scale.
//! Each test prints the placement summary. Without a GPU adapter the tests
//! skip loudly, unless `UNIML_REQUIRE_GPU` is set (`cargo xtask gpu-test`).
#![cfg(feature = "gpu")]

mod common;

use std::time::Instant;

use common::*;
use uniml::{Backend, GpuPrecision, Session, SessionOptions, Tensor};

/// f16 storage vs onnxruntime (f32): max |diff| over the output's scale (max |value|, at
/// least 1). Every weight, input and stored activation is rounded to f16 (2^-11 relative),
/// through 6 to 95 layers. Classifier logits and MiniLM's outputs: 3e-2 (measured on lavapipe:
/// 6.4e-4 digits, 1.5e-3 efficientnet_lite0, 7.8e-4 MobileNetV2, 2.0e-3 MiniLM hidden states).
const F16_TOL: f64 = 3e-2;
/// The same for selfie_segmentation's sigmoid mask in [0, 1], whose worst pixel sits on the
/// person's edge, where the sigmoid is steepest (measured 4.1e-2; mean |diff| is printed).
const F16_TOL_MASK: f64 = 6e-2;

fn gpu_options(precision: GpuPrecision) -> Option<SessionOptions> {
    let mut o = SessionOptions::default().with_threads(1).with_gpu_precision(precision);
    o.backend = Backend::Gpu;
    Some(o)
}

/// Loads on the GPU; None (skip, loudly) only when no adapter exists and the GPU is not required.
fn gpu_session(model: &std::path::Path, precision: GpuPrecision) -> Option<Session> {
    match Session::from_file(model, gpu_options(precision)?) {
        Ok(s) => Some(s),
        Err(uniml::Error::Backend { message, .. }) if message.contains("no GPU adapter") && std::env::var_os("UNIML_REQUIRE_GPU").is_none() => {
            eprintln!("\n!!!!! SKIPPING GPU GOLDEN TEST: {message}\n");
            None
        }
        Err(e) => panic!("load {} on the GPU: {e}", model.display()),
    }
}

/// Makes inputs, runs onnxruntime and uniml (GPU), checks, returns the worst |diff|.
fn golden_gpu(model_name: &str, make_inputs: &[&str], min_gpu_nodes: usize) {
    golden_gpu_in(model_name, make_inputs, min_gpu_nodes, GpuPrecision::F32, 1e-3)
}

fn golden_gpu_in(model_name: &str, make_inputs: &[&str], min_gpu_nodes: usize, precision: GpuPrecision, tol: f64) {
    let model = model(model_name);
    let Some(session) = gpu_session(&model, precision) else { return };
    let dir = scratch(&format!("gpu-{}-{}", model_name, make_inputs.join("-").replace(['/', '.'], "_")));
    let (inp, refs) = (dir.join("inputs"), dir.join("ref"));
    let mut args: Vec<String> = vec!["scripts/make_inputs.py".into()];
    args.extend(make_inputs.iter().map(|s| s.replace("{model}", &model.display().to_string())));
    args.push(inp.display().to_string());
    if matches!(make_inputs.first(), Some(&"random") | Some(&"text")) {
        let out = args.pop().unwrap_or_default();
        args.insert(3, out);
    }
    py(&args.iter().map(String::as_str).collect::<Vec<_>>());
    py(&["scripts/reference.py", &model.display().to_string(), "--inputs-dir", &inp.display().to_string(), "--outputs-dir", &refs.display().to_string()]);

    let p = session.placement();
    eprintln!("{model_name}: placement {}", p.summary());
    assert!(p.gpu_nodes() >= min_gpu_nodes, "{model_name}: only {} nodes on GPU, expected >= {min_gpu_nodes}:\n{}", p.gpu_nodes(), p.table());
    let tensors: Vec<(String, Tensor)> = session.inputs().iter().map(|i| (i.name.clone(), read_npy(&inp.join(format!("{}.npy", sanitize(&i.name)))))).collect();
    let views: Vec<(&str, uniml::TensorView)> = tensors.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let t0 = Instant::now();
    let outs = session.run(&views).unwrap_or_else(|e| panic!("run {model_name} on GPU: {e}"));
    let first = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let again = session.run(&views).unwrap_or_else(|e| panic!("second run {model_name} on GPU: {e}"));
    let second = t1.elapsed().as_secs_f64() * 1e3;
    let stats = session.gpu_stats().unwrap_or_default();
    eprintln!("{model_name} ({precision:?}): first run {first:.1} ms (compiles kernels), second {second:.1} ms; {stats:?}");
    for ((name, ours), (_, ours2)) in outs.iter().zip(&again) {
        assert_eq!(ours.as_bytes(), ours2.as_bytes(), "{model_name}: output '{name}' differs between runs");
        let want = read_npy(&refs.join(format!("{}.npy", sanitize(name))));
        assert_eq!(ours.shape(), want.shape(), "{model_name}: output '{name}' shape");
        assert_eq!(ours.dtype(), want.dtype(), "{model_name}: output '{name}' dtype");
        let (a, b) = (ours.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
        let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
        let diff = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        let mean = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len().max(1) as f64;
        eprintln!("{model_name} ({precision:?}): output '{name}' {:?} max |diff| {diff:.3e} (scale {scale:.3}, {:.2e} of it), mean |diff| {mean:.2e}", ours.shape(), diff / scale);
        assert!(diff / scale <= tol, "{model_name} ({precision:?}): output '{name}' differs from onnxruntime by {diff:e} (scale {scale})");
    }
}

#[test]
fn gpu_digits8x8_cnn() {
    golden_gpu("digits8x8_cnn.onnx", &["digits-synthetic"], 5);
}

#[test]
fn gpu_efficientnet_lite0() {
    golden_gpu("efficientnet_lite0.onnx", &["image", "efficientnet", "testdata/coffee.png"], 50);
}

#[test]
fn gpu_selfie_segmentation() {
    golden_gpu("selfie_segmentation.onnx", &["image", "selfie", "testdata/astronaut.png"], 80);
}

#[test]
fn gpu_mobilenetv2_batch2() {
    golden_gpu("mobilenetv2.onnx", &["random", "{model}", "--dim", "batch_size=2"], 60);
}

#[test]
fn gpu_paraphrase_minilm() {
    golden_gpu("paraphrase-MiniLM-L3-v2.onnx", &["text", "models/bert-uncased-tokenizer.json", "Open neural network exchange models run in the browser."], 40);
}

#[test]
fn gpu_digits8x8_cnn_f16() {
    golden_gpu_in("digits8x8_cnn.onnx", &["digits-synthetic"], 5, GpuPrecision::F16Storage, F16_TOL);
}

#[test]
fn gpu_efficientnet_lite0_f16() {
    golden_gpu_in("efficientnet_lite0.onnx", &["image", "efficientnet", "testdata/coffee.png"], 50, GpuPrecision::F16Storage, F16_TOL);
}

#[test]
fn gpu_selfie_segmentation_f16() {
    golden_gpu_in("selfie_segmentation.onnx", &["image", "selfie", "testdata/astronaut.png"], 80, GpuPrecision::F16Storage, F16_TOL_MASK);
}

#[test]
fn gpu_mobilenetv2_batch2_f16() {
    golden_gpu_in("mobilenetv2.onnx", &["random", "{model}", "--dim", "batch_size=2"], 60, GpuPrecision::F16Storage, F16_TOL);
}

#[test]
fn gpu_paraphrase_minilm_f16() {
    golden_gpu_in("paraphrase-MiniLM-L3-v2.onnx", &["text", "models/bert-uncased-tokenizer.json", "Open neural network exchange models run in the browser."], 40, GpuPrecision::F16Storage, F16_TOL);
}

#[test]
fn backend_auto_reports_its_placement() {
    let mut o = SessionOptions::default().with_threads(1);
    o.backend = Backend::Auto;
    let s = Session::from_file(model("digits8x8_cnn.onnx"), o).expect("auto never fails for lack of a GPU");
    let p = s.placement();
    eprintln!("auto: {}", p.summary());
    assert_eq!(p.nodes.len(), s.node_count());
    assert!(s.on_gpu() || p.fallback.is_some(), "auto on CPU must say why");
}
