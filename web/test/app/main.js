// A tiny app that imports `uniml` like any npm package; built by esbuild, Vite and webpack in
// the tests, then run in Chromium: it must load the wasm (and the worker) and classify.
// With `?threads=2` (served with COOP/COEP) it checks the threaded path through the bundle
// instead: a 2-thread session (worker mode, with its pool workers, all emitted by the bundler)
// against a 1-thread one and onnxruntime's logits.
import { Session, Tensor, capabilities } from 'uniml';
import { argmax, maxDiff, parseNpy } from './npy.mjs';

const W = '/.cache/web-test/efficientnet-coffee/';
const MODEL = '/models/efficientnet_lite0.onnx';

async function npy(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return parseNpy(new Uint8Array(await r.arrayBuffer()));
}

const result = { ok: false };
try {
  const x = await npy(W + 'in/input.npy');
  const input = () => new Tensor('float32', x.data.slice(), x.dims);
  const threads = Number(new URLSearchParams(location.search).get('threads') || 0);
  if (threads) {
    result.crossOriginIsolated = globalThis.crossOriginIsolated === true;
    result.caps = await capabilities();
    const ref = await npy(W + 'ref/logits.npy');
    const sN = await Session.create(MODEL, { threads });
    result.threaded = { threads: sN.threads, reason: sN.threadsReason, worker: sN.worker };
    const outN = (await sN.run({ input: input() })).logits.data;
    result.stats = await sN.threadStats();
    const s1 = await Session.create(MODEL, { threads: 1, worker: true });
    const out1 = (await s1.run({ input: input() })).logits.data;
    result.single = { threads: s1.threads };
    result.top1 = argmax(outN);
    result.diffRef = maxDiff(outN, ref.data);
    result.diff1 = maxDiff(outN, out1);
    await sN.release();
    await s1.release();
  } else {
    const s = await Session.create(MODEL);
    result.top1 = argmax((await s.run({ input: input() })).logits.data);
    result.engine = Session.engineInfo();
    await s.release();
    const w = await Session.create(MODEL, { worker: true });
    result.workerTop1 = argmax((await w.run({ input: input() })).logits.data);
    await w.release();
  }
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
}
document.getElementById('status').textContent = JSON.stringify(result);
window.__result = result;
