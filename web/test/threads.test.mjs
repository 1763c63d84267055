// Node tests of the threaded engine build (its own process: the first session of a process
// picks the build). efficientnet_lite0 at 2 threads must take the threaded path (the engine
// reports 2 threads and its pool workers run kernel tasks) and give onnxruntime's numbers
// and the 1-thread numbers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { Session, Tensor, capabilities } from 'uniml';

import { maxDiff, parseNpy } from './npy.mjs';

const ROOT = new URL('../../', import.meta.url).pathname;
const WORK = process.env.UNIML_WEB_TEST_DIR || join(ROOT, '.cache/web-test');
const TOL = 1e-4;
const MODEL = join(ROOT, 'models/efficientnet_lite0.onnx');

async function timeRuns(s, feeds, n) {
  const t = performance.now();
  for (let i = 0; i < n; i++) await s.run(feeds);
  return (performance.now() - t) / n;
}

test('threads in Node: threaded build, 2 threads, same numbers as onnxruntime and as 1 thread', async () => {
  const caps = await capabilities();
  assert.equal(caps.threads, true, `threads available in Node: ${caps.threadsReason}`);
  assert.equal(caps.threadsReason, '');
  const x = parseNpy(readFileSync(join(WORK, 'efficientnet-coffee/in/input.npy')));
  const ref = parseNpy(readFileSync(join(WORK, 'efficientnet-coffee/ref/logits.npy')));
  const feeds = { input: new Tensor('float32', x.data, x.dims) };

  const s2 = await Session.create(MODEL, { threads: 2 });
  assert.equal(Session.engineInfo().threaded, true, 'the threaded build is loaded');
  assert.equal(s2.threads, 2, `engine reports 2 threads (${s2.threadsReason})`);
  assert.equal(s2.threadsReason, '');
  assert.equal((await s2.threadStats()).workers, 1, 'one pool worker beside the calling thread');
  const out2 = (await s2.run(feeds)).logits.data;
  const d2 = maxDiff(out2, ref.data);
  console.log(`2 threads vs onnxruntime: max |diff| ${d2.diff.toExponential(3)} (scale ${d2.scale.toPrecision(3)})`);
  assert.ok(d2.diff / d2.scale <= TOL);

  const s1 = await Session.create(MODEL, { threads: 1 });
  assert.equal(s1.threads, 1);
  const out1 = (await s1.run(feeds)).logits.data;
  const d12 = maxDiff(out2, out1);
  console.log(`2 threads vs 1 thread: max |diff| ${d12.diff.toExponential(3)}`);
  assert.ok(d12.diff / d12.scale <= 1e-5, '2 threads give the 1-thread numbers');

  // Informational (a shared 2-core machine makes a hard bound flaky): the speed-up.
  await s1.run(feeds);
  const t1 = await timeRuns(s1, feeds, 5);
  const t2 = await timeRuns(s2, feeds, 5);
  console.log(`efficientnet_lite0 in Node: 1 thread ${t1.toFixed(1)} ms, 2 threads ${t2.toFixed(1)} ms (×${(t1 / t2).toFixed(2)})`);
  const stats = await s2.threadStats();
  console.log(`pool: ${JSON.stringify(stats)}`);
  assert.ok(stats.workerTasks > 0, 'the pool worker ran kernel tasks');
  await s1.release();
  await s2.release();
});

test('threads 0 means all cores; worker mode gets threads too', async () => {
  const s = await Session.create(MODEL, { threads: 0 });
  assert.equal(s.threads, (await capabilities()).cores);
  await s.release();
  const w = await Session.create(MODEL, { threads: 2, worker: true });
  assert.equal(w.worker, true);
  assert.equal(w.threads, 2);
  const x = parseNpy(readFileSync(join(WORK, 'efficientnet-coffee/in/input.npy')));
  const out = (await w.run({ input: new Tensor('float32', x.data, x.dims) })).logits.data;
  const ref = parseNpy(readFileSync(join(WORK, 'efficientnet-coffee/ref/logits.npy')));
  const d = maxDiff(out, ref.data);
  assert.ok(d.diff / d.scale <= TOL);
  assert.ok((await w.threadStats()).workerTasks > 0, 'the worker session pool ran tasks');
  await w.release();
});
