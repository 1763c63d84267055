//! The routes, independent of the wasi:http plumbing: bytes in, status + JSON out.

use std::sync::OnceLock;

use serde_json::{json, Value};
use uniml::{DType, Dim, Session, SessionOptions, Tensor, TensorView};

pub const MODEL_NAME: &str = "efficientnet_lite0";
/// Requests larger than this are refused with 413 (an FP32 OIP request for one 224×224 image is ≈2 MB).
pub const MAX_BODY: usize = 16 << 20;
#[cfg(target_os = "wasi")]
static MODEL: &[u8] = include_bytes!("../../../models/efficientnet_lite0.onnx");
static LABELS: &str = include_str!("../../../models/imagenet_labels.txt");

pub struct Reply {
    pub status: u16,
    #[cfg_attr(not(target_os = "wasi"), allow(dead_code))] // the worker always answers JSON
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply { status, content_type: "application/json", body: serde_json::to_vec(v).unwrap_or_default() }
    }
    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::json(status, &json!({ "error": message, "kind": kind }))
    }
    fn engine(e: &uniml::Error) -> Reply {
        let (status, kind) = match e {
            uniml::Error::InvalidModel(_) => (500, "invalid-model"),
            uniml::Error::Unsupported(_) => (500, "unsupported-ops"),
            uniml::Error::Input { .. } => (400, "invalid-input"),
            uniml::Error::Shape(_) | uniml::Error::DType { .. } => (400, "invalid-tensor"),
            uniml::Error::MemoryLimit { .. } => (413, "memory-limit"),
            uniml::Error::Node { .. } => (500, "runtime"),
            _ => (500, "other"),
        };
        Reply::error(status, kind, &e.to_string())
    }
}

static SESSION: OnceLock<Result<Session, uniml::Error>> = OnceLock::new();

fn load(model: &[u8]) -> Result<Session, uniml::Error> {
    Session::from_bytes(model, SessionOptions::default().with_threads(1))
}

/// The session: with wasi:http, created from the compiled-in model on the first request and kept
/// while the instance lives; in the worker build, set once by [`init`].
fn session() -> Result<&'static Session, Reply> {
    #[cfg(target_os = "wasi")]
    let s = SESSION.get_or_init(|| load(MODEL));
    #[cfg(not(target_os = "wasi"))]
    let s = SESSION.get().ok_or_else(|| Reply::error(503, "not-ready", "no model loaded yet"))?;
    s.as_ref().map_err(Reply::engine)
}

/// Loads the model given by the host (worker build); a second call is refused.
#[cfg(not(target_os = "wasi"))]
pub fn init(model: &[u8]) -> Reply {
    if SESSION.get().is_some() {
        return Reply::error(409, "other", "the model is already loaded");
    }
    let t0 = now_ms();
    match SESSION.get_or_init(|| load(model)) {
        Ok(s) => Reply::json(200, &json!({ "model_name": MODEL_NAME, "nodes": s.node_count(), "weight_bytes": s.weight_bytes(), "load_ms": now_ms() - t0 })),
        Err(e) => Reply::engine(e),
    }
}

/// Milliseconds from a monotonic clock (the host's `performance.now()` in the worker build).
#[cfg(target_os = "wasi")]
fn now_ms() -> f64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1e3
}
#[cfg(not(target_os = "wasi"))]
fn now_ms() -> f64 {
    crate::worker::now_ms()
}

pub fn route(method: &str, path: &str, body: &[u8]) -> Reply {
    let infer = format!("/v2/models/{MODEL_NAME}/infer");
    let meta = format!("/v2/models/{MODEL_NAME}");
    if body.len() > MAX_BODY {
        return Reply::error(413, "too-large", &format!("request body over {MAX_BODY} bytes"));
    }
    let r = match (method, path) {
        ("POST", "/classify") => classify(body),
        ("POST", p) if p == infer => infer_v2(body),
        ("GET", p) if p == meta => metadata(),
        ("GET", "/v2/health/ready") | ("GET", "/v2/health/live") => Ok(Reply::json(200, &json!({ "live": true, "ready": true }))),
        ("GET", "/v2") => Ok(Reply::json(200, &json!({ "name": "uniml", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }))),
        (_, "/classify") | (_, "/v2/health/ready") | (_, "/v2/health/live") => Err(Reply::error(405, "method-not-allowed", &format!("{method} {path} is not allowed"))),
        (_, p) if p == infer || p == meta => Err(Reply::error(405, "method-not-allowed", &format!("{method} {path} is not allowed"))),
        _ => Err(Reply::error(
            404,
            "not-found",
            &format!("no route {method} {path}; try POST /classify (image bytes) or POST {infer} (Open Inference Protocol v2 JSON)"),
        )),
    };
    r.unwrap_or_else(|e| e)
}

