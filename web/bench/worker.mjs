// Chromium side of `cargo xtask bench --browser`: runs in a module Worker of page.html
// (a COOP/COEP page, so both engines may use threads); posts progress and rows to the page.
import * as uniml from '/web/node_modules/uniml/index.js';
import * as ort from '/web/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';

import { benchAll } from './core.mjs';

onmessage = async ({ data: { models, threads, runs, warmup } }) => {
  try {
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.wasmPaths = '/web/node_modules/onnxruntime-web/dist/';
    await benchAll({
      uniml,
      ort,
      env: 'chromium',
      models,
      threads,
      runs,
      warmup,
      load: async (p) => {
        const r = await fetch('/' + p);
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return new Uint8Array(await r.arrayBuffer());
      },
      emit: (row) => postMessage({ row }),
      log: (text) => postMessage({ log: text }),
    });
    postMessage({ done: true });
  } catch (e) {
    postMessage({ error: String(e && e.stack ? e.stack : e) });
  }
};
