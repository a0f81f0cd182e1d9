/**
 * What the inspector costs: executor cycles (schedule → run → done → wake-up) with no
 * inspector, against the same with an inspector running and a viewer connected over its
 * WebSocket (a `ws` client reading every frame, as the page does). Target ≥ 0.5×.
 * Measured on the compiled package (`dist/`, what users run) and on the sources under
 * tsx. Then the ring buffer's memory at its bound (10,000 records of executor traffic).
 */
import { existsSync } from 'node:fs';
import WebSocket from 'ws';
import * as sourceApi from '../src/index.ts';
import * as sourceInspector from '../src/inspect/index.ts';
import { inspection } from '../src/inspect/capture.ts';
import { fmtNs, fmtRatio, measure, table, type Result } from './harness.ts';

type Api = Pick<typeof sourceApi, 'AsyncExecutor' | 'WakeupBus' | 'setLogger'>;
type InspectorApi = Pick<typeof sourceInspector, 'startInspector'>;

const task = async (): Promise<boolean> => true;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function overhead(api: Api, inspectorApi: InspectorApi, label: string): Promise<Array<Record<string, string>>> {
  api.setLogger(quiet);
  const plain = new api.AsyncExecutor({ wakeup: new api.WakeupBus(), name: 'plain' });
  const [without] = (await measure([{ name: `${label}: executor cycle, no inspector`, run: (n) => cycles(plain, n) }], { n: 5_000 })) as [Result];
  const inspector = await inspectorApi.startInspector();
  const url = new URL(inspector.url);
  let frames = 0;
  const viewer = new WebSocket(`ws://${url.host}/ws?token=${url.searchParams.get('token')}`, { headers: { Origin: url.origin } });
  viewer.on('message', () => frames++);
  await new Promise((resolve) => viewer.once('open', resolve));
  const watched = new api.AsyncExecutor({ wakeup: new api.WakeupBus(), name: 'watched' });
  const [withInspector] = (await measure([{ name: `${label}: executor cycle, inspector + viewer`, run: (n) => cycles(watched, n) }], { n: 5_000 })) as [Result];
  // Let the last batches reach the viewer.
  await new Promise((resolve) => setTimeout(resolve, 200));
  viewer.close();
  await inspector.close();
  api.setLogger(null);
  return [
    { case: without.name, 'per op': fmtNs(without.nsPerOp), 'throughput vs none': '1.00×' },
    { case: withInspector.name, 'per op': fmtNs(withInspector.nsPerOp), 'throughput vs none': `${fmtRatio(without.nsPerOp / withInspector.nsPerOp)} (${frames} frames)` },
  ];
}

export async function benchInspector(): Promise<void> {
  const rows: Array<Record<string, string>> = [];
  const dist = new URL('../dist/src/index.js', import.meta.url);
  if (existsSync(dist)) {
    const api = (await import(dist.href)) as Api;
    const inspectorApi = (await import(new URL('../dist/src/inspect/index.js', import.meta.url).href)) as InspectorApi;
    rows.push(...(await overhead(api, inspectorApi, 'dist')));
  }
  rows.push(...(await overhead(sourceApi, sourceInspector, 'src (tsx)')));
  table('Inspector overhead (5,000 executor cycles × 7 rounds, median)', rows);
  console.log('target: ≥ 0.50× with the inspector attached and a viewer connected (dist: what users run)');

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

async function cycles(executor: InstanceType<Api['AsyncExecutor']>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await executor.run(task);
}
