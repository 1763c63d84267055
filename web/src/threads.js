// Threads for the threaded engine build: when they are available here (and why not),
// and the pool of workers (thread-worker.js) that share the engine's memory.

const proc = globalThis.process;
const node = !!(proc && proc.versions && proc.versions.node) && typeof window === 'undefined';
const builtin = (name) => (node && typeof proc.getBuiltinModule === 'function' ? proc.getBuiltinModule(name) : undefined);

/** Whether this code runs on a browser's main thread (which may not block, so threads run in a worker). */
export function onBrowserMainThread() {
  return !node && typeof globalThis.WorkerGlobalScope === 'undefined' && typeof globalThis.window !== 'undefined';
}

/** `{ok, reason}`: whether the threaded build can run here, and if not, why (one sentence). */
export function threadsSupport(simd) {
  if (node) {
    if (typeof SharedArrayBuffer === 'undefined') return { ok: false, reason: 'this Node has no SharedArrayBuffer (needed for wasm threads)' };
    if (!builtin('worker_threads')) return { ok: false, reason: 'this Node has no worker_threads (process.getBuiltinModule needs Node >= 20.16)' };
  } else {
    if (globalThis.crossOriginIsolated !== true || typeof SharedArrayBuffer === 'undefined') {
      return {
        ok: false,
        reason:
          'the page is not cross-origin isolated (COOP/COEP missing), so SharedArrayBuffer (needed for wasm threads) is unavailable: ' +
          'serve it with "Cross-Origin-Opener-Policy: same-origin" and "Cross-Origin-Embedder-Policy: require-corp"',
      };
    }
    if (typeof Worker === 'undefined') return { ok: false, reason: 'this environment has no Web Workers (e.g. a service worker), which wasm threads need' };
  }
  if (!simd) return { ok: false, reason: 'this JS engine lacks WebAssembly SIMD, which the threaded build needs' };
  try {
    const m = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    if (!(m.buffer instanceof SharedArrayBuffer)) throw new Error('not shared');
  } catch {
    return { ok: false, reason: 'this JS engine cannot create shared WebAssembly memory' };
  }
  return { ok: true, reason: '' };
}

/** Cores of this machine (navigator.hardwareConcurrency or os.availableParallelism()). */
export function coreCount() {
  const os = builtin('os');
  if (os && os.availableParallelism) return os.availableParallelism();
  return (globalThis.navigator && globalThis.navigator.hardwareConcurrency) || 1;
}

const started = [];

function startWorker(module, memory, index) {
  return new Promise((resolve, reject) => {
    const fail = (why) => reject(new Error(`uniml: cannot start engine thread ${index + 1} (thread-worker.js): ${why}`));
    const onMessage = (msg) => {
      if (msg && msg.type === 'uniml-thread-ready') {
        if (node) w.unref(); // a started pool thread never keeps Node alive
        resolve(w);
      }
      else if (msg && msg.type === 'uniml-thread-failed') fail(msg.message);
    };
    let w;
    if (node) {
      const wt = builtin('worker_threads');
      w = new wt.Worker(new URL('./thread-worker.js', import.meta.url), { name: `uniml-thread-${index + 1}` });
      w.on('message', onMessage);
      w.on('error', (e) => fail(e && e.message ? e.message : String(e)));
    } else {
      // Written out literally: Vite and webpack recognise this exact form and bundle the worker.
      w = new Worker(new URL('./thread-worker.js', import.meta.url), { type: 'module', name: `uniml-thread-${index + 1}` });
      w.onmessage = (e) => onMessage(e.data);
      w.onerror = (e) => {
        e.preventDefault?.();
        fail(e && e.message ? e.message : 'load error (is thread-worker.js served beside index.js?)');
      };
    }
    w.postMessage({ type: 'uniml-thread-start', module, memory });
  });
}

/**
 * Makes sure `count` pool workers run on this engine instance (`module` and its shared
 * `memory`); starts the missing ones and waits until each has instantiated the engine and
 * `inLoop()` (the engine's count of workers in its loop) reaches `count`.
 */
export async function ensureWorkers(module, memory, count, inLoop) {
  while (started.length < count) {
    const p = startWorker(module, memory, started.length);
    started.push(p);
    // A worker that failed to start is forgotten, so that a later session may try again.
    p.catch(() => started.splice(started.indexOf(p), 1));
  }
  await Promise.all(started.slice(0, count));
  // 'ready' comes just before a worker enters the engine's loop: wait (without blocking)
  // until the engine counts them, so that the first run already shares its work.
  const until = Date.now() + 10_000;
  while (inLoop() < count && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
}
