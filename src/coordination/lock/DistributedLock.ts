/**
 * `DistributedLock`: a named lock of a coordinator, the thin client of the coordinator's
 * actor. `acquire` sends `statesmith.coordinator.acquire` and holds the grant the actor
 * answers with; the actor keeps it in its context, and its renewal loop keeps its lease.
 *
 * @module
 */
import { kError, type CoordinatorReply } from '../../../machines/coordinator.machine.ts';
import { ArgumentTypeError, DeadlockError } from '../../errors.ts';
import { askReply } from '../../runtime/askReply.ts';
import { optionalDuration, optionalObject, optionalSignal, requireNonEmptyString } from '../../runtime/validate.ts';
import { checkLockName } from '../backends/common.ts';
import type { Coordinator } from '../Coordinator.ts';
import { acquireBudget, kGrant, kVia, type AcquireVia } from '../engine.ts';
import type { DistributedAcquireOptions, DistributedLockHandle } from '../types.ts';
import { kDistributedLock } from './forcing.ts';
import type { Grant } from './grant.ts';

/**
 * In-process, a failed acquire rejects with the error the wait itself threw: the signal's
 * reason, a `CoordinationError`, an `ActorStoppedError` (the loop already gave each a code).
 */
const inProcessFailure = {
  type: 'statesmith.coordinator.failed',
  error: (reply: unknown): unknown => (reply as { [kError]?: unknown })[kError],
};

/**
 * A named distributed lock, as tooz's: exclusive, not re-entrant, a new object per
 * `getLock()` call (objects of one name contend). Waiters of one process queue in FIFO
 * order in front of the backend.
 *
 * @example
 * ```ts
 * import { createCoordinator } from 'statesmith';
 * await using coordinator = createCoordinator();
 * await coordinator.start();
 * const a = coordinator.getLock('snapshot-3');
 * const b = coordinator.getLock('snapshot-3');
 * const held = await a.acquire();
 * console.log(await b.acquire({ blocking: false }), await b.acquire({ blocking: 20 })); // null null
 * await held?.release();
 * const next = await b.acquire({ blocking: false });
 * console.log(next?.fence, await a.release(), await b.release()); // 2n false true
 * ```
 */
export class DistributedLock {
  /** Tells the locksmith this is a distributed lock. @internal */
  readonly [kDistributedLock] = true as const;
  readonly #base: string;
  /** The coordinator, or (for a lock made without one) how to find the default one when used. */
  readonly #coordinator: Coordinator | (() => Coordinator);
  #handle: Grant | undefined;

  /**
   * @internal Use `coordinator.getLock(name)` or `new Lock(template, data)`. `name` is
   * without the coordinator's prefix: the lock adds it, so every way of naming a lock
   * (`getLock`, `Lock`, `synchronized`) means the same lock.
   */
  constructor(name: string, coordinator: Coordinator | (() => Coordinator)) {
    this.#base = requireNonEmptyString('name', name);
    const known = typeof coordinator === 'object' && coordinator !== null && typeof (coordinator as { getLock?: unknown }).getLock === 'function';
    if (!known && typeof coordinator !== 'function') throw new ArgumentTypeError('coordinator', 'a Coordinator', coordinator);
    this.#coordinator = coordinator;
    if (typeof coordinator !== 'function') checkLockName(coordinator.prefix + name);
  }

  /**
   * The lock's full name: its coordinator's prefix, then the name it was given. A lock
   * made without a coordinator takes the default coordinator's prefix.
   */
  get name(): string {
    return this.coordinator.prefix + this.#base;
  }

  /** The coordinator this lock goes through (the default one when none was given). */
  get coordinator(): Coordinator {
    const coordinator = this.#coordinator;
    return typeof coordinator === 'function' ? coordinator() : coordinator;
  }

  /** True while this object holds the lock (false from the first read after its lease ran out). */
  get held(): boolean {
    return this.#handle?.held === true;
  }

  /**
   * Takes the lock. Resolves with a handle, or `null` when it was not acquired
   * (`blocking: false` and held, or the `blocking`/`timeoutMs` bound ran out). Rejects
   * with `signal.reason` when aborted, and with a `CoordinationError` when the backend
   * fails. A second acquire through the same object while it holds the lock is refused:
   * `null` when not blocking, a `DeadlockError` otherwise. It never resolves a handle
   * whose lease already ran out (a reply that came back after the TTL is given back).
   */
  async acquire(options?: DistributedAcquireOptions): Promise<DistributedLockHandle | null> {
    const opts = optionalObject<DistributedAcquireOptions>('options', options, ['blocking', 'timeoutMs', 'signal']);
    const signal = optionalSignal('options.signal', opts.signal);
    const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    const budget = acquireBudget(opts.blocking, timeoutMs);
    signal?.throwIfAborted();
    if (this.#handle?.held === true) {
      if (budget !== Infinity) return null;
      throw new DeadlockError(`${this.name} is already held through this lock object and is not re-entrant; waiting for it would never end`);
    }
    const given = this.#coordinator;
    const coordinator = typeof given === 'function' ? given() : given;
    checkLockName(coordinator.prefix + this.#base);
    if (typeof given === 'function') await coordinator.start();
    // Not connected: refused at once, unless reconnecting with time to wait, which the actor waits through.
    if (coordinator.state !== 'reconnecting' || budget === 0) coordinator.backend(); // throws when not connected
    // The actor takes the grant and keeps it: this object only asks, and holds the handle it is given.
    const command = {
      type: 'statesmith.coordinator.acquire',
      lock: this.#base,
      blocking: budget === Infinity ? true : budget,
      [kVia]: { owner: this, signal } satisfies AcquireVia,
    };
    const reply = await askReply<CoordinatorReply>(
      coordinator.actor,
      command,
      ['statesmith.coordinator.acquired', 'statesmith.coordinator.notAcquired'],
      inProcessFailure,
    );
    if (reply.type !== 'statesmith.coordinator.acquired') return null;
    const grant = (reply as { [kGrant]?: Grant })[kGrant] as Grant;
    this.#handle = grant;
    return grant;
  }

  /** Releases the hold this object has; false when it holds nothing. Errors are logged, not thrown. */
  async release(): Promise<boolean> {
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle === undefined) return false;
    return handle.release();
  }
}
