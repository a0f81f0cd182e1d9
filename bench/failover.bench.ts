/**
 * Failover: the leader's process is SIGKILLed and a waiting candidate (in this process)
 * is elected. Per backend, 20 runs with a 1 s lease (`lockTtlMs`; etcd's lease has a
 * floor of 2 s); the median and p99 of the time from the kill to the new leadership, as
 * multiples of the lease. On PostgreSQL the lock is a session lock: it frees when the
 * killed process's session ends, not at the TTL.
 *
 * Needs the servers the tests use (test/support/servers.ts); a backend that cannot be
 * reached is left out.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createCoordinator, setLogger } from '../src/index.ts';
import { sharedEtcd, sharedMysql, sharedPostgres, sharedRedis, sqliteUrl } from '../test/support/servers.ts';
import { table } from './harness.ts';

const RUNS = 20;
const TTL_MS = 1_000;

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}

async function failovers(base: string, runs: number): Promise<number[]> {
  const url = new URL(base);
  url.searchParams.set('namespace', `failover${randomBytes(4).toString('hex')}`);
  const candidate = createCoordinator({ url: url.href, agentId: 'candidate', lockTtlMs: TTL_MS, heartbeatMs: TTL_MS / 4 });
  await candidate.start();
  const election = candidate.getElection('failover');
  const times: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const leader = fork(new URL('./failover.worker.ts', import.meta.url), [url.href, String(TTL_MS)], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const term = await new Promise<bigint>((resolve, reject) => {
        leader.once('message', (message) => resolve(BigInt((message as { term: string }).term)));
        leader.once('exit', (code) => reject(new Error(`the leader exited with ${code}`)));
      });
      const campaign = election.campaign({ timeoutMs: 30_000 });
      const killed = performance.now();
      leader.kill('SIGKILL');
      const leadership = await campaign;
      times.push(performance.now() - killed);
      if (leadership.term <= term) throw new Error(`term ${leadership.term} after ${term}`);
      await leadership.resign();
    }
  } finally {
    await candidate.stop();
  }
  return times;
}

export async function benchFailover(): Promise<void> {
  setLogger({ debug() {}, info() {}, warn() {}, error() {} });
  try {
    const rows: Array<Record<string, string>> = [];
    for (const [name, found, floorMs] of [
      ['Redis', sharedRedis, TTL_MS],
      ['PostgreSQL', sharedPostgres, TTL_MS],
      ['etcd', sharedEtcd, 2_000],
      ['SQLite', async () => sqliteUrl('bench-failover.db'), TTL_MS],
      ['MySQL (MariaDB)', sharedMysql, TTL_MS],
    ] as const) {
      const base = await found().catch(() => undefined);
      if (base === undefined) continue;
      const times = (await failovers(base, RUNS)).sort((a, b) => a - b);
      const median = quantile(times, 0.5);
      const p99 = quantile(times, 0.99);
      rows.push({
        backend: name,
        lease: `${floorMs} ms`,
        'median failover': `${Math.round(median)} ms (${(median / floorMs).toFixed(2)}× the lease)`,
        'p99 failover': `${Math.round(p99)} ms (${(p99 / floorMs).toFixed(2)}× the lease)`,
      });
    }
    if (rows.length > 0) table(`Failover: the leader SIGKILLed, a waiting candidate elected (${RUNS} runs per backend)`, rows);
  } finally {
    setLogger(null);
  }
}
