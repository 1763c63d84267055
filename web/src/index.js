// uniml: run ONNX models in browsers and Node with one small wasm engine.
// See index.d.ts for the typed API and docs/web.md for bundlers, threads and sizes.

import { Tensor, feedOf } from './tensor.js';
import {
  LocalSession,
  baseHref,
  engineInfo,
  engineMemoryStats,
  isNode,
  loadEngine,
  requireNodeBuiltin,
  simdSupported,
  relaxedSimdSupported,
} from './engine.js';
import { coreCount, onBrowserMainThread, threadsSupport } from './threads.js';

export { Tensor };

const BACKENDS = ['auto', 'wasm', 'cpu', 'webgpu'];

/** The WebGPU adapter this JS engine offers: `{adapter, reason}` (adapter null, with the reason, when none). */
async function probeWebgpu() {
  const gpu = globalThis.navigator && globalThis.navigator.gpu;
  if (!gpu) return { adapter: null, reason: 'this JS engine has no WebGPU (navigator.gpu is missing)' };
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    return adapter ? { adapter, reason: '' } : { adapter: null, reason: 'navigator.gpu.requestAdapter() gave no adapter' };
  } catch (e) {
    return { adapter: null, reason: `navigator.gpu.requestAdapter() failed: ${e && e.message ? e.message : e}` };
  }
}

/** What this environment offers: SIMD, relaxed SIMD, threads (and why not), WebGPU and shader-f16. */
export async function capabilities() {
  const probe = await probeWebgpu();
  const adapter = probe.adapter;
  const webgpu = !!adapter;
  const shaderF16 = !!adapter && adapter.features.has('shader-f16');
  const info = adapter && adapter.info;
  const simd = simdSupported();
  const t = threadsSupport(simd);
  return {
    simd,
    relaxedSimd: simd && relaxedSimdSupported(),
    threads: t.ok,
    threadsReason: t.ok ? '' : t.reason,
    cores: coreCount(),
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    webgpu,
    webgpuReason: probe.reason,
    webgpuAdapter: info ? [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') : '',
    webgpuFallbackAdapter: !!(info && info.isFallbackAdapter),
    shaderF16,
  };
}

/** Memory of the main-thread engine instance (worker sessions: `session.memoryStats()`). */
export function memoryStats() {
  return engineMemoryStats();
}

/** Loads the engine ahead of time (optional; `Session.create` does it). `wasm`: URL, bytes or Module to use instead of the bundled file. */
export async function init(options = {}) {
  return loadEngine(options);
}

function isUrlLike(s) {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(s) && !/^[a-zA-Z]:[\\/]/.test(s);
}

/** Model bytes from a URL, a path (Node), a Blob, or bytes. Fetch errors name URL, status and type. */
async function loadModelBytes(model, { onProgress, signal }) {
  if (model instanceof Uint8Array) return { bytes: model, owned: false };
  if (model instanceof ArrayBuffer) return { bytes: new Uint8Array(model), owned: false };
  if (ArrayBuffer.isView(model)) return { bytes: new Uint8Array(model.buffer, model.byteOffset, model.byteLength), owned: false };
  if (typeof Blob !== 'undefined' && model instanceof Blob) {
    const bytes = new Uint8Array(await model.arrayBuffer());
    if (onProgress) onProgress(bytes.length, bytes.length);
    return { bytes, owned: true };
  }
  if (typeof model !== 'string' && !(model instanceof URL)) {
    throw new TypeError('uniml: Session.create needs a model URL, a path (Node), a Blob, or the model bytes (Uint8Array/ArrayBuffer)');
  }
  let url;
  if (model instanceof URL) url = model;
  else if (isNode && !isUrlLike(model)) url = requireNodeBuiltin('url').pathToFileURL(model);
  else url = new URL(model, baseHref());
  if (url.protocol === 'file:' && isNode) {
    const fs = requireNodeBuiltin('fs');
    let bytes;
    try {
      bytes = new Uint8Array(fs.readFileSync(url));
    } catch (e) {
      throw new Error(`uniml: cannot read the model at ${url.href}: ${e.message}`, { cause: e });
    }
    if (onProgress) onProgress(bytes.length, bytes.length);
    return { bytes, owned: true };
  }
  let resp;
  try {
    resp = await fetch(url, { signal });
  } catch (e) {
    throw new Error(`uniml: cannot fetch the model from ${url.href}: ${e.message}`, { cause: e });
  }
  const type = resp.headers.get('content-type') || 'none';
  if (!resp.ok) {
    throw new Error(`uniml: cannot load the model from ${url.href}: HTTP ${resp.status} ${resp.statusText} (content-type ${type})`);
  }
  const encoded = resp.headers.get('content-encoding');
  const length = Number(resp.headers.get('content-length'));
  const total = !encoded && Number.isFinite(length) && length > 0 ? length : undefined;
  let bytes;
  if (!resp.body || !resp.body.getReader) {
    bytes = new Uint8Array(await resp.arrayBuffer());
  } else {
    const reader = resp.body.getReader();
    const chunks = [];
    let loaded = 0;
    let buf = total ? new Uint8Array(total) : null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (buf && loaded + value.length <= buf.length) buf.set(value, loaded);
      else {
        if (buf) {
          chunks.push(buf.subarray(0, loaded));
          buf = null;
        }
        chunks.push(value);
      }
      loaded += value.length;
      if (onProgress) onProgress(loaded, total);
    }
    if (buf) bytes = buf.subarray(0, loaded);
    else {
      bytes = new Uint8Array(loaded);
      let o = 0;
      for (const c of chunks) {
        bytes.set(c, o);
        o += c.length;
      }
    }
  }
  if (type.includes('text/html') && bytes.length > 0 && bytes[0] === 0x3c) {
    throw new Error(
      `uniml: ${url.href} answered with an HTML page (HTTP ${resp.status}, content-type ${type}), not an ONNX model: is the model file served at that URL?`,
    );
  }
  if (onProgress) onProgress(bytes.length, bytes.length);
  return { bytes, owned: true };
}

