/**
 * A force round trip against a plain Mutex hand-off. The locksmith case: a holder owns
 * the lock and serves force requests; `host()` sends the request, the owner answers
 * 'release', the lock passes to the host and its task starts (and ends, releasing the
 * lock). The baseline: the holder releases the lock by itself and a queued waiter takes
 * it and runs the same task. Ratios read "how many times the cost of a hand-off".
 *
 * Both are measured on the compiled package (`dist/`, what users run; `npm run bench`
 * builds it first) and on the sources under tsx, whose per-closure `__name` wrapper
 * weighs on the force's many small callbacks.
 *
 * The actor floor: the same hand-off run by a one-state XState machine in the two macrosteps
 * a hosting takes (the request, and the owner's answer), with nothing else. No force whose
 * negotiation an actor runs can beat it on this machine.
 */
import { existsSync } from 'node:fs';
import { createActor, setup } from 'xstate';
import * as source from '../src/index.ts';
import { fmtNs, fmtRatio, measure, table, type Result } from './harness.ts';

type Api = Pick<typeof source, 'Locksmith' | 'Mutex' | 'serveLockForceRequests' | 'setLogger'>;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

type HostEvent =
  | { readonly type: 'host'; readonly held: { release(): void }; readonly done: () => void }
  | { readonly type: 'answered'; readonly answer: string; readonly held: { release(): void }; readonly done: () => void };

async function roundTrips(api: Api, label: string): Promise<Result[]> {
  const forced = new api.Mutex({ name: 'forced' });
  const plain = new api.Mutex({ name: 'plain' });
  const floorLock = new api.Mutex({ name: 'actor-floor' });
  // The owner's side: asked, it answers 'release' (on a later microtask, as the served handler does).
  const owner = async (): Promise<string> => 'release';
  const smith = new api.Locksmith({ name: 'bench' });
  await smith.recognize(forced);
  const stop = api.serveLockForceRequests('holder', () => 'release');
  const task = async (): Promise<number> => 1;
  const floor = createActor(
    setup({ types: { events: {} as HostEvent } }).createMachine({
      on: {
        host: {
          actions: ({ event, self }) => {
            const { held, done } = event as Extract<HostEvent, { type: 'host' }>;
            void owner().then((answer) => self.send({ type: 'answered', answer, held, done }));
          },
        },
        answered: {
          actions: ({ event }) => {
            const { answer, held, done } = event as Extract<HostEvent, { type: 'answered' }>;
            if (answer !== 'release') throw new Error(`the owner answered ${answer}`);
            held.release();
            void floorLock.runExclusive(task).then(done);
          },
        },
      },
    }),
  ).start();
  // Each answer is logged at info; the log line is not what is measured.
  api.setLogger(quiet);
  try {
    return await measure(
      [
        {
          name: `${label}: host(), request → answer → task starts`,
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              forced.tryAcquire({ owner: 'holder' });
              await smith.host(task, forced);
            }
          },
        },
        {
          name: `${label}: Mutex hand-off, release → waiter runs the task`,
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              const held = plain.tryAcquire({ owner: 'holder' });
              const waiter = plain.runExclusive(task);
              held?.release();
              await waiter;
            }
          },
        },
        {
          name: `${label}: actor floor, the hand-off run by a one-state XState machine in two macrosteps`,
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              const held = floorLock.tryAcquire({ owner: 'holder' });
              if (held === null) throw new Error('the actor floor lock is held');
              await new Promise<void>((done) => floor.send({ type: 'host', held, done }));
            }
          },
        },
      ],
      { n: 20_000 },
    );
  } finally {
    floor.stop();
    stop();
    api.setLogger(null);
  }
}

export async function benchLocksmith(): Promise<void> {
  const dist = new URL('../dist/src/index.js', import.meta.url);
  const runs: Array<[Api, string]> = [];
  if (existsSync(dist)) runs.push([(await import(dist.href)) as Api, 'dist']);
  runs.push([source, 'src (tsx)']);
  const rows: Array<Record<string, string>> = [];
  for (const [api, label] of runs) {
    const [force, handoff, actorFloor] = (await roundTrips(api, label)) as [Result, Result, Result];
    rows.push(
      {
        case: force.name,
        'per op': fmtNs(force.nsPerOp),
        'cost vs hand-off': fmtRatio(force.nsPerOp / handoff.nsPerOp),
        'cost vs actor floor': fmtRatio(force.nsPerOp / actorFloor.nsPerOp),
      },
      { case: handoff.name, 'per op': fmtNs(handoff.nsPerOp), 'cost vs hand-off': '1.00×', 'cost vs actor floor': '' },
      {
        case: actorFloor.name,
        'per op': fmtNs(actorFloor.nsPerOp),
        'cost vs hand-off': fmtRatio(actorFloor.nsPerOp / handoff.nsPerOp),
        'cost vs actor floor': '1.00×',
      },
    );
  }
  table('Locksmith force round trip (20,000 × 7 rounds, median)', rows);
  console.log('target: force round trip ≤ 10× a Mutex hand-off (dist: what users run)');
}
