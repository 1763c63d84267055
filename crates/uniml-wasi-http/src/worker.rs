//! The same routes as a core WebAssembly module with a C ABI, for JavaScript edge runtimes
//! (Cloudflare Workers / workerd: `edge/cloudflare/src/worker.js`). Built for
//! `wasm32-unknown-unknown`; one request at a time (a Worker isolate is single-threaded).
//!
//! Protocol: the host copies bytes into buffers from `uniml_alloc` (ownership passes to the
//! module), calls `uniml_init(model)` once, then `uniml_handle(method, path, body)` per request;
//! both return the HTTP status and leave the JSON answer at `uniml_response_ptr/len`.

use std::cell::RefCell;

use crate::api;

#[link(wasm_import_module = "env")]
extern "C" {
    /// The host's monotonic clock in milliseconds (`performance.now()`).
    fn uniml_now_ms() -> f64;
}

pub fn now_ms() -> f64 {
    // SAFETY: an import without arguments or memory access.
    unsafe { uniml_now_ms() }
}

thread_local! {
    static RESPONSE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn answer(r: api::Reply) -> u32 {
    RESPONSE.with(|b| *b.borrow_mut() = r.body);
    r.status as u32
}

/// Takes ownership of a buffer from [`uniml_alloc`].
///
/// # Safety
/// `ptr`/`len` must come from one `uniml_alloc(len)` call, not yet passed back.
unsafe fn take(ptr: *mut u8, len: usize) -> Box<[u8]> {
    if len == 0 || ptr.is_null() {
        return Box::new([]);
    }
    // SAFETY: uniml_alloc made this pointer with Box::into_raw of a boxed slice of exactly len bytes.
    Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len))
}

/// A zeroed buffer of `len` bytes for the host to fill (null for `len == 0` or when out of memory).
#[no_mangle]
pub extern "C" fn uniml_alloc(len: usize) -> *mut u8 {
    if len == 0 {
        return std::ptr::null_mut();
    }
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(len).is_err() {
        return std::ptr::null_mut();
    }
    v.resize(len, 0);
    Box::into_raw(v.into_boxed_slice()) as *mut u8
}

/// Loads the ONNX model (a buffer from `uniml_alloc`, consumed). Returns the HTTP-style status.
///
/// # Safety
/// See [`take`].
#[no_mangle]
pub unsafe extern "C" fn uniml_init(model_ptr: *mut u8, model_len: usize) -> u32 {
    let model = take(model_ptr, model_len);
    answer(api::init(&model))
}

/// Answers one request (method, path and body: buffers from `uniml_alloc`, consumed).
///
/// # Safety
/// See [`take`].
#[no_mangle]
pub unsafe extern "C" fn uniml_handle(method_ptr: *mut u8, method_len: usize, path_ptr: *mut u8, path_len: usize, body_ptr: *mut u8, body_len: usize) -> u32 {
    let (method, path, body) = (take(method_ptr, method_len), take(path_ptr, path_len), take(body_ptr, body_len));
    let (method, path) = (String::from_utf8_lossy(&method), String::from_utf8_lossy(&path));
    answer(api::route(&method, path.split('?').next().unwrap_or("/"), &body))
}

#[no_mangle]
pub extern "C" fn uniml_response_ptr() -> *const u8 {
    RESPONSE.with(|b| b.borrow().as_ptr())
}

#[no_mangle]
pub extern "C" fn uniml_response_len() -> usize {
    RESPONSE.with(|b| b.borrow().len())
}
