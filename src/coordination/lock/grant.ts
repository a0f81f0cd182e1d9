/**
 * One grant of a distributed lock: what `DistributedLock.acquire` hands out. Its lease is
 * kept by its coordinator's one renewal loop (`LeaseKeeper`); the grant holds the deadline,
 * and whoever reads `held` or `signal` after a stall checks that deadline first.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { Clock } from '../../clock.ts';
import { CoordinationError, LockLostError, asBackendError } from '../../errors.ts';
import { inspection, lateReporters } from '../../inspect/capture.ts';
import type { LockHandle } from '../../locks/LockHandle.ts';
import { getLogger } from '../../logger.ts';
import { telemetry } from '../../telemetry/hooks.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../../runtime/deferred.ts';
import type { Backend, DistributedLockHandle } from '../types.ts';

/** What a grant needs of its coordinator's engine. */
export interface GrantHost {
  readonly clock: Clock;
  readonly lockTtlMs: number;
  readonly memberId: string;
  /** The grant ended (released or lost): the actor drops it and the renewal loop forgets it. */
  ended(grant: Grant): void;
}

/** The grants held in this process, for a capture that starts while they are held. */
const heldGrants = new Set<Grant>();

function reportHeldGrants(): void {
  for (const grant of heldGrants) grant.reportHeld();
}

/** The local end of a lease: the send time of the request that set it, plus the TTL, less a margin for clock drift. */
export function leaseDeadline(sentAt: number, ttlMs: number): number {
  return sentAt + ttlMs - Math.max(1, ttlMs * 0.02);
}

export class Grant implements DistributedLockHandle {
  readonly name: string;
  readonly fence: bigint;
  /** The token this grant holds the name with on the backend. */
  readonly token: string;
  /** Its id in the coordinator actor's `grants` (`grant-<n>`), once it is there. */
  id = '';
  readonly #host: GrantHost;
  readonly #backend: Backend;
  readonly #local: LockHandle;
  /** Made on first read of `signal` (most holders never read it); `#lost` is its reason if lost before. */
  #controller: AbortController | undefined;
  #lost: LockLostError | undefined;
  readonly #grantedAt: number;
  /** When the lease runs out here, unless renewed. */
  deadline: number;
  #state: 'held' | 'lost' | 'released' = 'held';
  #releasing: Promise<boolean> | undefined;

  constructor(host: GrantHost, backend: Backend, name: string, token: string, fence: bigint, sentAt: number, local: LockHandle) {
    this.#host = host;
    this.#backend = backend;
    this.name = name;
    this.token = token;
    this.fence = fence;
    this.#local = local;
    this.#grantedAt = host.clock.now();
    this.deadline = leaseDeadline(sentAt, host.lockTtlMs);
    heldGrants.add(this);
    lateReporters.add(reportHeldGrants);
    if (inspection.enabled) this.reportHeld();
  }

  /** The grant as the coordinator actor's `grants` list it. */
  record(): { readonly id: string; readonly lock: string; readonly fence: string } {
    return { id: this.id, lock: this.name, fence: String(this.fence) };
  }

