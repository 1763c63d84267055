// Loads the engine wasm (threaded+SIMD, SIMD or scalar build, each SIMD one in a relaxed-SIMD
// variant where the JS engine has relaxed SIMD, picked at run time; the WebGPU
// build beside it for `backend: 'webgpu'`) and wraps the low-level wasm-bindgen API. Used on the
// main thread (index.js) and in the worker (worker.js).
//
// The wasm files are referenced as `new URL('./uniml_bg.wasm', import.meta.url)`, the
// standard ESM asset pattern that Vite, webpack and Rollup bundle with zero config.
// No eval, no blob: URLs, no dynamic import().

import initSingle, * as wasmSingle from './uniml.js';
import initThreaded, * as wasmThreaded from './uniml_threads.js';
import initWebgpu, * as wasmWebgpu from './uniml_webgpu.js';
import { TYPED_ARRAYS, tensorOf } from './tensor.js';
import { coreCount, ensureWorkers, threadsSupport } from './threads.js';

// The wasm-bindgen API of the loaded build: `uniml.js` (the SIMD, relaxed-SIMD and scalar builds
// share it) or `uniml_threads.js` (the threaded builds: shared memory, a pool of workers).
let wasm = wasmSingle;

// A tiny module whose one function returns a v128 (i32.const 0; i8x16.splat; i8x16.popcnt):
// WebAssembly.validate of it tells whether this JS engine can run the SIMD build.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** Whether this JS engine validates WebAssembly SIMD (simd128). */
export function simdSupported() {
  try {
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

// A tiny module whose one function returns f32x4.relaxed_madd of a v128 local with itself:
// WebAssembly.validate of it tells whether this JS engine has relaxed SIMD (Chrome 114+,
// Node 22+; not Safari or Node 20), which the relaxed builds' GEMM uses for fused multiply-add.
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 1, 1, 123, 32, 0, 32, 0, 32, 0, 253, 133, 2, 11,
]);

/** Whether this JS engine validates WebAssembly relaxed SIMD (f32x4.relaxed_madd). */
export function relaxedSimdSupported() {
  try {
    return WebAssembly.validate(RELAXED_SIMD_PROBE);
  } catch {
    return false;
  }
}

/** A Node built-in module without import() (Node >= 20.16), or undefined elsewhere. */
export function nodeBuiltin(name) {
  const p = globalThis.process;
  return p && p.versions && p.versions.node && typeof p.getBuiltinModule === 'function' ? p.getBuiltinModule(name) : undefined;
}

/** A Node built-in module, or a clear error on Node older than 20.16. */
export function requireNodeBuiltin(name) {
  const m = nodeBuiltin(name);
  if (!m) throw new Error(`uniml: this needs Node >= 20.16 (process.getBuiltinModule('${name}')); this is Node ${globalThis.process?.versions?.node ?? '?'}`);
  return m;
}

export const isNode = !!(globalThis.process && globalThis.process.versions && globalThis.process.versions.node) && typeof window === 'undefined';

/** Base for resolving relative model URLs: the page, the worker script, or the Node cwd. */
export function baseHref() {
  if (globalThis.location && globalThis.location.href) return globalThis.location.href;
  const url = nodeBuiltin('url');
  if (url && globalThis.process) return url.pathToFileURL(globalThis.process.cwd() + '/').href;
  return import.meta.url;
}

let loading = null;
let loaded = null;
let engineModule = null;
// Per engine instance (API namespace): the panic message that stopped it.
const poisoned = new Map();

/** Loads and instantiates the engine once; later calls return the same promise. */
export function loadEngine(options = {}) {
  if (!loading) {
    loading = instantiate(options).then(
      (info) => (loaded = info),
      (e) => {
        loading = null;
        throw e;
      },
    );
  }
  return loading;
}

/** The loaded engine's info, or null. */
export function engineInfo() {
  return loaded;
}

/** Whether a compiled engine module is the threaded build (it imports a shared memory). */
function isThreadedModule(module) {
  return WebAssembly.Module.imports(module).some((i) => i.kind === 'memory');
}

