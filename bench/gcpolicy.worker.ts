/**
 * One process of the GC-policy bench: runs each hot loop of the built package (`dist/`) and
 * prints the median µs per cycle of each as one JSON line. Its parent runs it with and without
 * `--no-allocation-site-pretenuring`; nothing here sets a flag.
 */
import { createActor, setup } from 'xstate';

type Api = typeof import('../src/index.ts');
const api = (await import(new URL('../dist/src/index.js', import.meta.url).href)) as Api;
api.setLogger({ debug() {}, info() {}, warn() {}, error() {} });

/** Median µs per cycle of `rounds` rounds of `n` cycles (the first round warms up and is dropped). */
async function timed(n: number, rounds: number, cycle: () => Promise<void> | void): Promise<number> {
  const samples: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) await cycle();
    if (round > 0) samples.push(((performance.now() - start) * 1000) / n);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

const bare = createActor(
  setup({ types: { events: {} as { type: 'schedule' | 'start' | 'finish' | 'reset' } } }).createMachine({
    initial: 'idle',
    states: {
      idle: { on: { schedule: 'scheduled' } },
      scheduled: { on: { start: 'running' } },
      running: { on: { finish: 'done' } },
      done: { on: { reset: 'idle' } },
    },
  }),
).start();
const task = async (): Promise<boolean> => true;
const bus = new api.WakeupBus();
bus.wakeups$.subscribe(() => undefined);
const executor = new api.AsyncExecutor({ wakeup: bus, name: 'gc-policy' });
const coordinator = api.createCoordinator({ url: 'memory://', agentId: 'gc-policy' });
await coordinator.start();
const lock = coordinator.getLock('gc-policy');
const forced = new api.Mutex({ name: 'forced' });
const smith = new api.Locksmith({ name: 'gc-policy' });
await smith.recognize(forced);
const stopServing = api.serveLockForceRequests('holder', () => 'release');

const result = {
  bare: await timed(20_000, 5, async () => {
    bare.send({ type: 'schedule' });
    bare.send({ type: 'start' });
    await task();
    bare.send({ type: 'finish' });
    bare.send({ type: 'reset' });
  }),
  executor: await timed(20_000, 5, async () => {
    executor.schedule('restart');
    await executor.run(task);
    await bus.wait(0);
  }),
  memoryLock: await timed(20_000, 5, async () => void (await (await lock.acquire())?.release())),
  host: await timed(10_000, 5, async () => {
    forced.tryAcquire({ owner: 'holder' });
    await smith.host(task, forced);
  }),
};
stopServing();
await coordinator.stop();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
