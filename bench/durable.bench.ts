/**
 * Durable actors on `sqlite://`:
 *
 * - One executor-shaped cycle (the four transitions the executor's machine makes, then a
 *   turn of the event loop, so one save per cycle) under `durable()`, against the same
 *   machine with the same snapshot JSON written by hand with `better-sqlite3` (target
 *   ≥ 0.8×), and against durability off (reported).
 * - statesmith's own executor, `durable(executorLogic)`, by command (run → done): its task
 *   starts only once the store holds it started, so a cycle is at least two saves; against
 *   the executor not durable, and with a picture of it upserted by hand once per cycle.
 * - Restoring 10,000 saved actors: time and heap.
 * - Write amplification: bytes of snapshot written per step.
 */
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assign, createActor, setup } from 'xstate';
import { durable, executorLogic, openStore, setLogger, type DurableSnapshot } from '../src/index.ts';
import { fmtNs, fmtRatio, measure, table, type Result } from './harness.ts';

const machine = setup({
  types: { context: {} as { action: string | null; cycles: number }, events: {} as { type: 'schedule' | 'start' | 'finish' | 'reset' } },
  delays: { stuck: 60_000 },
}).createMachine({
  context: { action: null, cycles: 0 },
  initial: 'idle',
  states: {
    idle: { on: { schedule: { target: 'scheduled', actions: assign({ action: 'restart' }) } } },
    scheduled: { on: { start: 'running' } },
    // An armed timer while running, as an executor's deadline would be.
    running: { after: { stuck: 'done' }, on: { finish: 'done' } },
    done: { on: { reset: { target: 'idle', actions: assign({ action: null, cycles: ({ context }) => context.cycles + 1 }) } } },
  },
});

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const CYCLE = ['schedule', 'start', 'finish', 'reset'] as const;

async function running(actor: { getSnapshot(): unknown }): Promise<void> {
  while ((actor.getSnapshot() as DurableSnapshot).value !== 'running') await turn();
}

/** A table of three rows, durable, by hand and not durable, each against the other two. */
function comparison(title: string, rows: readonly Result[]): void {
  const [ours, hand, off] = rows as [Result, Result, Result];
  const row = (r: Result) => ({
    case: r.name,
    'per cycle': fmtNs(r.nsPerOp),
    'speed vs by hand': r === hand ? '1.00×' : fmtRatio(hand.nsPerOp / r.nsPerOp),
    'vs not durable': r === off ? '1.00×' : fmtRatio(off.nsPerOp / r.nsPerOp),
  });
  table(title, [row(ours), row(hand), row(off)]);
}

