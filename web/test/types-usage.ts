// Typed usage of the package, checked by `tsc --strict` (cargo xtask web-test).
import { Session, Tensor, capabilities, memoryStats, init, type ValueMetadata, type SessionMemoryStats } from 'uniml';

export async function classify(url: string, pixels: Float32Array): Promise<number> {
  const caps = await capabilities();
  const threads: number = caps.threads ? Math.min(caps.cores, 4) : 1;
  const session = await Session.create(url, {
    backend: 'auto',
    threads,
    worker: true,
    onProgress: (loaded: number, total: number | undefined) => void [loaded, total],
  });
  const meta: readonly ValueMetadata[] = session.inputMetadata;
  const first = meta[0];
  const dims = first && first.dims ? first.dims.map((d) => (typeof d === 'number' ? d : 1)) : [1, 3, 224, 224];
  const x = new Tensor('float32', pixels, dims);
  const ids = new Tensor('int64', [1, 2, 3]);
  const big: BigInt64Array = ids.data;
  void big;
  const out = await session.run({ [session.inputNames[0] ?? 'input']: x }, { transfer: true });
  const logits = out[session.outputNames[0] ?? 'output'];
  let best = -1;
  if (logits && logits.type === 'float32') {
    const data = logits.data as Float32Array;
    best = data.indexOf(Math.max(...data));
  }
  const t: { threads: number; workers: number; workerTasks: number } = await session.threadStats();
  const why: string = session.threadsReason;
  void [t, why];
  const stats: SessionMemoryStats = await session.memoryStats();
  const heap: number = memoryStats().heapBytes + stats.poolPeakBytes;
  void heap;
  await session.release();
  await init({ threads: 2 });
  return best;
}

// uniml/text: tokenizer (own wasm), mean pooling and cosine for sentence embeddings.
import { Tokenizer, cosine, meanPool, initText, type EncodedBatch } from 'uniml/text';

export async function similarity(model: string, tokenizerUrl: string, a: string, b: string): Promise<number> {
  await initText();
  const tok: Tokenizer = await Tokenizer.create(tokenizerUrl, { maxLength: 64 });
  const enc: EncodedBatch = tok.encode([a, b]);
  const session = await Session.create(model, { worker: true });
  const out = await session.run({ input_ids: enc.inputIds, attention_mask: enc.attentionMask });
  const hidden = out[session.outputNames[0] ?? 'output'];
  let score = 0;
  if (hidden && hidden.type === 'float32') {
    const [ea, eb] = meanPool(hidden as Tensor<'float32'>, enc.attentionMask);
    if (ea && eb) score = cosine(ea, eb);
  }
  const tokens: string[] = tok.tokens(a);
  void tokens;
  tok.release();
  await session.release();
  return score;
}
