/**
 * The wait for one grant, as the coordinator's engine runs it for an `acquire` command:
 * first in line in this process (a FIFO queue per name), then the backend, looking again
 * when a release is heard, at each poll, and through a reconnect.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { Clock } from '../../clock.ts';
import { CoordinationError, TimeoutError } from '../../errors.ts';
import { inspection } from '../../inspect/capture.ts';
import type { LockHandle } from '../../locks/LockHandle.ts';
import type { Mutex } from '../../locks/Mutex.ts';
import { getLogger } from '../../logger.ts';
import { telemetry } from '../../telemetry/hooks.ts';
import { messageOf } from '../options.ts';
import type { Backend, BackendKind, CoordinatorState } from '../types.ts';
import { Grant, leaseDeadline, type GrantHost } from './grant.ts';

/** What the wait needs of the coordinator's engine. */
export interface AcquireHost extends GrantHost {
  readonly state: CoordinatorState;
  readonly kind: BackendKind;
  readonly pollIntervalMs: number;
  backend(): Backend;
  requireRunning(): void;
  nextToken(): string;
  queue(name: string): Mutex;
  dropQueue(name: string): void;
  contending(delta: 1 | -1): void;
  waitForRelease(name: string, ms: number, signal: AbortSignal | undefined): Promise<void>;
  /** A grant begins: the renewal loop keeps it, and the actor's `grants` list it (told now when `announce`, else with the command's answer). */
  granted(grant: Grant, sentAt: number, announce: boolean): void;
}

/** How long an acquire may wait: `blocking` (`true`, `false` or ms) and `timeoutMs`, the earlier bound. */
export interface AcquireWait {
  readonly budget: number;
  readonly signal?: AbortSignal | undefined;
  /** Who waits in the local queue (the `DistributedLock` object; the actor for a command). */
  readonly owner: object;
  /** Tell the actor of the grant at once (a grant the engine takes for itself); a command's answer tells it otherwise. */
  readonly announce: boolean;
}

/**
 * Takes `name` (prefix included) for this process: the grant, or null when the budget ran
 * out. Rejects with `signal.reason` when aborted, with a `CoordinationError` when the
 * backend fails or the coordinator is not connected (a reconnect is waited through when
 * there is time to wait).
 */
export async function acquireGrant(host: AcquireHost, name: string, wait: AcquireWait): Promise<Grant | null> {
  const { budget, signal } = wait;
  const clock: Clock = host.clock;
  const started = clock.now();
  getLogger().debug(`acquiring lock ${name}`);
  // First in line in this process...
  const queue = host.queue(name);
  let local: LockHandle;
  try {
    local = await queue.acquire({ owner: wait.owner, ...(signal ? { signal } : {}), timeoutMs: budget });
  } catch (error) {
    host.dropQueue(name);
    if (error instanceof TimeoutError) return null;
    throw error;
  }
  // ...then the backend.
  const token = host.nextToken();
  host.contending(1);
  try {
    for (;;) {
      signal?.throwIfAborted();
      // A coordinator actor stopped under the wait (not through stop()): no grant can come.
      host.requireRunning();
      const sentAt = clock.now();
      let fence: bigint | null = null;
      if (host.state === 'connected') {
        const backend = host.backend();
        try {
          fence = await backend.tryAcquire(name, token, host.lockTtlMs);
        } catch (error) {
          // The script may have run even though its reply was lost: give back whatever
          // this token may hold (a compare-and-delete never frees another holder's lock).
          void backend.release(name, token).catch(() => undefined);
          // A connection lost meanwhile: wait for the reconnect like for a release.
          if (host.state === 'connected') {
            throw new CoordinationError('ERR_COORDINATION_BACKEND', `acquiring ${name} failed: ${messageOf(error)}`, { cause: error });
          }
        }
      }
      if (fence !== null && (signal?.aborted === true || clock.now() >= leaseDeadline(sentAt, host.lockTtlMs))) {
        // Aborted while the grant was on its way, or the reply came back after the lease
        // could have run out (a frozen process): the grant is worthless; give it back.
        await host
          .backend()
          .release(name, token)
          .catch(() => false);
        signal?.throwIfAborted();
        getLogger().warn(`lock ${name} was granted after its lease could have run out; gave it back`);
        fence = null;
      }
      if (fence === null && host.state !== 'connected' && (budget === 0 || host.state !== 'reconnecting')) {
        throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${host.memberId} is ${host.state}, not connected`);
      }
      if (fence !== null) {
        const grant = new Grant(host, host.backend(), name, token, fence, sentAt, local);
        host.granted(grant, sentAt, wait.announce);
        getLogger().debug(`acquired lock ${name} (waited ${Math.round(clock.now() - started)} ms, fence ${fence})`);
        return grant;
      }
      const remaining = budget - (clock.now() - started);
      if (remaining <= 0) {
        local.release();
        host.dropQueue(name);
        return null;
      }
      // The locks view: held elsewhere, and how many of this process wait for it (this one, and those queued behind).
      if (inspection.enabled) inspection.lock({ lock: `distributed:${name}`, kind: host.kind, op: 'waiting', waiters: queue.waiting + 1 });
      await host.waitForRelease(name, Math.min(remaining, host.pollIntervalMs), signal);
    }
  } catch (error) {
    // Never keep the local place after giving up.
    local.release();
    host.dropQueue(name);
    throw error;
  } finally {
    host.contending(-1);
  }
}

/** Runs one acquire of `name` inside a telemetry span (and the waiters gauge), when telemetry is on. */
export async function measuredAcquire<T extends { readonly fence: bigint } | null>(name: string, acquire: () => Promise<T>): Promise<T> {
  if (!telemetry.enabled) return acquire();
  const span = telemetry.sink.lockAcquire('distributed', name);
  telemetry.sink.lockWaiters('distributed', 1);
  try {
    const handle = await acquire();
    if (handle !== null) span.setAttribute('statesmith.lock.fence', String(handle.fence));
    span.end(handle === null ? 'timeout' : 'acquired');
    return handle;
  } catch (error) {
    span.end(error instanceof CoordinationError ? 'error' : 'aborted', error);
    throw error;
  } finally {
    if (telemetry.enabled) telemetry.sink.lockWaiters('distributed', -1);
  }
}