fn labels() -> Vec<&'static str> {
    LABELS.lines().collect()
}

use uniml::imagenet::preprocess;

fn classify(body: &[u8]) -> Result<Reply, Reply> {
    if body.is_empty() {
        return Err(Reply::error(400, "invalid-image", "empty body: POST the PNG or JPEG bytes"));
    }
    let t0 = now_ms();
    let bad = |e: image::ImageError| Reply::error(400, "invalid-image", &format!("cannot decode the image (PNG or JPEG): {e}"));
    let mut reader = image::ImageReader::new(std::io::Cursor::new(body)).with_guessed_format().map_err(|e| bad(e.into()))?;
    // Decoding bombs fail as errors, not as a failed allocation (a trap) in 32-bit memory.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16384);
    limits.max_image_height = Some(16384);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(bad)?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 || (w as u64) * (h as u64) > 64 << 20 {
        return Err(Reply::error(400, "invalid-image", &format!("image of {w}x{h} pixels is empty or too large")));
    }
    let pixels = preprocess(&img.to_rgb8());
    let pre_ms = now_ms() - t0;
    let t1 = now_ms();
    let session = session()?;
    let load_ms = now_ms() - t1;
    let input = session.inputs().first().map(|i| i.name.clone()).unwrap_or_else(|| "input".into());
    let view = TensorView::from_slice(&[1, 3, 224, 224], &pixels).map_err(|e| Reply::engine(&e))?;
    let t2 = now_ms();
    let outs = session.run(&[(&input, view)]).map_err(|e| Reply::engine(&e))?;
    let run_ms = now_ms() - t2;
    let logits = outs[0].1.as_slice::<f32>().map_err(|e| Reply::engine(&e))?;
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let names = labels();
    let top: Vec<Value> = idx
        .iter()
        .take(5)
        .map(|&i| json!({ "index": i, "label": names.get(i).copied().unwrap_or(""), "probability": exps[i] / sum, "logit": logits[i] }))
        .collect();
    Ok(Reply::json(
        200,
        &json!({
            "model_name": MODEL_NAME,
            "image": { "width": w, "height": h },
            "top": top,
            "timings_ms": { "preprocess": pre_ms, "session": load_ms, "run": run_ms },
        }),
    ))
}

/// Open Inference Protocol (KServe v2) datatype names.
fn v2_datatype(d: DType) -> &'static str {
    match d {
        DType::F32 => "FP32",
        DType::F16 => "FP16",
        DType::BF16 => "BF16",
        DType::F64 => "FP64",
        DType::I8 => "INT8",
        DType::U8 => "UINT8",
        DType::I16 => "INT16",
        DType::U16 => "UINT16",
        DType::I32 => "INT32",
        DType::U32 => "UINT32",
        DType::I64 => "INT64",
        DType::U64 => "UINT64",
        DType::Bool => "BOOL",
        DType::String => "BYTES",
        // Not OIP datatypes (the classifier never produces them).
        _ => "UNSUPPORTED",
    }
}

fn v2_shape(s: &Option<uniml::SymbolicShape>) -> Value {
    match s {
        Some(s) => Value::Array(s.0.iter().map(|d| if let Dim::Known(k) = d { json!(k) } else { json!(-1) }).collect()),
        None => json!([]),
    }
}

fn metadata() -> Result<Reply, Reply> {
    let session = session()?;
    let io = |v: &[uniml::IoInfo]| -> Vec<Value> {
        v.iter().map(|i| json!({ "name": i.name, "datatype": i.dtype.map(v2_datatype).unwrap_or("FP32"), "shape": v2_shape(&i.shape) })).collect()
    };
    Ok(Reply::json(200, &json!({ "name": MODEL_NAME, "versions": ["1"], "platform": "onnx", "inputs": io(session.inputs()), "outputs": io(session.outputs()) })))
}

