/**
 * One member of the fault soak: increments the driver's counter under a distributed
 * lock, forever, passing its fence with every read and write. The driver (the fenced
 * store) refuses stale fences; this process is SIGKILLed and SIGSTOPped at random.
 */
import { createCoordinator, setLogger } from '../src/index.ts';

const [url, agentId, ttl] = process.argv.slice(2) as [string, string, string];
setLogger({ debug() {}, info() {}, warn() {}, error: (m) => process.stderr.write(`${agentId}: ${m}\n`) });

let next = 0;
const pending = new Map<number, (reply: unknown) => void>();
process.on('message', (message: { id: number; reply: unknown }) => {
  pending.get(message.id)?.(message.reply);
  pending.delete(message.id);
});
/** A request to the store in the driver process. */
function ask(request: { op: 'read' | 'write'; fence: string; value?: number }): Promise<unknown> {
  const id = ++next;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    process.send?.({ id, ...request });
  });
}

const coordinator = createCoordinator({ url, agentId, lockTtlMs: Number(ttl), heartbeatMs: Number(ttl) / 3, pollIntervalMs: 50 });
await coordinator.start();
const lock = coordinator.getLock('soak-counter');
process.send?.({ ready: true });
for (;;) {
  const handle = await lock.acquire({ timeoutMs: 10_000 }).catch(() => null);
  if (handle === null) continue;
  const fence = handle.fence.toString();
  const value = (await ask({ op: 'read', fence })) as number | null;
  if (value !== null) {
    // Work on the value for a while: a SIGSTOP that lands here outlives the lease.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 100));
    await ask({ op: 'write', fence, value: value + 1 });
  }
  await handle.release();
  // Think time: a lock is not fair across processes, and the releaser would take it back
  // before the others' wake-up arrives.
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 30));
}
