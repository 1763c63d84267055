// The worker side of `Session.create(model, {worker: true})`: one session per worker.
// Runs as a module Web Worker in browsers and as a worker_threads Worker in Node.

import { LocalSession, engineMemoryStats, loadEngine, nodeBuiltin } from './engine.js';

const wt = nodeBuiltin('worker_threads');
const port = wt && !wt.isMainThread ? wt.parentPort : globalThis;

let session = null;

function reply(id, result, transfer = []) {
  port.postMessage({ id, ok: true, result }, transfer);
}

function fail(id, e) {
  port.postMessage({ id, ok: false, error: { name: e && e.name, message: e && e.message ? e.message : String(e) } });
}

async function handle(msg) {
  const { id, op } = msg;
  try {
    switch (op) {
      case 'create': {
        if (msg.options.backend !== 'webgpu') await loadEngine({ wasm: msg.wasm, threads: msg.options.threads });
        session = await LocalSession.create(msg.bytes, msg.options);
        const s = session;
        return reply(id, { inputs: s.inputs, outputs: s.outputs, metadata: s.metadata, threads: s.threads, threadsReason: s.threadsReason, backend: s.backend, adapter: s.adapter });
      }
      case 'run': {
        if (!session) throw new Error('uniml: this session was released; create a new Session to run again');
        const outputs = (await session.run(msg.feeds)).map(([name, t]) => [name, t.type, t.dims, t.data]);
        const transfer = outputs.filter((o) => o[1] !== 'string').map((o) => o[3].buffer);
        const result = { outputs };
        if (msg.returnInputs) {
          // Hand moved input buffers back so the caller can run again with them.
          result.inputs = msg.feeds.map((f) => ({ name: f.name, data: f.data }));
          for (const f of msg.feeds) if (f.type !== 'string' && !transfer.includes(f.data.buffer)) transfer.push(f.data.buffer);
        }
        return reply(id, result, transfer);
      }
      case 'placement':
        return reply(id, session ? session.placement() : []);
      case 'memoryStats':
        return reply(id, session ? session.memoryStats() : { ...engineMemoryStats(), poolPeakBytes: 0, weightBytes: 0 });
      case 'threadStats':
        return reply(id, session ? session.threadStats() : { threads: 1, workers: 0, workerTasks: 0 });
      case 'trimMemory':
        if (session) session.trimMemory();
        return reply(id, null);
      case 'release':
        if (session) await session.release();
        session = null;
        return reply(id, null);
      default:
        throw new Error(`uniml worker: unknown request '${op}'`);
    }
  } catch (e) {
    fail(id, e);
  }
}

if (port === globalThis) globalThis.onmessage = (e) => handle(e.data);
else port.on('message', handle);