function checkOptions(options) {
  const backend = options.backend ?? 'auto';
  if (!BACKENDS.includes(backend)) {
    throw new TypeError(`uniml: unknown backend '${backend}' (expected 'auto', 'wasm' or 'webgpu')`);
  }
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 0) throw new TypeError(`uniml: threads must be a non-negative integer, got ${threads}`);
  return { backend, threads };
}

/**
 * The backend a session gets: 'webgpu' when asked for; for 'auto', WebGPU when a hardware
 * adapter exists (a software one, e.g. SwiftShader, is slower than wasm), else wasm with the
 * reason. `{backend, reason}`.
 */
async function resolveBackend(backend) {
  if (backend === 'wasm' || backend === 'cpu') return { backend: 'wasm', reason: '' };
  if (backend === 'webgpu') return { backend: 'webgpu', reason: '' };
  const probe = await probeWebgpu();
  if (!probe.adapter) return { backend: 'wasm', reason: probe.reason };
  if (probe.adapter.info && probe.adapter.info.isFallbackAdapter) {
    return { backend: 'wasm', reason: 'the only WebGPU adapter is a software (fallback) one; wasm is faster' };
  }
  return { backend: 'webgpu', reason: '' };
}

let warnedThreads = false;
let warnedBackend = false;

/** An ONNX model ready to run. Create with `await Session.create(model, options)`. */
export class Session {
  constructor(impl, info) {
    if (!impl) throw new TypeError('uniml: use `await Session.create(model, options)`');
    this._impl = impl;
    this.inputMetadata = info.inputs;
    this.outputMetadata = info.outputs;
    this.inputNames = info.inputs.map((i) => i.name);
    this.outputNames = info.outputs.map((o) => o.name);
    this.metadata = info.metadata;
    this.backend = info.backend;
    this.backendReason = info.backendReason ?? '';
    this.adapter = info.adapter ?? null;
    this.threads = info.threads;
    this.threadsReason = info.threadsReason;
    this.worker = info.worker;
  }

