/**
 * `npm run soak`: the fault campaign's figure, reproduced. N processes increment one
 * counter under a distributed lock while the driver SIGKILLs (and restarts) and SIGSTOPs
 * (for one to two leases, then SIGCONT) them at random. The counter lives in this process, as
 * a fenced store: it refuses a read or write whose fence is below the highest it has
 * seen. It reports accepted writes, stale writes refused, and lost updates (accepted
 * writes the counter does not show), which must be 0, on Redis and on PostgreSQL.
 *
 *   npm run soak [-- --processes 6 --seconds 20 --ttl 1000]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { sharedPostgres, sharedRedis } from '../test/support/servers.ts';
import { table } from './harness.ts';

const { values } = parseArgs({
  options: { processes: { type: 'string', default: '6' }, seconds: { type: 'string', default: '20' }, ttl: { type: 'string', default: '1000' } },
});
const processes = Number(values.processes);
const seconds = Number(values.seconds);
const ttl = Number(values.ttl);
const worker = new URL('./soak.worker.ts', import.meta.url);

interface Outcome {
  backend: string;
  accepted: number;
  staleRefused: number;
  counter: number;
  kills: number;
  stops: number;
}

async function soak(backend: string, base: string): Promise<Outcome> {
  const url = new URL(base);
  url.searchParams.set('namespace', `soak${randomBytes(4).toString('hex')}`);
  let counter = 0;
  let maxFence = -1n;
  let accepted = 0;
  let staleRefused = 0;
  let kills = 0;
  let stops = 0;
  const members: ChildProcess[] = [];

  const spawnMember = (slot: number): void => {
    const child = fork(worker, [url.href, `m${slot}-${kills}`, String(ttl)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.on('message', (message: { id?: number; op?: 'read' | 'write'; fence?: string; value?: number }) => {
      if (message.id === undefined) return;
      const fence = BigInt(message.fence as string);
      let reply: number | boolean | null;
      if (fence < maxFence) {
        staleRefused++;
        reply = message.op === 'read' ? null : false;
      } else {
        maxFence = fence;
        if (message.op === 'read') reply = counter;
        else {
          counter = message.value as number;
          accepted++;
          reply = true;
        }
      }
      if (child.connected) child.send({ id: message.id, reply });
    });
    members[slot] = child;
  };
  for (let slot = 0; slot < processes; slot++) spawnMember(slot);

  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 250));
    const slot = Math.floor(Math.random() * processes);
    const victim = members[slot] as ChildProcess;
    if (Math.random() < 0.5) {
      kills++;
      victim.kill('SIGKILL');
      spawnMember(slot);
    } else {
      stops++;
      victim.kill('SIGSTOP');
      setTimeout(() => victim.kill('SIGCONT'), ttl * (1 + Math.random()));
    }
  }
  await new Promise((resolve) => setTimeout(resolve, ttl * 2.1)); // every SIGCONT has landed
  for (const child of members) child.kill('SIGKILL');
  return { backend, accepted, staleRefused, counter, kills, stops };
}

const rows: Outcome[] = [];
for (const [backend, find] of [
  ['redis', sharedRedis],
  ['postgresql', sharedPostgres],
] as const) {
  const base = await find();
  if (base === undefined) {
    console.log(`${backend}: no server found or started; skipped`);
    continue;
  }
  rows.push(await soak(backend, base));
}
table(
  `Fault soak: ${processes} processes, ${seconds} s each, lease ${ttl} ms, random SIGKILL (restarted) and SIGSTOP (1–2 × lease)`,
  rows.map((r) => ({
    backend: r.backend,
    'SIGKILL / SIGSTOP': `${r.kills} / ${r.stops}`,
    'writes accepted': String(r.accepted),
    'stale refused': String(r.staleRefused),
    'lost updates': String(r.accepted - r.counter),
  })),
);
const lost = rows.some((r) => r.accepted !== r.counter);
if (lost) console.log('LOST UPDATES: the fence did not protect the counter');
process.exit(lost ? 1 : 0);
