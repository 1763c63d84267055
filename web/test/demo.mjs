// Chromium tests of the demo PWA (web/demo), run by browser.mjs: every tab loads and gives the
// right answer on its bundled inputs, checked against onnxruntime on the exact tensors the page
// fed the engine; errors (corrupt model, 404) are shown, not hung on; offline reload works from
// the service worker and the model cache. Screenshots go to the artefacts dir; peak memory per
// model is printed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { maxDiff, parseNpy } from './npy.mjs';

const NPY_DESCR = { float32: '<f4', int64: '<i8' };

/** Writes a little-endian .npy (version 1.0) of a typed array. */
function writeNpy(path, type, dims, data) {
  let header = `{'descr': '${NPY_DESCR[type]}', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((header.length + 10) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

/** A typed array of the page, moved to Node as base64. */
async function pageArray(page, expr, Ctor) {
  const b64 = await page.evaluate((e) => {
    const a = e.split('.').reduce((o, k) => o[k], window);
    const u8 = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    let s = '';
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
    return btoa(s);
  }, expr);
  const buf = Buffer.from(b64, 'base64');
  const copy = new Uint8Array(buf).slice();
  return new Ctor(copy.buffer);
}

/** onnxruntime (scripts/reference.py) on the given inputs → {outputName: parsed npy}. */
function reference(env, name, model, inputs) {
  const dir = join(env.work, 'demo', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'in'), { recursive: true });
  for (const [input, { type, dims, data }] of Object.entries(inputs)) writeNpy(join(dir, 'in', `${input}.npy`), type, dims, data);
  const out = execFileSync(env.python, ['scripts/reference.py', model, '--inputs-dir', join(dir, 'in'), '--outputs-dir', join(dir, 'ref')], { cwd: env.root, encoding: 'utf8' });
  const info = JSON.parse(out.trim().split('\n').pop());
  return Object.fromEntries(info.outputs.map((o) => [o.name, parseNpy(readFileSync(join(dir, 'ref', o.file)))]));
}

async function openTab(env, query, tab) {
  const page = await env.context.newPage();
  const lines = [];
  page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`pageerror: ${e.message}`));
  page.lines = lines;
  await page.goto(`${env.url}web/demo/index.html${query}#${tab}`);
  return page;
}

/** Waits for a tab's `ready` promise: its result, or {error}. */
function tabReady(page, tab) {
  return page.evaluate((t) => window.__demo[t].ready.then((r) => ({ ...r, mask: undefined, input: undefined }), (e) => ({ error: String(e && e.message ? e.message : e) })), tab);
}

async function shot(env, page, name) {
  await page.waitForTimeout(200);
  await page.screenshot({ path: join(env.artifacts, `${name}.png`), fullPage: true });
}

async function classifyTab(env, check, label) {
  const page = await openTab(env, '', 'classify');
  const r = await tabReady(page, 'classify');
  await shot(env, page, `demo-classify${label}`);
  check(!r.error && r.top[0].index === 967, `demo${label}: coffee → ${r.error || r.top.map((t) => t.label).join(', ')}`);
  check(!r.error && r.digit === 1, `demo${label}: a drawn "1" → ${r.error || r.digit}`);
  if (!label) check(await page.evaluate(() => crossOriginIsolated), 'demo page is cross-origin isolated (COOP/COEP)');
  const memory = r.error ? {} : await page.evaluate(() => window.__demo.classify.memory());
  if (r.error) console.log(page.lines.join('\n'));
  return { page, memory };
}

