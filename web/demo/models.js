// Model loading for the demo: streamed download with a progress bar (Content-Length), kept in
// the Cache API so later visits (and offline ones) start at once, then a worker Session.
import { Session } from 'uniml';

export const MODEL_CACHE = 'uniml-demo-models-v1';
const params = new URLSearchParams(location.search);

/** A model URL, overridable by a query parameter (`?segmentModel=...`: used by the tests). */
export function modelUrl(param, dflt) {
  return params.get(param) || dflt;
}

/** Progress bar element pair `{bar, text}` → onProgress(loaded, total, fromCache). */
export function progressTo({ bar, text }, name) {
  return (loaded, total, cached) => {
    bar.style.width = `${total ? ((100 * loaded) / total).toFixed(1) : 0}%`;
    const mb = (n) => (n / 1e6).toFixed(1);
    text.textContent = `${name}: ${mb(loaded)}${total ? ` / ${mb(total)}` : ''} MB${cached ? ' (cached)' : ''}`;
  };
}

async function readStream(resp, onProgress, cached) {
  const total = Number(resp.headers.get('content-length')) || undefined;
  if (!resp.body) {
    const bytes = new Uint8Array(await resp.arrayBuffer());
    onProgress(bytes.length, bytes.length, cached);
    return bytes;
  }
  const reader = resp.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(loaded, total, cached);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  onProgress(loaded, loaded, cached);
  return bytes;
}

/** The bytes of a model: from the model cache, else downloaded (streamed) and cached. */
export async function loadModel(url, onProgress = () => {}) {
  const href = new URL(url, location.href).href;
  const cache = globalThis.caches ? await caches.open(MODEL_CACHE) : null;
  const hit = cache && (await cache.match(href));
  if (hit) return readStream(hit, onProgress, true);
  let resp;
  try {
    resp = await fetch(href);
  } catch (e) {
    throw new Error(`cannot download the model ${href}: ${e.message}`, { cause: e });
  }
  if (!resp.ok) throw new Error(`cannot download the model ${href}: HTTP ${resp.status} ${resp.statusText}`);
  const bytes = await readStream(resp, onProgress, false);
  if (cache) {
    const headers = { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) };
    await cache.put(href, new Response(bytes, { headers }));
  }
  return bytes;
}

/** A worker Session for a model URL (downloaded/cached as above); a model the engine rejects is evicted from the cache. */
export async function createSession(url, onProgress) {
  const bytes = await loadModel(url, onProgress);
  try {
    return await Session.create(bytes, { worker: true });
  } catch (e) {
    if (globalThis.caches) await (await caches.open(MODEL_CACHE)).delete(new URL(url, location.href).href);
    throw e;
  }
}

/** Shows an error in a tab's error line (and returns it, for promise chains). */
export function showError(el, e) {
  el.textContent = `Error: ${e && e.message ? e.message : String(e)}`;
  el.hidden = false;
  return e;
}

/** Peak memory figures of a session, in MB, for the footers and the tests. */
export async function memoryMB(session) {
  const s = await session.memoryStats();
  const mb = (n) => +(n / 1e6).toFixed(1);
  return { heapPeak: mb(s.heapPeakBytes), wasmMemory: mb(s.wasmMemoryBytes), poolPeak: mb(s.poolPeakBytes), weights: mb(s.weightBytes) };
}
