// The Cloudflare Worker under workerd (npm `workerd`, pinned): POST testdata/coffee.png to
// /classify -> espresso (967); errors are JSON; prints the script size (worker.js + uniml.wasm,
// raw and gzip; must be <= 3 MB gzip, the free-plan limit) and memory (wasm linear memory,
// workerd RSS).
//
//   UNIML_WORKER_WASM=/path/uniml_wasi_http.wasm (wasm32-unknown-unknown) node --test test/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { gzipSync } from 'node:zlib';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = resolve(here, '../..');
const wasm = process.env.UNIML_WORKER_WASM;
const MB = 1 << 20;
let server;
let base;
let log = '';

const freePort = () => new Promise((ok, fail) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  s.on('error', fail);
});

function rss(pid) {
  // the npm `workerd` bin is a launcher: report the largest process of the group (the runtime)
  const out = {};
  try {
    for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
      const m = /^(VmRSS|VmHWM):\s+(\d+) kB/.exec(line);
      if (m) out[m[1]] = Number(m[2]) * 1024;
    }
  } catch { /* gone */ }
  return out;
}

function workerdPids() {
  const pids = [server.pid];
  try {
    for (const p of readFileSync(`/proc/${server.pid}/task/${server.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) pids.push(Number(p));
  } catch { /* no children file */ }
  return pids;
}

before(async () => {
  assert.ok(wasm && existsSync(wasm), `set UNIML_WORKER_WASM to the wasm32-unknown-unknown build (got ${wasm})`);
  mkdirSync(join(here, 'build'), { recursive: true });
  copyFileSync(wasm, join(here, 'build/uniml.wasm'));
  const js = readFileSync(join(here, 'src/worker.js'));
  const w = readFileSync(join(here, 'build/uniml.wasm'));
  const gz = gzipSync(js, { level: 9 }).length + gzipSync(w, { level: 9 }).length;
  console.log(`script size: worker.js ${js.length} B + uniml.wasm ${w.length} B = ${((js.length + w.length) / MB).toFixed(2)} MiB raw, ${(gz / MB).toFixed(2)} MiB gzip (limit 3 MB gzip)`);
  console.log(JSON.stringify({ worker_script_raw: js.length + w.length, worker_script_gzip: gz }));
  assert.ok(gz <= 3_000_000, `script is ${gz} B gzip, over 3 MB`);

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(join(here, 'node_modules/.bin/workerd'),
    ['serve', join(here, 'workerd.capnp'), '--socket-addr', `http=127.0.0.1:${port}`, '--directory-path', `models=${join(root, 'models')}`],
    { cwd: here, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => { log += d; });
  server.stderr.on('data', (d) => { log += d; });
  const t0 = Date.now();
  for (;;) {
    if (server.exitCode !== null) assert.fail(`workerd exited (${server.exitCode}):\n${log}`);
    try {
      const r = await fetch(`${base}/v2/health/ready`);
      if (r.ok) {
        console.log(`workerd up, model loaded in ${r.headers.get('x-uniml-load-ms')} ms (first request after ${Date.now() - t0} ms)`);
        break;
      }
      assert.fail(`first request: ${r.status} ${await r.text()}\n${log}`);
    } catch (e) {
      if (e.code === 'ERR_ASSERTION') throw e;
    }
    if (Date.now() - t0 > 60_000) assert.fail(`workerd did not answer in 60 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 250));
  }
});

after(() => {
  if (server && server.exitCode === null) process.kill(-server.pid, 'SIGTERM');
});

test('POST /classify coffee.png -> espresso (967), memory', async () => {
  const t0 = performance.now();
  const r = await fetch(`${base}/classify`, { method: 'POST', body: readFileSync(join(root, 'testdata/coffee.png')), headers: { 'content-type': 'image/png' } });
  const ms = performance.now() - t0;
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  console.log(`classify coffee.png (${ms.toFixed(0)} ms): ${j.top.map((t) => `${t.index} ${t.label} ${t.probability.toFixed(3)}`).join(', ')}; timings ${JSON.stringify(j.timings_ms)}`);
  assert.equal(j.top[0].index, 967);
  assert.equal(j.top[0].label, 'espresso');
  const mem = Number(r.headers.get('x-uniml-wasm-memory-bytes'));
  const proc = workerdPids().map(rss).reduce((m, x) => ((x.VmRSS ?? 0) > (m.VmRSS ?? 0) ? x : m), {});
  console.log(`memory: wasm linear memory ${(mem / MB).toFixed(1)} MiB (Workers limit 128 MB per isolate); workerd RSS ${((proc.VmRSS ?? 0) / MB).toFixed(1)} MiB, peak ${((proc.VmHWM ?? 0) / MB).toFixed(1)} MiB`);
  console.log(JSON.stringify({ host: 'workerd', classify_top1: j.top[0].index, wasm_memory: mem, workerd_rss: proc.VmRSS, workerd_peak: proc.VmHWM }));
});

test('errors are JSON, the Worker keeps serving', async () => {
  let r = await fetch(`${base}/classify`, { method: 'POST', body: 'not an image' });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).kind, 'invalid-image');
  r = await fetch(`${base}/v2/models/efficientnet_lite0/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 2, 2], datatype: 'FP32', data: new Array(12).fill(0) }] }) });
  assert.equal(r.status, 400);
  const j = await r.json();
  assert.equal(j.kind, 'invalid-input');
  console.log(`wrong dims -> ${r.status} ${JSON.stringify(j)}`);
  r = await fetch(`${base}/classify`, { method: 'POST', body: new Uint8Array(17 << 20) });
  assert.equal(r.status, 413);
  assert.equal((await r.json()).kind, 'too-large');
  r = await fetch(`${base}/classify`, { method: 'POST', body: readFileSync(join(root, 'testdata/chelsea.png')) });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).top[0].index, 282);
});
