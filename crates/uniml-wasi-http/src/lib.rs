//! A serverless image classifier: a `wasm32-wasip2` component exporting
//! `wasi:http/incoming-handler` (the `wasi:http/proxy` world), with the bundled
//! efficientnet_lite0 and its ImageNet labels compiled in.
//!
//! Routes:
//! * `POST /classify`, body = PNG or JPEG bytes → top-5 JSON with labels;
//! * `POST /v2/models/efficientnet_lite0/infer` → Open Inference Protocol v2 (JSON tensors);
//! * `GET /v2/models/efficientnet_lite0` (model metadata), `GET /v2/health/ready`, `GET /v2/health/live`.
//!
//! Errors are JSON `{"error": message, "kind": ...}` with a 4xx/5xx status, never a trap.
//! Runs under any wasi:http host: `jco serve`, `wasmtime serve`, Spin, wasmCloud.
//!
//! Built for `wasm32-unknown-unknown` instead, the same routes are a plain core module with a
//! C ABI (`worker.rs`) for JavaScript edge runtimes such as Cloudflare Workers
//! (`edge/cloudflare/`), where the model comes from a binding instead of being compiled in.
#![cfg(target_arch = "wasm32")]

mod api;
#[cfg(target_os = "wasi")]
mod handler;
#[cfg(not(target_os = "wasi"))]
mod worker;
