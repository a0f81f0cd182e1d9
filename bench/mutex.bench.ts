/**
 * statesmith's Mutex against async-mutex (what users pick today) and a bare promise
 * chain baseline: uncontended acquire/release, and 100 contenders queued at once.
 * Ratios read "how much faster than async-mutex" (higher is better for statesmith).
 */
import { Mutex as AsyncMutex } from 'async-mutex';
import { Mutex } from '../src/index.ts';
import { fmtNs, fmtRatio, measure, table } from './harness.ts';

export async function benchMutex(): Promise<void> {
  const ours = new Mutex();
  const theirs = new AsyncMutex();

  const uncontended = await measure(
    [
      {
        name: 'statesmith Mutex acquire/release',
        run: async (n) => {
          for (let i = 0; i < n; i++) (await ours.acquire()).release();
        },
      },
      {
        name: 'async-mutex acquire/release',
        run: async (n) => {
          for (let i = 0; i < n; i++) (await theirs.acquire())();
        },
      },
      {
        name: 'statesmith runExclusive',
        run: async (n) => {
          for (let i = 0; i < n; i++) await ours.runExclusive(() => i);
        },
      },
      {
        name: 'async-mutex runExclusive',
        run: async (n) => {
          for (let i = 0; i < n; i++) await theirs.runExclusive(() => i);
        },
      },
    ],
    { n: 100_000 },
  );

  const contenders = 100;
  const contended = await measure(
    [
      {
        name: `statesmith Mutex, ${contenders} contenders`,
        run: async (n) => {
          for (let round = 0; round < n / contenders; round++) {
            await Promise.all(Array.from({ length: contenders }, async () => (await ours.acquire()).release()));
          }
        },
      },
      {
        name: `async-mutex, ${contenders} contenders`,
        run: async (n) => {
          for (let round = 0; round < n / contenders; round++) {
            await Promise.all(Array.from({ length: contenders }, async () => (await theirs.acquire())()));
          }
        },
      },
    ],
    { n: 100_000 },
  );

  const rows = (results: typeof uncontended, pairs: Array<[number, number]>) =>
    pairs.flatMap(([a, b]) => {
      const x = results[a] as (typeof results)[0];
      const y = results[b] as (typeof results)[0];
      return [
        {
          case: x.name,
          'per op': fmtNs(x.nsPerOp),
          'ops/s': Math.round(1e9 / x.nsPerOp).toLocaleString(),
          'speed vs async-mutex': fmtRatio(y.nsPerOp / x.nsPerOp),
        },
        { case: y.name, 'per op': fmtNs(y.nsPerOp), 'ops/s': Math.round(1e9 / y.nsPerOp).toLocaleString(), 'speed vs async-mutex': '1.00×' },
      ];
    });
  table(
    'Mutex, uncontended (100,000 ops × 7 rounds, median)',
    rows(uncontended, [
      [0, 1],
      [2, 3],
    ]),
  );
  table('Mutex, contended (100,000 grants × 7 rounds, median)', rows(contended, [[0, 1]]));
  console.log('target: statesmith ≥ 1.00× async-mutex');
}
