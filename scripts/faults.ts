/**
 * `npm run faults`: runs the partition tests (test/partitions/, real network faults between
 * network namespaces; needs root) and prints what they measured as tables:
 *
 * - per backend and fault, when the member cut off saw its lock lost and when the next member
 *   was granted it, in leases after the fault, and the margin between the two;
 * - the stale holder's late writes to a fenced store: refused, and accepted (target 0);
 * - after a partition past the kernel's retry window, how long the next member waited once healed;
 * - the NATS bridge: how a command sent during a partition ended, and how often it ran.
 *
 * Mocha's own output goes to stderr; the tables to stdout. The exit code is mocha's.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table } from '../bench/harness.ts';

type Figure = Record<string, string | number>;

const dir = mkdtempSync(join(tmpdir(), 'statesmith-faults-'));
const report = join(dir, 'figures.jsonl');
try {
  // Without the project's .mocharc (its spec would add the whole suite), with the same options.
  const mocha = ['--no-config', '--node-option', 'import=tsx', '--node-option', 'conditions=statesmith-source', '--require', 'test/support/setup.ts'];
  const run = spawnSync('npx', ['mocha', ...mocha, '--timeout', '15000', '--reporter', 'dot', 'test/partitions/**/*.test.ts'], {
    stdio: ['ignore', process.stderr, 'inherit'],
    env: { ...process.env, STATESMITH_FAULTS_REPORT: report },
  });
  let figures: Figure[] = [];
  try {
    figures = readFileSync(report, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Figure);
  } catch {
    // No figures: the tests were skipped (not root) or failed before measuring; mocha said why.
  }
  const merged = new Map<string, Figure>();
  for (const figure of figures) {
    const key = `${figure['backend']}|${figure['fault']}`;
    merged.set(key, { ...merged.get(key), ...figure });
  }
  const rows = [...merged.values()];
  const leases = (value: unknown): string => (typeof value === 'number' ? `${value.toFixed(2)}×` : '');
  const ms = (value: unknown): string => (typeof value === 'number' ? `${Math.round(value)} ms` : '');
  const count = (value: unknown): string => (typeof value === 'number' ? String(value) : '');

  const failovers = rows.filter((row) => row['grantedLeases'] !== undefined);
  if (failovers.length > 0)
    table(
      'Under a fault: when the member cut off saw its loss, and when the next member was granted (in leases after the fault; lease 2 s)',
      failovers.map((row) => ({
        backend: String(row['backend']),
        fault: String(row['fault']),
        'loss seen': leases(row['lostLeases']),
        'next grant': leases(row['grantedLeases']),
        'margin (loss before grant)': ms(row['marginMs']),
      })),
    );
  const heals = rows.filter((row) => row['grantedAfterHealMs'] !== undefined);
  if (heals.length > 0)
    table(
      "A partition of 4 leases, past the member's kernel retry window: the next member's wait once healed",
      heals.map((row) => ({ backend: String(row['backend']), 'loss seen': leases(row['lostLeases']), 'next grant after heal': ms(row['grantedAfterHealMs']) })),
    );
  const stores = rows.filter((row) => row['staleRefused'] !== undefined);
  if (stores.length > 0)
    table(
      'Late writes of the member that lost, to a fenced store (target: none accepted)',
      stores.map((row) => ({
        backend: String(row['backend']),
        fault: String(row['fault']),
        refused: count(row['staleRefused']),
        accepted: count(row['staleAccepted']),
      })),
    );
  const outcomes = rows.filter((row) => row['outcome'] !== undefined);
  if (outcomes.length > 0)
    table(
      'Burst loss, and the NATS bridge',
      outcomes.map((row) => ({
        backend: String(row['backend']),
        fault: String(row['fault']),
        outcome: String(row['outcome']),
        'runs of the command': count(row['runs']),
        margin: ms(row['marginMs']),
      })),
    );
  if (rows.length === 0) console.log('no figures: the partition tests did not run (they need root and iproute2; mocha says why above)');
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
