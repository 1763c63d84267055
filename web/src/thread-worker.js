// One pool worker of the threaded engine build: instantiates the engine module on the
// engine's shared memory, reports ready, then runs kernel tasks forever (workerLoop).
// Started by threads.js as a module Web Worker (browser) or worker_threads Worker (Node).
// No eval, no blob: URLs, no dynamic import().

import initThreaded, * as wasm from './uniml_threads.js';

const proc = globalThis.process;
const wt = proc && proc.versions && proc.versions.node && typeof proc.getBuiltinModule === 'function' ? proc.getBuiltinModule('worker_threads') : undefined;
const port = wt && !wt.isMainThread ? wt.parentPort : globalThis;

async function start(msg) {
  if (!msg || msg.type !== 'uniml-thread-start') return;
  try {
    await initThreaded({ module_or_path: msg.module, memory: msg.memory });
    wasm.init();
  } catch (e) {
    port.postMessage({ type: 'uniml-thread-failed', message: e && e.message ? e.message : String(e) });
    return;
  }
  port.postMessage({ type: 'uniml-thread-ready' });
  // Blocks this worker for good: it now takes kernel tasks from the engine's pool.
  wasm.workerLoop();
}

if (port === globalThis) globalThis.onmessage = (e) => start(e.data);
else port.once('message', start);
