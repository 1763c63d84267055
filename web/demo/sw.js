// Service worker of the uniml demo: caches the app, the engine and tokenizer wasm and the small
// data files on install, then answers from the caches first, so the demo works offline.
// Models (.onnx) are not stored here: the page keeps them in its own cache (models.js,
// 'uniml-demo-models-v1') after a streamed download with progress; caches.match below finds
// them there too.
const CACHE = 'uniml-demo-v4';
const ASSETS = [
  '/web/demo/', '/web/demo/index.html', '/web/demo/app.js', '/web/demo/models.js', '/web/demo/classify.js',
  '/web/demo/segment.js', '/web/demo/similarity.js', '/web/demo/style.css', '/web/demo/manifest.webmanifest', '/web/demo/icon.svg',
  '/dist/web/index.js', '/dist/web/engine.js', '/dist/web/tensor.js', '/dist/web/worker.js', '/dist/web/uniml.js',
  '/dist/web/uniml_bg.wasm', '/dist/web/uniml_relaxed_bg.wasm', '/dist/web/uniml_scalar_bg.wasm',
  '/dist/web/threads.js', '/dist/web/thread-worker.js', '/dist/web/uniml_threads.js', '/dist/web/text.js', '/dist/web/uniml_text.js', '/dist/web/uniml_text_bg.wasm',
  '/models/imagenet_labels.txt', '/models/bert-uncased-tokenizer.json',
  '/testdata/coffee.png', '/testdata/chelsea.png', '/testdata/astronaut.png',
];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  // Old app caches go; the page's model cache stays.
  const keep = (k) => k === CACHE || k.startsWith('uniml-demo-models-');
  e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => !keep(k)).map((k) => caches.delete(k)))).then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  if (e.request.method !== 'GET') return;
  const url = new URL(e.request.url);
  e.respondWith(
    caches.match(e.request, { ignoreSearch: true }).then((hit) => hit || fetch(e.request).then((resp) => {
      if (resp.ok && url.origin === self.location.origin && !url.pathname.endsWith('.onnx')) {
        const copy = resp.clone();
        caches.open(CACHE).then((c) => c.put(e.request, copy));
      }
      return resp;
    })),
  );
});
