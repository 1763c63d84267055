//! The wasm face (`WasmSession` and the free functions the JS glue calls), tested inside a
//! real wasm instance with `wasm-bindgen-test`: `cargo xtask web-test` runs this file twice
//! through `wasm-bindgen-test-runner`, once in Node and once in headless Chromium
//! (chromedriver), from `cargo test --target wasm32-unknown-unknown -p uniml-web`.
//!
//! The model is built here (ONNX protobuf structs, weights written as plain `float_data`), and
//! every expected number is computed by the loops below, never by uniml.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Float32Array, Int32Array, Reflect, Uint8Array};
use uniml::onnx::proto::{self, ModelProto};
use uniml_web::{built_with_simd, built_with_threads, heap_bytes, WasmSession};
use wasm_bindgen::{JsCast, JsError, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

const K: usize = 3;
const N: usize = 4;

/// W (K×N) and b (N): small integers and halves, so that every product and sum below is exact in f32.
fn weights() -> (Vec<f32>, Vec<f32>) {
    let w = (0..K * N).map(|i| (i as f32 - 5.0) * 0.5).collect();
    let b = vec![1.0, -2.0, 0.5, -0.25];
    (w, b)
}

fn value_info(name: &str, dims: &[Result<i64, &str>]) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{dimension::Value as D, Dimension};
    proto::ValueInfoProto {
        name: name.into(),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(proto::type_proto::Tensor {
                elem_type: 1, // FLOAT
                shape: Some(proto::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension { value: Some(match d { Ok(v) => D::DimValue(*v), Err(s) => D::DimParam(s.to_string()) }), ..Default::default() })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn float_init(name: &str, dims: &[i64], data: &[f32]) -> proto::TensorProto {
    proto::TensorProto { name: name.into(), dims: dims.to_vec(), data_type: 1, float_data: data.to_vec(), ..Default::default() }
}

fn node(op: &str, inputs: &[&str], output: &str) -> proto::NodeProto {
    proto::NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// `y = Relu(x @ W + b)`, x: f32[batch, K] (symbolic batch), W: [K, N], b: [N]; `w` and `b` given.
fn model_with(w: &[f32], b: &[f32], k: usize, n: usize) -> Vec<u8> {
    let m = ModelProto {
        ir_version: 8,
        opset_import: vec![proto::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(proto::GraphProto {
            name: "mlp".into(),
            node: vec![node("MatMul", &["x", "W"], "h"), node("Add", &["h", "b"], "s"), node("Relu", &["s"], "y")],
            input: vec![value_info("x", &[Err("batch"), Ok(k as i64)])],
            output: vec![value_info("y", &[Err("batch"), Ok(n as i64)])],
            initializer: vec![float_init("W", &[k as i64, n as i64], w), float_init("b", &[n as i64], b)],
            ..Default::default()
        }),
        ..Default::default()
    };
    proto::encode_model(&m)
}

fn model() -> Vec<u8> {
    let (w, b) = weights();
    model_with(&w, &b, K, N)
}

/// The reference: plain loops over row-major arrays.
fn reference(x: &[f32], batch: usize) -> Vec<f32> {
    let (w, b) = weights();
    let mut y = vec![0f32; batch * N];
    for r in 0..batch {
        for c in 0..N {
            let mut acc = b[c];
            for i in 0..K {
                acc += x[r * K + i] * w[i * N + c];
            }
            y[r * N + c] = acc.max(0.0);
        }
    }
    y
}

fn f32_bytes(v: &[f32]) -> Uint8Array {
    let a = Float32Array::from(v);
    Uint8Array::new(&a.buffer())
}

fn dims(d: &[usize]) -> JsValue {
    d.iter().map(|&x| JsValue::from_f64(x as f64)).collect::<Array>().into()
}

/// One feed `[name, dtype, dims, data]` in an array of feeds, as the JS glue passes them.
fn feeds(name: &str, dtype: &str, shape: &[usize], data: Uint8Array) -> Array {
    Array::of1(&Array::of4(&name.into(), &dtype.into(), &dims(shape), &data))
}

fn message(e: JsError) -> String {
    let v: JsValue = e.into();
    v.dyn_into::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|v| format!("not an Error: {v:?}"))
}

fn create(bytes: &[u8]) -> Result<WasmSession, String> {
    WasmSession::new(&Uint8Array::from(bytes), 1, 0.0, None).map_err(message)
}

fn run_err(s: &WasmSession, f: Array) -> String {
    match s.run(f) {
        Ok(_) => panic!("the run was expected to fail"),
        Err(e) => message(e),
    }
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &k.into()).unwrap()
}

#[wasm_bindgen_test]
fn matmul_add_relu_matches_hand_computed_reference() {
    let s = create(&model()).expect("the model loads");
    // Metadata: the symbolic batch stays a string.
    let inputs = s.inputs().unwrap();
    assert_eq!(inputs.length(), 1);
    let x_info = inputs.get(0);
    assert_eq!(get(&x_info, "name").as_string().as_deref(), Some("x"));
    assert_eq!(get(&x_info, "dtype").as_string().as_deref(), Some("float32"));
    let d: Array = get(&x_info, "dims").dyn_into().unwrap();
    assert_eq!(d.get(0).as_string().as_deref(), Some("batch"));
    assert_eq!(d.get(1).as_f64(), Some(K as f64));

    for batch in [1usize, 3] {
        // Mixed signs, so that Relu clips some outputs and passes others.
        let x: Vec<f32> = (0..batch * K).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.25).collect();
        let out = s.run(feeds("x", "float32", &[batch, K], f32_bytes(&x))).map_err(message).unwrap();
        assert_eq!(out.length(), 1);
        let y = Array::from(&out.get(0));
        assert_eq!(y.get(0).as_string().as_deref(), Some("y"));
        assert_eq!(y.get(1).as_string().as_deref(), Some("float32"));
        let shape: Vec<f64> = Array::from(&y.get(2)).iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(shape, vec![batch as f64, N as f64]);
        let bytes = Uint8Array::from(y.get(3)).to_vec();
        let got: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let want = reference(&x, batch);
        assert!(want.iter().any(|&v| v == 0.0) && want.iter().any(|&v| v > 0.0), "the case exercises both sides of Relu: {want:?}");
        assert_eq!(got, want, "batch {batch}: uniml vs the reference loops");
    }
}

#[wasm_bindgen_test]
async fn run_async_gives_the_reference_on_a_cpu_session() {
    let s = create(&model()).unwrap();
    let x: Vec<f32> = (0..2 * K).map(|i| (i as f32 - 2.0) * 0.5).collect();
    let out = s.run_async(feeds("x", "float32", &[2, K], f32_bytes(&x))).await.map_err(message).unwrap();
    let bytes = Uint8Array::from(Array::from(&out.get(0)).get(3)).to_vec();
    let got: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(got, reference(&x, 2));
    assert!(!s.on_gpu());
    let placement = s.placement().unwrap();
    assert!(placement.length() > 0 && placement.iter().all(|p| get(&p, "device").as_string().as_deref() == Some("cpu")));
}

#[wasm_bindgen_test]
fn a_backend_this_build_lacks_is_a_clear_error() {
    for backend in ["gpu", "tpu"] {
        let msg = WasmSession::new(&Uint8Array::from(&model()[..]), 1, 0.0, Some(backend.into())).err().map(message).unwrap_or_default();
        assert!(msg.contains(&format!("backend '{backend}'")) && msg.contains("not in this build"), "{backend}: {msg}");
    }
}

#[wasm_bindgen_test]
fn wrong_dims_name_the_input_the_expected_and_the_got() {
    let s = create(&model()).unwrap();
    let msg = run_err(&s, feeds("x", "float32", &[2, 5], f32_bytes(&[0.0; 10])));
    assert!(msg.contains("'x'") && msg.contains("dim 1 must be 3") && msg.contains("got 5"), "{msg}");
    // Data that does not fill the dims.
    let msg = run_err(&s, feeds("x", "float32", &[2, 3], f32_bytes(&[0.0; 5])));
    assert!(msg.contains("'x'") && msg.contains("24 bytes") && msg.contains("got 20 bytes"), "{msg}");
}

#[wasm_bindgen_test]
fn wrong_dtype_names_the_input_the_expected_and_the_got() {
    let s = create(&model()).unwrap();
    let data = Uint8Array::new(&Int32Array::from(&[1i32, 2, 3][..]).buffer());
    let msg = run_err(&s, feeds("x", "int32", &[1, 3], data));
    assert!(msg.contains("'x'") && msg.contains("expected dtype float32, got int32"), "{msg}");
    let msg = run_err(&s, feeds("x", "complex7", &[1, 3], f32_bytes(&[0.0; 3])));
    assert!(msg.contains("'x'") && msg.contains("unknown dtype 'complex7'"), "{msg}");
}

#[wasm_bindgen_test]
fn unknown_and_missing_inputs_are_named() {
    let s = create(&model()).unwrap();
    let msg = run_err(&s, feeds("nope", "float32", &[1, 3], f32_bytes(&[0.0; 3])));
    assert!(msg.contains("'nope'") && msg.contains("no such input") && msg.contains("inputs are: x"), "{msg}");
    let msg = run_err(&s, Array::new());
    assert!(msg.contains("'x'") && msg.contains("missing"), "a missing input is named: {msg}");
}

#[wasm_bindgen_test]
fn corrupt_bytes_are_invalid_model_errors() {
    let good = model();
    for (what, bytes) in [("empty", Vec::new()), ("truncated", good[..good.len() / 2].to_vec()), ("garbage", b"<!DOCTYPE html><html>not a model</html>".to_vec())] {
        let msg = create(&bytes).err().unwrap_or_else(|| panic!("{what} bytes loaded"));
        assert!(msg.to_lowercase().contains("invalid model") || msg.contains("not an ONNX model"), "{what}: {msg}");
    }
}

#[wasm_bindgen_test]
fn release_frees_the_weights_and_later_calls_fail() {
    // 256x512 f32 weights: 512 KiB, far above any noise of the allocator.
    let (k, n) = (256, 512);
    let w: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32).collect();
    let bytes = model_with(&w, &vec![0.0; n], k, n);
    let weight_bytes = (k * n + n) * 4;
    // `bytes` (allocated before `before`) stay alive to the end, out of every difference below.
    let before = heap_bytes();
    let mut s = create(&bytes).unwrap();
    let loaded = heap_bytes();
    assert!(loaded - before >= weight_bytes as f64, "heap grew by {} bytes for {weight_bytes} bytes of weights", loaded - before);
    assert_eq!(s.weight_bytes(), weight_bytes as f64);
    s.run(feeds("x", "float32", &[2, k], f32_bytes(&vec![1.0; 2 * k]))).map_err(message).unwrap();
    s.release();
    assert!(s.released());
    let after = heap_bytes();
    assert!(after - before < (weight_bytes / 8) as f64, "after release: {} bytes still live of {} (before {before})", after - before, loaded - before);
    let msg = run_err(&s, feeds("x", "float32", &[1, k], f32_bytes(&vec![1.0; k])));
    assert!(msg.contains("released"), "{msg}");
    assert!(s.inputs().is_err());
}

#[wasm_bindgen_test]
fn build_features_match_the_build_flags() {
    // `cargo xtask web-test` compiles this test with `-C target-feature=+simd128` and sets
    // UNIML_WEB_TEST_SIMD=1 beside it; a plain build sets neither.
    let want_simd = option_env!("UNIML_WEB_TEST_SIMD") == Some("1");
    assert_eq!(built_with_simd(), want_simd, "built_with_simd() vs the flags the test was built with");
    assert!(!built_with_threads(), "the test build has no atomics");
}

#[wasm_bindgen_test]
fn says_where_it_runs() {
    // `cargo xtask web-test` runs this file in Node and in headless Chromium and checks this line
    // (with --nocapture) to know which one really ran.
    let g = js_sys::global();
    let node = Reflect::get(&g, &"process".into()).ok().filter(|p| !p.is_undefined()).and_then(|p| Reflect::get(&p, &"versions".into()).ok()).and_then(|v| Reflect::get(&v, &"node".into()).ok()).and_then(|v| v.as_string());
    let agent = Reflect::get(&g, &"navigator".into()).ok().filter(|n| !n.is_undefined()).and_then(|n| Reflect::get(&n, &"userAgent".into()).ok()).and_then(|v| v.as_string());
    let place = match (node, agent) {
        (Some(v), _) => format!("Node {v}"),
        (None, Some(a)) => format!("browser: {a}"),
        (None, None) => "an unknown JS environment".into(),
    };
    wasm_bindgen_test::console_log!("uniml-web wasm tests running in {place}");
    assert!(!place.starts_with("an unknown"));
}