/**
 * `threads` (as in Session.create; 1 when absent) picks the threaded build when it is not 1
 * and threads are supported here: the first load decides for this JS thread.
 */
async function instantiate({ wasm: source, threads = 1 } = {}) {
  const simd = simdSupported();
  const relaxed = simd && relaxedSimdSupported();
  const support = threadsSupport(simd);
  const wanted = threads !== 1;
  let url = null;
  let module;
  if (source instanceof WebAssembly.Module) {
    module = source;
  } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    module = await WebAssembly.compile(source);
  } else {
    // The URLs are written out literally so that bundlers see and emit all five files.
    url = source
      ? new URL(String(source), baseHref())
      : support.ok && wanted
        ? relaxed
          ? new URL('./uniml_threads_relaxed_bg.wasm', import.meta.url)
          : new URL('./uniml_threads_bg.wasm', import.meta.url)
        : relaxed
          ? new URL('./uniml_relaxed_bg.wasm', import.meta.url)
          : simd
            ? new URL('./uniml_bg.wasm', import.meta.url)
            : new URL('./uniml_scalar_bg.wasm', import.meta.url);
    module = await compileFromUrl(url);
  }
  const threaded = isThreadedModule(module);
  if (threaded && !support.ok) throw new Error(`uniml: the given engine wasm is the threaded build, which cannot run here: ${support.reason}`);
  wasm = threaded ? wasmThreaded : wasmSingle;
  engineModule = module;
  await (threaded ? initThreaded : initSingle)({ module_or_path: module });
  wasm.init();
  return {
    simd: wasm.builtWithSimd(),
    simdSupported: simd,
    relaxedSimd: wasm.builtWithRelaxedSimd(),
    relaxedSimdSupported: relaxed,
    threaded: wasm.builtWithThreads(),
    threadsReason: threaded
      ? ''
      : !support.ok
        ? support.reason
        : source
          ? 'a single-threaded engine wasm was given (options.wasm)'
          : 'the engine in this thread was loaded single-threaded (the first Session.create or init() here asked for 1 thread); pass threads to init() before creating sessions',
    url: url && url.href,
    version: wasm.version(),
  };
}

/**
 * Kernel threads a session of the loaded engine gets for `requested` (0 = all cores), after
 * starting the pool workers it needs: `{threads, reason}` (reason: why fewer, or '').
 */
export async function prepareThreads(requested) {
  const want = requested === 0 ? coreCount() : requested;
  if (want <= 1) return { threads: 1, reason: '' };
  if (!loaded.threaded) return { threads: 1, reason: loaded.threadsReason };
  await ensureWorkers(engineModule, wasm.wasmMemory(), want - 1, () => wasm.poolWorkers());
  return { threads: want, reason: '' };
}

let gpuLoading = null;

/**
 * Loads the WebGPU build (its own instance beside the CPU engine, fetched only when a WebGPU
 * session is asked for) and opens the device once: `{adapter, url}`. Rejects with the reason
 * when this JS engine has no WebGPU or no adapter.
 */
export function loadGpuEngine() {
  if (!gpuLoading) {
    gpuLoading = (async () => {
      const gpu = globalThis.navigator && globalThis.navigator.gpu;
      if (!gpu) {
        throw new Error(
          "uniml: backend 'webgpu': this JS engine has no WebGPU (navigator.gpu is missing: Node, an older browser, " +
            "a page that is not a secure context, or WebGPU disabled); use backend 'wasm' or 'auto'",
        );
      }
      const url = new URL('./uniml_webgpu_bg.wasm', import.meta.url);
      const module = await compileFromUrl(url);
      await initWebgpu({ module_or_path: module });
      wasmWebgpu.init();
      let adapter;
      try {
        adapter = await wasmWebgpu.openGpu();
      } catch (e) {
        throw new Error(`uniml: backend 'webgpu': ${e && e.message ? e.message : e}`, { cause: e });
      }
      return { adapter, url: url.href };
    })().catch((e) => {
      gpuLoading = null;
      throw e;
    });
  }
  return gpuLoading;
}

