/**
 * Leader election on every backend (tooz's and etcd's elections), built on what every
 * backend already guarantees: an exclusive lock with a fence, and records that live for
 * the coordinator's `lockTtlMs` unless its heartbeat keeps them.
 *
 * - Leading is holding the group's election lock. The `term` is that grant's fence, so
 *   terms only grow per group, on every backend, and a leader's writes can be fenced.
 * - The leader publishes `{ memberId, value, term }` as a record whose id is its term.
 *   `leader()` reads the record with the highest term: an old leader's record, kept a
 *   moment by a refresh already in flight, can never hide the new one. A lost or resigned
 *   leader's record is deleted at once, and a dead one's expires with its TTL.
 * - The election is an actor (`machines/election.machine.ts`), a child of its coordinator's
 *   actor; `Election` is its thin client.
 *
 * @module
 */
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { Observable } from 'rxjs';
import type { AnyActorRef } from 'xstate';
import { fromCallback, fromPromise } from 'xstate';
import { electionMachine, kElectionError, kFromElection, type ElectionEngine, type ElectionReply } from '../../machines/election.machine.ts';
import { errorData } from '../../machines/protocol.ts';
import { ArgumentRangeError, ArgumentTypeError, CoordinationError, LeadershipLostError, TimeoutError, asBackendError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { askReply } from '../runtime/askReply.ts';
import { optionalDuration, optionalObject, optionalSignal } from '../runtime/validate.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import type { Coordinator, DistributedLockHandle } from './Coordinator.ts';

/** The longest group name, in bytes of UTF-8. */
export const MAX_GROUP_BYTES = 256;

/** Checks a group name: a non-empty string of at most {@link MAX_GROUP_BYTES} bytes. @internal */
export function checkGroup(group: unknown): string {
  if (typeof group !== 'string' || group.length === 0) throw new ArgumentTypeError('group', 'a non-empty string', group);
  const bytes = Buffer.byteLength(group, 'utf8');
  if (bytes > MAX_GROUP_BYTES) throw new ArgumentRangeError('group', `a group name of at most ${MAX_GROUP_BYTES} bytes in UTF-8 (it has ${bytes})`, group);
  return group;
}

/** Who leads a group, as `leader()` and `leader$` report it. */
export interface LeaderInfo {
  /** The leader's member id. */
  readonly memberId: string;
  /** What the leader campaigned with or proclaimed last (JSON). */
  readonly value: unknown;
  /** The leader's term: the election lock's fence, strictly increasing per group. */
  readonly term: bigint;
}

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

const requireJson = (name: string, value: unknown): string => {
  let json: string | undefined;
  try {
    json = JSON.stringify(value ?? null);
  } catch {
    throw new ArgumentTypeError(name, 'a JSON value (no cycles, no bigints)', value);
  }
  if (json === undefined) throw new ArgumentTypeError(name, 'a JSON value', value);
  return json;
};

/**
 * The election's engine: the backend I/O its actor's children run, for one coordinator
 * and group. @internal
 */
export class ElectionRuntime implements ElectionEngine {
  readonly group: string;
  readonly #coordinator: Coordinator;
  #handle: DistributedLockHandle | undefined;
  #record: { readonly id: string; readonly value: string } | undefined;
  #controller: AbortController | undefined;
  /** Local news for `leader$` subscribers (this member won, proclaimed, lost). */
  readonly #news = new Set<() => void>();

  constructor(coordinator: Coordinator, group: string) {
    this.#coordinator = coordinator;
    this.group = group;
  }

  get memberId(): string {
    return this.#coordinator.memberId;
  }

  get lockName(): string {
    return `statesmith.election/${this.group}`;
  }

  get dir(): string {
    return `election/${this.#coordinator.prefix}${this.group}/`;
  }

  get handle(): DistributedLockHandle | undefined {
    return this.#handle;
  }

  get controller(): AbortController | undefined {
    return this.#controller;
  }

  async campaignNow(value: unknown, timeoutMs: number | undefined, signal: AbortSignal): Promise<string> {
    const handle = await this.#coordinator.getLock(this.lockName).acquire({ blocking: timeoutMs ?? true, signal });
    if (handle === null) throw new TimeoutError(`${this.memberId} was not elected leader of group ${this.group} within ${timeoutMs} ms`);
    try {
      signal.throwIfAborted();
      this.#handle = handle;
      this.#controller = new AbortController();
      await this.#publish(value);
    } catch (error) {
      this.#handle = undefined;
      await handle.release();
      throw error;
    }
    this.#tell();
    return String(handle.fence);
  }

  /** Calls `onLost` once when the held leadership's lock is lost. */
  watch(onLost: (term: string, reason: unknown) => void): () => void {
    const handle = this.#handle;
    if (handle === undefined) return () => undefined;
    const lost = (): void => {
      const reason = handle.signal.reason;
      void this.#end(
        new LeadershipLostError(this.group, handle.fence, (reason as Error | undefined)?.message ?? 'the election lock was lost', { cause: reason }),
      );
      onLost(String(handle.fence), reason);
    };
    if (handle.signal.aborted) {
      queueMicrotask(lost);
      return () => undefined;
    }
    handle.signal.addEventListener('abort', lost, { once: true });
    return () => handle.signal.removeEventListener('abort', lost);
  }

  async proclaimNow(value: unknown): Promise<void> {
    const handle = this.#handle;
    if (handle === undefined || !handle.held) throw new LeadershipLostError(this.group, handle?.fence ?? 0n, 'not the leader');
    await this.#publish(value);
    this.#tell();
  }

  async resignNow(why = 'resigned'): Promise<void> {
    const handle = this.#handle;
    if (handle === undefined) return;
    await this.#end(new LeadershipLostError(this.group, handle.fence, why));
    await handle.release();
    this.#tell();
  }

  /** The current leader: the live record with the highest term. */
  async leaderNow(): Promise<LeaderInfo | null> {
    const records = this.#coordinator.recordStore();
    const list = await records.list(this.dir);
    let best: LeaderInfo | null = null;
    for (const { id, value } of list) {
      let term: bigint;
      try {
        term = BigInt(id);
      } catch {
        continue;
      }
      if (best !== null && term <= best.term) continue;
      try {
        const parsed = JSON.parse(value) as { memberId: string; value: unknown };
        best = { memberId: parsed.memberId, value: parsed.value, term };
      } catch (error) {
        getLogger().warn(`election ${this.group}: a leader record that is not JSON`, { error });
      }
    }
    return best;
  }

  /** Hears local changes (for `leader$`). */
  onNews(listener: () => void): () => void {
    this.#news.add(listener);
    return () => void this.#news.delete(listener);
  }

  async #publish(value: unknown): Promise<void> {
    const handle = this.#handle as DistributedLockHandle;
    const record = { id: String(handle.fence), value: JSON.stringify({ memberId: this.memberId, value: value ?? null }) };
    await this.#coordinator.own(this.dir, record.id, record.value, () => handle.held);
    this.#record = record;
  }

  async #end(reason: LeadershipLostError): Promise<void> {
    const record = this.#record;
    this.#record = undefined;
    this.#handle = undefined;
    this.#controller?.abort(reason);
    this.#controller = undefined;
    if (record !== undefined) await this.#coordinator.disown(this.dir, record.id).catch(() => false);
  }

  #tell(): void {
    for (const listener of [...this.#news]) listener();
  }
}

