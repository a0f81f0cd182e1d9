/**
 * `Election`, the thin client of a group's election actor, and the `Leadership` it hands
 * out. The election itself (its engine and actor logic) is `electionLogic.ts`.
 *
 * @module
 */
import { Observable } from 'rxjs';
import type { AnyActorRef } from 'xstate';
import { kElectionError, type ElectionReply } from '../../../machines/election.machine.ts';
import { CoordinationError, LeadershipLostError, asBackendError } from '../../errors.ts';
import { getLogger } from '../../logger.ts';
import { askReply } from '../../runtime/askReply.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../../runtime/deferred.ts';
import { optionalDuration, optionalObject, optionalSignal } from '../../runtime/validate.ts';
import type { DistributedLockHandle } from '../types.ts';
import { requireJson, type ElectionRuntime, type LeaderInfo } from './electionLogic.ts';

/**
 * This member's leadership of a group, from `Election.campaign()`. Hand `term` to what
 * the leader writes, as a fence. `signal` aborts with a `LeadershipLostError` when the
 * leadership ends, and after a freeze past the lease the first code that reads it sees it
 * lost.
 */
export interface Leadership extends AsyncDisposable {
  /** The election group. */
  readonly group: string;
  /** This term: greater than every earlier term of the group. */
  readonly term: bigint;
  /** Aborts with a `LeadershipLostError` when the leadership is lost or given up. */
  readonly signal: AbortSignal;
  /** Gives the leadership up: the record goes, the lock is freed, and `signal` aborts. `options` bound the wait (the resignation goes on). */
  resign(options?: WaitOptions): Promise<void>;
  /** Publishes `value` as the leader's (JSON); rejects with a `LeadershipLostError` when no longer leading. `options` bound the wait. */
  proclaim(value: unknown, options?: WaitOptions): Promise<void>;
}

/** Options of {@link Election.campaign}. */
export interface CampaignOptions {
  /** What to publish as the leader's value once elected (JSON); default null. */
  readonly value?: unknown;
  /** Stops waiting: the campaign is withdrawn and the promise rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** How long to wait to be elected; default `Infinity`. Past it the promise rejects with a `TimeoutError`. */
  readonly timeoutMs?: number;
}

/** A leadership as `campaign()` hands it out. */
class LeadershipHandle implements Leadership {
  readonly group: string;
  readonly term: bigint;
  readonly #election: Election;
  readonly #runtime: ElectionRuntime;
  readonly #handle: DistributedLockHandle;
  readonly #signal: AbortSignal;

