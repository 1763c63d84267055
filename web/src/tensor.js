// The Tensor class and dtype <-> typed-array mapping (shared by the main thread and the worker).

/** Typed-array constructor per dtype. float16/bfloat16 travel as raw Uint16 bits. */
export const TYPED_ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
  string: Array,
};

function checkDims(type, dims, length) {
  if (!Array.isArray(dims) && !ArrayBuffer.isView(dims)) {
    throw new TypeError(`uniml: Tensor('${type}') dims must be an array of integers, got ${typeof dims}`);
  }
  let n = 1;
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new TypeError(`uniml: Tensor('${type}') dims must be non-negative integers, got [${Array.from(dims).join(', ')}]`);
    }
    n *= d;
  }
  if (n !== length) {
    throw new RangeError(`uniml: Tensor('${type}') dims [${Array.from(dims).join(', ')}] need ${n} elements, but the data has ${length}`);
  }
  return n;
}

/** A typed n-dimensional array: `new Tensor('float32', data, [1, 3, 224, 224])`. */
export class Tensor {
  constructor(type, data, dims) {
    const Ctor = TYPED_ARRAYS[type];
    if (!Ctor) {
      throw new TypeError(`uniml: unknown tensor type '${type}' (expected one of ${Object.keys(TYPED_ARRAYS).join(', ')})`);
    }
    if (type === 'string') {
      if (!Array.isArray(data) || data.some((s) => typeof s !== 'string')) {
        throw new TypeError(`uniml: Tensor('string') needs an array of strings`);
      }
    } else if (!(data instanceof Ctor)) {
      if (Array.isArray(data)) {
        if (type === 'int64' || type === 'uint64') data = Ctor.from(data, (v) => BigInt(v));
        else if (type === 'bool') data = Uint8Array.from(data, (v) => (v ? 1 : 0));
        else data = Ctor.from(data);
      } else if (type === 'float16' && typeof Float16Array !== 'undefined' && data instanceof Float16Array) {
        data = new Uint16Array(data.buffer, data.byteOffset, data.length);
      } else {
        const got = data === null ? 'null' : data?.constructor?.name ?? typeof data;
        throw new TypeError(`uniml: Tensor('${type}') needs a ${Ctor.name} (or a plain array), got ${got}`);
      }
    }
    if (dims === undefined) dims = [data.length];
    this.size = checkDims(type, dims, data.length);
    /** @type {string} */
    this.type = type;
    this.data = data;
    this.dims = Object.freeze(Array.from(dims));
  }
}

/** Plain `{name, type, dims, data}` (what crosses to the worker) from a Tensor-like value. */
export function feedOf(name, t) {
  if (!t || typeof t !== 'object' || typeof t.type !== 'string' || !('data' in t) || !t.dims) {
    throw new TypeError(`uniml: input '${name}' must be a Tensor (new Tensor(type, data, dims))`);
  }
  if (!(t instanceof Tensor)) t = new Tensor(t.type, t.data, t.dims);
  if (t.type !== 'string' && t.data.length !== t.size) {
    throw new TypeError(`uniml: input '${name}': its ArrayBuffer is detached (it was transferred); use the Tensor returned to you, or pass {transfer: false}`);
  }
  return { name, type: t.type, dims: Array.from(t.dims), data: t.data };
}

/** Engine output `[name, dtype, dims, bytes]` → `[name, Tensor]`. */
export function tensorOf([name, type, dims, bytes]) {
  const Ctor = TYPED_ARRAYS[type];
  if (!Ctor) throw new Error(`uniml: output '${name}' has dtype ${type}, which the JS API cannot represent`);
  const data = type === 'string' ? bytes : new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
  return [name, new Tensor(type, data, dims)];
}
