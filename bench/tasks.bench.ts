/**
 * Task groups and services: 100,000 trivial tasks created and settled through a
 * TaskGroup against Promise.allSettled over the same functions, the heap each pending
 * task costs, and a service's start/stop cycle.
 */
import { ServiceBase, TaskGroup } from '../src/index.ts';
import { fmtNs, fmtRatio, measure, table } from './harness.ts';

const N = 100_000;
const trivial = async (): Promise<number> => 1;

class Idle extends ServiceBase {
  protected main(signal: AbortSignal): Promise<void> {
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  }
}

/** Heap per item once `n` items are made and their bodies have started (one event-loop turn later). */
async function heapPerItem(make: () => unknown, cleanup: (items: unknown[]) => Promise<void>, n: number): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const items: unknown[] = [];
  for (let i = 0; i < n; i++) items.push(make());
  await new Promise((resolve) => setImmediate(resolve));
  gc?.();
  const perItem = (process.memoryUsage().heapUsed - before) / n;
  await cleanup(items);
  return perItem;
}

export async function benchTasks(): Promise<void> {
  const settle = await measure(
    [
      { name: 'Promise.allSettled over the functions', run: async (n) => void (await Promise.allSettled(Array.from({ length: n }, () => trivial()))) },
      {
        name: 'TaskGroup createTask × n, then wait()',
        run: async (n) => {
          const group = new TaskGroup();
          for (let i = 0; i < n; i++) group.createTask(trivial);
          await group.wait();
        },
      },
    ],
    { n: N, rounds: 5 },
  );
  const base = settle[0]?.nsPerOp ?? 1;
  table(
    `${N.toLocaleString()} trivial tasks created and settled (× 5 rounds, median per task)`,
    settle.map((r) => ({ case: r.name, 'per task': fmtNs(r.nsPerOp), 'cost vs allSettled': fmtRatio(r.nsPerOp / base) })),
  );
  console.log('target: ≤ 10.00× Promise.allSettled');

  const n = 50_000;
  const never = (signal: AbortSignal): Promise<void> =>
    new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  const rawBytes = await heapPerItem(
    () => {
      const controller = new AbortController();
      return { controller, pending: never(controller.signal) };
    },
    async (items) => {
      for (const item of items) (item as { controller: AbortController }).controller.abort();
      await Promise.allSettled(items.map((item) => (item as { pending: Promise<void> }).pending));
    },
    n,
  );
  const group = new TaskGroup();
  const taskBytes = await heapPerItem(
    () => group.createTask(never),
    () => group.stop(),
    n,
  );
  table(`Heap per pending task (${n.toLocaleString()} pending, after gc)`, [
    { case: 'AbortController + pending promise (raw)', 'per task': `${Math.round(rawBytes)} B` },
    { case: 'TaskGroup task (actor created on demand)', 'per task': `${Math.round(taskBytes)} B` },
  ]);
  console.log('target: < 2 KB per pending task');

  const cycles = await measure(
    [
      {
        name: 'ServiceBase start() + stop()',
        run: async (count) => {
          for (let i = 0; i < count; i++) {
            const service = new Idle().start();
            await null;
            await service.stop();
          }
        },
      },
      {
        name: 'raw AbortController + promise start/abort',
        run: async (count) => {
          for (let i = 0; i < count; i++) {
            const controller = new AbortController();
            const pending = never(controller.signal).catch(() => undefined);
            await null;
            controller.abort();
            await pending;
          }
        },
      },
    ],
    { n: 2_000, rounds: 5 },
  );
  table(
    'Service start/stop cycle (2,000 cycles × 5 rounds, median)',
    cycles.map((r) => ({ case: r.name, 'per cycle': fmtNs(r.nsPerOp) })),
  );
}