function describeBytes(bytes) {
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = new TextDecoder().decode(bytes.subarray(0, 40)).replace(/\s+/g, ' ');
  return `starts with ${head}${/^[\x20-\x7e]+$/.test(text.slice(0, 8)) ? ` ("${text}")` : ''}`;
}

async function compileFromUrl(url) {
  if (url.protocol === 'file:') {
    const fs = isNode ? requireNodeBuiltin('fs') : nodeBuiltin('fs');
    if (fs) {
      let bytes;
      try {
        bytes = fs.readFileSync(url);
      } catch (e) {
        throw new Error(`uniml: cannot read the engine wasm at ${url.href}: ${e.message}`, { cause: e });
      }
      return WebAssembly.compile(bytes);
    }
  }
  let resp;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new Error(`uniml: cannot fetch the engine wasm from ${url.href}: ${e.message}`, { cause: e });
  }
  const type = resp.headers.get('content-type') || 'none';
  if (!resp.ok) {
    throw new Error(
      `uniml: cannot load the engine wasm from ${url.href}: HTTP ${resp.status} ${resp.statusText} (content-type ${type}). ` +
        `The .wasm files of the uniml package must be served beside the JS that imports them ` +
        `(esbuild does not copy them: copy node_modules/uniml/*.wasm next to your bundle; see docs/web.md).`,
    );
  }
  const bytes = new Uint8Array(await resp.arrayBuffer());
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error(
      `uniml: ${url.href} is not WebAssembly: HTTP ${resp.status}, content-type ${type}, ${bytes.length} bytes, ${describeBytes(bytes)}` +
        (type.includes('html') ? ' (the server answered with an HTML page: the .wasm file is missing there)' : ''),
    );
  }
  return WebAssembly.compile(bytes);
}

/** A trap (an engine bug) becomes a readable Error with the panic message; other errors get the `uniml:` prefix. */
function rethrow(e, api) {
  if (e instanceof WebAssembly.RuntimeError) {
    let msg = null;
    let stack = null;
    try {
      msg = api.takePanicMessage();
      stack = api.takePanicStack();
    } catch {
      // the instance cannot answer
    }
    poisoned.set(api, msg || e.message);
    const err = new Error(`uniml: internal error (a bug in uniml, please report it): ${poisoned.get(api)}`, { cause: e });
    // The engine's frames where it panicked: Rust function names with the debug build (docs/web.md).
    if (stack) err.stack += `\n    at the panic in the engine:\n${stack.split('\n').slice(1).join('\n')}`;
    throw err;
  }
  if (e instanceof Error && !e.message.startsWith('uniml:')) e.message = `uniml: ${e.message}`;
  throw e;
}

function checkAlive(api) {
  if (poisoned.has(api)) {
    throw new Error(`uniml: the engine stopped after an internal error (${poisoned.get(api)}); reload the page or use worker mode`);
  }
}

/** Calls into wasm (the CPU engine unless `api` names another instance), see `rethrow`. */
export function guard(fn, api = wasm) {
  checkAlive(api);
  try {
    return fn();
  } catch (e) {
    rethrow(e, api);
  }
}

/** `guard` for calls that return a promise (WebGPU runs). */
async function guardAsync(fn, api) {
  checkAlive(api);
  try {
    return await fn();
  } catch (e) {
    rethrow(e, api);
  }
}

