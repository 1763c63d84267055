// Types of the `uniml` npm package (checked with `tsc --strict`).

/** Element types a tensor can hold. float16/bfloat16 data travel as raw Uint16 bits. */
export type TensorType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string';

/** The JS container for each tensor type. */
export interface TensorDataMap {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  int16: Int16Array;
  uint16: Uint16Array;
  int32: Int32Array;
  uint32: Uint32Array;
  int64: BigInt64Array;
  uint64: BigUint64Array;
  bool: Uint8Array;
  string: string[];
}

/** What a plain JS array may hold for each type (converted on construction). */
export type TensorArrayInput<T extends TensorType> = T extends 'int64' | 'uint64'
  ? ReadonlyArray<bigint | number>
  : T extends 'bool'
    ? ReadonlyArray<boolean | number>
    : T extends 'string'
      ? string[]
      : ReadonlyArray<number>;

/** A typed n-dimensional array. */
export class Tensor<T extends TensorType = TensorType> {
  constructor(type: T, data: TensorDataMap[T] | TensorArrayInput<T>, dims?: readonly number[]);
  readonly type: T;
  /** The elements, row-major. Replaced by a fresh array after a worker run with `{transfer: true}`. */
  data: TensorDataMap[T];
  readonly dims: readonly number[];
  /** Number of elements. */
  readonly size: number;
}

/** A declared dim: a number, a symbolic name (e.g. 'batch_size'), or null when unknown. */
export type Dim = number | string | null;

/** Name, dtype and declared shape of a model input or output. */
export interface ValueMetadata {
  readonly name: string;
  /** e.g. 'float32'; null when the model does not say. */
  readonly dtype: string | null;
  /** null when the rank is unknown. */
  readonly dims: readonly Dim[] | null;
}

export interface SessionOptions {
  /** 'wasm': the CPU engine. 'webgpu': the GPU through WebGPU (the WebGPU build of the engine is
   *  fetched on first use; no WebGPU or no adapter → the promise rejects saying why; nodes without
   *  a GPU kernel run on the CPU, see `placement()`). 'auto' (default): WebGPU when a hardware
   *  adapter exists, else wasm (`backendReason` says why). */
  backend?: 'auto' | 'wasm' | 'webgpu';
  /** Kernel threads (default 1; 0 = all cores). More than 1 needs the threaded build: SharedArrayBuffer
   *  (a cross-origin isolated page, or Node) and SIMD; otherwise the session runs on 1 thread and
   *  `threadsReason` says why. On a browser's main thread a threaded session runs in worker mode. */
  threads?: number;
  /** Run the session in a dedicated module Worker (worker_threads in Node). */
  worker?: boolean;
  /** Model download progress; `total` is undefined when the server does not send a usable length. */
  onProgress?: (loaded: number, total: number | undefined) => void;
  /** Abort the model download. */
  signal?: AbortSignal;
  /** Upper bound in bytes for any one tensor and the run-time buffer pool (default 4 GiB). */
  memoryLimit?: number;
  /** Use this engine wasm (URL, bytes or compiled module) instead of the bundled file. */
  wasm?: string | URL | ArrayBuffer | Uint8Array | WebAssembly.Module;
  /** Worker mode: the URL of worker.js when a bundler did not emit it beside the package. */
  workerUrl?: string | URL;
}

export interface RunOptions {
  /** Worker mode: move the input buffers to the worker instead of copying them. They come back
   *  with the result and are put into the Tensors' `data`, so the Tensors can be run again. */
  transfer?: boolean;
}

export interface MemoryStats {
  /** Size of the wasm linear memory (it grows but never shrinks). */
  wasmMemoryBytes: number;
  /** Bytes allocated inside the wasm heap right now (goes down after release). */
  heapBytes: number;
  /** Most heap bytes allocated at once. */
  heapPeakBytes: number;
}

export interface SessionMemoryStats extends MemoryStats {
  /** Peak bytes of this session's run-time buffer pool. */
  poolPeakBytes: number;
  /** Bytes of this session's weights. */
  weightBytes: number;
}

export type Model = string | URL | Blob | ArrayBuffer | ArrayBufferView;

