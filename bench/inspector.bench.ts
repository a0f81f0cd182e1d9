/**
 * What the inspector costs: executor cycles (schedule → run → done → wake-up) with no
 * inspector, against the same with an inspector running and a viewer connected over its
 * WebSocket (a `ws` client in its own process, as a browser is, reading every frame).
 * Target ≥ 0.8×.
 * Two loads:
 * - busy: cycles back to back, never yielding to the event loop (what a tight loop of
 *   awaits does). Steps pile up between batches and a viewer gets the latest of each
 *   actor per batch, so this is capture's own cost per step;
 * - yielding: each cycle then a turn of the event loop, so every step of every cycle is
 *   written and sent to the viewer (the bytes sent are printed).
 * Rounds alternate with and without the inspector so drift in machine load hits both
 * alike. Measured on the compiled package (`dist/`, what users run) and on the sources
 * under tsx. Then the ring buffer's memory at its bound (10,000 records of executor traffic).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import * as sourceApi from '../src/index.ts';
import * as sourceInspector from '../src/inspect/index.ts';
import { inspection } from '../src/inspect/capture.ts';
import { fmtNs, fmtRatio, median, table } from './harness.ts';

type Api = Pick<typeof sourceApi, 'AsyncExecutor' | 'WakeupBus' | 'setLogger'>;
type InspectorApi = Pick<typeof sourceInspector, 'startInspector'>;
type Executor = InstanceType<Api['AsyncExecutor']>;

const task = async (): Promise<boolean> => true;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const ROUNDS = 7;

async function busy(executor: Executor, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await executor.run(task);
}

async function yielding(executor: Executor, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await executor.run(task);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The viewer's next message that has `key`. */
async function reply(viewer: ChildProcess, key: string): Promise<Record<string, unknown>> {
  for (;;) {
    const [message] = (await once(viewer, 'message')) as [Record<string, unknown>];
    if (key in message) return message;
  }
}

async function timed(run: (executor: Executor, n: number) => Promise<void>, executor: Executor, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  await run(executor, n);
  return Number(process.hrtime.bigint() - start) / n;
}

async function overhead(api: Api, inspectorApi: InspectorApi, label: string, load: 'busy' | 'yielding', n: number): Promise<Array<Record<string, string>>> {
  api.setLogger(quiet);
  const run = load === 'busy' ? busy : yielding;
  const plain = new api.AsyncExecutor({ wakeup: new api.WakeupBus(), name: 'plain' });
  const watched = new api.AsyncExecutor({ wakeup: new api.WakeupBus(), name: 'watched' });
  await run(plain, n >> 2);
  const without: number[] = [];
  const withInspector: number[] = [];
  let frames = 0;
  let bytes = 0;
  for (let round = 0; round < ROUNDS; round++) {
    without.push(await timed(run, plain, n));
    const inspector = await inspectorApi.startInspector();
    const viewer = fork(new URL('./inspector.viewer.ts', import.meta.url), [inspector.url], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await reply(viewer, 'open');
    if (round === 0) await run(watched, n >> 2);
    withInspector.push(await timed(run, watched, n));
    // Let the last batches reach the viewer.
    await new Promise((resolve) => setTimeout(resolve, 200));
    viewer.send({ count: true });
    const counted = (await reply(viewer, 'frames')) as { frames: number; bytes: number };
    frames += counted.frames;
    bytes += counted.bytes;
    await once(viewer, 'exit');
    await inspector.close();
  }
  api.setLogger(null);
  const none = median(without);
  const watchedNs = median(withInspector);
  return [
    { case: `${label}, ${load}: executor cycle, no inspector`, 'per op': fmtNs(none), 'throughput vs none': '1.00×', 'sent to the viewer': '' },
    {
      case: `${label}, ${load}: executor cycle, inspector + viewer`,
      'per op': fmtNs(watchedNs),
      'throughput vs none': fmtRatio(none / watchedNs),
      'sent to the viewer': `${frames} frames, ${(bytes / 1024 / 1024).toFixed(1)} MB`,
    },
  ];
}

export async function benchInspector(): Promise<void> {
  const rows: Array<Record<string, string>> = [];
  const dist = new URL('../dist/src/index.js', import.meta.url);
  if (existsSync(dist)) {
    const api = (await import(dist.href)) as Api;
    const inspectorApi = (await import(new URL('../dist/src/inspect/index.js', import.meta.url).href)) as InspectorApi;
    rows.push(...(await overhead(api, inspectorApi, 'dist', 'busy', 5_000)));
    rows.push(...(await overhead(api, inspectorApi, 'dist', 'yielding', 2_000)));
  }
  rows.push(...(await overhead(sourceApi, sourceInspector, 'src (tsx)', 'busy', 5_000)));
  table(`Inspector overhead (executor cycles, ${ROUNDS} rounds alternating with and without, median)`, rows);
  console.log('target: ≥ 0.80× with the inspector attached and a viewer connected (dist: what users run)');

  // The ring of the sources' stream, filled by the run above.
  const records = inspection.records();
  const average = records.reduce((sum, r) => sum + r.json.length, 0) / Math.max(1, records.length);
  table('Inspector ring buffer at its bound', [
    {
      records: `${records.length.toLocaleString()} of ${inspection.capacity.toLocaleString()}`,
      'average record': `${Math.round(average)} chars`,
      'ring memory (strings, UTF-16)': `${(inspection.ringBytes / 1024 / 1024).toFixed(1)} MB`,
    },
  ]);
}
