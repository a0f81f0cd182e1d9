/**
 * Two processes sharing a distributed lock over Redis (OpenStack coordination, with fences).
 *
 * The parent starts two volume-manager processes. Each deletes volumes 7 and 8 twice,
 * three steps per delete, holding the lock `delete-volume-<id>`: a delete of one volume
 * never overlaps another delete of the same volume, whichever process runs it, and each
 * grant's fence (what a storage backend would check) grows. Run it with a Redis on
 * REDIS_URL (default redis://127.0.0.1:6379): node --conditions=statesmith-source --import tsx examples/redis-lock.ts
 */
import { fork } from 'node:child_process';
import { createCoordinator, setLogger } from 'statesmith';

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const role = process.argv[2];

if (role === undefined) {
  // The parent: a namespace of its own per run, so old keys never interfere.
  const namespace = `example-${process.pid}`;
  const children = ['manager-a', 'manager-b'].map((name) =>
    fork(new URL(import.meta.url), [name, namespace], { execArgv: process.execArgv, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] }),
  );
  const lines: string[] = [];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve, reject) => {
          child.stdout?.on('data', (chunk: Buffer) => lines.push(...chunk.toString().trim().split('\n')));
          child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`a manager exited with ${code}`))));
        }),
    ),
  );
  // Interleave by time, as a reader of both logs would.
  lines.sort();
  for (const line of lines) console.log(line.slice(line.indexOf(' ') + 1));
  // Check what the example claims: per volume, deletes never overlap and fences grow.
  for (const volume of ['7', '8']) {
    const events = lines.map((l) => l.split(' ')).filter((p) => p[3] === `volume-${volume}`);
    let inside = 0;
    let lastFence = 0n;
    for (const [, , , , step, fence] of events) {
      if (step === 'start') {
        inside++;
        if (BigInt(fence as string) <= lastFence) throw new Error('a fence did not grow');
        lastFence = BigInt(fence as string);
      }
      if (step === 'done') inside--;
      if (inside > 1) throw new Error(`two deletes of volume ${volume} overlapped`);
    }
  }
  console.log('no overlapping deletes; fences grew with every grant');
} else {
  setLogger({ debug() {}, info() {}, warn() {}, error: (m) => process.stderr.write(`${m}\n`) });
  const coordinator = createCoordinator({ url: `${url}?namespace=${process.argv[3]}`, prefix: 'volumes-', agentId: role, lockTtlMs: 5_000 });
  await coordinator.start();
  const stamp = (): string => process.hrtime.bigint().toString().padStart(20, '0');
  for (const id of ['7', '8', '7', '8']) {
    // One lock per volume: deletes of different volumes may run at once.
    await using handle = await coordinator.getLock(`delete-volume-${id}`).acquire();
    if (handle === null) throw new Error('a blocking acquire returned null');
    // The fence goes with every write to the storage backend, which refuses stale ones.
    console.log(`${stamp()} ${role} deletes volume-${id} start ${handle.fence}`);
    for (let step = 1; step <= 3; step++) await new Promise((resolve) => setTimeout(resolve, 10));
    console.log(`${stamp()} ${role} deletes volume-${id} done ${handle.fence}`);
  }
  await coordinator.stop();
}
