// Demo tab "Person segmentation": MediaPipe selfie segmentation (input [1,256,256,3] RGB in
// 0..1, NHWC; output [1,256,256,1] person probability) on the camera, or on a bundled photo
// when there is no camera. The mask is blended into the frame in place; inference in a worker.
import { Tensor } from 'uniml';

import { createSession, memoryMB, modelUrl, progressTo, showError } from './models.js';

const $ = (id) => document.getElementById(id);
const SIZE = 256;
const PHOTO = '/testdata/astronaut.png';
const PHOTO_FRAMES = 10; // a still photo runs this many frames, so frames/s means something

const view = $('seg-view');
const vctx = view.getContext('2d');
const input = Object.assign(document.createElement('canvas'), { width: SIZE, height: SIZE });
const ictx = input.getContext('2d', { willReadFrequently: true });
const overlay = Object.assign(document.createElement('canvas'), { width: SIZE, height: SIZE });
const octx = overlay.getContext('2d');

let session;
let running = null; // {stop: boolean} of the current loop
let stream = null;
const last = { input: null, mask: null, fraction: NaN, fps: NaN, ms: NaN, source: null };

/** The frame as the model input: stretched to 256x256, RGB / 255, NHWC. */
function frameTensor(source, w, h) {
  ictx.drawImage(source, 0, 0, w, h, 0, 0, SIZE, SIZE);
  const px = ictx.getImageData(0, 0, SIZE, SIZE).data;
  const x = new Float32Array(SIZE * SIZE * 3);
  for (let i = 0; i < SIZE * SIZE; i++) for (let c = 0; c < 3; c++) x[3 * i + c] = px[4 * i + c] / 255;
  return new Tensor('float32', x, [1, SIZE, SIZE, 3]);
}

/** Draws the frame, then washes out the background (alpha ~ 1 - p) over it, scaled to the view. */
function blend(source, w, h, mask) {
  view.width = 384;
  view.height = Math.round((384 * h) / w);
  vctx.drawImage(source, 0, 0, w, h, 0, 0, view.width, view.height);
  const img = octx.createImageData(SIZE, SIZE);
  let fg = 0;
  for (let i = 0; i < SIZE * SIZE; i++) {
    const p = mask[i];
    if (p > 0.5) fg++;
    img.data[4 * i] = 235;
    img.data[4 * i + 1] = 235;
    img.data[4 * i + 2] = 235;
    img.data[4 * i + 3] = Math.round((1 - p) * 215);
  }
  octx.putImageData(img, 0, 0);
  vctx.imageSmoothingEnabled = true;
  vctx.drawImage(overlay, 0, 0, view.width, view.height);
  return fg / (SIZE * SIZE);
}

async function segmentFrame(source, w, h) {
  const x = frameTensor(source, w, h);
  const t0 = performance.now();
  const { output } = await session.run({ input: x });
  last.ms = performance.now() - t0;
  last.input = x.data;
  last.mask = output.data;
  last.fraction = blend(source, w, h, output.data);
  return last.fraction;
}

/** Runs frames until stopped (or `frames` done), showing frames/s over the last second; `onFrame` after each. */
async function loop(source, size, frames = Infinity, onFrame = () => {}) {
  if (running) running.stop = true;
  const me = { stop: false };
  running = me;
  const times = [];
  for (let n = 0; n < frames && !me.stop; n++) {
    const [w, h] = size();
    await segmentFrame(source, w, h);
    const now = performance.now();
    times.push(now);
    while (times.length > 2 && now - times[0] > 1000) times.shift();
    last.fps = times.length > 1 ? ((times.length - 1) * 1000) / (now - times[0]) : 1000 / last.ms;
    $('seg-fps').textContent = `${last.fps.toFixed(1)} frames/s`;
    $('seg-info').textContent = `inference ${last.ms.toFixed(1)} ms in a worker · person ${(100 * last.fraction).toFixed(1)}% of the frame · ${last.source}`;
    onFrame();
    if (source instanceof HTMLVideoElement) await new Promise((ok) => requestAnimationFrame(ok));
  }
  if (running === me) running = null;
  return { fraction: last.fraction, fps: last.fps, ms: last.ms, source: last.source };
}

function stopCamera() {
  if (running) running.stop = true;
  if (stream) for (const t of stream.getTracks()) t.stop();
  stream = null;
}

async function usePhoto() {
  stopCamera();
  const img = new Image();
  img.src = PHOTO;
  await img.decode();
  last.source = `bundled photo ${PHOTO.split('/').pop()}`;
  return loop(img, () => [img.naturalWidth, img.naturalHeight], PHOTO_FRAMES);
}

async function hasCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !navigator.mediaDevices.enumerateDevices) return false;
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  return devices.some((d) => d.kind === 'videoinput');
}

async function useCamera() {
  stopCamera();
  stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  await video.play();
  last.source = 'camera';
  // Resolves after the first frame; the loop goes on until Stop (its errors are shown).
  return new Promise((ok, fail) => {
    loop(video, () => [video.videoWidth, video.videoHeight], Infinity, () => ok({ ...last })).catch((e) => {
      fail(e);
      showError($('seg-error'), e);
    });
  });
}

/** Starts the tab: loads the model, then the camera if there is one, else the bundled photo. */
export function startSegment() {
  const err = $('seg-error');
  const guard = (p) => p.catch((e) => Promise.reject(showError(err, e)));
  const model = createSession(modelUrl('segmentModel', '/models/selfie_segmentation.onnx'), progressTo({ bar: $('seg-bar'), text: $('seg-progress') }, 'selfie_segmentation'));
  const ready = guard(
    model.then(async (s) => {
      session = s;
      if (await hasCamera()) {
        try {
          return await useCamera();
        } catch (e) {
          $('seg-info').textContent = `camera unavailable (${e.message}); using the bundled photo`;
        }
      }
      return usePhoto();
    }),
  );
  $('seg-photo').onclick = () => session && guard(usePhoto());
  $('seg-camera').onclick = () => session && guard(useCamera());
  $('seg-stop').onclick = stopCamera;
  $('seg-camera').disabled = !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia;
  return { ready, usePhoto, last, memory: async () => ({ selfie: await memoryMB(await model) }) };
}
