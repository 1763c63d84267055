// Node side of `cargo xtask bench --browser`: uniml vs onnxruntime-web (wasm EP) in this
// Node process at one thread count (onnxruntime-web fixes its threads per process).
//   node web/bench/node.mjs SPEC.json THREADS RUNS
// SPEC: [{name, path, dims}] (paths relative to the repository root). One `ROW {json}` line
// per model on stdout; progress on stderr.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as ort from 'onnxruntime-web';
import * as uniml from 'uniml';

import { benchAll } from './core.mjs';

const [specPath, threadsArg, runsArg, warmupArg] = process.argv.slice(2);
const ROOT = new URL('../../', import.meta.url).pathname;
const threads = Number(threadsArg);
ort.env.wasm.numThreads = threads;
await benchAll({
  uniml,
  ort,
  env: 'node',
  models: JSON.parse(readFileSync(specPath, 'utf8')),
  threads,
  runs: Number(runsArg || 20),
  warmup: Number(warmupArg || 3),
  load: async (p) => new Uint8Array(readFileSync(join(ROOT, p))),
  emit: (row) => console.log(`ROW ${JSON.stringify(row)}`),
  log: (text) => console.error(`  ${text}`),
});
// onnxruntime-web's and uniml's pool threads must not keep Node alive.
process.exit(0);