  static async create(model, options = {}) {
    const checked = checkOptions(options);
    const { threads } = checked;
    const [{ backend, reason: backendReason }, { bytes, owned }] = await Promise.all([resolveBackend(checked.backend), loadModelBytes(model, options)]);
    // Logged only where WebGPU exists but is not used (Node and older browsers have none: no noise).
    if (backendReason && checked.backend === 'auto' && globalThis.navigator?.gpu && !warnedBackend) {
      warnedBackend = true;
      console.info(`uniml: backend auto runs on wasm: ${backendReason}`);
    }
    const sessionOptions = { threads, memoryLimit: options.memoryLimit ?? 0, backend };
    // A browser's main thread may not block, which the thread pool's locks need:
    // a threaded session there runs in worker mode.
    const wantsThreads = backend === 'wasm' && threads !== 1 && threadsSupport(simdSupported()).ok;
    let session;
    if (options.worker || (wantsThreads && onBrowserMainThread())) {
      const remote = await WorkerSession.start(bytes, owned, sessionOptions, options);
      session = new Session(remote, { ...remote.info, backendReason, worker: true });
    } else {
      if (backend === 'wasm') await loadEngine({ wasm: options.wasm, threads });
      const local = await LocalSession.create(bytes, sessionOptions);
      const impl = new InThreadSession(local);
      session = new Session(impl, {
        inputs: local.inputs,
        outputs: local.outputs,
        metadata: local.metadata,
        threads: local.threads,
        threadsReason: local.threadsReason,
        backend: local.backend,
        backendReason,
        adapter: local.adapter,
        worker: false,
      });
    }
    if (threads !== 1 && session.threads === 1 && session.threadsReason && !warnedThreads) {
      warnedThreads = true;
      console.warn(`uniml: threads=${threads} requested; running on 1 thread because ${session.threadsReason}`);
    }
    return session;
  }

  /** Runs the model: `{inputName: Tensor}` → `{outputName: Tensor}`. `transfer` (worker mode) moves input buffers instead of copying them. */
  async run(feeds, options = {}) {
    if (!this._impl) throw new Error('uniml: this session was released; create a new Session to run again');
    if (!feeds || typeof feeds !== 'object') throw new TypeError('uniml: run() needs an object {inputName: Tensor}');
    const list = Object.entries(feeds).map(([name, t]) => feedOf(name, t));
    const outputs = await this._impl.run(list, feeds, options);
    return Object.fromEntries(outputs);
  }

  /** Where each node of the optimised graph runs: `[{node, op, device: 'cpu' | 'gpu', reason}]` (reason: why not on the GPU). */
  async placement() {
    if (!this._impl) throw new Error('uniml: this session was released; create a new Session to run again');
    return this._impl.placement();
  }

  /** Memory of the engine instance running this session, plus this session's pool peak and weights. */
  async memoryStats() {
    if (!this._impl) return { ...engineMemoryStats(), poolPeakBytes: 0, weightBytes: 0 };
    return this._impl.memoryStats();
  }

  /** Frees run-time buffers (re-created by the next run). */
  async trimMemory() {
    if (this._impl) await this._impl.trimMemory();
  }

  /** This session's threads, and the engine pool's workers and the kernel tasks they have run. */
  async threadStats() {
    if (!this._impl) return { threads: 1, workers: 0, workerTasks: 0 };
    return this._impl.threadStats();
  }

  /** Frees the model (weights, plan, buffers); in worker mode the worker is terminated. */
  async release() {
    const impl = this._impl;
    this._impl = null;
    if (impl) await impl.release();
  }

  /** Engine info: version, which wasm build runs (simd/scalar), and its URL. */
  static engineInfo() {
    return engineInfo();
  }
}

