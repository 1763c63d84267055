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
