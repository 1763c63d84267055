//! JS values ↔ tensors and metadata.

use js_sys::{Array, JsString, Object, Reflect, Uint8Array};
use uniml::{DType, Dim, IoInfo, Tensor};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

fn set(o: &Object, k: &str, v: &JsValue) -> Result<(), JsError> {
    Reflect::set(o, &JsValue::from_str(k), v).map(|_| ()).map_err(|_| JsError::new("internal: cannot set a property"))
}

/// `{name, dtype, dims}` for one input or output.
pub fn io_info(info: &IoInfo) -> JsValue {
    let o = Object::new();
    let dtype = match (info.dtype, info.is_sequence) {
        (Some(d), false) => JsValue::from_str(d.name()),
        (Some(d), true) => JsValue::from_str(&format!("sequence<{}>", d.name())),
        (None, _) => JsValue::NULL,
    };
    let dims = match &info.shape {
        Some(s) => s
            .0
            .iter()
            .map(|d| match d {
                Dim::Known(k) => JsValue::from_f64(*k as f64),
                Dim::Sym(s) => JsValue::from_str(s),
                Dim::Unknown => JsValue::NULL,
            })
            .collect::<Array>()
            .into(),
        None => JsValue::NULL,
    };
    let _ = set(&o, "name", &JsValue::from_str(&info.name));
    let _ = set(&o, "dtype", &dtype);
    let _ = set(&o, "dims", &dims);
    o.into()
}

fn dims_from_js(name: &str, v: &JsValue) -> Result<Vec<usize>, JsError> {
    let arr: Array = v.clone().dyn_into().map_err(|_| JsError::new(&format!("input '{name}': dims must be an array of integers")))?;
    arr.iter()
        .map(|d| match d.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9.007_199_254_740_991e15 => Ok(f as usize),
            _ => Err(JsError::new(&format!("input '{name}': dims must be non-negative integers, got {:?}", d.as_f64().map(|f| f.to_string()).or_else(|| d.as_string()).unwrap_or_else(|| "a non-number".into())))),
        })
        .collect()
}

/// `[name, dtype, dims, data]` → a named owned tensor (one copy out of JS memory).
pub fn feed_to_tensor(feed: &JsValue) -> Result<(String, Tensor), JsError> {
    let parts: Array = feed.clone().dyn_into().map_err(|_| JsError::new("internal: a feed must be [name, dtype, dims, data]"))?;
    let name = parts.get(0).as_string().ok_or_else(|| JsError::new("internal: feed name must be a string"))?;
    let dtype_s = parts.get(1).as_string().ok_or_else(|| JsError::new(&format!("input '{name}': dtype must be a string")))?;
    let dtype = DType::from_name(&dtype_s).ok_or_else(|| JsError::new(&format!("input '{name}': unknown dtype '{dtype_s}'")))?;
    let dims = dims_from_js(&name, &parts.get(2))?;
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| JsError::new(&format!("input '{name}': dims {dims:?} overflow")))?;
    let data = parts.get(3);
    if dtype == DType::String {
        let arr: Array = data.dyn_into().map_err(|_| JsError::new(&format!("input '{name}': string data must be an array of strings")))?;
        if arr.length() as usize != n {
            return Err(JsError::new(&format!("input '{name}': dims {dims:?} need {n} strings, got {}", arr.length())));
        }
        let strings: Vec<String> = arr.iter().map(|s| s.dyn_into::<JsString>().map(String::from)).collect::<Result<_, _>>().map_err(|_| JsError::new(&format!("input '{name}': string data must be an array of strings")))?;
        let t = Tensor::from_strings(&dims, strings).map_err(super::js_err)?;
        return Ok((name, t));
    }
    let bytes: Uint8Array = data.dyn_into().map_err(|_| JsError::new(&format!("input '{name}': data must be a typed array")))?;
    let want = n.checked_mul(dtype.size()).ok_or_else(|| JsError::new(&format!("input '{name}': dims {dims:?} overflow")))?;
    if bytes.length() as usize != want {
        return Err(JsError::new(&format!(
            "input '{name}': dims {dims:?} need {n} {dtype} elements ({want} bytes), got {} bytes",
            bytes.length()
        )));
    }
    let mut t = Tensor::zeros(dtype, &dims).map_err(super::js_err)?;
    bytes.copy_to(t.as_bytes_mut());
    Ok((name, t))
}

/// A tensor → `[name, dtype, dims, data]`, data copied into a fresh JS buffer.
pub fn tensor_to_js(name: &str, t: &Tensor) -> Result<JsValue, JsError> {
    let dims: Array = t.shape().iter().map(|&d| JsValue::from_f64(d as f64)).collect();
    let data: JsValue = if t.dtype() == DType::String {
        t.as_strings().map_err(super::js_err)?.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into()
    } else {
        super::bytes_to_js(t.as_bytes()).into()
    };
    Ok(Array::of4(&JsValue::from_str(name), &JsValue::from_str(t.dtype().name()), &dims, &data).into())
}

/// The feeds of `run`: `[name, dtype, dims, data]` arrays.
pub fn feeds_to_tensors(feeds: &Array) -> Result<Vec<(String, Tensor)>, JsError> {
    let mut owned = Vec::with_capacity(feeds.length() as usize);
    for feed in feeds.iter() {
        owned.push(feed_to_tensor(&feed)?);
    }
    Ok(owned)
}

/// The outputs of `run` as `[name, dtype, dims, data]` arrays.
pub fn outputs_to_js(outputs: Vec<(String, Tensor)>) -> Result<Array, JsError> {
    let out = Array::new();
    for (name, t) in outputs {
        out.push(&tensor_to_js(&name, &t)?);
    }
    Ok(out)
}

/// `{node, op, device, reason}` for one node of a placement report.
pub fn node_placement(p: &uniml::NodePlacement) -> JsValue {
    let o = Object::new();
    let _ = set(&o, "node", &JsValue::from_str(&p.node));
    let _ = set(&o, "op", &JsValue::from_str(p.op));
    let _ = set(&o, "device", &JsValue::from_str(if p.device == uniml::Device::Gpu { "gpu" } else { "cpu" }));
    let _ = set(&o, "reason", &p.reason.as_deref().map(JsValue::from_str).unwrap_or(JsValue::NULL));
    o.into()
}
