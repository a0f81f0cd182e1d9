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
 * Internal to statesmith: its public parts are re-exported from `statesmith`.
 */
import { fromCallback, fromPromise, type AnyActorRef } from 'xstate';
import { electionMachine, kFromElection, type ElectionEngine } from '../../../machines/election.machine.ts';
import { errorData } from '../../../machines/protocol.ts';
import type { Clock } from '../../clock.ts';
import { ArgumentRangeError, ArgumentTypeError, LeadershipLostError, TimeoutError } from '../../errors.ts';
import { getLogger } from '../../logger.ts';
import { guardedLogic } from '../../runtime/guardedLogic.ts';
import type { OwnedRecords } from '../membership/records.ts';
import type { Backend, DistributedLockHandle, RecordStore } from '../types.ts';

/** What an election needs of its coordinator's engine. */
export interface ElectionHost {
  readonly memberId: string;
  readonly prefix: string;
  readonly clock: Clock;
  readonly heartbeatMs: number;
  readonly lockTtlMs: number;
  readonly records: OwnedRecords;
  /** Takes a lock (prefix included) for the engine itself: the grant goes into the coordinator actor's `grants`. */
  acquireOwn(name: string, blocking: boolean | number, signal: AbortSignal): Promise<DistributedLockHandle | null>;
  recordStore(): RecordStore;
  currentRecords(): RecordStore | undefined;
  backend(): Backend;
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

/** The longest group name, in bytes of UTF-8. */
export const MAX_GROUP_BYTES = 256;

/** A value as JSON text, or a typed error naming `name`. */
export const requireJson = (name: string, value: unknown): string => {
  let json: string | undefined;
  try {
    json = JSON.stringify(value ?? null);
  } catch {
    throw new ArgumentTypeError(name, 'a JSON value (no cycles, no bigints)', value);
  }
  if (json === undefined) throw new ArgumentTypeError(name, 'a JSON value', value);
  return json;
};

/** Checks a group name: a non-empty string of at most {@link MAX_GROUP_BYTES} bytes. @internal */
export function checkGroup(group: unknown): string {
  if (typeof group !== 'string' || group.length === 0) throw new ArgumentTypeError('group', 'a non-empty string', group);
  const bytes = Buffer.byteLength(group, 'utf8');
  if (bytes > MAX_GROUP_BYTES) throw new ArgumentRangeError('group', `a group name of at most ${MAX_GROUP_BYTES} bytes in UTF-8 (it has ${bytes})`, group);
  return group;
}

/**
 * The election's engine: the backend I/O its actor's children run, for one coordinator
 * and group. @internal
 */
export class ElectionRuntime implements ElectionEngine {
  readonly group: string;
  readonly #coordinator: ElectionHost;
  #handle: DistributedLockHandle | undefined;
  #record: { readonly id: string; readonly value: string } | undefined;
  #controller: AbortController | undefined;
  /** Local news for `leader$` subscribers (this member won, proclaimed, lost). */
  readonly #news = new Set<() => void>();

  constructor(coordinator: ElectionHost, group: string) {
    this.#coordinator = coordinator;
    this.group = group;
  }

  /** The coordinator's engine this election runs on. */
  get host(): ElectionHost {
    return this.#coordinator;
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
    const handle = await this.#coordinator.acquireOwn(this.#coordinator.prefix + this.lockName, timeoutMs ?? true, signal);
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
    await this.#coordinator.records.own(this.#coordinator.recordStore(), this.dir, record.id, record.value, () => handle.held);
    this.#record = record;
  }

  async #end(reason: LeadershipLostError): Promise<void> {
    const record = this.#record;
    this.#record = undefined;
    this.#handle = undefined;
    this.#controller?.abort(reason);
    this.#controller = undefined;
    if (record !== undefined) await this.#coordinator.records.disown(this.#coordinator.currentRecords(), this.dir, record.id).catch(() => false);
  }

  #tell(): void {
    for (const listener of [...this.#news]) listener();
  }
}

const runtimeOf = (engine: ElectionEngine): ElectionRuntime => engine as ElectionRuntime;

const providedElection = guardedLogic(
  electionMachine.provide({
    actors: {
      campaign: fromPromise<
        string | { readonly notElected: unknown },
        { readonly engine: ElectionEngine; readonly value: unknown; readonly timeoutMs: number | undefined }
      >(
        // Not elected within its time is how a follower's campaign usually ends: an output, not a failed child.
        ({ input, signal }) =>
          runtimeOf(input.engine)
            .campaignNow(input.value, input.timeoutMs, signal)
            .catch((error: unknown) => {
              if (error instanceof TimeoutError && !signal.aborted) return { notElected: error };
              throw error;
            }),
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

/** The machine type XState infers for electionLogic (long: every action and child spelled out). */
type ProvidedElection = typeof providedElection;

/**
 * The type of {@link electionLogic}: XState logic for an election: its commands campaign, resign
 * and watch the leader. `createActor`, `spawn` and `invoke` take it; its commands, replies, input
 * and context are typed as the README's table of its commands says.
 */
export interface ElectionLogic extends ProvidedElection {}

/**
 * The election as actor logic: a child of its coordinator's actor (`election:<group>`),
 * made by the command `statesmith.coordinator.election { group }` or by
 * `coordinator.getElection(group)`. See the README's table of election commands.
 */
export const electionLogic: ElectionLogic = providedElection;
