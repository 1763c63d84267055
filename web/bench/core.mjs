// The browser/Node benchmark body shared by node.mjs (Node) and worker.mjs (Chromium):
// uniml's npm package and onnxruntime-web on the same models, inputs and thread count, one
// after the other in the same JS thread: uniml's wasm vs the wasm EP, or (gpu) uniml's WebGPU
// backend vs onnxruntime-web's WebGPU EP. Used by `cargo xtask bench --browser`.

/** Deterministic inputs for a model from uniml's input metadata (symbolic dims from `dims`, else 1). */
function makeInputs(meta, dims) {
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  return meta.map((m) => {
    const shape = (m.dims || []).map((d) => (typeof d === 'number' ? d : d !== null && dims[d] !== undefined ? Number(dims[d]) : 1));
    const n = shape.reduce((a, b) => a * b, 1);
    let data;
    // As scripts/bench_ort.py: floats in [0, 1), integers in 0..9.
    if (m.dtype === 'float32') data = Float32Array.from({ length: n }, rand);
    else if (m.dtype === 'int64') data = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rand() * 10)));
    else if (m.dtype === 'int32') data = Int32Array.from({ length: n }, () => Math.floor(rand() * 10));
    else throw new Error(`input '${m.name}': dtype ${m.dtype} is not handled by the benchmark`);
    return { name: m.name, type: m.dtype, dims: shape, data };
  });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

async function timeRuns(run, warmup, runs) {
  for (let i = 0; i < warmup; i++) await run();
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  return { median_ms: median(times), min_ms: Math.min(...times) };
}

/** Largest |a − b| over the first output, and the largest |b| (the scale). */
function compare(a, b) {
  let diff = 0;
  let scale = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    diff = Math.max(diff, Math.abs(Number(a[i]) - Number(b[i])));
    scale = Math.max(scale, Math.abs(Number(b[i])));
  }
  return { diff, scale, lengthsMatch: a.length === b.length };
}

/**
 * Runs every model with both engines at `threads` threads. `uniml`: the package module;
 * `ort`: onnxruntime-web with `env.wasm.numThreads` already set; `load(path)` → model bytes;
 * `emit(row)` gets one result per model (errors included); `log(text)` prints progress.
 */
export async function benchAll({ uniml, ort, models, threads, runs, warmup = 3, load, emit, log, env, gpu = false }) {
  for (const m of models) {
    const row = { env, model: m.name, threads, uniml: {}, ort: {} };
    let bytes;
    try {
      bytes = await load(m.path);
    } catch (e) {
      row.error = `cannot load ${m.path}: ${e.message}`;
      emit(row);
      continue;
    }
    let inputs = null;
    let firstOut = null;
    log(`${env} · ${m.name} · ${threads} thread(s) · uniml`);
    try {
      let t = performance.now();
      const s = await uniml.Session.create(bytes.slice(), gpu ? { backend: 'webgpu' } : { threads });
      row.uniml.create_ms = performance.now() - t;
      row.uniml.threads = s.threads;
      row.uniml.threadsReason = s.threadsReason;
      row.uniml.worker = s.worker;
      row.uniml.backend = s.backend;
      if (gpu) {
        const placement = await s.placement();
        row.uniml.gpuNodes = placement.filter((p) => p.device === 'gpu').length;
        row.uniml.nodes = placement.length;
      }
      inputs = makeInputs(s.inputMetadata, m.dims || {});
      const feeds = Object.fromEntries(inputs.map((i) => [i.name, new uniml.Tensor(i.type, i.data, i.dims)]));
      const out = await s.run(feeds);
      firstOut = out[s.outputNames[0]].data;
      Object.assign(row.uniml, await timeRuns(() => s.run(feeds), warmup, runs));
      await s.release();
    } catch (e) {
      row.uniml.error = String(e && e.message ? e.message : e);
    }
    log(`${env} · ${m.name} · ${threads} thread(s) · onnxruntime-web${row.uniml.median_ms ? ` (uniml ${row.uniml.median_ms.toFixed(2)} ms)` : ''}`);
    try {
      const t = performance.now();
      const s = await ort.InferenceSession.create(bytes.slice(), { executionProviders: [gpu ? 'webgpu' : 'wasm'], graphOptimizationLevel: 'all' });
      row.ort.create_ms = performance.now() - t;
      if (!inputs) throw new Error('no inputs (uniml could not read the model metadata)');
      const feeds = Object.fromEntries(inputs.map((i) => [i.name, new ort.Tensor(i.type, i.data, i.dims)]));
      const out = await s.run(feeds);
      const o = out[s.outputNames[0]].data;
      if (firstOut) row.agreement = compare(firstOut, o);
      Object.assign(row.ort, await timeRuns(() => s.run(feeds), warmup, runs));
      await s.release();
    } catch (e) {
      row.ort.error = String(e && e.message ? e.message : e);
    }
    emit(row);
  }
}
