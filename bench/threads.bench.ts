/**
 * SharedMutex and SharedEvent against raw Atomics: the uncontended pair on one thread
 * against a bare compareExchange pair, and two worker threads handing a turn back and
 * forth (events) or fighting over the lock, against the same patterns written with bare
 * Atomics.wait/notify. Ratios read "cost relative to bare Atomics" (lower is better).
 */
import { SharedMutex } from '../src/index.ts';
import { nextMessage, tsWorker } from '../test/support/workers.ts';
import { fmtNs, fmtRatio, measure, table, type Result } from './harness.ts';

/** Where each benchmark's cells sit in the one shared buffer. */
export const CELLS = { bareA: 0, bareB: 1, eventA: 2, eventB: 3, bareLock: 4, lock: 5, counter: 6, size: 7 } as const;

export async function benchThreads(): Promise<void> {
  const lock = SharedMutex.create();
  const raw = new Int32Array(new SharedArrayBuffer(4));
  const uncontended = await measure(
    [
      {
        name: 'bare compareExchange pair',
        run: (n) => {
          for (let i = 0; i < n; i++) {
            Atomics.compareExchange(raw, 0, 0, 1);
            Atomics.compareExchange(raw, 0, 1, 0);
          }
        },
      },
      {
        name: 'SharedMutex tryAcquire/release',
        run: (n) => {
          for (let i = 0; i < n; i++) {
            lock.tryAcquire();
            lock.release();
          }
        },
      },
      {
        name: 'SharedMutex await acquire()/release (main thread)',
        run: async (n) => {
          for (let i = 0; i < n; i++) (await lock.acquire()).release();
        },
      },
    ],
    { n: 1_000_000 },
  );
  const vsFirst = (results: Result[]) =>
    results.map((r) => ({ case: r.name, 'per op': fmtNs(r.nsPerOp), 'cost vs bare': fmtRatio(r.nsPerOp / (results[0] as Result).nsPerOp) }));
  table('SharedMutex, uncontended on one thread (1,000,000 ops × 7 rounds, median)', vsFirst(uncontended));
  console.log('target: tryAcquire/release ≤ 3.00× the bare pair');

  const buffer = new SharedArrayBuffer(CELLS.size * Int32Array.BYTES_PER_ELEMENT);
  const entry = new URL('./threads.worker.ts', import.meta.url);
  const [ping, pong] = [tsWorker(entry, { buffer, CELLS }).start(), tsWorker(entry, { buffer, CELLS }).start()];
  const both = async (mode: string, n: number): Promise<void> => {
    const done = Promise.all([nextMessage(ping, 60_000), nextMessage(pong, 60_000)]);
    pong.worker?.postMessage({ mode, role: 'pong', n });
    ping.worker?.postMessage({ mode, role: 'ping', n });
    await done;
  };
  try {
    const handOff = await measure(
      [
        { name: 'bare Atomics.wait/notify ping-pong', run: (n) => both('bare', n) },
        { name: 'SharedEvent set/waitSync/clear ping-pong', run: (n) => both('event', n) },
      ],
      { n: 20_000, rounds: 5 },
    );
    table('Hand-off between two worker threads (20,000 round trips × 5 rounds, median per round trip)', vsFirst(handOff));
    console.log('target: ≤ 2.00× the bare ping-pong');

    const contended = await measure(
      [
        { name: 'bare CAS + Atomics.wait lock, 2 threads', run: (n) => both('bare-lock', n) },
        { name: 'SharedMutex acquireSync/release, 2 threads', run: (n) => both('lock', n) },
      ],
      { n: 200_000, rounds: 5 },
    );
    table('Lock fought over by two worker threads (200,000 grants each × 5 rounds, median per grant pair)', vsFirst(contended));
  } finally {
    for (const worker of [ping, pong]) worker.worker?.postMessage('exit');
    await Promise.all([ping.join(5_000), pong.join(5_000)]);
  }
}
