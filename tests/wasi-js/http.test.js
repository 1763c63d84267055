// The serverless handler (uniml-wasi-http, a wasi:http/incoming-handler component) under a real
// wasi:http host we did not write: `jco serve` (pinned in package.json). POSTs testdata/coffee.png
// to /classify (top-1 must be espresso, 967) and an Open Inference Protocol v2 JSON request whose
// outputs must match onnxruntime (computed now by scripts/reference.py on the same input).
//
//   UNIML_HTTP_COMPONENT=/path/uniml_wasi_http.wasm node --test http.test.js
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNpy, values } from './npy.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const component = process.env.UNIML_HTTP_COMPONENT;
const python = process.env.UNIML_PYTHON ?? join(root, '.venv/bin/python');
let server;
let base;
let log = '';

const freePort = () => new Promise((ok, fail) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  s.on('error', fail);
});

before(async () => {
  assert.ok(component && existsSync(component), `set UNIML_HTTP_COMPONENT to the built component (got ${component})`);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  server = spawn(join(here, 'node_modules/.bin/jco'), ['serve', '--port', String(port), '--host', '127.0.0.1', '--jco-dir', join(here, 'build/http'), component], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => { log += d; });
  server.stderr.on('data', (d) => { log += d; });
  for (;;) {
    if (server.exitCode !== null) assert.fail(`jco serve exited (${server.exitCode}):\n${log}`);
    try {
      const r = await fetch(`${base}/v2/health/ready`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() - t0 > 120_000) assert.fail(`jco serve did not come up in 120 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log(`jco serve: ${statSync(component).size} B component listening at ${base} after ${Date.now() - t0} ms`);
});

after(() => {
  if (server && server.exitCode === null) process.kill(-server.pid, 'SIGTERM');
});

async function post(path, body, type) {
  const t0 = performance.now();
  const r = await fetch(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': type } });
  const json = await r.json();
  return { status: r.status, json, ms: performance.now() - t0 };
}

test('POST /classify coffee.png -> espresso (967)', async () => {
  const { status, json, ms } = await post('/classify', readFileSync(join(root, 'testdata/coffee.png')), 'image/png');
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.top.length, 5);
  console.log(`classify coffee.png (${ms.toFixed(0)} ms): ${json.top.map((t) => `${t.index} ${t.label} ${t.probability.toFixed(3)}`).join(', ')}; timings ${JSON.stringify(json.timings_ms)}`);
  assert.equal(json.top[0].index, 967);
  assert.equal(json.top[0].label, 'espresso');
  console.log(JSON.stringify({ host: 'jco serve', classify_top1: json.top[0].index, label: json.top[0].label }));
});

test('POST /v2/models/efficientnet_lite0/infer matches onnxruntime', async () => {
  const model = join(root, 'models/efficientnet_lite0.onnx');
  const dir = mkdtempSync(join(tmpdir(), 'uniml-wasi-http-'));
  const py = (args) => execFileSync(python, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  py(['scripts/make_inputs.py', 'image', 'efficientnet', 'testdata/chelsea.png', join(dir, 'in')]);
  py(['scripts/reference.py', model, '--inputs-dir', join(dir, 'in'), '--outputs-dir', join(dir, 'ref')]);
  const x = readNpy(join(dir, 'in/input.npy'));
  const req = { id: 'chelsea', inputs: [{ name: 'input', shape: x.shape, datatype: 'FP32', data: values(x) }] };
  const { status, json, ms } = await post('/v2/models/efficientnet_lite0/infer', JSON.stringify(req), 'application/json');
  assert.equal(status, 200, JSON.stringify(json));
  assert.equal(json.model_name, 'efficientnet_lite0');
  assert.equal(json.id, 'chelsea');
  const [out] = json.outputs;
  const want = readNpy(join(dir, 'ref/logits.npy'));
  assert.equal(out.name, 'logits');
  assert.equal(out.datatype, 'FP32');
  assert.deepEqual(out.shape, want.shape);
  const b = values(want);
  const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
  const diff = out.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  console.log(`OIP v2 infer chelsea.png (${ms.toFixed(0)} ms): max |diff| vs onnxruntime ${diff.toExponential(3)} (scale ${scale.toPrecision(3)})`);
  assert.ok(diff / scale <= 1e-4);
  console.log(JSON.stringify({ host: 'jco serve', infer_max_diff: diff }));
});

test('errors are JSON with a status, the server keeps serving', async () => {
  let r = await post('/classify', 'not an image', 'image/png');
  assert.equal(r.status, 400);
  assert.equal(r.json.kind, 'invalid-image');
  r = await post('/v2/models/efficientnet_lite0/infer', JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 224, 225], datatype: 'FP32', data: new Array(3 * 224 * 225).fill(0) }] }), 'application/json');
  assert.equal(r.status, 400);
  assert.equal(r.json.kind, 'invalid-input');
  assert.match(r.json.error, /input 'input'.*225/);
  console.log(`wrong dims -> ${r.status} ${JSON.stringify(r.json)}`);
  r = await post('/v2/models/efficientnet_lite0/infer', JSON.stringify({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [1] }] }), 'application/json');
  assert.equal(r.status, 400);
  assert.equal(r.json.kind, 'invalid-tensor');
  r = await post('/v2/models/efficientnet_lite0/infer', '{not json', 'application/json');
  assert.equal(r.status, 400);
  r = await post('/v2/models/efficientnet_lite0/infer', JSON.stringify({ inputs: [{ name: 'input', shape: [4294967296, 4294967296, 16], datatype: 'FP32', data: [] }] }), 'application/json');
  assert.equal(r.status, 400);
  r = await post('/classify', new Uint8Array(17 << 20), 'image/png');
  assert.equal(r.status, 413);
  assert.equal(r.json.kind, 'too-large');
  r = await post('/nope', '', 'text/plain');
  assert.equal(r.status, 404);
  const meta = await (await fetch(`${base}/v2/models/efficientnet_lite0`)).json();
  assert.equal(meta.inputs[0].name, 'input');
  assert.deepEqual(meta.inputs[0].shape, [-1, 3, 224, 224]);
  r = await post('/classify', readFileSync(join(root, 'testdata/chelsea.png')), 'image/png');
  assert.equal(r.status, 200);
  console.log(`classify chelsea.png after errors: ${r.json.top[0].index} ${r.json.top[0].label}`);
});
