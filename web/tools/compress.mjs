// Writes FILE.gz (gzip -9) and FILE.br (brotli q11) beside each FILE and prints one JSON
// line per file: {"file", "raw", "gzip", "brotli"} (bytes). Used by `cargo xtask web`.
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

for (const file of process.argv.slice(2)) {
  const raw = readFileSync(file);
  const gz = gzipSync(raw, { level: 9 });
  const br = brotliCompressSync(raw, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_LGWIN]: 24,
      [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
    },
  });
  writeFileSync(`${file}.gz`, gz);
  writeFileSync(`${file}.br`, br);
  console.log(JSON.stringify({ file: basename(file), raw: raw.length, gzip: gz.length, brotli: br.length }));
}
