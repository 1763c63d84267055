// The debug build (dist/web/debug/uniml_bg.wasm: names + DWARF, see docs/web.md): loaded with the
// `wasm` option, it runs models like the release build, and an engine panic's Error carries the
// Rust function names of the engine's frames. Its own file: the panic poisons this process's
// engine instance (node --test runs each file in its own process).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { Session, Tensor } from 'uniml';

import { guard } from '../../dist/web/engine.js';
import * as raw from '../../dist/web/uniml.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const DEBUG_WASM = join(ROOT, 'dist/web/debug/uniml_bg.wasm');

test('the debug wasm keeps its name section and DWARF; the release wasm has neither', async () => {
  const debug = await WebAssembly.compile(readFileSync(DEBUG_WASM));
  const release = await WebAssembly.compile(readFileSync(join(ROOT, 'dist/web/uniml_bg.wasm')));
  assert.equal(WebAssembly.Module.customSections(debug, 'name').length, 1, 'debug: name section');
  assert.equal(WebAssembly.Module.customSections(debug, '.debug_info').length, 1, 'debug: DWARF .debug_info');
  assert.equal(WebAssembly.Module.customSections(debug, '.debug_line').length, 1, 'debug: DWARF .debug_line');
  assert.equal(WebAssembly.Module.customSections(release, 'name').length, 0, 'release: no name section');
  assert.equal(WebAssembly.Module.customSections(release, '.debug_info').length, 0, 'release: no DWARF');
});

test('debug build: runs a model, and a panic names the Rust functions on the stack', async () => {
  const s = await Session.create(join(ROOT, 'models/digits8x8_cnn.onnx'), { wasm: DEBUG_WASM });
  assert.ok(Session.engineInfo().url.endsWith('/dist/web/debug/uniml_bg.wasm'), Session.engineInfo().url);
  const out = await s.run({ input: new Tensor('float32', new Float32Array(64), [1, 1, 8, 8]) });
  assert.deepEqual(out.logits.dims, [1, 10]);
  let err;
  try {
    guard(() => raw.debugPanic('deliberate debug-build panic'));
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, `expected an Error, got ${err}`);
  assert.match(err.message, /internal error .*deliberate debug-build panic at crates\/uniml-web\/src\/lib\.rs:\d+/);
  const engine = err.stack.split('at the panic in the engine:')[1] || '';
  console.log(`debug-build panic, engine frames:\n${engine.split('\n').filter((l) => /uniml_web|std|core/.test(l)).slice(0, 6).join('\n')}`);
  // The frame of the panicking function itself, by its Rust path (from the name section).
  assert.match(engine, /uniml_web::debug_panic::h[0-9a-f]+/, err.stack);
  assert.match(engine, /core\[?[0-9a-f]*\]?::panicking::panic_fmt/, 'std frames are named too');
});
