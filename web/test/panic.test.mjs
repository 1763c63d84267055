// An engine panic (a bug; no input should cause one) must reach JS as a readable Error, not
// `RuntimeError: unreachable`, and later calls must say the engine stopped. Its own file so
// that the poisoned engine instance does not affect other tests (node --test: one process per file).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { Session, Tensor } from 'uniml';

import { guard } from '../../dist/web/engine.js';
import * as raw from '../../dist/web/uniml.js';

const ROOT = new URL('../../', import.meta.url).pathname;

test('a panic becomes an Error with its message; the engine then refuses politely', async () => {
  const s = await Session.create(join(ROOT, 'models/digits8x8_cnn.onnx'));
  assert.throws(
    () => guard(() => raw.debugPanic('deliberate test panic')),
    (e) => e instanceof Error && /internal error/.test(e.message) && /deliberate test panic/.test(e.message),
  );
  await assert.rejects(s.run({ input: new Tensor('float32', new Float32Array(64), [1, 1, 8, 8]) }), /engine stopped after an internal error \(deliberate test panic/);
  // Worker mode is unaffected: each worker has its own engine instance.
  const w = await Session.create(join(ROOT, 'models/digits8x8_cnn.onnx'), { worker: true });
  const out = await w.run({ input: new Tensor('float32', new Float32Array(64), [1, 1, 8, 8]) });
  assert.equal(out.logits.dims.join(','), '1,10');
  await w.release();
});