  /** Reports this grant as held, for the locks view (a capture that starts while it is held, too). */
  reportHeld(): void {
    inspection.lock({ lock: `distributed:${this.name}`, kind: this.#backend.kind, op: 'held', holder: this.#host.memberId, fence: this.fence });
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#lost !== undefined) this.#controller.abort(this.#lost);
      else checkedOnRead(this.#controller.signal, this.expireIfDue);
    }
    this.expireIfDue();
    return this.#controller.signal;
  }

  get held(): boolean {
    this.expireIfDue();
    return this.#state === 'held';
  }

  /** Held, without looking at the deadline (the renewal loop's own view). */
  get live(): boolean {
    return this.#state === 'held';
  }

  /**
   * After a freeze (a blocked event loop, SIGSTOP) no timer has fired yet, but the lease
   * may be gone and another member may hold the lock: whoever looks first (`held`,
   * `signal.aborted`, `signal.reason`, `signal.throwIfAborted()`) loses it here.
   */
  readonly expireIfDue = (): void => {
    if (this.#state === 'held' && this.#host.clock.now() >= this.deadline) this.lose('the lease ran out before it could be renewed');
  };

  release(): Promise<boolean> {
    // Only the first release (of a lock still held) can free it; later calls answer false.
    if (this.#releasing !== undefined) return this.#releasing.then(() => false);
    this.#releasing = this.#release();
    return this.#releasing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  async isStillOwner(options?: WaitOptions): Promise<boolean> {
    const wait = waitOptions('options', options);
    wait.signal?.throwIfAborted();
    return boundedWait(this.#isStillOwner(), wait, this.#host.clock, `asking whether ${this.name} is still held`);
  }

  async #isStillOwner(): Promise<boolean> {
    if (!this.held) return false;
    if (this.#backend.isHolder === undefined)
      throw new CoordinationError('ERR_COORDINATION_BACKEND', `the ${this.#backend.kind} backend cannot say who holds a lock`);
    let owner: boolean;
    try {
      owner = await this.#backend.isHolder(this.name, this.token);
    } catch (error) {
      // The grant's lease or session ended under the question (its connection was cut): the loss shows first.
      if (!this.held) return false;
      throw asBackendError(`asking whether ${this.name} is still held`, error);
    }
    if (!owner) this.lose('the server says this grant no longer holds it');
    return owner && this.held;
  }

  async #release(): Promise<boolean> {
    const wasHeld = this.#state === 'held';
    if (wasHeld && telemetry.enabled) telemetry.sink.lockReleased('distributed', this.name, this.#host.clock.now() - this.#grantedAt);
    this.#state = 'released';
    // Also after a loss: if the lease is still ours server-side, free it for the next holder.
    const releasing = this.#backend.release(this.name, this.token);
    // On a backend that runs commands in order, the bookkeeping (the actor's grants, the next
    // local waiter) overlaps the round trip: whatever this process sends next runs after it.
    const early = this.#backend.ordered === true;
    if (early) this.#end();
    let freed = false;
    try {
      freed = await releasing;
    } catch (error) {
      getLogger().error(`releasing distributed lock ${this.name} failed`, { error });
    }
    if (!early) this.#end();
    getLogger().debug(`released lock ${this.name} (held ${Math.round(this.#host.clock.now() - this.#grantedAt)} ms)`);
    return wasHeld && freed;
  }

  /** The lease is gone: the signal aborts with a `LockLostError` saying why. */
  lose(info: string, reason: 'lease' | 'connection' = 'lease'): void {
    if (this.#state !== 'held') return;
    this.#state = 'lost';
    if (telemetry.enabled) telemetry.sink.lockLost('distributed', reason);
    getLogger().warn(`distributed lock ${this.name} lost: ${info}`);
    this.#lost = new LockLostError(this.name, `the ${this.#backend.kind} backend`, info);
    this.#controller?.abort(this.#lost);
    // Give the server-side lease back if it is still ours (a frozen holder's may be), then let the next local waiter in.
    this.#releasing = this.#backend
      .release(this.name, this.token)
      .catch(() => false)
      .then(() => {
        this.#end();
        return false;
      });
  }

  #end(): void {
    heldGrants.delete(this);
    if (inspection.enabled) {
      // A loss says why (who broke it, when the server knows; else what the holder saw), never just "lost".
      const lost = this.#state === 'lost';
      inspection.lock({
        lock: `distributed:${this.name}`,
        kind: this.#backend.kind,
        op: lost ? 'lost' : 'free',
        fence: this.fence,
        ...(lost && this.#lost !== undefined ? { by: this.#lost.message } : {}),
      });
    }
    this.#local.release();
    this.#host.ended(this);
  }
}

const signalProto = AbortSignal.prototype;
const nativeAborted = Object.getOwnPropertyDescriptor(signalProto, 'aborted')?.get as (this: AbortSignal) => boolean;
const nativeReason = Object.getOwnPropertyDescriptor(signalProto, 'reason')?.get as (this: AbortSignal) => unknown;

/**
 * Makes every read of `signal`'s state run `check` first, so a check that aborts the
 * signal is seen by that very read. Listeners still hear the abort from the timer.
 */
function checkedOnRead(signal: AbortSignal, check: () => void): void {
  Object.defineProperties(signal, {
    aborted: {
      configurable: true,
      get(this: AbortSignal) {
        check();
        return nativeAborted.call(this);
      },
    },
    reason: {
      configurable: true,
      get(this: AbortSignal) {
        check();
        return nativeReason.call(this);
      },
    },
    throwIfAborted: {
      configurable: true,
      value(this: AbortSignal) {
        check();
        signalProto.throwIfAborted.call(this);
      },
    },
  });
}
