// The Chromium threads page, opened with and without COOP/COEP by browser.mjs: capabilities,
// efficientnet_lite0 at 2 threads (a worker session with its pool, as a main-thread page gets)
// and at 1 thread, vs onnxruntime. Results in window.__result.
import { Session, Tensor, capabilities } from 'uniml';
import { maxDiff, parseNpy } from '../npy.mjs';

const W = '/.cache/web-test/efficientnet-coffee/';
const log = (s) => (document.getElementById('log').textContent += s + '\n');

async function npy(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return parseNpy(new Uint8Array(await r.arrayBuffer()));
}

async function timeRuns(s, feeds, n) {
  await s.run(feeds);
  const t = performance.now();
  for (let i = 0; i < n; i++) await s.run(feeds);
  return (performance.now() - t) / n;
}

const result = { ok: false };
try {
  result.crossOriginIsolated = globalThis.crossOriginIsolated === true;
  result.caps = await capabilities();
  log(`capabilities: ${JSON.stringify(result.caps)}`);
  const x = await npy(W + 'in/input.npy');
  const ref = await npy(W + 'ref/logits.npy');
  const feeds = () => ({ input: new Tensor('float32', x.data.slice(), x.dims) });
  const s2 = await Session.create('/models/efficientnet_lite0.onnx', { threads: 2 });
  result.threads2 = { threads: s2.threads, reason: s2.threadsReason, worker: s2.worker };
  const out2 = (await s2.run(feeds())).logits.data;
  result.stats2 = await s2.threadStats();
  result.diff2 = maxDiff(out2, ref.data);
  const s1 = await Session.create('/models/efficientnet_lite0.onnx', { threads: 1, worker: true });
  const out1 = (await s1.run(feeds())).logits.data;
  result.diff21 = maxDiff(out2, out1);
  result.ms1 = await timeRuns(s1, feeds(), 5);
  result.ms2 = await timeRuns(s2, feeds(), 5);
  log(`${JSON.stringify(result)}`);
  await s1.release();
  await s2.release();
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
  log(result.error);
}
window.__result = result;
