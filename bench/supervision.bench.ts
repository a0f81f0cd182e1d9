/**
 * Supervision: what a restart costs against creating a fresh task (target ≤ 2.5×, issue 28), what a
 * group's stop costs now that it stops tasks one at a time, and what `supervise()` adds
 * to a message sent to the inner actor (target ≤ 1.5×).
 */
import { assign, createActor, setup } from 'xstate';
import { createConsoleLogger, getLogger, setLogger, supervise, TaskGroup, type Clock } from '../src/index.ts';
import { fmtNs, fmtRatio, measure, table } from './harness.ts';

/**
 * A clock whose timers fire on a microtask: a zero back-off then costs the supervisor's
 * work, not the 1 ms floor of a Node timer.
 */
const immediateClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn: () => void) => {
    const handle = { cancelled: false };
    queueMicrotask(() => handle.cancelled || fn());
    return handle;
  },
  clearTimeout: (handle: unknown) => {
    if (handle !== undefined) (handle as { cancelled: boolean }).cancelled = true;
  },
};

const failing = (): Promise<never> => Promise.reject(new Error('x'));

const counter = setup({ types: { context: {} as { n: number }, events: {} as { type: 'inc' } } }).createMachine({
  context: { n: 0 },
  on: { inc: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
});

export async function benchSupervision(): Promise<void> {
  // Each restart logs a line at info: measure the supervisor, not the terminal.
  const logger = getLogger();
  setLogger(createConsoleLogger('silent'));
  try {
    await benchRestarts();
  } finally {
    setLogger(logger);
  }
  await benchStops();
  await benchMessages();
}

async function benchRestarts(): Promise<void> {
  const restarts = await measure(
    [
      {
        name: 'a fresh task that fails (createTask, run, settle)',
        run: async (n) => {
          const group = new TaskGroup({ clock: immediateClock });
          for (let i = 0; i < n; i++)
            await group
              .createTask(failing, { logException: false })
              .wait()
              .catch(() => undefined);
          await group.stop().catch(() => undefined);
        },
      },
      {
        name: 'one restart of a failing task (exit, decide, back-off 0, run)',
        run: async (n) => {
          const group = new TaskGroup({ clock: immediateClock });
          const task = group.createTask(failing, {
            logException: false,
            restart: { maxRestarts: n - 1, withinMs: Infinity, backoff: { initialMs: 0, jitter: 0 } },
          });
          await task.wait().catch(() => undefined);
          await group.stop().catch(() => undefined);
        },
      },
    ],
    { n: 5_000, rounds: 5 },
  );
  const fresh = restarts[0]?.nsPerOp ?? 1;
  table(
    'Restart vs a fresh task (5,000 × 5 rounds, median each)',
    restarts.map((r) => ({ case: r.name, each: fmtNs(r.nsPerOp), 'vs fresh task': fmtRatio(r.nsPerOp / fresh) })),
  );
  console.log('target: one restart ≤ 2.50× a fresh task (issue 28)');
}

async function benchStops(): Promise<void> {
  const never = (signal: AbortSignal): Promise<void> =>
    new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  const stops = await measure(
    [
      {
        name: 'raw: abort n controllers, await the promises',
        run: async (n) => {
          const controllers = Array.from({ length: n }, () => new AbortController());
          const pending = controllers.map((c) => never(c.signal).catch(() => undefined));
          await null;
          for (const c of controllers) c.abort();
          await Promise.all(pending);
        },
      },
      {
        name: 'TaskGroup.stop() of n running tasks, newest first',
        run: async (n) => {
          const group = new TaskGroup();
          for (let i = 0; i < n; i++) group.createTask(never);
          await null;
          await group.stop();
        },
      },
    ],
    { n: 10_000, rounds: 5 },
  );
  const raw = stops[0]?.nsPerOp ?? 1;
  table(
    'Stopping a group (10,000 running tasks × 5 rounds, median per task)',
    stops.map((r) => ({ case: r.name, 'per task': fmtNs(r.nsPerOp), 'vs raw': fmtRatio(r.nsPerOp / raw) })),
  );
}

async function benchMessages(): Promise<void> {
  const messages = await measure(
    [
      {
        name: 'send to a bare actor',
        run: (n) => {
          const actor = createActor(counter).start();
          for (let i = 0; i < n; i++) actor.send({ type: 'inc' });
          actor.stop();
        },
      },
      {
        name: 'send to supervise(machine), forwarded to the inner actor',
        run: (n) => {
          const actor = createActor(supervise(counter)).start();
          for (let i = 0; i < n; i++) actor.send({ type: 'inc' });
          actor.stop();
        },
      },
    ],
    { n: 100_000, rounds: 7 },
  );
  const bare = messages[0]?.nsPerOp ?? 1;
  table(
    'A message through supervise() (100,000 × 7 rounds, median per message)',
    messages.map((r) => ({ case: r.name, 'per message': fmtNs(r.nsPerOp), 'vs bare': fmtRatio(r.nsPerOp / bare) })),
  );
  console.log('target: ≤ 1.50× a message to the bare actor');
}
