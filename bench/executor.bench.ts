/**
 * The executor slice, side by side:
 * 1. one executor cycle (schedule → run → done → wake-up delivered to a subscriber)
 *    against the same steps on a bare XState actor and on a bare async function +
 *    `Subject.next`;
 * 2. wake-up latency from the task function settling to the subscriber;
 * 3. heap per idle executor.
 */
import { Subject } from 'rxjs';
import { assign, createActor, setup } from 'xstate';
import { AsyncExecutor, WakeupBus, executorLogic, setLogger } from '../src/index.ts';
import { fmtNs, fmtRatio, measure, median, table } from './harness.ts';

setLogger({ debug() {}, info() {}, warn() {}, error() {} });

/** The same four transitions the executor's machine makes, with nothing else around them. */
const bareMachine = setup({
  types: { context: {} as { action: string | null }, events: {} as { type: 'schedule' | 'start' | 'finish' | 'reset' } },
}).createMachine({
  context: { action: null },
  initial: 'idle',
  states: {
    idle: { on: { schedule: { target: 'scheduled', actions: assign({ action: 'restart' }) } } },
    scheduled: { on: { start: 'running' } },
    running: { on: { finish: 'done' } },
    done: { on: { reset: { target: 'idle', actions: assign({ action: null }) } } },
  },
});

const task = async (): Promise<boolean> => true;

export async function benchExecutor(): Promise<void> {
  const n = 20_000;

  const bus = new WakeupBus();
  let delivered = 0;
  bus.wakeups$.subscribe(() => delivered++);
  const executor = new AsyncExecutor({ wakeup: bus, name: 'bench' });

  const actor = createActor(bareMachine).start();
  // The same cycle driven by commands: a bare executorLogic actor, awaiting its done reply.
  const commanded = createActor(executorLogic, { input: { name: 'bench-commands', wakeup: bus, actions: { task } } }).start();
  let answer: (() => void) | undefined;
  commanded.on('statesmith.executor.done', () => answer?.());
  const subject = new Subject<string>();
  subject.subscribe(() => delivered++);

  const results = await measure(
    [
      {
        name: 'statesmith AsyncExecutor',
        run: async (count) => {
          for (let i = 0; i < count; i++) {
            executor.schedule('restart');
            await executor.run(task);
            await bus.wait(0); // consume the latched wake-up, as the loop would
          }
        },
      },
      {
        name: 'executorLogic by command (send run → done reply)',
        run: async (count) => {
          for (let i = 0; i < count; i++) {
            const done = new Promise<void>((resolve) => (answer = resolve));
            commanded.send({ type: 'statesmith.executor.run', action: 'task' });
            await done;
            await bus.wait(0);
          }
        },
      },
      {
        name: 'bare XState actor + Subject.next',
        run: async (count) => {
          for (let i = 0; i < count; i++) {
            actor.send({ type: 'schedule' });
            actor.send({ type: 'start' });
            const result = await task();
            actor.send({ type: 'finish' });
            actor.send({ type: 'reset' });
            subject.next(String(result));
          }
        },
      },
      {
        name: 'bare async function + Subject.next',
        run: async (count) => {
          for (let i = 0; i < count; i++) subject.next(String(await task()));
        },
      },
    ],
    { n },
  );
  const [ours, byCommand, xstate, bare] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0], (typeof results)[0]];
  table(`Executor cycle (${n.toLocaleString()} cycles × 7 rounds, median)`, [
    ...results.map((r) => ({
      case: r.name,
      'per cycle': fmtNs(r.nsPerOp),
      'cycles/s': Math.round(1e9 / r.nsPerOp).toLocaleString(),
      'vs bare XState': fmtRatio(r.nsPerOp / xstate.nsPerOp),
      'vs bare async': fmtRatio(r.nsPerOp / bare.nsPerOp),
    })),
  ]);
  console.log(`target: statesmith ≤ 3× the bare XState actor → ${fmtRatio(ours.nsPerOp / xstate.nsPerOp)}`);
  console.log(`target: a command round trip ≤ 1.5× the facade call doing the same work → ${fmtRatio(byCommand.nsPerOp / ours.nsPerOp)}`);
  if (delivered === 0) throw new Error('no wake-up was delivered');

  // Wake-up latency: from the task function settling to the subscriber running.
  const latencies: number[] = [];
  let settledAt = 0n;
  const sub = bus.wakeups$.subscribe(() => latencies.push(Number(process.hrtime.bigint() - settledAt)));
  for (let i = 0; i < 10_000; i++) {
    executor.schedule('restart');
    await executor.run(async () => {
      settledAt = process.hrtime.bigint();
      return true;
    });
    await bus.wait(0);
  }
  sub.unsubscribe();
  const sorted = [...latencies].sort((a, b) => a - b);
  table('Wake-up latency, task settled → subscriber (10,000 samples)', [
    {
      median: fmtNs(median(latencies)),
      p90: fmtNs(sorted[Math.floor(sorted.length * 0.9)] as number),
      p99: fmtNs(sorted[Math.floor(sorted.length * 0.99)] as number),
      target: 'median < 50 µs',
    },
  ]);

  // Memory: heap per idle executor.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    console.log('\n(run with --expose-gc for the memory figure: npm run bench does)');
    return;
  }
  const count = 10_000;
  gc();
  const before = process.memoryUsage().heapUsed;
  const executors: AsyncExecutor[] = [];
  for (let i = 0; i < count; i++) executors.push(new AsyncExecutor({ wakeup: bus, name: `idle-${i}` }));
  gc();
  const after = process.memoryUsage().heapUsed;
  const perExecutor = (after - before) / count;
  const actorsOnly: unknown[] = [];
  gc();
  const beforeActors = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) actorsOnly.push(createActor(bareMachine).start());
  gc();
  const perActor = (process.memoryUsage().heapUsed - beforeActors) / count;
  table(`Memory (${count.toLocaleString()} idle instances, heap after GC)`, [
    { case: 'statesmith AsyncExecutor (actor + lock)', 'heap each': `${(perExecutor / 1024).toFixed(2)} KB`, target: '< 10 KB' },
    { case: 'bare XState actor', 'heap each': `${(perActor / 1024).toFixed(2)} KB`, target: '' },
  ]);
  if (executors.length + actorsOnly.length === 0) console.log('');
}
