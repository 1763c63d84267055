//! # uniml-text-web
//!
//! The low-level WebAssembly API of `uniml/text` (the tokenizer module of the `uniml` npm
//! package): [`uniml_text::TextTokenizer`], [`uniml_text::mean_pool`] and
//! [`uniml_text::cosine`] for JS, with no inference engine inside (the encoder runs in the engine
//! wasm). The hand-written glue `web/src/text.js` is the only caller; see `docs/web.md`.
//!
//! Every failure is a JS `Error` with the tokenizer's message; a panic (a bug) is recorded by a
//! panic hook so the glue can report it ([`take_panic_message`]).

use js_sys::{Array, BigInt64Array, Float32Array};
use uniml_text::{TextError, TextTokenizer};
use wasm_bindgen::prelude::*;

fn js_err(e: TextError) -> JsError {
    JsError::new(&e.to_string())
}

static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Installs the panic hook (idempotent). Called by the glue right after instantiation.
#[wasm_bindgen]
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "unknown panic".into()),
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut slot) = PANIC.lock() {
                *slot = Some(format!("{msg}{at}"));
            }
        }));
    });
}

/// The message of the last panic (then cleared), or `undefined`.
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    PANIC.lock().ok().and_then(|mut p| p.take())
}

/// A HF `tokenizer.json` for sentence encoders (truncation, batches padded to the longest).
#[wasm_bindgen]
pub struct WasmTokenizer {
    inner: TextTokenizer,
}

#[wasm_bindgen]
impl WasmTokenizer {
    /// `json`: the bytes of a `tokenizer.json`; `max_length`: tokens per sentence, specials included.
    #[wasm_bindgen(constructor)]
    pub fn new(json: &[u8], max_length: usize) -> Result<WasmTokenizer, JsError> {
        let mut inner = TextTokenizer::from_bytes(json).map_err(js_err)?;
        inner.set_max_length(max_length).map_err(js_err)?;
        Ok(WasmTokenizer { inner })
    }

    #[wasm_bindgen(js_name = maxLength)]
    pub fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// `[batch, seq, inputIds, attentionMask, tokenTypeIds]` (BigInt64Arrays, `[batch, seq]` row-major).
    pub fn encode(&self, sentences: Vec<String>) -> Result<Array, JsError> {
        let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let b = self.inner.encode_batch(&refs).map_err(js_err)?;
        let out = Array::new();
        out.push(&JsValue::from(b.batch as u32));
        out.push(&JsValue::from(b.seq as u32));
        for v in [&b.input_ids, &b.attention_mask, &b.token_type_ids] {
            out.push(&BigInt64Array::from(v.as_slice()));
        }
        Ok(out)
    }

    /// The tokens (strings) of one sentence, special tokens included.
    pub fn tokens(&self, sentence: &str) -> Result<Vec<String>, JsError> {
        self.inner.tokens(sentence).map_err(js_err)
    }
}

/// Masked mean pooling: `[batch, seq, hidden]` token embeddings → `batch` Float32Arrays.
#[wasm_bindgen(js_name = meanPool)]
pub fn mean_pool(
    hidden_states: &[f32],
    attention_mask: &[i64],
    batch: usize,
    seq: usize,
) -> Result<Array, JsError> {
    let pooled =
        uniml_text::mean_pool(hidden_states, attention_mask, batch, seq).map_err(js_err)?;
    Ok(pooled
        .iter()
        .map(|v| Float32Array::from(v.as_slice()))
        .collect())
}

/// Cosine similarity (0 when either vector is all zeros); an `Error` if the lengths differ.
#[wasm_bindgen]
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f32, JsError> {
    if a.len() != b.len() {
        return Err(JsError::new(&format!(
            "uniml-text: cosine of vectors of lengths {} and {}",
            a.len(),
            b.len()
        )));
    }
    Ok(uniml_text::cosine(a, b))
}

/// The module version (the crate version).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
