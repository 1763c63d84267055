// Driven by web/bench/browser.mjs: ?spec=URL&threads=N&runs=K; results in window.__bench.
const q = new URLSearchParams(location.search);
const logEl = document.getElementById('log');
const rows = [];
window.__bench = { rows, done: false, error: null, crossOriginIsolated: globalThis.crossOriginIsolated === true };
const models = await (await fetch(q.get('spec'))).json();
const w = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module' });
w.onmessage = ({ data }) => {
  if (data.log) {
    console.log(data.log);
    logEl.textContent += data.log + '\n';
  }
  if (data.row) rows.push(data.row);
  if (data.error) window.__bench.error = data.error;
  if (data.done || data.error) window.__bench.done = true;
};
w.onerror = (e) => {
  window.__bench.error = `worker failed: ${e.message}`;
  window.__bench.done = true;
};
w.postMessage({ models, threads: Number(q.get('threads')), runs: Number(q.get('runs') || 20), warmup: Number(q.get('warmup') || 3), gpu: q.get('gpu') === '1' });
