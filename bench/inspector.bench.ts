/**
 * What the inspector costs: executor cycles (schedule → run → done → wake-up) with no
 * inspector, against the same with an inspector running and a viewer connected over its
 * WebSocket (a `ws` client reading every frame, as the page does). Target ≥ 0.5×.
 * Then the ring buffer's memory at its bound (10,000 records of executor traffic).
 */
import WebSocket from 'ws';
import { AsyncExecutor, WakeupBus, setLogger } from '../src/index.ts';
import { inspection } from '../src/inspect/capture.ts';
import { startInspector } from '../src/inspect/server.ts';
import { fmtNs, fmtRatio, measure, table, type Result } from './harness.ts';

const task = async (): Promise<boolean> => true;

export async function benchInspector(): Promise<void> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  const plain = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'plain' });
  const [without] = (await measure([{ name: 'executor cycle, no inspector', run: async (n) => void (await cycles(plain, n)) }], { n: 5_000 })) as [Result];

  const inspector = await startInspector();
  const url = new URL(inspector.url);
  let frames = 0;
  const viewer = new WebSocket(`ws://${url.host}/ws?token=${url.searchParams.get('token')}`, { headers: { Origin: url.origin } });
  viewer.on('message', () => frames++);
  await new Promise((resolve) => viewer.once('open', resolve));
  const watched = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'watched' });
  const [withInspector] = (await measure([{ name: 'executor cycle, inspector + viewer connected', run: async (n) => void (await cycles(watched, n)) }], {
    n: 5_000,
  })) as [Result];
  // Let the last batches reach the viewer, so the cost of sending them is counted too.
  await new Promise((resolve) => setTimeout(resolve, 200));

  table('Inspector overhead (5,000 executor cycles × 7 rounds, median)', [
    { case: without.name, 'per op': fmtNs(without.nsPerOp), 'throughput vs none': '1.00×' },
    { case: withInspector.name, 'per op': fmtNs(withInspector.nsPerOp), 'throughput vs none': fmtRatio(without.nsPerOp / withInspector.nsPerOp) },
  ]);
  console.log(`target: ≥ 0.50× with the inspector attached (the viewer received ${frames} frames)`);

  const records = inspection.records();
  const average = records.reduce((sum, r) => sum + r.json.length, 0) / Math.max(1, records.length);
  table('Inspector ring buffer at its bound', [
    {
      records: `${records.length.toLocaleString()} of ${inspection.capacity.toLocaleString()}`,
      'average record': `${Math.round(average)} chars`,
      'ring memory (strings, UTF-16)': `${(inspection.ringBytes / 1024 / 1024).toFixed(1)} MB`,
    },
  ]);
  viewer.close();
  await inspector.close();
  setLogger(null);
}

async function cycles(executor: AsyncExecutor, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await executor.run(task);
  }
}