  constructor(election: Election, runtime: ElectionRuntime, handle: DistributedLockHandle, controller: AbortController) {
    this.#election = election;
    this.#runtime = runtime;
    this.#handle = handle;
    this.group = runtime.group;
    this.term = handle.fence;
    this.#signal = controller.signal;
    // After a freeze, whoever reads the leadership's signal first asks the lock, which loses it if its lease ran out.
    const check = (): void => void handle.held;
    const proto = Object.getPrototypeOf(this.#signal) as AbortSignal;
    const aborted = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')?.get as (this: AbortSignal) => boolean;
    const reason = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'reason')?.get as (this: AbortSignal) => unknown;
    Object.defineProperties(this.#signal, {
      aborted: { configurable: true, get: () => (check(), aborted.call(this.#signal)) },
      reason: { configurable: true, get: () => (check(), reason.call(this.#signal)) },
      throwIfAborted: {
        configurable: true,
        value: () => {
          check();
          proto.throwIfAborted.call(this.#signal);
        },
      },
    });
  }

  get signal(): AbortSignal {
    return this.#signal;
  }

  async resign(options?: WaitOptions): Promise<void> {
    const wait = waitOptions('options', options);
    if (this.#runtime.handle !== this.#handle) return;
    await boundedWait(
      this.#election.command({ type: 'statesmith.election.resign' }, ['statesmith.election.resigned']),
      wait,
      this.#election.clock,
      `resigning from group ${this.group}`,
    );
  }

  async proclaim(value: unknown, options?: WaitOptions): Promise<void> {
    const json = requireJson('value', value);
    const wait = waitOptions('options', options);
    this.#signal.throwIfAborted();
    if (this.#runtime.handle !== this.#handle) throw new LeadershipLostError(this.group, this.term, 'no longer the leader');
    const lost = new Promise<never>((_, reject) => this.#signal.addEventListener('abort', () => reject(this.#signal.reason), { once: true }));
    lost.catch(() => undefined);
    await boundedWait(
      Promise.race([this.#election.command({ type: 'statesmith.election.proclaim', value: JSON.parse(json) }, ['statesmith.election.proclaimed']), lost]),
      wait,
      this.#election.clock,
      `proclaiming in group ${this.group}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.resign();
  }
}

/**
 * A group's leader election, from `coordinator.getElection(group)`: the thin client of
 * the election actor (`actor`), a child of the coordinator's actor. One campaign per
 * coordinator and group at a time; a second is refused (`ERR_ALREADY_CAMPAIGNING`).
 *
 * @example
 * ```ts
 * import { createCoordinator } from 'statesmith';
 * await using coordinator = createCoordinator({ url: 'memory://election-example', agentId: 'db-1' });
 * await coordinator.start();
 * const election = coordinator.getElection('db-primary');
 * const leadership = await election.campaign({ value: { url: 'postgres://db-1' } });
 * console.log(leadership.term, (await election.leader())?.memberId); // 1n db-1
 * await leadership.resign();
 * console.log(leadership.signal.aborted, await election.leader()); // true null
 * ```
 */
export class Election {
  /** The group. */
  readonly group: string;
  readonly #coordinator: ElectionRuntime['host'];
  readonly #runtime: ElectionRuntime;
  readonly #actor: AnyActorRef;

  /** @internal */
  constructor(runtime: ElectionRuntime, actor: AnyActorRef) {
    this.#coordinator = runtime.host;
    this.#runtime = runtime;
    this.#actor = actor;
    this.group = runtime.group;
  }

  /** The election actor (`follower`, `candidate`, `leader`, `resigning`). */
  get actor(): AnyActorRef {
    return this.#actor;
  }

  /**
   * Campaigns until elected: resolves a {@link Leadership}. Rejects with `signal.reason`
   * when aborted, with a `TimeoutError` past `timeoutMs`, and with a `RejectedError`
   * (`ERR_ALREADY_CAMPAIGNING`) when this coordinator already campaigns or leads here.
   */
  async campaign(options?: CampaignOptions): Promise<Leadership> {
    const opts = optionalObject<CampaignOptions>('options', options, ['value', 'signal', 'timeoutMs']);
    const signal = optionalSignal('options.signal', opts.signal);
    const timeoutMs = opts.timeoutMs === undefined ? undefined : optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    const value = JSON.parse(requireJson('options.value', opts.value)) as unknown;
    signal?.throwIfAborted();
    this.#coordinator.backend();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      if (signal === undefined) return;
      onAbort = () => {
        this.#actor.send({ type: 'statesmith.election.withdraw' });
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      const command = { type: 'statesmith.election.campaign', value, ...(timeoutMs === undefined || timeoutMs === Infinity ? {} : { timeoutMs }) };
      const reply = await Promise.race([this.command(command, ['statesmith.election.elected', 'statesmith.election.withdrawn']), aborted]);
      if (reply.type === 'statesmith.election.withdrawn')
        throw signal?.reason ?? new CoordinationError('ERR_COORDINATION_STATE', `the campaign in group ${this.group} was withdrawn`);
      const handle = this.#runtime.handle;
      const controller = this.#runtime.controller;
      if (handle === undefined || controller === undefined)
        throw new LeadershipLostError(this.group, BigInt((reply as { term?: string }).term ?? '0'), 'lost before the campaign returned');
      return new LeadershipHandle(this, this.#runtime, handle, controller);
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The current leader, read from the backend, or null. `options` bound the wait. */
  async leader(options?: WaitOptions): Promise<LeaderInfo | null> {
    const wait = waitOptions('options', options);
    this.#coordinator.backend();
    const reading = this.#runtime.leaderNow().catch((error: unknown) => Promise.reject(asBackendError(`reading the leader of group ${this.group}`, error)));
    return boundedWait(reading, wait, this.#coordinator.clock, `reading the leader of group ${this.group}`);
  }

  /** The clock waits run on (the coordinator's). @internal */
  get clock(): ElectionRuntime['host']['clock'] {
    return this.#coordinator.clock;
  }

  /**
   * The leader as it changes: read at once, then on each heartbeat (`heartbeatMs`) and
   * at once on this member's own changes; a repeat is not sent again. Reads that fail
   * (a reconnect) are skipped.
   */
  get leader$(): Observable<LeaderInfo | null> {
    return new Observable<LeaderInfo | null>((subscriber) => {
      const clock = this.#coordinator.clock;
      let last: string | undefined;
      let timer: unknown;
      let closed = false;
      let reading = false;
      const read = (): void => {
        if (closed || reading) return;
        reading = true;
        this.#runtime
          .leaderNow()
          .then(
            (leader) => {
              const key = leader === null ? 'null' : `${leader.memberId}\u0000${leader.term}\u0000${JSON.stringify(leader.value)}`;
              if (!closed && key !== last) {
                last = key;
                subscriber.next(leader);
              }
            },
            (error: unknown) => getLogger().debug(`election ${this.group}: reading the leader failed`, { error }),
          )
          .finally(() => {
            reading = false;
          });
      };
      const loop = (): void => {
        read();
        // Every heartbeat; a coordinator without one reads at a third of the lease.
        const every = this.#coordinator.heartbeatMs;
        timer = clock.setTimeout(loop, Number.isFinite(every) ? every : this.#coordinator.lockTtlMs / 3);
        (timer as { unref?: () => void }).unref?.();
      };
      loop();
      const off = this.#runtime.onNews(read);
      return () => {
        closed = true;
        off();
        clock.clearTimeout(timer);
      };
    });
  }

  /** Sends `command` to the election actor and resolves its reply among `types`; a rejection or failure throws. @internal */
  command(command: { readonly type: string } & Record<string, unknown>, types: readonly string[]): Promise<ElectionReply> {
    return askReply<ElectionReply>(this.#actor, command, types, {
      type: 'statesmith.election.failed',
      error: (reply) => {
        const failed = reply as unknown as { [kElectionError]?: unknown; command?: string; error?: { message?: string } };
        const what = `${failed.command ?? 'the election command'} of group ${this.group}`;
        return kElectionError in failed
          ? asBackendError(what, failed[kElectionError])
          : new CoordinationError('ERR_COORDINATION_BACKEND', `${what} failed: ${failed.error?.message ?? 'failed'}`);
      },
    });
  }
}
