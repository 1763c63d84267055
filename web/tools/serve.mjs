// A small static file server with the headers uniml pages want: cross-origin isolation
// (COOP/COEP, so SharedArrayBuffer is available), `application/wasm`, and precompressed
// `.br`/`.gz` siblings when the client accepts them. Used by the tests and `cargo xtask demo`.
//
//   node web/tools/serve.mjs ROOT [--port N] [--host H]      (prints the URL)
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.npy': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.ico': 'image/x-icon',
};

/** Starts serving `root`; resolves to {server, url}. `isolate: false` leaves out COOP/COEP (tests of the fallback). */
export function serve(root, { port = 0, host = '127.0.0.1', log = false, isolate = true } = {}) {
  root = resolve(root);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    let file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-cache',
    };
    if (!isolate) {
      delete headers['Cross-Origin-Opener-Policy'];
      delete headers['Cross-Origin-Embedder-Policy'];
    }
    if (!existsSync(file)) {
      if (log) console.error(`404 ${path}`);
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: ${path}\n`);
      return;
    }
    headers['Content-Type'] = MIME[extname(file)] || 'application/octet-stream';
    if (file.endsWith(`${sep}sw.js`)) headers['Service-Worker-Allowed'] = '/';
    const accept = String(req.headers['accept-encoding'] || '');
    let body = file;
    for (const [enc, ext] of [['br', '.br'], ['gzip', '.gz']]) {
      if (extname(file) === '.wasm' && accept.includes(enc) && existsSync(file + ext)) {
        body = file + ext;
        headers['Content-Encoding'] = enc;
        headers['Vary'] = 'Accept-Encoding';
        break;
      }
    }
    headers['Content-Length'] = statSync(body).size;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') res.end();
    else createReadStream(body).pipe(res);
  });
  return new Promise((ok) => {
    server.listen(port, host, () => ok({ server, url: `http://${host}:${server.address().port}/` }));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : dflt;
  };
  const port = Number(opt('--port', 8080));
  const host = opt('--host', '127.0.0.1');
  const root = args[0] || '.';
  const { url } = await serve(root, { port, host, log: true });
  console.log(`serving ${resolve(root)} at ${url} (COOP/COEP on; Ctrl-C to stop)`);
}
