//! Text → sentence embedding: a Hugging Face `tokenizer.json` plus a BERT-style ONNX encoder,
//! mean-pooled over the attention mask like sentence-transformers.
//!
//! Pure Rust (the `tokenizers` crate without its C/C++ features), so it builds for
//! `wasm32-unknown-unknown` as well as native targets.
//!
//! # Which model output is used
//! The encoder must take `input_ids` and `attention_mask` (and `token_type_ids` if the graph
//! declares it), all int64 `[batch, seq]`. Of its outputs, the first one declared as a rank-3
//! float32 tensor (`[batch, seq, hidden]`, the per-token embeddings) is used and pooled here
//! with a masked mean: `sum_t(mask_t * h_t) / max(sum_t mask_t, 1e-9)`. Outputs that are already
//! pooled by the graph (rank 2) are ignored, so every model is pooled the same way. If no output
//! declares its shape, the first rank-3 float32 output produced at run time is used.
//!
//! # Features
//! `encoder` (default) adds [`SentenceEmbedder`], which runs the ONNX encoder with `uniml`.
//! Without it the crate is [`TextTokenizer`], [`mean_pool`] and [`cosine`] only, with no
//! engine inside: the browser's tokenizer module (`crates/uniml-text-web`) is built that way and
//! runs the encoder with the separate engine wasm.

use tokenizers::{Tokenizer, TruncationParams};
#[cfg(feature = "encoder")]
use uniml::{DType, Error, Session, SessionOptions, TensorView};

/// Default maximum number of tokens per sentence, special tokens included.
pub const DEFAULT_MAX_LENGTH: usize = 128;

/// A tokenizer or pooling failure; its message starts with `uniml-text: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError(String);

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TextError {}

#[cfg(feature = "encoder")]
impl From<TextError> for Error {
    fn from(e: TextError) -> Self {
        Error::Other(e.0)
    }
}

fn err(msg: impl std::fmt::Display) -> TextError {
    TextError(format!("uniml-text: {msg}"))
}

/// A batch of tokenized sentences, padded to its longest: row-major `[batch, seq]` int64
/// arrays, the encoder's `input_ids`, `attention_mask` and `token_type_ids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub token_type_ids: Vec<i64>,
}

/// A HF `tokenizer.json` set up for sentence encoders: truncation to `max_length` tokens,
/// batches padded to their longest sentence.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_length: usize,
    pad_id: i64,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("max_length", &self.max_length)
            .field("pad_id", &self.pad_id)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// `tokenizer_json`: the bytes of a HF `tokenizer.json`. Truncates to [`DEFAULT_MAX_LENGTH`].
    pub fn from_bytes(tokenizer_json: &[u8]) -> Result<Self, TextError> {
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| err(format!("cannot load tokenizer.json: {e}")))?;
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id as i64)
            .unwrap_or(0);
        // The file's own padding (often Fixed(128)) is replaced by padding to the batch's longest.
        tokenizer.with_padding(None);
        let mut me = TextTokenizer {
            tokenizer,
            max_length: 0,
            pad_id,
        };
        me.set_max_length(DEFAULT_MAX_LENGTH)?;
        Ok(me)
    }

    /// Truncate every sentence to at most `max_length` tokens (special tokens included).
    pub fn set_max_length(&mut self, max_length: usize) -> Result<(), TextError> {
        if max_length == 0 {
            return Err(err("max_length must be at least 1"));
        }
        self.tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| err(format!("cannot set truncation to {max_length}: {e}")))?;
        self.max_length = max_length;
        Ok(())
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The id used for padding (the file's padding token, else 0).
    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    fn encode_one(&self, sentence: &str) -> Result<tokenizers::Encoding, TextError> {
        self.tokenizer
            .encode(sentence, true)
            .map_err(|e| err(format!("tokenizer failed on {sentence:?}: {e}")))
    }

    /// Token ids of one sentence (special tokens added, truncated, not padded).
    pub fn token_ids(&self, sentence: &str) -> Result<Vec<i64>, TextError> {
        Ok(self
            .encode_one(sentence)?
            .get_ids()
            .iter()
            .map(|&i| i as i64)
            .collect())
    }

    /// Tokens (strings) of one sentence, special tokens included: for display.
    pub fn tokens(&self, sentence: &str) -> Result<Vec<String>, TextError> {
        Ok(self.encode_one(sentence)?.get_tokens().to_vec())
    }

    /// Tokenizes `sentences` into one batch padded to its longest sentence (`seq` >= 1).
    pub fn encode_batch(&self, sentences: &[&str]) -> Result<TokenBatch, TextError> {
        // One at a time: no rayon thread pool needed, so this also runs on wasm32.
        let encodings = sentences
            .iter()
            .map(|s| self.encode_one(s))
            .collect::<Result<Vec<_>, _>>()?;
        let batch = encodings.len();
        let seq = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut out = TokenBatch {
            batch,
            seq,
            input_ids: vec![self.pad_id; batch * seq],
            attention_mask: vec![0; batch * seq],
            token_type_ids: vec![0; batch * seq],
        };
        for (b, enc) in encodings.iter().enumerate() {
            let row = b * seq;
            for (t, ((&id, &m), &ty)) in enc
                .get_ids()
                .iter()
                .zip(enc.get_attention_mask())
                .zip(enc.get_type_ids())
                .enumerate()
            {
                out.input_ids[row + t] = id as i64;
                out.attention_mask[row + t] = m as i64;
                out.token_type_ids[row + t] = ty as i64;
            }
        }
        Ok(out)
    }
}

