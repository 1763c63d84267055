// The uniml component under a JavaScript host: `jco transpile` (pinned in package.json), then
// Node runs it with @bytecodealliance/preview2-shim. Outputs must match onnxruntime, computed now
// by scripts/make_inputs.py + scripts/reference.py (the project's Python venv) on the same inputs.
//
//   UNIML_COMPONENT=/path/uniml_wasi.wasm node --test component.test.js
//
// UNIML_PYTHON: the Python with onnxruntime (default: <repo>/.venv/bin/python).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy, values } from './npy.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const component = process.env.UNIML_COMPONENT;
const python = process.env.UNIML_PYTHON ?? join(root, '.venv/bin/python');
const TOL = 1e-4;
let runtime;

before(async () => {
  assert.ok(component && existsSync(component), `set UNIML_COMPONENT to the built component (got ${component})`);
  const out = join(here, 'build/uniml');
  mkdirSync(out, { recursive: true });
  const t0 = Date.now();
  execFileSync(join(here, 'node_modules/.bin/jco'), ['transpile', component, '-o', out, '--name', 'uniml', '--quiet'], { stdio: 'inherit' });
  console.log(`jco transpile: ${statSync(component).size} B component -> ${out} in ${Date.now() - t0} ms`);
  ({ runtime } = await import(join(out, 'uniml.js')));
});

/** Inputs from make_inputs.py and onnxruntime's outputs from reference.py, in a fresh temp dir. */
function reference(model, makeArgs) {
  const dir = mkdtempSync(join(tmpdir(), 'uniml-wasi-js-'));
  const py = (args) => execFileSync(python, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  py(['scripts/make_inputs.py', ...makeArgs, join(dir, 'in')]);
  py(['scripts/reference.py', model, '--inputs-dir', join(dir, 'in'), '--outputs-dir', join(dir, 'ref')]);
  return dir;
}

const sanitize = (n) => n.replace(/[/:]/g, '_');
const toWit = (t) => ({ shape: BigUint64Array.from(t.shape.map(BigInt)), dtype: t.dtype, data: t.bytes });

function compare(session, dir, label) {
  const feeds = session.inputs().map((i) => [i.name, toWit(readNpy(join(dir, 'in', `${sanitize(i.name)}.npy`)))]);
  const t0 = performance.now();
  const outs = session.run(feeds);
  const ms = performance.now() - t0;
  let worst = 0;
  for (const [name, t] of outs) {
    const want = readNpy(join(dir, 'ref', `${sanitize(name)}.npy`));
    assert.deepEqual(Array.from(t.shape, Number), want.shape, `${label}: output ${name} shape`);
    assert.equal(t.dtype, want.dtype, `${label}: output ${name} dtype`);
    const a = values({ dtype: t.dtype, bytes: t.data });
    const b = values(want);
    const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
    const diff = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    console.log(`${label}: output '${name}' [${want.shape}] max |diff| vs onnxruntime ${diff.toExponential(3)} (scale ${scale.toPrecision(3)}, run ${ms.toFixed(0)} ms)`);
    assert.ok(diff / scale <= TOL, `${label}: ${name} differs from onnxruntime by ${diff}`);
    worst = Math.max(worst, diff);
  }
  return { outs, worst };
}

/** Calls fn, expects a thrown ComponentError whose payload is the WIT `error` variant. */
function expectError(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e.payload && typeof e.payload.tag === 'string', `expected a typed error, got ${e}`);
    return e.payload;
  }
  assert.fail('expected an error');
}

test('version', () => {
  assert.match(runtime.version(), /^\d+\.\d+\.\d+/);
});

test('digits8x8_cnn matches onnxruntime (model as bytes)', () => {
  const model = join(root, 'models/digits8x8_cnn.onnx');
  const session = runtime.Session.load(readFileSync(model));
  const [inp] = session.inputs();
  assert.equal(inp.name, 'input');
  assert.equal(inp.dtype, 'f32');
  assert.deepEqual(inp.shape[0], { tag: 'symbolic', val: 'N' });
  const { worst } = compare(session, reference(model, ['digits-synthetic']), 'digits8x8_cnn');
  console.log(JSON.stringify({ host: 'jco+node', digits_max_diff: worst }));
  session[Symbol.dispose]();
});

test('efficientnet_lite0 on coffee.png matches onnxruntime, top-1 espresso', () => {
  const model = join(root, 'models/efficientnet_lite0.onnx');
  const t0 = performance.now();
  const session = runtime.Session.load(readFileSync(model));
  console.log(`efficientnet_lite0: load from bytes ${(performance.now() - t0).toFixed(0)} ms`);
  const { outs, worst } = compare(session, reference(model, ['image', 'efficientnet', 'testdata/coffee.png']), 'efficientnet_lite0 coffee.png');
  const logits = values({ dtype: outs[0][1].dtype, bytes: outs[0][1].data });
  const top1 = logits.indexOf(Math.max(...logits));
  assert.equal(top1, 967, 'coffee.png top-1 should be espresso (967)');
  console.log(JSON.stringify({ host: 'jco+node', efficientnet_max_diff: worst, coffee_top1: top1 }));
  session[Symbol.dispose]();
});

test('typed errors, never a trap', () => {
  const bytes = readFileSync(join(root, 'models/digits8x8_cnn.onnx'));
  let e = expectError(() => runtime.Session.load(new TextEncoder().encode('definitely not an ONNX model')));
  assert.equal(e.tag, 'invalid-model');
  console.log(`corrupt model -> ${e.tag}: ${e.val}`);
  const session = runtime.Session.load(bytes);
  const f32 = (shape) => ({ shape: BigUint64Array.from(shape.map(BigInt)), dtype: 'f32', data: new Uint8Array(4 * shape.reduce((a, b) => a * b, 1)) });
  e = expectError(() => session.run([['input', f32([1, 1, 8, 9])]]));
  assert.equal(e.tag, 'invalid-input');
  assert.equal(e.val.input, 'input');
  assert.match(e.val.expected, /\[N, 1, 8, 8\]/);
  assert.match(e.val.got, /\[1,1,8,9\]/);
  console.log(`wrong dims -> ${e.tag}: ${runtime.errorMessage(e)}`);
  e = expectError(() => session.run([['input', f32([1, 1, 7, 9])]]));
  assert.equal(e.tag, 'invalid-input');
  assert.equal(e.val.input, 'input', 'two wrong dims of one input name it once');
  assert.match(e.val.message, /dim 2.*dim 3/);
  e = expectError(() => session.run([['input', { ...f32([1, 1, 8, 8]), data: new Uint8Array(3) }]]));
  assert.equal(e.tag, 'invalid-tensor');
  e = expectError(() => session.run([['nope', f32([1, 1, 8, 8])]]));
  assert.equal(e.tag, 'invalid-input');
  e = expectError(() => runtime.Session.loadWithOptions(bytes, { memoryLimitBytes: 1000n, optimize: true }));
  assert.equal(e.tag, 'memory-limit');
  assert.equal(e.val.limit, 1000n);
  // the session still works after errors
  assert.equal(session.run([['input', f32([2, 1, 8, 8])]])[0][1].shape[0], 2n);
  session[Symbol.dispose]();
});
