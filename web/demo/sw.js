// Service worker of the uniml demo: caches the app, the engine (wasm) and the models on
// install, then answers from the cache first, so the demo works offline.
const CACHE = 'uniml-demo-v1';
const ASSETS = [
  '/web/demo/', '/web/demo/index.html', '/web/demo/app.js', '/web/demo/style.css', '/web/demo/manifest.webmanifest', '/web/demo/icon.svg',
  '/dist/web/index.js', '/dist/web/engine.js', '/dist/web/tensor.js', '/dist/web/worker.js', '/dist/web/uniml.js',
  '/dist/web/uniml_bg.wasm', '/dist/web/uniml_scalar_bg.wasm',
  '/models/digits8x8_cnn.onnx', '/models/efficientnet_lite0.onnx', '/models/imagenet_labels.txt',
  '/testdata/coffee.png', '/testdata/chelsea.png', '/testdata/astronaut.png',
];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (e) => {
  if (e.request.method !== 'GET') return;
  e.respondWith(
    caches.match(e.request, { ignoreSearch: true }).then((hit) => hit || fetch(e.request).then((resp) => {
      if (resp.ok && new URL(e.request.url).origin === self.location.origin) {
        const copy = resp.clone();
        caches.open(CACHE).then((c) => c.put(e.request, copy));
      }
      return resp;
    })),
  );
});