/// Masked mean pooling of token embeddings `hidden_states` (`[batch, seq, hidden]`, row-major)
/// over `attention_mask` (`[batch, seq]`): `sum_t(mask_t * h_t) / max(sum_t mask_t, 1e-9)`,
/// one vector per sentence (as sentence-transformers does). Not normalized.
pub fn mean_pool(
    hidden_states: &[f32],
    attention_mask: &[i64],
    batch: usize,
    seq: usize,
) -> Result<Vec<Vec<f32>>, TextError> {
    if batch == 0 {
        return Ok(Vec::new());
    }
    if attention_mask.len() != batch * seq || seq == 0 || hidden_states.len() % (batch * seq) != 0 {
        return Err(err(format!(
            "mean_pool: {} token values and a mask of {} do not fit [batch {batch}, seq {seq}, hidden]",
            hidden_states.len(),
            attention_mask.len()
        )));
    }
    let hidden = hidden_states.len() / (batch * seq);
    Ok((0..batch)
        .map(|b| {
            masked_mean(
                &hidden_states[b * seq * hidden..(b + 1) * seq * hidden],
                &attention_mask[b * seq..(b + 1) * seq],
                hidden,
            )
        })
        .collect())
}

#[cfg(feature = "encoder")]
pub use encoder::SentenceEmbedder;

#[cfg(feature = "encoder")]
mod encoder {
    use super::*;

    /// Tokenizer + encoder session producing one mean-pooled embedding per sentence.
    pub struct SentenceEmbedder {
        tokenizer: TextTokenizer,
        session: Session,
        use_token_type_ids: bool,
        /// Name of the rank-3 f32 token-embedding output, when the graph declares one.
        token_output: Option<String>,
    }

