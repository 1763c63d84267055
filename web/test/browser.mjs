// Chromium tests (playwright-core driving Debian's /usr/bin/chromium): the package page
// (in-page and worker runs vs onnxruntime, 404 errors), then tiny apps built with esbuild,
// Vite and webpack from the installed npm packages, then the demo PWA (demo.mjs;
// UNIML_SKIP_DEMO=1 skips it, UNIML_ONLY_DEMO=1 runs only it). Exits non-zero on any failure.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { serve } from '../tools/serve.mjs';
import { testDemo } from './demo.mjs';
import { testWebgpu } from './webgpu.mjs';

const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
const WORK = process.env.UNIML_WEB_TEST_DIR || join(ROOT, '.cache/web-test');
const ARTIFACTS = join(ROOT, '.cache/web-artifacts');
const BIN = join(ROOT, 'web/node_modules/.bin');
const DIST = join(ROOT, 'dist/web');
const TOL = 1e-4;
mkdirSync(ARTIFACTS, { recursive: true });

const failures = [];
function check(cond, what) {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}`);
  if (!cond) failures.push(what);
}

// ---- bundled apps: the package copied into node_modules as npm would install it
function buildApps() {
  const apps = join(WORK, 'apps');
  rmSync(apps, { recursive: true, force: true });
  mkdirSync(join(apps, 'src'), { recursive: true });
  cpSync(DIST, join(apps, 'node_modules/uniml'), { recursive: true });
  for (const f of ['index.html', 'main.js']) cpSync(join(ROOT, 'web/test/app', f), join(apps, 'src', f));
  cpSync(join(ROOT, 'web/test/npy.mjs'), join(apps, 'src/npy.mjs'));
  // esbuild: one bundle; esbuild does not emit `new URL(..., import.meta.url)` assets
  // (evanw/esbuild#795), so the package's wasm and worker files are copied beside it.
  const eb = join(apps, 'esbuild');
  mkdirSync(eb, { recursive: true });
  execFileSync(join(BIN, 'esbuild'), [join(apps, 'src/main.js'), '--bundle', '--format=esm', '--platform=browser', `--outfile=${join(eb, 'main.js')}`, '--log-level=warning'], { stdio: 'inherit', cwd: apps });
  cpSync(join(apps, 'src/index.html'), join(eb, 'index.html'));
  for (const f of readdirSync(join(apps, 'node_modules/uniml'))) {
    if (/\.(wasm|js)$/.test(f) && f !== 'index.js') cpSync(join(apps, 'node_modules/uniml', f), join(eb, f));
  }
  // Vite: zero config.
  execFileSync(join(BIN, 'vite'), ['build', join(apps, 'src'), '--outDir', join(apps, 'vite'), '--emptyOutDir', '--base', './', '--logLevel', 'warn'], { stdio: 'inherit', cwd: apps });
  // webpack 5: zero config (it emits `new URL(..., import.meta.url)` assets and module workers).
  execFileSync(join(BIN, 'webpack'), ['--mode', 'production', '--entry', './src/main.js', '--output-path', './webpack', '--output-filename', 'main.js', '--no-devtool', '--stats', 'errors-warnings'], { stdio: 'inherit', cwd: apps });
  cpSync(join(apps, 'src/index.html'), join(apps, 'webpack/index.html'));
  return apps;
}

async function pageResult(context, url, name) {
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 180_000 });
  const result = await page.evaluate(() => window.__result);
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  if (!result.ok) console.log(`${name} console:\n  ${consoleLines.join('\n  ')}`);
  await page.close();
  return result;
}

const onlyDemo = Boolean(process.env.UNIML_ONLY_DEMO);
const apps = onlyDemo ? null : buildApps();
const { server, url } = await serve(ROOT);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const profile = mkdtempSync(join(tmpdir(), 'uniml-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: CHROMIUM_ARGS,
});
try {
  if (!onlyDemo) {
    const r = await pageResult(context, url + 'web/test/page/index.html', 'package-page');
    writeFileSync(join(ARTIFACTS, 'package-page.json'), JSON.stringify(r, null, 2));
    check(r.ok, `package page ran${r.error ? ': ' + r.error : ''}`);
    if (r.ok) {
      check(r.crossOriginIsolated === true, 'page is cross-origin isolated (COOP/COEP)');
      check(r.caps.simd === true && r.engine.simd === true, 'SIMD build picked in Chromium');
      // Chromium has relaxed SIMD: the relaxed build (fused multiply-add) runs, and the checks
      // against onnxruntime below are its; Node 20 (no relaxed SIMD) runs the plain SIMD build.
      check(r.caps.relaxedSimd === true && r.engine.relaxedSimd === true, 'relaxed-SIMD build picked in Chromium');
      check(r.caps.threads === true && r.caps.threadsReason === '', `threads available under COOP/COEP (${r.caps.threadsReason})`);
      check(r.top1 === 967, `in page: coffee → ${r.top1} (espresso = 967)`);
      check(r.diff.diff / r.diff.scale <= TOL, `in page: max |diff| vs onnxruntime ${r.diff.diff.toExponential(3)} (scale ${r.diff.scale.toPrecision(3)})`);
      check(r.workerTop1 === 967, `worker: coffee → ${r.workerTop1}`);
      check(r.workerDiff.diff / r.workerDiff.scale <= TOL, `worker: max |diff| vs onnxruntime ${r.workerDiff.diff.toExponential(3)}`);
      check(r.workerSameAsPage === 0 && r.workerSecondDiff.diff === 0, `worker gives the page's numbers, also on a 2nd run after transfer`);
      check(/does-not-exist\.onnx/.test(r.error404) && /HTTP 404/.test(r.error404) && /^true:/.test(r.error404), `404: ${r.error404}`);
      check(/backend 'webgpu'.*(no WebGPU|no adapter|gave none)/.test(r.errorWebgpu || ''), `webgpu without a WebGPU adapter rejects: ${r.errorWebgpu}`);
      check(r.progressCalls > 0 && r.progressLast[0] === r.progressLast[1], `onProgress called ${r.progressCalls} times, last ${JSON.stringify(r.progressLast)}`);
      check(r.heapReleased < r.heapLoaded, `release frees the heap: ${r.heapLoaded} → ${r.heapReleased} bytes`);
      console.log(`Chromium: create ${r.createMs.toFixed(0)} ms, run ${r.runMs.toFixed(1)} ms`);
    }
    // Threads: under COOP/COEP the threaded path is taken; without, a 1-thread fallback that says why.
    const t = await pageResult(context, url + 'web/test/page/threads.html', 'threads-isolated');
    check(t.ok, `threads page ran${t.error ? ': ' + t.error : ''}`);
    if (t.ok) {
      check(t.caps.threads === true, 'COOP/COEP: capabilities().threads');
      check(t.threads2.threads === 2 && t.threads2.worker === true, `COOP/COEP: threads 2 → engine reports ${t.threads2.threads} thread(s), worker mode ${t.threads2.worker}`);
      check(t.stats2.workers >= 1 && t.stats2.workerTasks > 0, `COOP/COEP: pool workers ${t.stats2.workers} ran ${t.stats2.workerTasks} kernel tasks`);
      check(t.diff2.diff / t.diff2.scale <= TOL, `COOP/COEP: 2 threads vs onnxruntime max |diff| ${t.diff2.diff.toExponential(3)}`);
      check(t.diff21.diff / t.diff21.scale <= 1e-5, `COOP/COEP: 2 threads vs 1 thread max |diff| ${t.diff21.diff.toExponential(3)}`);
      console.log(`Chromium efficientnet_lite0: 1 thread ${t.ms1.toFixed(1)} ms, 2 threads ${t.ms2.toFixed(1)} ms (×${(t.ms1 / t.ms2).toFixed(2)})`);
    }
    const plain = await serve(ROOT, { isolate: false });
    try {
      const f = await pageResult(context, plain.url + 'web/test/page/threads.html', 'threads-not-isolated');
      check(f.ok && f.crossOriginIsolated === false, `no COOP/COEP: threads page ran${f.error ? ': ' + f.error : ''}`);
      if (f.ok) {
        check(f.caps.threads === false && /COOP\/COEP missing/.test(f.caps.threadsReason), `no COOP/COEP: capabilities says why: ${f.caps.threadsReason}`);
        check(f.threads2.threads === 1 && /COOP\/COEP missing/.test(f.threads2.reason), `no COOP/COEP: threads 2 → 1 thread, reason: ${f.threads2.reason}`);
        check(f.diff2.diff / f.diff2.scale <= TOL, `no COOP/COEP: 1-thread fallback vs onnxruntime max |diff| ${f.diff2.diff.toExponential(3)}`);
      }
    } finally {
      plain.server.close();
    }
    const bad = await pageResult(context, url + 'web/test/page/badwasm.html', 'wasm-errors');
    check(/^true: .*no-such-dir\/uniml_bg\.wasm: HTTP 404/.test(bad.missing) && /content-type/.test(bad.missing), `missing wasm: ${bad.missing}`);
    check(/^true: .*index\.html is not WebAssembly/.test(bad.html) && /text\/html/.test(bad.html) && /HTML page/.test(bad.html), `HTML instead of wasm: ${bad.html}`);
    for (const bundler of ['esbuild', 'vite', 'webpack']) {
      const b = await pageResult(context, `${url}.cache/web-test/apps/${bundler}/index.html`, `app-${bundler}`);
      check(b.ok && b.top1 === 967 && b.workerTop1 === 967, `${bundler} app: top-1 ${b.top1}, worker ${b.workerTop1}${b.error ? ', error: ' + b.error : ''}`);
    }
    // The threaded build through the bundlers (served with COOP/COEP): a `threads: 2` session of
    // the bundled app gets the threaded path (2 threads, pool workers that ran kernel tasks, all
    // started from the bundler's emitted worker files) and the 1-thread and onnxruntime numbers.
    for (const bundler of ['vite', 'webpack', 'esbuild']) {
      const t = await pageResult(context, `${url}.cache/web-test/apps/${bundler}/index.html?threads=2`, `app-${bundler}-threads`);
      const what = t.ok
        ? `threads ${t.threaded.threads} (${t.threaded.reason || 'no reason given'}), worker mode ${t.threaded.worker}, pool workers ${t.stats.workers} ran ${t.stats.workerTasks} tasks, ` +
          `top-1 ${t.top1}, max |diff| vs onnxruntime ${t.diffRef.diff.toExponential(2)}, vs 1 thread ${t.diff1.diff.toExponential(2)}`
        : `error: ${t.error}`;
      check(
        t.ok && t.crossOriginIsolated && t.caps.threads === true && t.threaded.threads === 2 && t.stats.workers >= 1 && t.stats.workerTasks > 0 &&
          t.top1 === 967 && t.diffRef.diff / t.diffRef.scale <= TOL && t.diff1.diff / t.diff1.scale <= 1e-5,
        `${bundler} app, threads: 2 under COOP/COEP: ${what}`,
      );
    }
  }
  if (!onlyDemo && !process.env.UNIML_SKIP_WEBGPU) {
    await testWebgpu({ url, artifacts: ARTIFACTS, chromium: CHROMIUM }, check);
  }
  if (!process.env.UNIML_SKIP_DEMO) {
    const python = process.env.UNIML_PYTHON || join(ROOT, '.venv/bin/python');
    await testDemo({ context, url, root: ROOT, work: WORK, artifacts: ARTIFACTS, python, chromium: CHROMIUM, chromiumArgs: CHROMIUM_ARGS }, check);
  }
} finally {
  await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`screenshots in ${ARTIFACTS}${apps ? `; bundled apps in ${apps}` : ''}`);
if (failures.length) {
  console.error(`\n${failures.length} browser check(s) failed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log('browser tests passed');
