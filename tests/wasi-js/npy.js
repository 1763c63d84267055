// Minimal NumPy .npy reader/writer (format 1.0/2.0, little-endian, C order) for the tests.
import { readFileSync, writeFileSync } from 'node:fs';

export const NPY_OF = {
  f32: '<f4', f64: '<f8', f16: '<f2', i8: '|i1', u8: '|u1', i16: '<i2', u16: '<u2',
  i32: '<i4', u32: '<u4', i64: '<i8', u64: '<u8', bool: '|b1',
};
const TYPE_OF = Object.fromEntries(Object.entries(NPY_OF).map(([k, v]) => [v, k]));

/** Reads a .npy file as { dtype (WIT tensor-type name), shape: number[], bytes: Uint8Array }. */
export function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const dtype = TYPE_OF[descr];
  if (!dtype) throw new Error(`${path}: dtype ${descr} not supported`);
  return { dtype, shape, bytes: new Uint8Array(buf.subarray(start + hlen)) };
}

/** Writes { dtype, shape, bytes } as a .npy file. */
export function writeNpy(path, { dtype, shape, bytes }) {
  const shp = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${NPY_OF[dtype]}', 'fortran_order': False, 'shape': ${shp}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]));
}

/** Element values as numbers (f32/f64/int types used by the tests). */
export function values({ dtype, bytes }) {
  const b = bytes.byteOffset % 8 === 0 ? bytes : new Uint8Array(bytes);
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  switch (dtype) {
    case 'f32': return Array.from(new Float32Array(ab));
    case 'f64': return Array.from(new Float64Array(ab));
    case 'i32': return Array.from(new Int32Array(ab));
    case 'i64': return Array.from(new BigInt64Array(ab), Number);
    case 'u8': return Array.from(new Uint8Array(ab));
    default: throw new Error(`values: dtype ${dtype} not supported`);
  }
}