    impl std::fmt::Debug for SentenceEmbedder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SentenceEmbedder")
                .field("max_length", &self.tokenizer.max_length())
                .field("use_token_type_ids", &self.use_token_type_ids)
                .field("token_output", &self.token_output)
                .finish_non_exhaustive()
        }
    }

    impl SentenceEmbedder {
        /// `tokenizer_json`: the bytes of a HF `tokenizer.json`; `model`: ONNX bytes of a BERT-style
        /// encoder whose inputs are `input_ids` / `attention_mask` (/ `token_type_ids` if present),
        /// int64 `[batch, seq]`. Sentences are truncated to [`DEFAULT_MAX_LENGTH`] tokens
        /// (see [`SentenceEmbedder::with_max_length`]); a batch is padded to its longest sentence.
        pub fn new(
            tokenizer_json: &[u8],
            model: &[u8],
            options: SessionOptions,
        ) -> Result<Self, Error> {
            let tokenizer = TextTokenizer::from_bytes(tokenizer_json)?;
            let session = Session::from_bytes(model, options)?;

            let input_names: Vec<&str> = session.inputs().iter().map(|i| i.name.as_str()).collect();
            for needed in ["input_ids", "attention_mask"] {
                if !input_names.contains(&needed) {
                    return Err(err(format!(
                        "model has no input {needed:?} (inputs: {input_names:?})"
                    ))
                    .into());
                }
            }
            if let Some(other) = input_names
                .iter()
                .find(|n| !matches!(**n, "input_ids" | "attention_mask" | "token_type_ids"))
            {
                return Err(err(format!(
                "model input {other:?} is not one of input_ids / attention_mask / token_type_ids"
            ))
                .into());
            }
            let use_token_type_ids = input_names.contains(&"token_type_ids");

            let token_output = session
                .outputs()
                .iter()
                .find(|o| {
                    o.dtype == Some(DType::F32)
                        && !o.is_sequence
                        && o.shape.as_ref().map(|s| s.rank()) == Some(3)
                })
                .map(|o| o.name.clone());
            let all_declared = session.outputs().iter().all(|o| o.shape.is_some());
            if token_output.is_none() && all_declared {
                let outs: Vec<String> = session.outputs().iter().map(|o| o.to_string()).collect();
                return Err(err(format!(
                    "model has no rank-3 float32 token-embedding output (outputs: {outs:?})"
                ))
                .into());
            }

            Ok(SentenceEmbedder {
                tokenizer,
                session,
                use_token_type_ids,
                token_output,
            })
        }

        /// Truncate every sentence to at most `max_length` tokens (special tokens included).
        pub fn with_max_length(mut self, max_length: usize) -> Result<Self, Error> {
            self.tokenizer.set_max_length(max_length)?;
            Ok(self)
        }

        pub fn max_length(&self) -> usize {
            self.tokenizer.max_length()
        }

        /// The underlying encoder session.
        pub fn session(&self) -> &Session {
            &self.session
        }

        /// The tokenizer.
        pub fn tokenizer(&self) -> &TextTokenizer {
            &self.tokenizer
        }

        /// Token ids of one sentence (special tokens added, truncated, not padded).
        pub fn token_ids(&self, sentence: &str) -> Result<Vec<i64>, Error> {
            Ok(self.tokenizer.token_ids(sentence)?)
        }

        /// One embedding per sentence: the encoder's token embeddings mean-pooled over the
        /// attention mask (as sentence-transformers does). Not normalized.
        pub fn embed(&self, sentences: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
            if sentences.is_empty() {
                return Ok(Vec::new());
            }
            let b = self.tokenizer.encode_batch(sentences)?;
            let (batch, seq) = (b.batch, b.seq);
            let shape = [batch, seq];
            let mut inputs = vec![
                ("input_ids", TensorView::from_slice(&shape, &b.input_ids)?),
                (
                    "attention_mask",
                    TensorView::from_slice(&shape, &b.attention_mask)?,
                ),
            ];
            if self.use_token_type_ids {
                inputs.push((
                    "token_type_ids",
                    TensorView::from_slice(&shape, &b.token_type_ids)?,
                ));
            }
            let outputs = self.session.run(&inputs)?;
            let hidden_states = match &self.token_output {
                Some(name) => outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t),
                None => outputs
                    .iter()
                    .find(|(_, t)| t.dtype() == DType::F32 && t.rank() == 3)
                    .map(|(_, t)| t),
            }
            .ok_or_else(|| err("the model produced no rank-3 float32 token-embedding output"))?;

            let out_shape = hidden_states.shape();
            if out_shape.len() != 3 || out_shape[0] != batch || out_shape[1] != seq {
                return Err(err(format!(
                "token-embedding output has shape {out_shape:?}, expected [{batch}, {seq}, hidden]"
            ))
                .into());
            }
            Ok(mean_pool(
                hidden_states.as_slice::<f32>()?,
                &b.attention_mask,
                batch,
                seq,
            )?)
        }
    }
}

/// Mean of the rows of `tokens` (`[seq, hidden]`, row-major) whose mask is non-zero.
fn masked_mean(tokens: &[f32], mask: &[i64], hidden: usize) -> Vec<f32> {
    let mut sum = vec![0f32; hidden];
    let mut count = 0f32;
    for (row, &m) in tokens.chunks_exact(hidden).zip(mask) {
        if m != 0 {
            count += 1.0;
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += x;
            }
        }
    }
    let denom = count.max(1e-9);
    sum.iter_mut().for_each(|s| *s /= denom);
    sum
}

/// Cosine similarity; 0 when either vector is all zeros. Panics if the lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "cosine: vectors of different lengths");
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += x as f64 * y as f64;
        na += x as f64 * x as f64;
        nb += y as f64 * y as f64;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_mean_ignores_padding() {
        let tokens = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        assert_eq!(masked_mean(&tokens, &[1, 1, 0], 2), vec![2.0, 3.0]);
    }

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