export async function benchDurable(): Promise<void> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  const dir = mkdtempSync(join(tmpdir(), 'statesmith-bench-durable-'));
  const store = await openStore(`sqlite://${join(dir, 'state.db')}`);
  try {
    const durableActor = createActor(durable(machine, { store, id: 'bench', version: 1 })).start();
    await running(durableActor);
    const plain = createActor(machine).start();
    const handFile = new Database(join(dir, 'hand.db'));
    handFile.pragma('journal_mode = WAL');
    handFile.pragma('synchronous = NORMAL');
    handFile.exec('CREATE TABLE IF NOT EXISTS snapshots (id TEXT PRIMARY KEY, snapshot TEXT NOT NULL, saved_at INTEGER NOT NULL) WITHOUT ROWID');
    const upsert = handFile.prepare(
      'INSERT INTO snapshots (id, snapshot, saved_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, saved_at = excluded.saved_at',
    );
    const byHand = createActor(machine).start();
    const results = await measure(
      [
        {
          name: 'durable(machine) on sqlite://: four steps, one save',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              for (const type of CYCLE) durableActor.send({ type });
              await turn();
            }
          },
        },
        {
          name: 'the same machine, its snapshot JSON saved by hand (better-sqlite3 upsert per cycle)',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              for (const type of CYCLE) byHand.send({ type });
              upsert.run('bench', JSON.stringify(machine.getPersistedSnapshot(byHand.getSnapshot())), Date.now());
              await turn();
            }
          },
        },
        {
          name: 'the same machine, not durable',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              for (const type of CYCLE) plain.send({ type });
              await turn();
            }
          },
        },
      ],
      { n: 2_000, rounds: 5 },
    );
    comparison('Durable actors: one executor-shaped cycle (4 steps, one turn), 2,000 cycles × 5 rounds, median', results);
    console.log('target: ≥ 0.80× the same snapshot saved by hand');

    // The real executor, durable, by command.
    const actions = { work: async () => true };
    const durableExecutor = createActor(durable(executorLogic, { store, id: 'bench-executor', version: 1 }), { input: { name: 'bench', actions } }).start();
    await running(durableExecutor);
    const plainExecutor = createActor(executorLogic, { input: { name: 'plain', actions } }).start();
    const handExecutor = createActor(executorLogic, { input: { name: 'hand', actions } }).start();
    type Ref = { on(type: string, handler: () => void): { unsubscribe(): void }; send(event: { type: string; action: string }): void };
    const runOnce = (actor: Ref): Promise<void> =>
      new Promise((resolve) => {
        const heard = actor.on('statesmith.executor.done', () => {
          heard.unsubscribe();
          resolve();
        });
        actor.send({ type: 'statesmith.executor.run', action: 'work' });
      });
    const executorRows = await measure(
      [
        {
          name: 'durable(executorLogic) on sqlite://: run → done',
          run: async (n) => {
            for (let i = 0; i < n; i++) await runOnce(durableExecutor as unknown as Ref);
          },
        },
        {
          name: 'executorLogic, a picture of it upserted by hand per cycle',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              await runOnce(handExecutor as unknown as Ref);
              const { value, context } = handExecutor.getSnapshot();
              const picture = { value, generation: context.generation, lastAction: context.lastAction, lastOutcome: context.lastOutcome };
              upsert.run('bench-executor', JSON.stringify(picture), Date.now());
            }
          },
        },
        {
          name: 'executorLogic, not durable',
          run: async (n) => {
            for (let i = 0; i < n; i++) await runOnce(plainExecutor as unknown as Ref);
          },
        },
      ],
      { n: 2_000, rounds: 5 },
    );
    comparison("Durable actors: statesmith's executor by command (run → done), 2,000 cycles × 5 rounds, median", executorRows);
    console.log('reported: the durable executor saves before each task starts (write-ahead) and after it ends');
    durableExecutor.stop();
    plainExecutor.stop();
    handExecutor.stop();

    // Write amplification: what one save writes, per step it covers.
    await turn();
    await turn();
    const saved = await store.load('bench');
    const savedBytes = Buffer.byteLength(JSON.stringify(saved?.snapshot));
    const stepBytes = Buffer.byteLength(JSON.stringify(machine.getPersistedSnapshot(plain.getSnapshot())));
    durableActor.stop();
    plain.stop();
    byHand.stop();
    handFile.close();

    // Restore 10,000 saved actors.
    const count = 10_000;
    const template = saved?.snapshot;
    for (let i = 0; i < count; i++) await store.save(`many-${i}`, { snapshot: template, version: 1 });
    globalThis.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const started = performance.now();
    const actors = Array.from({ length: count }, (_, i) => createActor(durable(machine, { store, id: `many-${i}`, version: 1 })).start());
    for (const actor of actors) await running(actor);
    const restoreMs = performance.now() - started;
    globalThis.gc?.();
    const heapAfter = process.memoryUsage().heapUsed;
    table('Durable actors: restore and writes', [
      {
        measure: `restore ${count.toLocaleString()} saved actors (sqlite://, one process)`,
        value: `${restoreMs.toFixed(0)} ms (${((restoreMs * 1000) / count).toFixed(0)} µs each)`,
      },
      { measure: 'heap of the restored actors', value: `${((heapAfter - heapBefore) / count / 1024).toFixed(1)} KiB each` },
      {
        measure: 'bytes written per save (snapshot and timers, JSON)',
        value: `${savedBytes} B, for the 4 steps of a cycle: ${(savedBytes / 4).toFixed(0)} B per step`,
      },
      { measure: 'the same snapshot without its timers (what getPersistedSnapshot alone gives)', value: `${stepBytes} B` },
    ]);
    for (const actor of actors) actor.stop();
    await turn();
  } finally {
    await new Promise((resolve) => setTimeout(resolve, 100));
    await store.close();
  }
}
