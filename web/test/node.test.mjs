// Node tests of the built package (dist/web, imported as the package `uniml`) against
// onnxruntime outputs made at test time (UNIML_WEB_TEST_DIR, written by `cargo xtask web-test`).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { Session, Tensor, capabilities, memoryStats } from 'uniml';

import { argmax, maxDiff, parseNpy } from './npy.mjs';

const readNpy = (path) => parseNpy(readFileSync(path));
function readNpyDir(dir) {
  const out = {};
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.npy'))) out[f.slice(0, -4)] = readNpy(join(dir, f));
  return out;
}

const ROOT = new URL('../../', import.meta.url).pathname;
const WORK = process.env.UNIML_WEB_TEST_DIR || join(ROOT, '.cache/web-test');
const model = (name) => join(ROOT, 'models', name);
const sanitize = (n) => n.replace(/[/:]/g, '_');
const TOL = 1e-4;

function compare(label, outputs, refDir) {
  const ref = readNpyDir(refDir);
  let worst = 0;
  for (const [name, t] of Object.entries(outputs)) {
    const r = ref[sanitize(name)];
    assert.ok(r, `${label}: no reference for output ${name}`);
    assert.deepEqual(Array.from(t.dims), r.dims, `${label}: ${name} dims`);
    const { diff, scale } = maxDiff(t.data, r.data);
    console.log(`${label}: ${name} max |diff| ${diff.toExponential(3)} (scale ${scale.toPrecision(3)})`);
    assert.ok(diff / scale <= TOL, `${label}: ${name} differs from onnxruntime: ${diff} > ${TOL} * ${scale}`);
    worst = Math.max(worst, diff);
  }
  return worst;
}

function inputTensor(dir) {
  const x = readNpy(join(dir, 'in/input.npy'));
  return new Tensor(x.type, x.data, x.dims);
}

test('capabilities in Node', async () => {
  const c = await capabilities();
  assert.equal(c.simd, true);
  assert.equal(c.threads, true, 'Node has SharedArrayBuffer and worker_threads');
  assert.equal(c.threadsReason, '');
  assert.equal(c.webgpu, false);
});

test('digits8x8_cnn matches onnxruntime; metadata', async () => {
  const s = await Session.create(model('digits8x8_cnn.onnx'));
  assert.deepEqual(s.inputNames, ['input']);
  assert.equal(s.inputMetadata[0].dtype, 'float32');
  assert.equal(s.inputMetadata[0].dims.length, 4);
  assert.equal(Session.engineInfo().simd, true, 'the SIMD build is picked in Node');
  // The relaxed build exactly where this Node validates relaxed SIMD (Node 22+, or a flag).
  assert.equal(Session.engineInfo().relaxedSimd, (await capabilities()).relaxedSimd, 'the relaxed build is picked where relaxed SIMD is supported');
  const out = await s.run({ input: inputTensor(join(WORK, 'digits')) });
  assert.deepEqual(Object.keys(out), s.outputNames);
  compare('digits node', out, join(WORK, 'digits/ref'));
  await s.release();
});

test('efficientnet_lite0 (bytes) classifies coffee as espresso, matches onnxruntime', async () => {
  const bytes = readFileSync(model('efficientnet_lite0.onnx'));
  const s = await Session.create(bytes);
  const x = inputTensor(join(WORK, 'efficientnet-coffee'));
  let out = await s.run({ input: x });
  const times = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    out = await s.run({ input: x });
    times.push(performance.now() - t0);
  }
  const logits = out[s.outputNames[0]];
  assert.equal(logits.type, 'float32');
  assert.equal(argmax(logits.data), 967, 'top-1 is espresso');
  compare('efficientnet node', out, join(WORK, 'efficientnet-coffee/ref'));
  console.log(`efficientnet_lite0 run in Node: median ${times.sort((a, b) => a - b)[1].toFixed(1)} ms (SIMD build, 1 thread)`);
  await s.release();
});

test('worker mode (worker_threads): same numbers; transfer and a second run', async () => {
  const s = await Session.create(model('digits8x8_cnn.onnx'), { worker: true });
  assert.equal(s.worker, true);
  const x = inputTensor(join(WORK, 'digits'));
  const first = await s.run({ input: x }, { transfer: true });
  compare('digits worker', first, join(WORK, 'digits/ref'));
  assert.equal(x.data.length, x.size, 'the transferred buffer came back into the Tensor');
  const second = await s.run({ input: x }, { transfer: true });
  compare('digits worker 2nd run', second, join(WORK, 'digits/ref'));
  const copied = await s.run({ input: x });
  compare('digits worker copy', copied, join(WORK, 'digits/ref'));
  const stats = await s.memoryStats();
  assert.ok(stats.weightBytes > 0 && stats.wasmMemoryBytes > 0);
  await s.release();
  await assert.rejects(s.run({ input: x }), /released/);
});

