// WebGPU in headless Chromium on SwiftShader (Chromium's software Vulkan; works on machines
// without a GPU): the golden models with backend 'webgpu' vs onnxruntime within 1e-3 of each
// output's scale, worker mode, queued concurrent runs, and 'auto' staying on wasm with a reason
// when the only adapter is a software one. Called by browser.mjs; UNIML_SKIP_WEBGPU=1 skips it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const GPU_TOL = 1e-3;
// case dir in .cache/web-test = model URL (served from the repository root)
export const WEBGPU_CASES = [
  'digits=/models/digits8x8_cnn.onnx',
  'efficientnet-coffee=/models/efficientnet_lite0.onnx',
  'selfie-astronaut=/models/selfie_segmentation.onnx',
  'mobilenetv2=/.cache/models/mobilenetv2.onnx',
  'minilm=/.cache/models/paraphrase-MiniLM-L3-v2.onnx',
];

/** Chromium flags that give WebGPU on SwiftShader. */
export const WEBGPU_ARGS = ['--no-sandbox', '--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function testWebgpu({ url, artifacts, chromium: executablePath }, check) {
  const profile = mkdtempSync(join(tmpdir(), 'uniml-chromium-webgpu-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: WEBGPU_ARGS });
  try {
    const page = await context.newPage();
    const lines = [];
    page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => lines.push(`pageerror: ${e.message}`));
    await page.goto(`${url}web/test/page/webgpu.html?cases=${WEBGPU_CASES.join(',')}`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 600_000 });
    const r = await page.evaluate(() => window.__result);
    await page.screenshot({ path: join(artifacts, 'webgpu.png'), fullPage: true });
    writeFileSync(join(artifacts, 'webgpu.json'), JSON.stringify(r, null, 2));
    if (!r.ok) console.log(`webgpu page console:\n  ${lines.join('\n  ')}`);
    check(r.ok, `WebGPU page ran${r.error ? ': ' + r.error : ''}`);
    if (!r.ok) return;
    check(r.caps.webgpu === true && /swiftshader/i.test(r.caps.webgpuAdapter), `WebGPU adapter: ${r.caps.webgpuAdapter}`);
    for (const spec of WEBGPU_CASES) {
      const name = spec.split('=')[0];
      const c = r.cases[name];
      check(c && c.backend === 'webgpu' && c.gpuNodes > 0, `webgpu ${name}: backend ${c && c.backend}, ${c && c.gpuNodes}/${c && c.nodes} nodes on the GPU`);
      if (!c) continue;
      for (const [out, d] of Object.entries(c.outputs)) {
        check(
          d.diff / d.scale <= GPU_TOL && JSON.stringify(d.dims) === JSON.stringify(d.refDims),
          `webgpu ${name} '${out}' ${JSON.stringify(d.dims)}: max |diff| vs onnxruntime ${d.diff.toExponential(3)} (scale ${d.scale.toPrecision(3)})`,
        );
      }
      check(c.same, `webgpu ${name}: a second run gives the same numbers`);
      console.log(`webgpu ${name}: create ${c.createMs.toFixed(0)} ms, run ${c.ms.toFixed(1)} ms`);
    }
    const w = r.worker;
    const wd = Object.values(w.outputs)[0];
    check(w.backend === 'webgpu' && wd.diff / wd.scale <= GPU_TOL, `webgpu worker mode: backend ${w.backend}, max |diff| ${wd.diff.toExponential(3)}`);
    check(w.concurrentSame === 0, 'webgpu: two concurrent runs (queued) give the same numbers');
    check(r.auto.backend === 'wasm' && /software/.test(r.auto.reason), `backend auto with only a software adapter: ${r.auto.backend} (${r.auto.reason})`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