/// Flattens nested JSON arrays (row-major) into numbers.
fn flatten(v: &Value, out: &mut Vec<f64>) -> Result<(), String> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| flatten(x, out)),
        Value::Number(n) => n.as_f64().map(|x| out.push(x)).ok_or_else(|| format!("{n} is not a number")),
        Value::Bool(b) => {
            out.push(*b as u8 as f64);
            Ok(())
        }
        other => Err(format!("tensor data must be numbers, got {other}")),
    }
}

fn v2_tensor(inp: &Value) -> Result<(String, Tensor), Reply> {
    let bad = |m: String| Reply::error(400, "invalid-request", &m);
    let name = inp.get("name").and_then(Value::as_str).ok_or_else(|| bad("each input needs a \"name\"".into()))?.to_string();
    let shape: Vec<usize> = inp
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("input '{name}' needs a \"shape\" array")))?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()).ok_or_else(|| bad(format!("input '{name}': shape entries must be non-negative integers below 2^32"))))
        .collect::<Result<_, _>>()?;
    let datatype = inp.get("datatype").and_then(Value::as_str).ok_or_else(|| bad(format!("input '{name}' needs a \"datatype\"")))?;
    let mut data = Vec::new();
    flatten(inp.get("data").ok_or_else(|| bad(format!("input '{name}' needs \"data\"")))?, &mut data).map_err(|m| bad(format!("input '{name}': {m}")))?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n != Some(data.len()) {
        let n = n.map(|n| n.to_string()).unwrap_or_else(|| "too many".into());
        return Err(Reply::error(400, "invalid-tensor", &format!("input '{name}': shape {shape:?} needs {n} values, got {}", data.len())));
    }
    let t = match datatype {
        "FP32" => Tensor::from_vec(&shape, data.iter().map(|&x| x as f32).collect()),
        "FP64" => Tensor::from_vec(&shape, data),
        "INT64" => Tensor::from_vec(&shape, data.iter().map(|&x| x as i64).collect()),
        "INT32" => Tensor::from_vec(&shape, data.iter().map(|&x| x as i32).collect()),
        "UINT8" => Tensor::from_vec(&shape, data.iter().map(|&x| x as u8).collect()),
        "INT8" => Tensor::from_vec(&shape, data.iter().map(|&x| x as i8).collect()),
        "BOOL" => Tensor::from_bools(&shape, &data.iter().map(|&x| x != 0.0).collect::<Vec<_>>()),
        other => return Err(bad(format!("input '{name}': datatype {other} is not supported (FP32, FP64, INT64, INT32, UINT8, INT8, BOOL)"))),
    }
    .map_err(|e| Reply::engine(&e))?;
    Ok((name, t))
}

fn v2_output(name: &str, t: &Tensor) -> Result<Value, Reply> {
    let data = t.to_f64_vec().map_err(|e| Reply::engine(&e))?;
    let data: Vec<Value> = match t.dtype() {
        DType::F32 => t.as_slice::<f32>().map_err(|e| Reply::engine(&e))?.iter().map(|&x| json!(x)).collect(),
        DType::Bool => data.iter().map(|&x| json!(x != 0.0)).collect(),
        d if d.is_float() => data.iter().map(|&x| json!(x)).collect(),
        _ => data.iter().map(|&x| json!(x as i64)).collect(),
    };
    Ok(json!({ "name": name, "shape": t.shape(), "datatype": v2_datatype(t.dtype()), "data": data }))
}

fn infer_v2(body: &[u8]) -> Result<Reply, Reply> {
    let req: Value = serde_json::from_slice(body).map_err(|e| Reply::error(400, "invalid-request", &format!("body is not JSON: {e}")))?;
    let inputs = req.get("inputs").and_then(Value::as_array).ok_or_else(|| Reply::error(400, "invalid-request", "expected {\"inputs\": [...]}"))?;
    let tensors = inputs.iter().map(v2_tensor).collect::<Result<Vec<_>, _>>()?;
    let session = session()?;
    let views: Vec<(&str, TensorView)> = tensors.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let outs = session.run(&views).map_err(|e| Reply::engine(&e))?;
    let outputs = outs.iter().map(|(n, t)| v2_output(n, t)).collect::<Result<Vec<_>, _>>()?;
    let mut resp = json!({ "model_name": MODEL_NAME, "model_version": "1", "outputs": outputs });
    if let Some(id) = req.get("id") {
        resp["id"] = id.clone();
    }
    Ok(Reply::json(200, &resp))
}
