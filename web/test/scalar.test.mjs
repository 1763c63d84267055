// The scalar (no-SIMD) engine build, forced with init({wasm}), must give onnxruntime's
// numbers too. Its own file: the engine instance is per process (node --test: one per file).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { Session, Tensor, init } from 'uniml';

import { argmax, maxDiff, parseNpy } from './npy.mjs';

const ROOT = new URL('../../', import.meta.url).pathname;
const WORK = process.env.UNIML_WEB_TEST_DIR || join(ROOT, '.cache/web-test');

test('scalar build: no SIMD opcodes needed, same numbers as onnxruntime', async () => {
  const info = await init({ wasm: new URL('../../dist/web/uniml_scalar_bg.wasm', import.meta.url) });
  assert.equal(info.simd, false, 'the scalar build was loaded');
  for (const [dir, model, top1] of [['digits', 'digits8x8_cnn.onnx', null], ['efficientnet-coffee', 'efficientnet_lite0.onnx', 967]]) {
    const x = parseNpy(readFileSync(join(WORK, dir, 'in/input.npy')));
    const s = await Session.create(join(ROOT, 'models', model));
    const out = await s.run({ input: new Tensor(x.type, x.data, x.dims) });
    for (const f of readdirSync(join(WORK, dir, 'ref')).filter((f) => f.endsWith('.npy'))) {
      const ref = parseNpy(readFileSync(join(WORK, dir, 'ref', f)));
      const { diff, scale } = maxDiff(out[f.slice(0, -4)].data, ref.data);
      console.log(`${dir} scalar: ${f} max |diff| ${diff.toExponential(3)} (scale ${scale.toPrecision(3)})`);
      assert.ok(diff / scale <= 1e-4);
    }
    if (top1 !== null) assert.equal(argmax(out.logits.data), top1);
    await s.release();
  }
});
