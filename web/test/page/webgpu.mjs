// The WebGPU test page (Chromium started with --enable-unsafe-webgpu and SwiftShader): runs the
// golden models with backend 'webgpu', in the page and in a worker, and compares every output with
// onnxruntime's (computed by `cargo xtask web-test` into /.cache/web-test/<case>/{in,ref}).
// Also: backend 'auto' with only a software adapter stays on wasm and says why. Results in
// window.__result; which cases to run comes from the `cases` query parameter.
import { Session, Tensor, capabilities } from 'uniml';
import { maxDiff, parseNpy } from '../npy.mjs';

const W = '/.cache/web-test/';
const log = (s) => (document.getElementById('log').textContent += s + '\n');
const sanitize = (name) => name.replace(/[/:]/g, '_');

async function npy(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return parseNpy(new Uint8Array(await r.arrayBuffer()));
}

/** Runs one case on `session` (twice): {outputs: {name: {diff, scale}}, ms, same}. */
async function runCase(session, dir) {
  const feeds = {};
  for (const name of session.inputNames) {
    const x = await npy(`${W}${dir}/in/${sanitize(name)}.npy`);
    feeds[name] = new Tensor(x.type, x.data, x.dims);
  }
  const first = await session.run(feeds);
  const t0 = performance.now();
  const out = await session.run(feeds);
  const ms = performance.now() - t0;
  const outputs = {};
  let same = true;
  for (const name of session.outputNames) {
    const ref = await npy(`${W}${dir}/ref/${sanitize(name)}.npy`);
    const got = out[name];
    outputs[name] = { ...maxDiff(got.data, ref.data), dims: got.dims, refDims: ref.dims };
    same &&= maxDiff(got.data, first[name].data).diff === 0;
  }
  return { outputs, ms, same };
}

const result = { ok: false, cases: {} };
try {
  result.caps = await capabilities();
  log(`capabilities: ${JSON.stringify(result.caps)}`);
  const cases = (new URLSearchParams(location.search).get('cases') || '').split(',').filter(Boolean);
  for (const spec of cases) {
    const [dir, model] = spec.split('=');
    const t0 = performance.now();
    const s = await Session.create(model, { backend: 'webgpu' });
    const createMs = performance.now() - t0;
    const placement = await s.placement();
    const gpuNodes = placement.filter((p) => p.device === 'gpu').length;
    const r = await runCase(s, dir);
    result.cases[dir] = { ...r, createMs, backend: s.backend, adapter: s.adapter, gpuNodes, nodes: placement.length };
    log(`${dir}: ${JSON.stringify(result.cases[dir])}`);
    await s.release();
  }
  // Worker mode on WebGPU, and concurrent runs (they queue).
  const [dir, model] = cases[0].split('=');
  const w = await Session.create(model, { backend: 'webgpu', worker: true });
  const wr = await runCase(w, dir);
  const x = await npy(`${W}${dir}/in/${sanitize(w.inputNames[0])}.npy`);
  const both = await Promise.all([0, 1].map(() => w.run({ [w.inputNames[0]]: new Tensor(x.type, x.data, x.dims) })));
  result.worker = { ...wr, backend: w.backend, concurrentSame: maxDiff(both[0][w.outputNames[0]].data, both[1][w.outputNames[0]].data).diff };
  log(`worker: ${JSON.stringify(result.worker)}`);
  await w.release();
  // 'auto' with only a software adapter: wasm, with the reason.
  const a = await Session.create(model, { backend: 'auto' });
  result.auto = { backend: a.backend, reason: a.backendReason };
  await a.release();
  result.ok = true;
  document.getElementById('status').textContent = 'done';
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
  document.getElementById('status').textContent = 'failed: ' + result.error;
}
window.__result = result;