async function segmentTab(env, check, label) {
  const page = await openTab(env, '', 'segment');
  const r = await tabReady(page, 'segment');
  await shot(env, page, `demo-segment${label}`);
  const ok = !r.error && r.fraction > 0.35 && r.fraction < 0.75;
  check(ok, `demo${label} segmentation: ${r.error || `person ${(100 * r.fraction).toFixed(1)}% of astronaut.png (≈54% expected), ${r.fps.toFixed(1)} frames/s, ${r.source}`}`);
  if (r.error) {
    console.log(page.lines.join('\n'));
    return { page, memory: {} };
  }
  check(await page.evaluate(() => /frames\/s/.test(document.getElementById('seg-fps').textContent)), 'demo segmentation shows frames/s');
  if (!label) {
    const input = await pageArray(page, '__demo.segment.last.input', Float32Array);
    const mask = await pageArray(page, '__demo.segment.last.mask', Float32Array);
    const ref = reference(env, 'selfie', 'models/selfie_segmentation.onnx', { input: { type: 'float32', dims: [1, 256, 256, 3], data: input } }).output.data;
    let inter = 0;
    let union = 0;
    for (let i = 0; i < ref.length; i++) {
      const a = mask[i] > 0.5;
      const b = ref[i] > 0.5;
      inter += a && b;
      union += a || b;
    }
    const d = maxDiff(mask, ref);
    check(inter / union >= 0.99, `demo segmentation mask vs onnxruntime: IoU ${(inter / union).toFixed(5)} (at 0.5), max |diff| ${d.diff.toExponential(2)}`);
  }
  return { page, memory: await page.evaluate(() => window.__demo.segment.memory()) };
}

async function similarityTab(env, check, label) {
  const page = await openTab(env, '', 'similarity');
  const r = await tabReady(page, 'similarity');
  await shot(env, page, `demo-similarity${label}`);
  if (r.error) {
    check(false, `demo${label} similarity: ${r.error}`);
    console.log(page.lines.join('\n'));
    return { page, memory: {} };
  }
  const ranked = await page.evaluate(() => window.__demo.similarity.last.ranked);
  const guitar = ranked.filter((x) => /guitar/.test(x.sentence));
  const other = ranked.filter((x) => !/guitar/.test(x.sentence));
  const lowest = Math.min(...guitar.map((x) => x.score));
  const highest = Math.max(...other.map((x) => x.score));
  check(lowest > highest + 0.1, `demo${label} similarity: guitar sentences ${guitar.map((x) => x.score.toFixed(3)).join(', ')} > unrelated ${other.map((x) => x.score.toFixed(3)).join(', ')}`);
  if (!label) {
    const dims = await page.evaluate(() => window.__demo.similarity.last.feeds.input_ids.dims);
    const ids = await pageArray(page, '__demo.similarity.last.feeds.input_ids.data', BigInt64Array);
    const mask = await pageArray(page, '__demo.similarity.last.feeds.attention_mask.data', BigInt64Array);
    // Token ids of the query vs the project's Python tokenizer (HF tokenizers or its WordPiece).
    const query = await page.evaluate(() => document.getElementById('sim-query').value);
    const tokDir = join(env.work, 'demo', 'query-tokens');
    execFileSync(env.python, ['scripts/make_inputs.py', 'text', 'models/bert-uncased-tokenizer.json', tokDir, query], { cwd: env.root, stdio: ['ignore', 'ignore', 'inherit'] });
    const pyIds = parseNpy(readFileSync(join(tokDir, 'input_ids.npy'))).data;
    const ours = Array.from(ids.subarray(0, dims[1])).filter((_, i) => mask[i] === 1n);
    check(ours.join(',') === Array.from(pyIds).filter((x) => x !== 0n).join(','), `demo similarity: query token ids match the Python tokenizer (${ours.length} tokens)`);
    const ref = reference(env, 'minilm', '.cache/models/paraphrase-MiniLM-L3-v2.onnx', {
      input_ids: { type: 'int64', dims, data: ids },
      attention_mask: { type: 'int64', dims, data: mask },
    });
    // Output 461 is the model's own masked mean of its token embeddings.
    const pooled = ref['461'].data;
    const n = await page.evaluate(() => window.__demo.similarity.last.embeddings.length);
    const hidden = pooled.length / n;
    let worst = 0;
    for (let b = 0; b < n; b++) {
      const ours = await pageArray(page, `__demo.similarity.last.embeddings.${b}`, Float32Array);
      const d = maxDiff(ours, pooled.subarray(b * hidden, (b + 1) * hidden));
      worst = Math.max(worst, d.diff / d.scale);
    }
    check(worst <= 1e-4, `demo similarity: ${n} embeddings vs onnxruntime (mean pooled), max relative diff ${worst.toExponential(2)}`);
  }
  return { page, memory: await page.evaluate(() => window.__demo.similarity.memory()) };
}

