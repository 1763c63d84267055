// Chromium side of `cargo xtask bench --browser`: runs in a module Worker of page.html
// (a COOP/COEP page, so both engines may use threads); posts progress and rows to the page.
import * as uniml from '/web/node_modules/uniml/index.js';
import * as ortWasm from '/web/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
import * as ortWebgpu from '/web/node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs';

import { benchAll } from './core.mjs';

onmessage = async ({ data: { models, threads, runs, warmup, gpu } }) => {
  try {
    // The WebGPU build of onnxruntime-web (its WebGPU EP) only for the gpu rows.
    const ort = gpu ? ortWebgpu : ortWasm;
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.wasmPaths = '/web/node_modules/onnxruntime-web/dist/';
    await benchAll({
      uniml,
      ort,
      env: gpu ? 'chromium-webgpu' : 'chromium',
      gpu,
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
