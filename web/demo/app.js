// The uniml demo PWA: tabs "Digits & photos", "Person segmentation" and "Sentence similarity",
// all inference in Web Workers (Session.create(..., {worker: true})). Models are cached
// (models.js); a service worker (sw.js) caches the app and the engine for offline use.
// A tab starts (downloads its models) the first time it is shown.
import { capabilities } from 'uniml';

import { startClassify } from './classify.js';
import { startSegment } from './segment.js';
import { startSimilarity } from './similarity.js';

const $ = (id) => document.getElementById(id);

if ('serviceWorker' in navigator) {
  // Scope '/': the engine's worker (/dist/web/worker.js) and the models live outside /web/demo/,
  // and a worker is only served offline when it is inside the scope (the server sends
  // `Service-Worker-Allowed: /` for sw.js).
  navigator.serviceWorker.register('./sw.js', { scope: '/' }).then(
    () => ($('sw').textContent = 'Offline ready (service worker).'),
    (e) => ($('sw').textContent = `No offline cache: ${e.message}`),
  );
}

capabilities().then((c) => {
  $('caps').textContent = `SIMD ${c.simd ? 'yes' : 'no'} · threads: ${c.threadsReason} · WebGPU ${c.webgpu ? 'yes' : 'no'}`;
});

const TABS = { classify: startClassify, segment: startSegment, similarity: startSimilarity };
// Each started tab's API ({ready, ...}); exposed for the tests.
const started = {};
window.__demo = started;

function show() {
  const name = TABS[location.hash.slice(1)] ? location.hash.slice(1) : 'classify';
  for (const t of Object.keys(TABS)) $(`tab-${t}`).hidden = t !== name;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === name);
  if (!started[name]) started[name] = TABS[name]();
  if (name === 'classify') window.__demoReady = started.classify.ready;
}
window.addEventListener('hashchange', show);
show();
