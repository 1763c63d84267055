// uniml/text in Node: the tokenizer wasm (HF tokenizers) against the project's Python tokenizer's
// ids, batches feeding the engine, mean pooling + cosine, and errors as readable Errors.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { Tensor } from 'uniml';
import { Tokenizer, cosine, initText, meanPool } from 'uniml/text';

const ROOT = new URL('../../', import.meta.url).pathname;
const TOKENIZER = join(ROOT, 'models/bert-uncased-tokenizer.json');

test('pooling before the wasm is loaded is a clear error', () => {
  assert.throws(() => cosine(new Float32Array(2), new Float32Array(2)), /not loaded.*initText/);
});

test('token ids match the Python tokenizer; batches are padded int64 tensors', async () => {
  const tok = await Tokenizer.create(TOKENIZER, { maxLength: 16 });
  // From `scripts/make_inputs.py text models/bert-uncased-tokenizer.json DIR "<sentence>"`.
  const expected = [101n, 7592n, 1010n, 2088n, 999n, 19204n, 17629n, 2015n, 1999n, 2001n, 2213n, 1012n, 102n];
  const enc = tok.encode(['Héllo, WORLD! Tokenizers in wasm.', 'Hi.']);
  assert.equal(enc.batch, 2);
  assert.equal(enc.seq, expected.length);
  assert.ok(enc.inputIds instanceof Tensor && enc.inputIds.type === 'int64');
  assert.deepEqual(enc.inputIds.dims, [2, expected.length]);
  assert.deepEqual(Array.from(enc.inputIds.data.subarray(0, expected.length)), expected);
  assert.deepEqual(Array.from(enc.attentionMask.data.subarray(expected.length)), [1n, 1n, 1n, 1n, ...Array(expected.length - 4).fill(0n)]);
  assert.deepEqual(tok.tokens('Hi.'), ['[CLS]', 'hi', '.', '[SEP]']);
  assert.equal(tok.encode(['word '.repeat(100)]).seq, 16, 'truncated to maxLength');
  tok.release();
  assert.throws(() => tok.encode(['x']), /released/);
});

test('mean pooling over the mask, cosine', async () => {
  await initText();
  const hidden = new Tensor('float32', new Float32Array([1, 2, 3, 4, 100, 100, 5, 6, 7, 8, 9, 10]), [2, 3, 2]);
  const mask = new Tensor('int64', [1n, 1n, 0n, 1n, 1n, 1n], [2, 3]);
  const [a, b] = meanPool(hidden, mask);
  assert.deepEqual(Array.from(a), [2, 3]);
  assert.deepEqual(Array.from(b), [7, 8]);
  assert.ok(Math.abs(cosine(new Float32Array([1, 0]), new Float32Array([3, 0])) - 1) < 1e-6);
  assert.throws(() => cosine(new Float32Array(2), new Float32Array(3)), /lengths 2 and 3/);
  assert.throws(() => meanPool(hidden, new Tensor('int64', [1n], [1, 1])), /do not fit/);
});

test('a bad tokenizer.json or a missing file is a readable Error', async () => {
  await assert.rejects(Tokenizer.create(new TextEncoder().encode('{"not": "a tokenizer"}')), /uniml-text: cannot load tokenizer\.json/);
  await assert.rejects(Tokenizer.create(join(ROOT, 'models/no-such-tokenizer.json')), /cannot read the tokenizer\.json/);
  await assert.rejects(Tokenizer.create(TOKENIZER, { maxLength: 0 }), /maxLength must be a positive integer/);
});
