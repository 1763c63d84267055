// Peak memory of loading and running a model stays within 2x its weights plus the plan's live
// set (docs/web.md, "Memory"): paraphrase-MiniLM-L3-v2 (69 MB of weights; fetched by
// `cargo xtask web-test` into .cache/models) in a fresh engine instance (node --test: one process
// per file). Before the fix the model's bytes were copied whole into wasm and decoded beside it:
// wasm memory peaked at 233 MB (3.4x). Prints the figures.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { Session } from 'uniml';
import { Tokenizer, cosine, meanPool } from 'uniml/text';

const ROOT = new URL('../../', import.meta.url).pathname;
const MODEL = join(ROOT, '.cache/models/paraphrase-MiniLM-L3-v2.onnx');

test('MiniLM: peak wasm memory <= 2x weights + the run-time live set', { skip: !existsSync(MODEL) && `${MODEL} missing (cargo xtask web-test fetches it)` }, async () => {
  const tok = await Tokenizer.create(join(ROOT, 'models/bert-uncased-tokenizer.json'), { maxLength: 128 });
  const sentences = ['A man is playing a guitar.', 'Someone plays a guitar.', 'The stock market fell sharply today.'];
  const enc = tok.encode(sentences);
  const s = await Session.create(MODEL);
  const afterLoad = await s.memoryStats();
  const out = await s.run({ input_ids: enc.inputIds, attention_mask: enc.attentionMask });
  const m = await s.memoryStats();
  const mb = (x) => `${(x / 1e6).toFixed(1)} MB`;
  const limit = 2 * m.weightBytes + m.poolPeakBytes;
  console.log(
    `MiniLM memory: weights ${mb(m.weightBytes)}, pool peak (live set) ${mb(m.poolPeakBytes)}, heap peak ${mb(m.heapPeakBytes)} ` +
      `(after load ${mb(afterLoad.heapPeakBytes)}), wasm memory ${mb(m.wasmMemoryBytes)} = ${(m.wasmMemoryBytes / m.weightBytes).toFixed(2)}x weights; limit ${mb(limit)}`,
  );
  assert.ok(m.weightBytes > 60e6, `weights ${m.weightBytes}`);
  assert.ok(m.wasmMemoryBytes <= limit, `wasm memory ${mb(m.wasmMemoryBytes)} > 2x weights + live set = ${mb(limit)}`);
  assert.ok(m.heapPeakBytes <= limit, `heap peak ${mb(m.heapPeakBytes)} > ${mb(limit)}`);
  // The model still works: the paraphrases are closer than the unrelated sentence.
  const hidden = out['onnx::Shape_422']; // [batch, seq, hidden], as in docs/web.md
  const [a, b, c] = meanPool(hidden, enc.attentionMask);
  assert.ok(cosine(a, b) > cosine(a, c) + 0.3, `cosines ${cosine(a, b)} vs ${cosine(a, c)}`);
  await s.release();
  tok.release();
});
