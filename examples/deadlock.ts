/**
 * A deadlock broken by a locksmith (asyncutils' LocksmithBase, by negotiation).
 *
 * Two jobs of a volume manager each take one lock and then wait for the other's:
 * `resize` holds `disks` and waits for `volumes`; `snapshot` holds `volumes` and waits
 * for `disks`. Neither can move. Both serve force requests, and each passes its first
 * lock's handle signal to its second acquire, so losing the first lock ends the wait.
 *
 * A watchdog sees both locks held with a waiter each, and hosts a cleanup under `disks`:
 * the locksmith asks `resize` to give `disks` up, takes it, and runs the cleanup, which
 * in turn forces `volumes` from `snapshot`. Both jobs end with a LockLostError saying who
 * took their lock and why. Run: node --conditions=statesmith-source --import tsx examples/deadlock.ts
 */
import { currentOwner, LockLostError, Locksmith, Mutex, serveLockForceRequests, setLogger, TaskGroup, type LogFields } from 'statesmith';

const say = (who: string, what: string): void => console.log(`${who.padEnd(9)} ${what}`);
const log = (message: string, fields?: LogFields): void => say('log', `${message}${fields?.['answer'] ? ` (${String(fields['answer'])})` : ''}`);
setLogger({ debug: () => undefined, info: log, warn: log, error: log });

const disks = new Mutex({ name: 'disks' });
const volumes = new Mutex({ name: 'volumes' });

// Both jobs take their first lock before either asks for its second: a sure deadlock.
let holding = 0;
let bothHold!: () => void;
const bothHolding = new Promise<void>((resolve) => (bothHold = resolve));

async function job(name: string, first: Mutex, second: Mutex, signal: AbortSignal): Promise<string> {
  const stop = serveLockForceRequests(currentOwner(), (request) => {
    say(name, `asked by ${request.requester} to give up ${first.name}: ${String(request.info)}`);
    return { answer: `${name} gives up ${first.name}` };
  });
  try {
    using firstHeld = await first.acquire();
    say(name, `holds ${first.name}`);
    if (++holding === 2) bothHold();
    await bothHolding;
    say(name, `waits for ${second.name}`);
    using _secondHeld = await second.acquire({ signal: AbortSignal.any([firstHeld.signal, signal]) });
    return `${name} finished`;
  } finally {
    stop();
  }
}

const group = new TaskGroup({ uniqueId: 'volume-manager' });
const resize = group.createTask((signal) => job('resize', disks, volumes, signal), { name: 'resize', logException: false });
const snapshot = group.createTask((signal) => job('snapshot', volumes, disks, signal), { name: 'snapshot', logException: false });

await bothHolding;
await new Promise((resolve) => setImmediate(resolve));
say('watchdog', `disks: held, ${disks.waiting} waiting; volumes: held, ${volumes.waiting} waiting: deadlock`);

const smith = new Locksmith({ name: 'watchdog' });
await smith.recognize(disks);
await smith.recognize(volumes);
const info = 'deadlock: resize waits for volumes, snapshot waits for disks';
const report = await smith.host(
  async () => {
    say('cleanup', `runs holding disks (owner: ${String(disks.owner)})`);
    const result = await smith.force(volumes, { info });
    say('cleanup', `forced volumes: ${String(result)}`);
    return 'volume table repaired';
  },
  disks,
  { info, forceTimeoutMs: 1_000 },
);
say('watchdog', `host() returned: ${report}`);

for (const task of [resize, snapshot]) {
  await task.wait().catch(() => undefined);
  const error = task.error as LockLostError;
  say(task.name.split(':').at(-1) ?? task.name, `ended with ${error.code}: ${error.message}`);
}
// stop() reports the jobs' failures together, as a TaskGroupError.
await group.stop().catch((error: AggregateError) => say('watchdog', `group stopped; ${error.errors.length} failures reported`));
say('watchdog', `disks locked: ${disks.locked}, volumes locked: ${volumes.locked}`);
