// The Chromium test page: imports the package through an import map (like an app would),
// runs efficientnet_lite0 on the coffee photo (pre-made input .npy) in the page and in a
// worker, compares with onnxruntime, and checks the 404 error. Results in window.__result.
import { Session, Tensor, capabilities, memoryStats } from 'uniml';
import { argmax, maxDiff, parseNpy } from '../npy.mjs';

const W = '/.cache/web-test/efficientnet-coffee/';
const log = (s) => (document.getElementById('log').textContent += s + '\n');

async function npy(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return parseNpy(new Uint8Array(await r.arrayBuffer()));
}

function drawInput(x) {
  // The network input (x = (pixel - 127) / 128, NCHW) drawn back as a picture for the screenshot.
  const ctx = document.getElementById('photo').getContext('2d');
  const img = ctx.createImageData(224, 224);
  const plane = 224 * 224;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) img.data[4 * i + c] = x.data[c * plane + i] * 128 + 127;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

const result = { ok: false };
try {
  result.caps = await capabilities();
  result.crossOriginIsolated = globalThis.crossOriginIsolated;
  log(`capabilities: ${JSON.stringify(result.caps)}`);
  const x = await npy(W + 'in/input.npy');
  const ref = await npy(W + 'ref/logits.npy');
  drawInput(x);
  const progress = [];
  const t0 = performance.now();
  const s = await Session.create('/models/efficientnet_lite0.onnx', { onProgress: (l, t) => progress.push([l, t]) });
  result.createMs = performance.now() - t0;
  result.progressCalls = progress.length;
  result.progressLast = progress[progress.length - 1];
  result.engine = Session.engineInfo();
  const input = new Tensor('float32', x.data, x.dims);
  await s.run({ input });
  const t1 = performance.now();
  const out = await s.run({ input });
  result.runMs = performance.now() - t1;
  result.top1 = argmax(out.logits.data);
  result.diff = maxDiff(out.logits.data, ref.data);
  log(`in page: top-1 ${result.top1}, max |diff| ${result.diff.diff} (run ${result.runMs.toFixed(1)} ms)`);
  result.heapLoaded = memoryStats().heapBytes;
  await s.release();
  result.heapReleased = memoryStats().heapBytes;

  const w = await Session.create('/models/efficientnet_lite0.onnx', { worker: true });
  const wx = new Tensor('float32', x.data.slice(), x.dims);
  const wout = await w.run({ input: wx }, { transfer: true });
  const wout2 = await w.run({ input: wx }, { transfer: true });
  result.workerTop1 = argmax(wout.logits.data);
  result.workerDiff = maxDiff(wout.logits.data, ref.data);
  result.workerSecondDiff = maxDiff(wout2.logits.data, out.logits.data);
  result.workerSameAsPage = maxDiff(wout.logits.data, out.logits.data).diff;
  log(`worker: top-1 ${result.workerTop1}, max |diff| ${result.workerDiff.diff}, vs page ${result.workerSameAsPage}`);
  await w.release();

  try {
    await Session.create('/models/does-not-exist.onnx');
    result.error404 = 'no error';
  } catch (e) {
    result.error404 = `${e instanceof Error}: ${e.message}`;
  }
  log(`404: ${result.error404}`);
  try {
    await Session.create('/models/efficientnet_lite0.onnx', { backend: 'webgpu' });
  } catch (e) {
    result.errorWebgpu = e.message;
  }
  result.ok = true;
  document.getElementById('status').textContent = `espresso? top-1 = ${result.top1} (${result.top1 === 967 ? 'espresso' : 'wrong'})`;
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
  document.getElementById('status').textContent = 'failed: ' + result.error;
}
window.__result = result;
