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
 */
import { existsSync } from 'node:fs';
import * as source from '../src/index.ts';
import { fmtNs, fmtRatio, measure, table, type Result } from './harness.ts';

type Api = Pick<typeof source, 'Locksmith' | 'Mutex' | 'serveLockForceRequests' | 'setLogger'>;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

async function roundTrips(api: Api, label: string): Promise<Result[]> {
  const forced = new api.Mutex({ name: 'forced' });
  const plain = new api.Mutex({ name: 'plain' });
  const smith = new api.Locksmith({ name: 'bench' });
  await smith.recognize(forced);
  const stop = api.serveLockForceRequests('holder', () => 'release');
  const task = async (): Promise<number> => 1;
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
      ],
      { n: 20_000 },
    );
  } finally {
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
    const [force, handoff] = (await roundTrips(api, label)) as [Result, Result];
    rows.push(
      { case: force.name, 'per op': fmtNs(force.nsPerOp), 'cost vs hand-off': fmtRatio(force.nsPerOp / handoff.nsPerOp) },
      { case: handoff.name, 'per op': fmtNs(handoff.nsPerOp), 'cost vs hand-off': '1.00×' },
    );
  }
  table('Locksmith force round trip (20,000 × 7 rounds, median)', rows);
  console.log('target: force round trip ≤ 10× a Mutex hand-off (dist: what users run)');
}