/** The camera path, with Chromium's fake camera (a test pattern) and auto-accepted permission. */
async function cameraTab(env, check) {
  const browser = await chromium.launch({ executablePath: env.chromium, headless: true, args: [...env.chromiumArgs, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${env.url}web/demo/index.html#segment`);
    const r = await tabReady(page, 'segment');
    await page.waitForTimeout(1500); // a few more camera frames
    const fps = await page.evaluate(() => document.getElementById('seg-fps').textContent);
    await shot(env, page, 'demo-segment-camera');
    check(!r.error && r.source === 'camera' && /frames\/s/.test(fps), `demo segmentation on the (fake) camera: ${r.error || `${r.source}, ${fps}`}`);
    await page.evaluate(() => document.getElementById('seg-stop').click());
  } finally {
    await browser.close();
  }
}

/** A tab with a bad model URL must show an error line quickly. */
async function errorShown(env, check, query, tab, errorId, pattern, what) {
  const page = await openTab(env, query, tab);
  const r = await tabReady(page, tab);
  const shown = await page.waitForFunction((id) => !document.getElementById(id).hidden && document.getElementById(id).textContent, errorId, { timeout: 60_000 }).then((h) => h.jsonValue(), () => 'no error shown within 60 s');
  await shot(env, page, `demo-error-${what.replace(/\W+/g, '-')}`);
  check(Boolean(r.error) && pattern.test(shown), `demo ${what}: ${shown}`);
  await page.close();
}

export async function testDemo(env, check) {
  const pages = [];
  const memory = {};
  for (const tab of [classifyTab, segmentTab, similarityTab]) {
    const { page, memory: m } = await tab(env, check, '');
    pages.push(page);
    Object.assign(memory, m);
  }
  console.log('demo peak memory per model (MB; worker heap peak, wasm memory, pool peak, weights):');
  for (const [model, m] of Object.entries(memory)) console.log(`  ${model.padEnd(14)} heap peak ${m.heapPeak}, wasm memory ${m.wasmMemory}, pool peak ${m.poolPeak}, weights ${m.weights}`);
  writeFileSync(join(env.artifacts, 'demo-memory.json'), JSON.stringify(memory, null, 2));
  // Loading holds about the weights plus the largest initializer (docs/web.md, "Memory"); was 3.4x for MiniLM.
  const lm = memory.minilm;
  if (lm) check(lm.wasmMemory <= 2 * lm.weights + lm.poolPeak + 0.2, `demo MiniLM worker: wasm memory ${lm.wasmMemory} MB <= 2x weights (${lm.weights} MB) + pool peak (${lm.poolPeak} MB)`);

  await cameraTab(env, check);
  await errorShown(env, check, '?segmentModel=/testdata/coffee.png', 'segment', 'seg-error', /Error: uniml: invalid model/, 'corrupt model (a PNG)');
  await errorShown(env, check, '?textModel=/models/no-such-model.onnx', 'similarity', 'sim-error', /HTTP 404/, '404 model URL');

  // Offline: app and engine from the service worker, models from the model cache.
  const cached = await pages[0].evaluate(async () => {
    await navigator.serviceWorker.ready;
    const n = async (name) => (await (await caches.open(name)).keys()).length;
    return { app: await n('uniml-demo-v2'), models: await n('uniml-demo-models-v1') };
  });
  for (const p of pages) await p.close();
  await env.context.setOffline(true);
  try {
    console.log(`offline: ${cached.app} app files, ${cached.models} models cached`);
    for (const tab of [classifyTab, segmentTab, similarityTab]) await (await tab(env, check, ' offline')).page.close();
  } finally {
    await env.context.setOffline(false);
  }
}