export class Session {
  private constructor();
  /** Loads a model from a URL (fetch, with progress), a path (Node), a Blob, or bytes. */
  static create(model: Model, options?: SessionOptions): Promise<Session>;
  /** The loaded engine: version, which build (threaded, SIMD or scalar) and from where; null before the first create. */
  static engineInfo(): EngineInfo | null;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueMetadata[];
  readonly outputMetadata: readonly ValueMetadata[];
  /** Model metadata properties. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Where the session runs. */
  readonly backend: 'wasm' | 'webgpu';
  /** Why backend 'auto' chose wasm ('' otherwise). */
  readonly backendReason: string;
  /** The WebGPU adapter of a 'webgpu' session (null for wasm). */
  readonly adapter: string | null;
  /** Threads kernels run on, as reported by the engine (1 = one thread). */
  readonly threads: number;
  /** Why the session got fewer threads than requested ('' when it did not). */
  readonly threadsReason: string;
  /** Whether the session runs in a worker. */
  readonly worker: boolean;
  run(feeds: Readonly<Record<string, Tensor>>, options?: RunOptions): Promise<Record<string, Tensor>>;
  /** Where each node of the optimised graph runs (all 'cpu' for wasm sessions). */
  placement(): Promise<NodePlacement[]>;
  memoryStats(): Promise<SessionMemoryStats>;
  trimMemory(): Promise<void>;
  /** This session's threads, the engine pool's workers and the kernel tasks they have run (threaded build). */
  threadStats(): Promise<{ threads: number; workers: number; workerTasks: number }>;
  /** Frees the model; later runs throw. In worker mode the worker is terminated. */
  release(): Promise<void>;
}

export interface NodePlacement {
  readonly node: string;
  readonly op: string;
  readonly device: 'cpu' | 'gpu';
  /** Why the node is not on the GPU (or a note such as a zero-copy view); null when it is. */
  readonly reason: string | null;
}

export interface EngineInfo {
  /** Whether the running wasm was built with SIMD. */
  simd: boolean;
  /** Whether this JS engine supports wasm SIMD. */
  simdSupported: boolean;
  /** Whether the running wasm is a relaxed-SIMD build (fused multiply-add in matrix products; last-bit results may differ by CPU). */
  relaxedSimd: boolean;
  /** Whether this JS engine supports wasm relaxed SIMD (then the relaxed builds are loaded). */
  relaxedSimdSupported: boolean;
  /** Whether the running wasm is the threaded build (shared memory, worker pool). */
  threaded: boolean;
  /** Why the single-threaded build was loaded ('' for the threaded build). */
  threadsReason: string;
  /** Where the wasm came from (null when given as bytes or a module). */
  url: string | null;
  version: string;
}

export interface Capabilities {
  simd: boolean;
  /** Whether this JS engine has wasm relaxed SIMD (the relaxed builds, with fused multiply-add, are loaded). */
  relaxedSimd: boolean;
  /** Whether the threaded build can run here (SharedArrayBuffer, workers, SIMD). */
  threads: boolean;
  /** Why not ('' when threads are available), e.g. the page is not cross-origin isolated (COOP/COEP missing). */
  threadsReason: string;
  /** Cores of this machine (navigator.hardwareConcurrency / os.availableParallelism()). */
  cores: number;
  crossOriginIsolated: boolean;
  /** Whether a WebGPU adapter is available. */
  webgpu: boolean;
  /** Why not ('' when it is). */
  webgpuReason: string;
  /** The adapter's vendor, architecture and description ('' when none). */
  webgpuAdapter: string;
  /** Whether the adapter is a software/fallback one (e.g. SwiftShader): backend 'auto' does not use it. */
  webgpuFallbackAdapter: boolean;
  shaderF16: boolean;
}

/** What this environment offers (SIMD, threads and why not, WebGPU, shader-f16). */
export function capabilities(): Promise<Capabilities>;
/** Memory of the main-thread engine instance. */
export function memoryStats(): MemoryStats;
/** Loads the engine ahead of time (optional). */
export function init(options?: { wasm?: SessionOptions['wasm']; threads?: number }): Promise<EngineInfo>;