function bytesOf(feed) {
  if (feed.type === 'string') return feed.data;
  const d = feed.data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** Process-wide memory figures of an engine instance (the CPU engine by default). */
export function engineMemoryStats(api = wasm) {
  if (api === wasm && !loaded) return { wasmMemoryBytes: 0, heapBytes: 0, heapPeakBytes: 0 };
  return guard(() => ({ wasmMemoryBytes: api.wasmMemoryBytes(), heapBytes: api.heapBytes(), heapPeakBytes: api.heapPeakBytes() }), api);
}

/** One model in an engine instance: plain data in, plain data out. */
export class LocalSession {
  /**
   * Creates a session: on the CPU engine after starting the pool workers its threads need, or
   * with `backend: 'webgpu'` on the WebGPU build (its CPU nodes run on one thread).
   */
  static async create(bytes, { threads = 1, memoryLimit = 0, backend = 'wasm' } = {}) {
    if (backend === 'webgpu') {
      const info = await loadGpuEngine();
      const s = new LocalSession(bytes, { memoryLimit, api: wasmWebgpu, backend: 'gpu' });
      s.adapter = info.adapter;
      s.threadsReason = threads !== 1 ? 'a WebGPU session runs the nodes left on the CPU on one thread' : '';
      return s;
    }
    const t = await prepareThreads(threads);
    const s = new LocalSession(bytes, { threads: t.threads, memoryLimit });
    s.threadsReason = s.threads < t.threads ? 'the engine pool started fewer workers' : t.reason;
    return s;
  }

  constructor(bytes, { threads = 1, memoryLimit = 0, api = wasm, backend = 'cpu' } = {}) {
    this.api = api;
    this.inner = guard(() => new api.WasmSession(bytes, threads, memoryLimit, backend), api);
    this.backend = backend === 'gpu' ? 'webgpu' : 'wasm';
    this.adapter = null;
    this.threads = guard(() => this.inner.threads(), api);
    this.threadsReason = '';
    this.inputs = guard(() => this.inner.inputs(), api);
    this.outputs = guard(() => this.inner.outputs(), api);
    this.metadata = guard(() => this.inner.metadata(), api);
    // WebGPU runs are asynchronous and one at a time per session: they queue here.
    this.queue = Promise.resolve();
  }

  checkFeeds(feeds) {
    if (!this.inner) throw new Error('uniml: this session was released; create a new Session to run again');
    for (const f of feeds) {
      if (!TYPED_ARRAYS[f.type]) throw new TypeError(`uniml: input '${f.name}': unknown tensor type '${f.type}'`);
    }
    return feeds.map((f) => [f.name, f.type, f.dims, bytesOf(f)]);
  }

  /** feeds: [{name, type, dims, data}] → [[name, Tensor]] in model order (a promise for WebGPU sessions). */
  run(feeds) {
    if (this.backend === 'webgpu') return this.runGpu(feeds);
    const args = this.checkFeeds(feeds);
    const out = guard(() => this.inner.run(args), this.api);
    return out.map(tensorOf);
  }

  runGpu(feeds) {
    const run = this.queue.then(async () => {
      const args = this.checkFeeds(feeds);
      const out = await guardAsync(() => this.inner.runAsync(args), this.api);
      return out.map(tensorOf);
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Where each node runs: [{node, op, device: 'cpu'|'gpu', reason}]. */
  placement() {
    if (!this.inner) return [];
    return guard(() => this.inner.placement(), this.api);
  }

  memoryStats() {
    const s = engineMemoryStats(this.api);
    s.poolPeakBytes = this.inner ? guard(() => this.inner.poolPeakBytes(), this.api) : 0;
    s.weightBytes = this.inner ? guard(() => this.inner.weightBytes(), this.api) : 0;
    return s;
  }

  trimMemory() {
    if (this.inner) guard(() => this.inner.trimMemory(), this.api);
  }

  /** Threads of this session and the engine pool's workers and the kernel tasks they ran. */
  threadStats() {
    return { threads: this.threads, workers: guard(() => this.api.poolWorkers(), this.api), workerTasks: guard(() => this.api.poolWorkerTasks(), this.api) };
  }

  /** Frees the session; a WebGPU session first lets its queued runs finish. */
  release() {
    if (!this.inner) return;
    const inner = this.inner;
    this.inner = null;
    const free = () =>
      guard(() => {
        inner.release();
        inner.free();
      }, this.api);
    if (this.backend === 'webgpu') return this.queue.then(free);
    free();
  }
}
