// Demo tab "Digits & photos": a digit drawn on a canvas (digits8x8_cnn) and photo classification
// (EfficientNet-Lite0), inference in Web Workers.
import { Tensor, memoryStats } from 'uniml';

import { createSession, memoryMB, modelUrl, progressTo, showError } from './models.js';

const $ = (id) => document.getElementById(id);
const PHOTOS = ['/testdata/coffee.png', '/testdata/chelsea.png', '/testdata/astronaut.png'];

// ---------------------------------------------------------------- digits
let digits;
const pad = $('pad');
const pctx = pad.getContext('2d');
let drawing = false;
let last = null;

function clearPad() {
  pctx.fillStyle = '#000';
  pctx.fillRect(0, 0, pad.width, pad.height);
  $('digit').textContent = '–';
}
clearPad();

function stroke(x, y) {
  pctx.strokeStyle = '#fff';
  pctx.lineWidth = 22;
  pctx.lineCap = 'round';
  pctx.beginPath();
  pctx.moveTo(last ? last[0] : x, last ? last[1] : y);
  pctx.lineTo(x, y);
  pctx.stroke();
  last = [x, y];
}

/** Draws a polyline given in 0..1 coordinates (used by the tests and for a first example). */
function drawPath(points) {
  last = null;
  for (const [x, y] of points) stroke(x * pad.width, y * pad.height);
  last = null;
}

/** The pad as the model input: 8x8 grey levels in 0..1 (light ink on dark, like sklearn's digits). */
function padTensor() {
  const small = document.createElement('canvas');
  small.width = small.height = 8;
  const sctx = small.getContext('2d');
  sctx.imageSmoothingEnabled = true;
  sctx.imageSmoothingQuality = 'high';
  sctx.drawImage(pad, 0, 0, 8, 8);
  const px = sctx.getImageData(0, 0, 8, 8).data;
  const x = new Float32Array(64);
  for (let i = 0; i < 64; i++) x[i] = px[4 * i] / 255;
  return new Tensor('float32', x, [1, 1, 8, 8]);
}

async function classifyDigit() {
  const s = await digits;
  const t0 = performance.now();
  const { logits } = await s.run({ input: padTensor() }, { transfer: true });
  const d = logits.data.indexOf(Math.max(...logits.data));
  $('digit').textContent = String(d);
  $('digit-ms').textContent = `(${(performance.now() - t0).toFixed(1)} ms)`;
  return d;
}

const pos = (e) => {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
};
pad.addEventListener('pointerdown', (e) => {
  drawing = true;
  last = null;
  stroke(...pos(e));
});
pad.addEventListener('pointermove', (e) => drawing && stroke(...pos(e)));
for (const ev of ['pointerup', 'pointerleave']) {
  pad.addEventListener(ev, () => {
    if (!drawing) return;
    drawing = false;
    last = null;
    classifyDigit().catch((e) => showError($('classify-error'), e));
  });
}
$('clear').onclick = clearPad;

// ---------------------------------------------------------------- photos
let labels;
let photoSession;
/** EfficientNet-Lite0 input: short side to 256, centre crop 224, (pixel - 127) / 128, NCHW. */
function photoTensor(img) {
  const c = $('photo');
  const ctx = c.getContext('2d');
  const s = 256 / Math.min(img.naturalWidth, img.naturalHeight);
  const w = Math.round(img.naturalWidth * s);
  const h = Math.round(img.naturalHeight * s);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(img, -Math.floor((w - 224) / 2), -Math.floor((h - 224) / 2), w, h);
  const px = ctx.getImageData(0, 0, 224, 224).data;
  const plane = 224 * 224;
  const x = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let ch = 0; ch < 3; ch++) x[ch * plane + i] = (px[4 * i + ch] - 127) / 128;
  return new Tensor('float32', x, [1, 3, 224, 224]);
}

async function classifyImage(img) {
  const [s, names] = await Promise.all([photoSession, labels]);
  const t0 = performance.now();
  const { logits } = await s.run({ input: photoTensor(img) }, { transfer: true });
  const ms = performance.now() - t0;
  const l = Array.from(logits.data);
  const m = Math.max(...l);
  const e = l.map((v) => Math.exp(v - m));
  const sum = e.reduce((a, b) => a + b, 0);
  const top = e.map((p, i) => [p / sum, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
  $('top5').innerHTML = '';
  for (const [p, i] of top) {
    const li = document.createElement('li');
    li.innerHTML = `<span class="b" style="width:${Math.max(2, p * 160)}px"></span>${names[i]} <span class="small">${(p * 100).toFixed(1)}%</span>`;
    $('top5').append(li);
  }
  $('photo-ms').textContent = `inference ${ms.toFixed(0)} ms in a worker`;
  const stats = await s.memoryStats();
  $('mem').textContent = `· worker heap ${(stats.heapBytes / 1e6).toFixed(1)} MB, wasm memory ${(stats.wasmMemoryBytes / 1e6).toFixed(1)} MB · main heap ${(memoryStats().heapBytes / 1e6).toFixed(1)} MB`;
  return top.map(([p, i]) => ({ index: i, label: names[i], p }));
}

function loadImage(src) {
  return new Promise((ok, fail) => {
    const img = new Image();
    img.onload = () => ok(img);
    img.onerror = () => fail(new Error(`cannot load ${src}`));
    img.src = src;
  });
}

async function classifyUrl(src) {
  for (const el of $('photos').children) el.classList.toggle('active', el.dataset.src === src);
  return classifyImage(await loadImage(src));
}

/** Starts the tab: loads both models, classifies the first photo and a drawn "1". */
export function startClassify() {
  digits = createSession(modelUrl('digitsModel', '/models/digits8x8_cnn.onnx'));
  labels = fetch('/models/imagenet_labels.txt').then((r) => r.text()).then((t) => t.split('\n'));
  photoSession = createSession(modelUrl('photoModel', '/models/efficientnet_lite0.onnx'), progressTo({ bar: $('bar'), text: $('progress-text') }, 'EfficientNet-Lite0'));
  const memory = async () => ({ digits: await memoryMB(await digits), efficientnet: await memoryMB(await photoSession) });
  const ready = classifyUrl(PHOTOS[0]).then((top) => {
    drawPath([[0.5, 0.15], [0.5, 0.85]]); // a "1"
    return classifyDigit().then((digit) => ({ top, digit }));
  });
  ready.catch((e) => showError($('classify-error'), e));
  return { ready, classifyUrl, drawPath, classifyDigit, clearPad, memory };
}

for (const src of PHOTOS) {
  const img = document.createElement('img');
  img.src = src;
  img.alt = src.split('/').pop();
  img.dataset.src = src;
  img.onclick = () => classifyUrl(src).catch((e) => showError($('classify-error'), e));
  $('photos').append(img);
}
$('file').onchange = async (e) => {
  const f = e.target.files[0];
  if (f) classifyImage(await loadImage(URL.createObjectURL(f))).catch((e) => showError($('classify-error'), e));
};

