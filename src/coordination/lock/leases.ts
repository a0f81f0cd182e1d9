/**
 * One renewal loop per coordinator: every grant it holds is renewed in one batch (one Redis
 * pipeline, one PostgreSQL round trip, the etcd session's keep-alive), with no timer and no
 * child actor per grant.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { Clock } from '../../clock.ts';
import { getLogger } from '../../logger.ts';
import { telemetry } from '../../telemetry/hooks.ts';
import type { Backend } from '../types.ts';
import { leaseDeadline, type Grant } from './grant.ts';

/** When each grant is next due for renewal (a third of its lease after the last one). */
const renewAt = new WeakMap<Grant, number>();

export class LeaseKeeper {
  readonly #grants = new Set<Grant>();
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #backend: () => Backend | undefined;
  #timer: unknown;
  #renewing = false;

  constructor(clock: Clock, ttlMs: number, backend: () => Backend | undefined) {
    this.#clock = clock;
    this.#ttlMs = ttlMs;
    this.#backend = backend;
  }

  /** How many grants the loop keeps. */
  get size(): number {
    return this.#grants.size;
  }

  /** Keeps `grant`'s lease from now on; `sentAt` is when the request that granted it was sent. */
  add(grant: Grant, sentAt: number): void {
    renewAt.set(grant, sentAt + this.#ttlMs / 3);
    this.#grants.add(grant);
    this.#arm();
  }

  /** Stops keeping `grant` (released or lost). */
  delete(grant: Grant): void {
    if (!this.#grants.delete(grant)) return;
    if (this.#grants.size === 0) this.#disarm();
  }

  /** The grants kept now. */
  grants(): Grant[] {
    return [...this.#grants];
  }

  /**
   * One timer for the loop: at the earliest renewal due, or, while a renewal is on its way,
   * at the earliest deadline, so that a renewal that never answers still loses on time.
   */
  #arm(): void {
    this.#disarm();
    if (this.#grants.size === 0) return;
    let at = Infinity;
    for (const grant of this.#grants) at = Math.min(at, grant.deadline, this.#renewing ? Infinity : (renewAt.get(grant) ?? 0));
    // Whole milliseconds: Node keeps one list per distinct delay, and an unref'd timer's list stays
    // (empty) until its delay has passed even when the timer is cleared, so a fractional delay per
    // grant left one list per grant alive for a third of the TTL (20k a second under load).
    const timer = this.#clock.setTimeout(() => this.#tick(), Math.max(0, Math.ceil(at - this.#clock.now())));
    // A coordinator's upkeep must not hold an otherwise finished program open.
    (timer as { unref?: () => void } | null)?.unref?.();
    this.#timer = timer;
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    for (const grant of [...this.#grants]) if (now >= grant.deadline) grant.lose('the lease ran out before it could be renewed');
    if (!this.#renewing && [...this.#grants].some((grant) => (renewAt.get(grant) ?? 0) <= now)) void this.#renewAll();
    else this.#arm();
  }

  async #renewAll(): Promise<void> {
    const backend = this.#backend();
    const batch = [...this.#grants];
    if (backend === undefined || batch.length === 0) return this.#arm();
    this.#renewing = true;
    const sentAt = this.#clock.now();
    this.#arm();
    let kept: readonly boolean[] | undefined;
    try {
      kept =
        backend.renewAll !== undefined
          ? await backend.renewAll(batch, this.#ttlMs)
          : await Promise.all(batch.map((grant) => backend.renew(grant.name, grant.token, this.#ttlMs)));
    } catch (error) {
      if (telemetry.enabled) telemetry.sink.leaseRenewFailure();
      // Keep trying; each grant's local deadline decides when its lease is gone.
      getLogger().warn(`renewing ${batch.length} distributed lock lease(s) failed; retrying`, {
        error: error instanceof Error ? error.message : String(error),
      });
      const retryAt = this.#clock.now() + Math.min(this.#ttlMs / 10, 1_000);
      for (const grant of batch) renewAt.set(grant, retryAt);
    }
    this.#renewing = false;
    if (kept !== undefined) {
      const now = this.#clock.now();
      batch.forEach((grant, i) => {
        if (!grant.live) return;
        if (kept[i] !== true) grant.lose('the backend refused to renew the lease (it expired or was broken)');
        else if (now >= grant.deadline) grant.lose('the lease ran out before it could be renewed');
        else {
          grant.deadline = leaseDeadline(sentAt, this.#ttlMs);
          renewAt.set(grant, sentAt + this.#ttlMs / 3);
        }
      });
    }
    this.#arm();
  }
}
