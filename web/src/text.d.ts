// Types of `uniml/text` (the tokenizer module of the `uniml` npm package; checked with `tsc --strict`).
import type { Tensor } from './index.js';

export interface TokenizerOptions {
  /** Tokens per sentence, special tokens included (default 128); longer sentences are truncated. */
  maxLength?: number;
  /** URL, bytes or compiled module to use instead of the bundled `uniml_text_bg.wasm`. */
  wasm?: string | URL | ArrayBuffer | ArrayBufferView | WebAssembly.Module;
}

/** A tokenized batch, padded to its longest sentence: int64 `[batch, seq]` tensors. */
export interface EncodedBatch {
  readonly batch: number;
  readonly seq: number;
  readonly inputIds: Tensor<'int64'>;
  readonly attentionMask: Tensor<'int64'>;
  readonly tokenTypeIds: Tensor<'int64'>;
}

/** A Hugging Face `tokenizer.json` tokenizer (Rust `tokenizers` compiled to wasm). */
export class Tokenizer {
  private constructor();
  /** `json`: URL or path (Node) of a tokenizer.json, or its bytes. */
  static create(json: string | URL | Uint8Array | ArrayBuffer, options?: TokenizerOptions): Promise<Tokenizer>;
  readonly maxLength: number;
  encode(sentences: readonly string[]): EncodedBatch;
  /** The tokens of one sentence, special tokens included. */
  tokens(sentence: string): string[];
  /** Frees the tokenizer's wasm memory; later calls throw. */
  release(): void;
}

/** Loads the tokenizer wasm ahead of time (optional: `Tokenizer.create` does it). */
export function initText(options?: Pick<TokenizerOptions, 'wasm'>): Promise<void>;

/** Masked mean pooling: `[batch, seq, hidden]` token embeddings → one vector per sentence. */
export function meanPool(hiddenStates: Tensor<'float32'>, attentionMask: Tensor<'int64'>): Float32Array[];

/** Cosine similarity of two vectors of the same length (0 when either is all zeros). */
export function cosine(a: Float32Array, b: Float32Array): number;