class InThreadSession {
  constructor(local) {
    this.local = local;
  }
  async run(list) {
    return this.local.run(list);
  }
  async placement() {
    return this.local.placement();
  }
  async memoryStats() {
    return this.local.memoryStats();
  }
  async trimMemory() {
    this.local.trimMemory();
  }
  async threadStats() {
    return this.local.threadStats();
  }
  async release() {
    await this.local.release();
  }
}

/** A session living in a dedicated module Worker (browser) or worker_threads Worker (Node). */
class WorkerSession {
  static async start(bytes, owned, sessionOptions, options) {
    const self = new WorkerSession();
    self.url = 'worker.js';
    const custom = options.workerUrl ? new URL(String(options.workerUrl), baseHref()) : null;
    self.pending = new Map();
    self.nextId = 1;
    const onMessage = (msg) => self.onMessage(msg);
    const onError = (err) => self.failAll(new Error(`uniml: the worker ${self.url} failed: ${err && err.message ? err.message : 'load error (is worker.js served beside index.js?)'}`));
    if (typeof Worker !== 'undefined' && !isNode) {
      // Written out literally: Vite and webpack recognise this exact form and bundle the worker.
      self.worker = custom
        ? new Worker(custom, { type: 'module', name: 'uniml' })
        : new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'uniml' });
      self.url = custom ? custom.href : 'worker.js';
      self.worker.onmessage = (e) => onMessage(e.data);
      self.worker.onerror = (e) => {
        e.preventDefault?.();
        onError(e);
      };
      self.worker.onmessageerror = () => onError(new Error('a message could not be deserialized'));
    } else {
      if (!isNode) throw new Error('uniml: worker mode needs Web Workers (`Worker`), which this environment lacks (e.g. a service worker); use {worker: false}');
      const wt = requireNodeBuiltin('worker_threads');
      const url = custom || new URL('./worker.js', import.meta.url);
      self.url = url.href;
      self.worker = new wt.Worker(url);
      self.worker.on('message', onMessage);
      self.worker.on('error', onError);
      self.worker.unref(); // an idle session does not keep Node alive; calls ref() it
      self.node = true;
    }
    // The model bytes: moved when we fetched them, copied when they are the caller's.
    const copy = owned && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
    try {
      self.info = await self.call({ op: 'create', bytes: copy, options: sessionOptions, wasm: options.wasm && String(options.wasm) }, [copy.buffer]);
    } catch (e) {
      self.terminate();
      throw e;
    }
    return self;
  }

  onMessage(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (this.node && this.pending.size === 0) this.worker.unref();
    if (msg.ok) p.resolve(msg.result);
    else p.reject(Object.assign(new Error(msg.error.message), { name: msg.error.name || 'Error' }));
  }

  failAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.dead = err;
  }

  call(msg, transfer = []) {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.node) this.worker.ref();
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  async run(list, feeds, { transfer = false } = {}) {
    const buffers = transfer ? [...new Set(list.filter((f) => f.type !== 'string').map((f) => f.data.buffer))] : [];
    const result = await this.call({ op: 'run', feeds: list, returnInputs: transfer }, buffers);
    if (transfer && result.inputs) {
      // The worker hands the moved input buffers back: the caller's Tensors are usable again.
      for (const f of result.inputs) {
        const t = feeds[f.name];
        if (t && typeof t === 'object') t.data = f.data;
      }
    }
    return result.outputs.map(([name, type, dims, data]) => [name, new Tensor(type, data, dims)]);
  }

  placement() {
    return this.call({ op: 'placement' });
  }

  memoryStats() {
    return this.call({ op: 'memoryStats' });
  }

  trimMemory() {
    return this.call({ op: 'trimMemory' });
  }

  threadStats() {
    return this.call({ op: 'threadStats' });
  }

  async release() {
    try {
      await this.call({ op: 'release' });
    } finally {
      this.terminate();
    }
  }

  terminate() {
    this.failAll(new Error('uniml: this session was released; create a new Session to run again'));
    this.worker.terminate();
  }
}