const runtimeOf = (engine: ElectionEngine): ElectionRuntime => engine as ElectionRuntime;

/**
 * The election as actor logic: a child of its coordinator's actor (`election:<group>`),
 * made by the command `statesmith.coordinator.election { group }` or by
 * `coordinator.getElection(group)`. See the README's table of election commands.
 */
export const electionLogic = guardedLogic(
  electionMachine.provide({
    actors: {
      campaign: fromPromise<string, { readonly engine: ElectionEngine; readonly value: unknown; readonly timeoutMs: number | undefined }>(({ input, signal }) =>
        runtimeOf(input.engine).campaignNow(input.value, input.timeoutMs, signal),
      ),
      hold: fromCallback<{ readonly type: string }, { readonly engine: ElectionEngine }>(({ input, sendBack }) =>
        runtimeOf(input.engine).watch((term, reason) =>
          sendBack({ type: 'statesmith.election.lost', [kFromElection]: true, term, reason: errorData(reason) } as never),
        ),
      ),
      proclaim: fromCallback<{ readonly type: string }, { readonly engine: ElectionEngine; readonly value: unknown; readonly replyTo: AnyActorRef | null }>(
        ({ input, sendBack }) => {
          let active = true;
          runtimeOf(input.engine)
            .proclaimNow(input.value)
            .then(
              () => active && sendBack({ type: 'statesmith.election.proclaimDone', [kFromElection]: true, replyTo: input.replyTo } as never),
              (error: unknown) =>
                active && sendBack({ type: 'statesmith.election.proclaimDone', [kFromElection]: true, replyTo: input.replyTo, error } as never),
            );
          return () => {
            active = false;
          };
        },
      ),
      resign: fromPromise<void, { readonly engine: ElectionEngine }>(({ input }) => runtimeOf(input.engine).resignNow()),
    },
  }),
  'election',
);

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
  readonly #coordinator: Coordinator;
  readonly #runtime: ElectionRuntime;
  readonly #actor: AnyActorRef;

  /** @internal */
  constructor(coordinator: Coordinator, runtime: ElectionRuntime, actor: AnyActorRef) {
    this.#coordinator = coordinator;
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
  get clock(): Coordinator['clock'] {
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
