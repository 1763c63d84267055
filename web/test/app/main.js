// A tiny app that imports `uniml` like any npm package; built by esbuild and by Vite in
// the tests, then run in Chromium: it must load the wasm (and the worker) and classify.
import { Session, Tensor } from 'uniml';
import { argmax, parseNpy } from './npy.mjs';

const result = { ok: false };
try {
  const base = '/.cache/web-test/efficientnet-coffee/in/input.npy';
  const x = parseNpy(new Uint8Array(await (await fetch(base)).arrayBuffer()));
  const input = new Tensor('float32', x.data, x.dims);
  const s = await Session.create('/models/efficientnet_lite0.onnx');
  result.top1 = argmax((await s.run({ input })).logits.data);
  result.engine = Session.engineInfo();
  await s.release();
  const w = await Session.create('/models/efficientnet_lite0.onnx', { worker: true });
  result.workerTop1 = argmax((await w.run({ input })).logits.data);
  await w.release();
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
}
document.getElementById('status').textContent = JSON.stringify(result);
window.__result = result;