test('int64 (BigInt64Array), int32, bool, uint8 in and out; symbolic dims', async () => {
  const s = await Session.create(join(WORK, 'models/add_int64.onnx'));
  assert.deepEqual(s.inputMetadata[0].dims, ['batch', 3]);
  const x = new Tensor('int64', [1, 2, 3, 4, 5, 6], [2, 3]);
  const y = new Tensor('int64', new BigInt64Array([10n, 20n, 30n, 40n, 50n, 2n ** 40n]), [2, 3]);
  const { z } = await s.run({ x, y });
  assert.ok(z.data instanceof BigInt64Array);
  assert.deepEqual(Array.from(z.data), [11n, 22n, 33n, 44n, 55n, 2n ** 40n + 6n]);
  await assert.rejects(
    s.run({ x, y: new Tensor('int64', [1, 2, 3], [1, 3]) }),
    (e) => e instanceof Error && /'batch'/.test(e.message),
  );
  await s.release();

  const b = await Session.create(join(WORK, 'models/int32_bool.onnx'));
  const out = await b.run({ x: new Tensor('int32', [1, 2, 3, 4]) });
  assert.equal(out.b.type, 'bool');
  assert.deepEqual(Array.from(out.b.data), [0, 0, 1, 1]);
  assert.deepEqual(Array.from(out.n.data), [1, 1, 0, 0]);
  assert.ok(out.c.data instanceof Uint8Array);
  assert.deepEqual(Array.from(out.c.data), [1, 2, 3, 4]);
  await b.release();
});

test('errors are Error instances with the engine message', async () => {
  const s = await Session.create(model('digits8x8_cnn.onnx'));
  await assert.rejects(s.run({ input: new Tensor('float32', new Float32Array(24), [1, 1, 8, 3]) }), (e) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /input 'input'/);
    assert.match(e.message, /dim 3 must be 8/);
    assert.match(e.message, /got 3 \(shape \[1, 1, 8, 3\]\)/);
    return true;
  });
  await assert.rejects(s.run({ input: new Tensor('int32', new Int32Array(64), [1, 1, 8, 8]) }), /expected dtype float32, got int32/);
  await assert.rejects(s.run({ nope: new Tensor('float32', new Float32Array(64), [1, 1, 8, 8]) }), /no such input/);
  await assert.rejects(s.run({ input: { type: 'float32', data: [1, 2], dims: [3] } }), /need 3 elements/);
  await s.release();
  await assert.rejects(s.run({ input: new Tensor('float32', new Float32Array(64), [1, 1, 8, 8]) }), /released/);

  await assert.rejects(Session.create(new Uint8Array([1, 2, 3, 4, 5, 0xff, 0xff])), (e) => e instanceof Error && /invalid model/.test(e.message));
  await assert.rejects(Session.create(join(WORK, 'models/unsupported_op.onnx')), (e) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /unsupported/);
    assert.match(e.message, /NotARealOp/);
    assert.match(e.message, /mystery/);
    return true;
  });
  await assert.rejects(Session.create(model('digits8x8_cnn.onnx'), { backend: 'webgpu' }), /backend 'webgpu': this JS engine has no WebGPU \(navigator.gpu is missing/);
  // 'auto' without WebGPU (Node): wasm, saying why.
  const auto = await Session.create(model('digits8x8_cnn.onnx'), { backend: 'auto' });
  assert.equal(auto.backend, 'wasm');
  assert.match(auto.backendReason, /no WebGPU/);
  assert.ok((await auto.placement()).every((p) => p.device === 'cpu'));
  await auto.release();
  await assert.rejects(Session.create(join(WORK, 'no-such-model.onnx')), /cannot read the model at file:.*no-such-model\.onnx/);
  assert.throws(() => new Tensor('float32', new Float32Array(5), [2, 2]), /need 4 elements/);
  assert.throws(() => new Tensor('complex', [1]), /unknown tensor type/);
});

test('release frees memory (heap bytes go down)', async () => {
  const before = memoryStats().heapBytes;
  const s = await Session.create(model('efficientnet_lite0.onnx'));
  await s.run({ input: inputTensor(join(WORK, 'efficientnet-coffee')) });
  const loaded = await s.memoryStats();
  assert.ok(loaded.heapBytes > before + 10e6, `a loaded efficientnet holds > 10 MB (${loaded.heapBytes} vs ${before})`);
  assert.ok(loaded.poolPeakBytes > 0);
  await s.release();
  const after = memoryStats();
  console.log(`heap: before ${before}, loaded ${loaded.heapBytes}, after release ${after.heapBytes}; wasm memory ${after.wasmMemoryBytes}`);
  assert.ok(after.heapBytes < before + 1e6, `release returns the heap (${after.heapBytes} vs ${before} before)`);
});

test('threads after a 1-thread load of this process: 1 thread and the reason', async () => {
  // Earlier tests loaded the single-threaded build here (threads 1); it stays for this process.
  const s = await Session.create(model('digits8x8_cnn.onnx'), { threads: 2 });
  assert.equal(s.threads, 1);
  assert.match(s.threadsReason, /loaded single-threaded/);
  await s.release();
});
