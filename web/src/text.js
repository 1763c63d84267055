// uniml/text: a Hugging Face tokenizer.json tokenizer, masked mean pooling and cosine
// similarity, in their own small wasm module (crates/uniml-text-web, no engine inside), for
// sentence-embedding models run with `Session` (the encoder runs in the engine wasm).
// No eval, no blob: URLs, no dynamic import().

import initWasm, * as wasm from './uniml_text.js';
import { Tensor } from './tensor.js';
import { baseHref, isNode, requireNodeBuiltin } from './engine.js';

let loading = null;
let ready = false;
let poisoned = null;

function isWasm(bytes) {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
}

/** Bytes behind a URL: fs for file: URLs in Node, else fetch; errors name the URL and the HTTP status. */
async function fetchBytes(url, what) {
  if (url.protocol === 'file:' && isNode) {
    try {
      return new Uint8Array(requireNodeBuiltin('fs').readFileSync(url));
    } catch (e) {
      throw new Error(`uniml/text: cannot read the ${what} at ${url.href}: ${e.message}`, { cause: e });
    }
  }
  let resp;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new Error(`uniml/text: cannot fetch the ${what} from ${url.href}: ${e.message}`, { cause: e });
  }
  if (!resp.ok) {
    throw new Error(`uniml/text: cannot load the ${what} from ${url.href}: HTTP ${resp.status} ${resp.statusText} (content-type ${resp.headers.get('content-type') || 'none'})`);
  }
  return new Uint8Array(await resp.arrayBuffer());
}

async function instantiate(source) {
  let module = source;
  if (!(source instanceof WebAssembly.Module)) {
    let bytes;
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) bytes = source;
    else {
      // Written out literally so that bundlers see and emit the file.
      const url = source ? new URL(String(source), baseHref()) : new URL('./uniml_text_bg.wasm', import.meta.url);
      bytes = await fetchBytes(url, 'tokenizer wasm');
      if (!isWasm(bytes)) throw new Error(`uniml/text: ${url.href} is not WebAssembly (${bytes.length} bytes): is uniml_text_bg.wasm served beside text.js?`);
    }
    module = await WebAssembly.compile(bytes);
  }
  await initWasm({ module_or_path: module });
  wasm.init();
  ready = true;
}

/** Loads the tokenizer wasm once (optional: `Tokenizer.create` does it). `wasm`: URL, bytes or Module instead of the bundled file. */
export function initText(options = {}) {
  if (!loading) {
    loading = instantiate(options.wasm).catch((e) => {
      loading = null;
      throw e;
    });
  }
  return loading;
}

/** Calls into wasm: engine messages become `Error`s prefixed `uniml-text:`; a trap reports its panic message. */
function guard(fn) {
  if (!ready) throw new Error('uniml/text: the tokenizer wasm is not loaded; `await initText()` or `await Tokenizer.create(...)` first');
  if (poisoned) throw new Error(`uniml/text: stopped after an internal error (${poisoned}); reload the page`);
  try {
    return fn();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      let msg = null;
      try {
        msg = wasm.takePanicMessage();
      } catch {
        // the instance cannot answer
      }
      poisoned = msg || e.message;
      throw new Error(`uniml/text: internal error (a bug in uniml, please report it): ${poisoned}`, { cause: e });
    }
    throw e;
  }
}

/** A tokenizer.json tokenizer for sentence encoders: truncation, batches padded to their longest. */
export class Tokenizer {
  constructor(inner) {
    if (!(inner instanceof wasm.WasmTokenizer)) throw new TypeError('uniml/text: use `await Tokenizer.create(tokenizerJson, options)`');
    this._inner = inner;
    this.maxLength = inner.maxLength();
  }

  /** `json`: URL or path (Node) of a tokenizer.json, or its bytes. `maxLength`: tokens per sentence (default 128). */
  static async create(json, options = {}) {
    const maxLength = options.maxLength ?? 128;
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new TypeError(`uniml/text: maxLength must be a positive integer, got ${maxLength}`);
    let bytes;
    if (json instanceof Uint8Array) bytes = json;
    else if (json instanceof ArrayBuffer) bytes = new Uint8Array(json);
    else if (typeof json === 'string' || json instanceof URL) {
      const url = json instanceof URL ? json : isNode && !/^[a-z][a-z0-9+.-]+:/i.test(json) ? requireNodeBuiltin('url').pathToFileURL(json) : new URL(json, baseHref());
      bytes = await fetchBytes(url, 'tokenizer.json');
    } else throw new TypeError('uniml/text: Tokenizer.create needs the URL (or Node path) of a tokenizer.json, or its bytes');
    await initText(options);
    return new Tokenizer(guard(() => new wasm.WasmTokenizer(bytes, maxLength)));
  }

  /** Tokenizes sentences into one batch: int64 `[batch, seq]` tensors ready for `session.run`. */
  encode(sentences) {
    if (!Array.isArray(sentences) || sentences.some((s) => typeof s !== 'string')) throw new TypeError('uniml/text: encode() needs an array of strings');
    const [batch, seq, ids, mask, types] = guard(() => this.live().encode(sentences));
    const dims = [batch, seq];
    return { batch, seq, inputIds: new Tensor('int64', ids, dims), attentionMask: new Tensor('int64', mask, dims), tokenTypeIds: new Tensor('int64', types, dims) };
  }

  /** The tokens of one sentence, special tokens included (for display). */
  tokens(sentence) {
    return guard(() => this.live().tokens(String(sentence)));
  }

  /** Frees the tokenizer's wasm memory. */
  release() {
    if (this._inner) this._inner.free();
    this._inner = null;
  }

  live() {
    if (!this._inner) throw new Error('uniml/text: this tokenizer was released');
    return this._inner;
  }
}

/** Masked mean pooling: float32 `[batch, seq, hidden]` token embeddings and the int64 `[batch, seq]` attention mask → one Float32Array per sentence. */
export function meanPool(hiddenStates, attentionMask) {
  if (!(hiddenStates instanceof Tensor) || hiddenStates.type !== 'float32' || hiddenStates.dims.length !== 3) {
    throw new TypeError('uniml/text: meanPool() needs a float32 Tensor [batch, seq, hidden]');
  }
  if (!(attentionMask instanceof Tensor) || attentionMask.type !== 'int64') throw new TypeError('uniml/text: meanPool() needs the int64 attention mask Tensor');
  const [batch, seq] = hiddenStates.dims;
  return guard(() => Array.from(wasm.meanPool(hiddenStates.data, attentionMask.data, batch, seq)));
}

/** Cosine similarity of two vectors of the same length (0 when either is all zeros). */
export function cosine(a, b) {
  return guard(() => wasm.cosine(a, b));
}
