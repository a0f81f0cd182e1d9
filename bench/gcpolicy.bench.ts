/**
 * The same hot loops under Node's default GC policy and with V8's allocation-site
 * pretenuring off (`node --no-allocation-site-pretenuring`), each in a fresh process. On
 * Node 20 a third or more of an actor cycle can go to the garbage collector promoting what
 * dies young (bench/PROFILE.md, "GC and pretenuring"); this measures how much of it the flag
 * gives back, so that a user can choose it for their process. statesmith never sets it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fmtNs, fmtRatio, table } from './harness.ts';

type Sample = { bare: number; executor: number; memoryLock: number; host: number };

async function run(flags: readonly string[]): Promise<Sample> {
  const worker = new URL('./gcpolicy.worker.ts', import.meta.url);
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, '--import', 'tsx', worker.pathname], { timeout: 300_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as Sample;
}

export async function benchGcPolicy(): Promise<void> {
  const off = ['--no-allocation-site-pretenuring'];
  // Interleaved: default, flag, default, flag; the median of each pair's two.
  const runs = [await run([]), await run(off), await run([]), await run(off)];
  const mid = (a: number, b: number): number => (a + b) / 2;
  const rows: Array<Record<string, string>> = [];
  const names: Array<[keyof Sample, string]> = [
    ['bare', 'bare XState actor, four transitions (baseline)'],
    ['executor', 'AsyncExecutor cycle (schedule → run → wake-up)'],
    ['memoryLock', 'DistributedLock acquire + release on memory://'],
    ['host', 'Locksmith host() round trip'],
  ];
  for (const [key, name] of names) {
    const byDefault = mid(runs[0]![key], runs[2]![key]);
    const flagged = mid(runs[1]![key], runs[3]![key]);
    rows.push({
      case: name,
      'node (default)': fmtNs(byDefault * 1000),
      '--no-allocation-site-pretenuring': fmtNs(flagged * 1000),
      speed: fmtRatio(byDefault / flagged),
    });
  }
  table('GC policy: the same loops with V8 allocation-site pretenuring on (default) and off (dist, fresh processes)', rows);
  console.log('speed > 1×: the flag makes the loop faster; statesmith never sets it (it is the process owner’s choice)');
}
