// Chromium side of `cargo xtask bench --browser`: serves the repository with COOP/COEP,
// opens web/bench/page.html in headless Chromium (playwright-core, Debian's chromium) at
// one thread count, prints progress, and writes one `ROW {json}` line per model on stdout.
// THREADS = `webgpu`: uniml's WebGPU backend vs onnxruntime-web's WebGPU EP, with Chromium on
// SwiftShader's WebGPU (the flags of web/test/webgpu.mjs).
//   node web/bench/browser.mjs SPEC.json THREADS|webgpu RUNS [WARMUP]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { chromium } from 'playwright-core';

import { serve } from '../tools/serve.mjs';
import { WEBGPU_ARGS } from '../test/webgpu.mjs';

const [specPath, threadsArg, runs, warmup = '3'] = process.argv.slice(2);
const gpu = threadsArg === 'webgpu';
const threads = gpu ? '1' : threadsArg;
const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
const spec = relative(ROOT, specPath);
if (spec.startsWith('..')) throw new Error(`the spec must lie inside the repository (served root): ${specPath}`);
const { server, url } = await serve(ROOT);
const profile = mkdtempSync(join(tmpdir(), 'uniml-bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: gpu ? WEBGPU_ARGS : ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = await context.newPage();
  page.on('console', (m) => console.error(`  ${m.text()}`));
  page.on('pageerror', (e) => console.error(`  page error: ${e.message}`));
  await page.goto(`${url}web/bench/page.html?spec=/${spec}&threads=${threads}&runs=${runs}&warmup=${warmup}&gpu=${gpu ? 1 : 0}`);
  await page.waitForFunction(() => window.__bench && window.__bench.done, null, { timeout: 0, polling: 1000 });
  const r = await page.evaluate(() => window.__bench);
  if (!r.crossOriginIsolated) console.error('  warning: the bench page is not cross-origin isolated');
  if (r.error) {
    console.error(`  bench failed: ${r.error}`);
    failed = true;
  }
  for (const row of r.rows) console.log(`ROW ${JSON.stringify(row)}`);
} finally {
  await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
