/**
 * `host()`: force a lock, take it, run an emergency task holding it, and always give it
 * back. Run by the locksmith actor's `host` operation, whose own force runs inside it (a
 * record, or the operation's `force-<id>` child while an inspector captures).
 *
 * Internal to statesmith (not exported from the package).
 */
import { CancelledError, TimeoutError } from '../errors.ts';
import { isCancellation } from '../runtime/cancellation.ts';
import { raceSignal } from '../runtime/deferred.ts';
import type { LocksmithEngine } from './engine.ts';
import type { ForceRunHandle } from './locksmithLogic.ts';
import { lockKindOf, type HostHold, type LockKind } from './lockKinds.ts';
import type { HostOptions } from './Locksmith.ts';
import type { ForceResult } from './results.ts';

/**
 * The values a hosted task's run rejected with because it was cancelled (its signal aborted
 * and it ended with the reason, an AbortError or a CancelledError): its `hosted` reply says
 * `cancelled`, not `failed`.
 */
export const hostCancellations = new WeakSet<object>();

/** How a force learns it runs for a hosting (in-process). */
export const kHost: unique symbol = Symbol('statesmith.locksmith.host');

/** Who holds a lock on behalf of a task that `host()` runs. */
class HostedTask {
  readonly locksmith: string;
  readonly lock: string;
  constructor(locksmith: string, lock: string) {
    this.locksmith = locksmith;
    this.lock = lock;
  }
  toString(): string {
    return `task hosted by ${this.locksmith} under ${this.lock}`;
  }
}

/** What `host()` tells its force, so the force never releases the host's own hold (hazard H5). */
export interface HostRecord {
  readonly owner: HostedTask;
  holding: boolean;
}

/**
 * The hosting itself, run by the locksmith actor's `host` operation. Its force is `run`, the
 * operation's own: the actor counts it among its forces and shows it while it runs, and it is
 * not a second command through the actor's mailbox.
 */
export async function hostNow(
  engine: LocksmithEngine,
  run: ForceRunHandle,
  task: (signal: AbortSignal) => unknown,
  lock: object,
  options: Readonly<Record<string, unknown>>,
): Promise<unknown> {
  const opts = options as HostOptions;
  const kind = lockKindOf(lock) as LockKind;
  const signal = opts.signal;
  const forceTimeoutMs = opts.forceTimeoutMs ?? 1000;
  const acquireTimeoutMs = opts.acquireTimeoutMs ?? 100;
  const taskTimeoutMs = opts.taskTimeoutMs ?? Infinity;
  const answerTimeoutMs = opts.answerTimeoutMs ?? forceTimeoutMs / 2;
  const purgeWaiters = opts.purgeWaiters ?? false;
  throwIfAborted(signal);
  const clock = engine.clock;
  const name = kind.describe(lock);
  const record: HostRecord = { owner: new HostedTask(engine.name, name), holding: false };

  // One controller for the force and the acquire: aborting it (a deadline, the caller's
  // signal, a failure) ends the force and withdraws the acquire, which then can never
  // take the lock (H4).
  const stage = new AbortController();
  const onAbort = (): void => stage.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const bound = (ms: number, message: () => string): unknown =>
    Number.isFinite(ms) ? clock.setTimeout(() => stage.abort(new TimeoutError(message())), ms) : undefined;
  const unbound = (timer: unknown): void => void (timer !== undefined && clock.clearTimeout(timer));

  // Queue first (at the front of a Mutex's line), so the freed lock comes straight here.
  let hold: HostHold | undefined;
  const acquiring = kind.acquire(lock, record.owner, stage.signal).then((taken): HostHold => {
    hold = taken;
    record.holding = true;
    // A lock kind that grants after the withdrawal: give it straight back.
    if (stage.signal.aborted) {
      taken.release();
      throw stage.signal.reason;
    }
    return taken;
  });
  acquiring.catch(() => undefined);

  let taken: HostHold;
  try {
    let result: ForceResult;
    let timer = bound(forceTimeoutMs, () => `${engine.name}.host: forcing ${name} took longer than ${forceTimeoutMs} ms`);
    try {
      const force: Record<string | symbol, unknown> = { purgeWaiters, signal: stage.signal, answerTimeoutMs, [kHost]: record };
      if ('owner' in opts) force.owner = opts.owner;
      if ('info' in opts) force.info = opts.info;
      result = await engine.forceNow(run, lock, force);
    } finally {
      unbound(timer);
    }
    if (hold !== undefined && !stage.signal.aborted) {
      // The force handed the lock straight to the host's acquire.
      taken = hold;
    } else {
      timer = bound(acquireTimeoutMs, () => `${engine.name}.host: failed to acquire ${name} within ${acquireTimeoutMs} ms (force result: ${result.name})`);
      try {
        taken = await raceSignal(acquiring, stage.signal);
      } finally {
        unbound(timer);
      }
    }
  } catch (error) {
    stage.abort(error);
    (hold as HostHold | undefined)?.release();
    signal?.removeEventListener('abort', onAbort);
    throw error;
  }

  engine.calls.patchOwner(record.owner, lock);
  // The task's signal is the stage's: it aborts with the caller's signal, at the task
  // deadline, or when the lock is taken from the task in turn (the hold adopts it).
  let timedOut = false;
  let relayed: AbortSignal | undefined;
  const relay = (): void => stage.abort(relayed?.reason);
  if (taken.adopt?.(stage) !== true) {
    relayed = taken.signal;
    relayed?.addEventListener('abort', relay, { once: true });
  }
  const timer = Number.isFinite(taskTimeoutMs)
    ? clock.setTimeout(() => {
        timedOut = true;
        stage.abort(new TimeoutError(`${engine.name}.host: the task under ${name} ran longer than ${taskTimeoutMs} ms`));
      }, taskTimeoutMs)
    : undefined;
  const taskSignal = stage.signal;
  const cleanup = (): void => {
    unbound(timer);
    relayed?.removeEventListener('abort', relay);
    signal?.removeEventListener('abort', onAbort);
  };
  try {
    return await engine.calls.wrapTask(task, taskSignal, record.owner);
  } catch (error) {
    if (timedOut && error !== taskSignal.reason) {
      throw new TimeoutError(`${engine.name}.host: the task under ${name} ran longer than ${taskTimeoutMs} ms`, { cause: error });
    }
    if (!timedOut && isCancellation(error, taskSignal)) {
      // Cancelled (the caller's signal, or the lock taken from the task): the caller hears why, as every wait does.
      const reason: unknown = taskSignal.reason;
      const thrown =
        reason !== null && typeof reason === 'object'
          ? reason
          : new CancelledError(`${engine.name}.host: the task under ${name} was cancelled (${String(reason)})`, { cause: error });
      hostCancellations.add(thrown);
      throw thrown;
    }
    throw error;
  } finally {
    cleanup();
    taken.release();
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}
