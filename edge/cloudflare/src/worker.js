// uniml on Cloudflare Workers: a module Worker that runs the engine as a pre-compiled
// WebAssembly module (crates/uniml-wasi-http built for wasm32-unknown-unknown, C ABI in
// src/worker.rs) and answers the same requests as the wasi:http component:
//   POST /classify (PNG/JPEG bytes) -> top-5 JSON, POST /v2/models/efficientnet_lite0/infer (OIP v2),
//   GET /v2/models/efficientnet_lite0, GET /v2/health/ready.
// The 18.5 MB model is not in the script (Workers cap scripts at 3 MB gzip on the free plan,
// 10 MB paid): it comes from the MODELS binding — Workers Static Assets (wrangler.toml) in
// production, a disk service under workerd (workerd.capnp). Loaded once per isolate.
import wasm from './uniml.wasm';

const MODEL_PATH = '/efficientnet_lite0.onnx';
const MAX_BODY = 16 << 20; // as api::MAX_BODY in the engine module

/** Reads and discards a body stream, at most `limit` bytes. */
async function drain(stream, limit) {
  if (!stream) return;
  const reader = stream.getReader();
  let seen = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    seen += value.byteLength;
    if (seen > limit) {
      await reader.cancel();
      return;
    }
  }
}
let engine; // { exports, loadMs }
let loading;

function put(exports, bytes) {
  if (bytes.length === 0) return 0;
  const ptr = exports.uniml_alloc(bytes.length);
  if (ptr === 0) throw new Error(`out of wasm memory for ${bytes.length} bytes`);
  new Uint8Array(exports.memory.buffer, ptr, bytes.length).set(bytes);
  return ptr;
}

function response(exports) {
  const ptr = exports.uniml_response_ptr();
  const len = exports.uniml_response_len();
  return new Uint8Array(exports.memory.buffer, ptr, len).slice();
}

async function load(env) {
  const t0 = performance.now();
  const instance = await WebAssembly.instantiate(wasm, { env: { uniml_now_ms: () => performance.now() } });
  const { exports } = instance;
  const r = await env.MODELS.fetch(new Request(`https://models${MODEL_PATH}`));
  if (!r.ok) throw new Error(`model ${MODEL_PATH}: HTTP ${r.status} from the MODELS binding`);
  const model = new Uint8Array(await r.arrayBuffer());
  const status = exports.uniml_init(put(exports, model), model.length);
  const body = new TextDecoder().decode(response(exports));
  if (status !== 200) throw new Error(`loading the model failed (${status}): ${body}`);
  return { exports, loadMs: performance.now() - t0, info: JSON.parse(body) };
}

const json = (status, value, headers = {}) =>
  new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json', ...headers } });

export default {
  async fetch(request, env) {
    try {
      if (!engine) {
        loading ??= load(env).catch((e) => { loading = undefined; throw e; });
        engine = await loading;
      }
      const { exports } = engine;
      const url = new URL(request.url);
      const enc = new TextEncoder();
      const method = enc.encode(request.method);
      const path = enc.encode(url.pathname);
      if (Number(request.headers.get('content-length') ?? 0) > MAX_BODY) {
        // Read and drop the body (bounded) before answering: a reply sent while
        // the client is still uploading resets the connection, and the client
        // sees a network error instead of the 413.
        await drain(request.body, 4 * MAX_BODY);
        return json(413, { error: `request body over ${MAX_BODY} bytes`, kind: 'too-large' });
      }
      const body = new Uint8Array(await request.arrayBuffer());
      if (body.length > MAX_BODY) return json(413, { error: `request body over ${MAX_BODY} bytes`, kind: 'too-large' });
      const status = exports.uniml_handle(put(exports, method), method.length, put(exports, path), path.length, put(exports, body), body.length);
      return new Response(response(exports), {
        status,
        headers: {
          'content-type': 'application/json',
          'x-uniml-wasm-memory-bytes': String(exports.memory.buffer.byteLength),
          'x-uniml-load-ms': engine.loadMs.toFixed(1),
        },
      });
    } catch (e) {
      // A trap (which the engine avoids) or a failed model load: report it, and start over next time.
      engine = undefined;
      return json(500, { error: String(e?.message ?? e), kind: 'other' });
    }
  },
};
