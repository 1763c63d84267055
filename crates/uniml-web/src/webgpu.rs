//! The WebGPU flavour's extra entry point: opening the device, which under
//! WebGPU only comes from promises (`navigator.gpu.requestAdapter()`), so it
//! happens once, asynchronously, before GPU sessions are created.

use wasm_bindgen::prelude::*;

/// Opens the WebGPU device for this engine instance (idempotent) and returns the
/// adapter's description. Rejects with the reason when there is no adapter.
#[wasm_bindgen(js_name = openGpu)]
pub async fn open_gpu() -> Result<String, JsError> {
    uniml::open_gpu().await.map_err(|e| JsError::new(&e.to_string()))
}
