/**
 * Distributed locks over a coordination backend (OpenStack coordination over tooz), with
 * what tooz lacks: a fence on every grant and a signal that says when a lock is lost.
 *
 * `Coordinator` is the thin client of its actor (`coordinatorLogic`), which owns the
 * connection, every grant and the renewal loop.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { Observable, distinctUntilChanged } from 'rxjs';
import type { Actor, AnyActorRef } from 'xstate';
import { kError, type CoordinatorReply } from '../../machines/coordinator.machine.ts';
import type { Clock } from '../clock.ts';
import { ActorStoppedError, ArgumentTypeError, CoordinationError, asBackendError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { askReply } from '../runtime/askReply.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { startActor } from '../runtime/startActor.ts';
import { optionalObject, requireNonEmptyString } from '../runtime/validate.ts';
import { checkLockName } from './backends/common.ts';
import { coordinatorLogic } from './coordinatorLogic.ts';
import { Election } from './election/Election.ts';
import { checkGroup } from './election/electionLogic.ts';
import { topState, type CoordinatorEngine } from './engine.ts';
import { DistributedLock } from './lock/DistributedLock.ts';
import { resolveOptions } from './options.ts';
import type { Backend, BackendCapabilities, BackendKind, CoordinatorOptions, CoordinatorState, GroupMember, Membership } from './types.ts';

/**
 * Creates a coordinator (not started). The URL picks the backend; its client (`ioredis`,
 * `pg`) is loaded on `start()`. A malformed URL or an unknown scheme throws a
 * `CoordinationError` (`ERR_COORDINATION_URL`) here.
 *
 * @example
 * ```ts
 * import { createCoordinator } from 'statesmith';
 * await using coordinator = createCoordinator({ prefix: 'volume-manager-', agentId: 'node-1' });
 * await coordinator.start();
 * const lock = coordinator.getLock('volume-7-delete');
 * const handle = await lock.acquire({ blocking: false });
 * console.log(coordinator.memberId, lock.name, handle?.fence); // volume-manager-node-1 volume-manager-volume-7-delete 1n
 * console.log(await handle?.release()); // true
 * ```
 */
export function createCoordinator(options?: CoordinatorOptions): Coordinator {
  return new Coordinator(options);
}

/** How a `failed` reply becomes the error a caller gets. @internal */
export const failedReply = {
  type: 'statesmith.coordinator.failed',
  // A client's raw error (gRPC, ioredis) never reaches the caller without a statesmith code.
  error: (reply: unknown): unknown => {
    const failed = reply as { [kError]?: unknown; command?: string; error?: { message?: string } };
    const what = failed.command ?? 'the coordinator command';
    return kError in failed
      ? asBackendError(what, failed[kError])
      : new CoordinationError('ERR_COORDINATION_BACKEND', `${what} failed: ${String(failed.error?.message)}`);
  },
};

/**
 * One process's membership in a coordination backend: its connection (watched by a
 * heartbeat, re-made with back-off when lost) and its locks. The thin client of its actor.
 */
export class Coordinator implements AsyncDisposable {
  /** `prefix + agentId`. */
  readonly memberId: string;
  /** The `prefix` option: in front of the agent id and of every lock name; `''` when not given. */
  readonly prefix: string;
  /** The backend URL. */
  readonly url: string;
  /** The lease of each lock on TTL backends, in ms, renewed every third of it. */
  readonly lockTtlMs: number;
  /** How often the connection is checked, in ms (`Infinity`: never). */
  readonly heartbeatMs: number;
  /** The first delay before a reconnect, in ms; it doubles per failed attempt, with up to 20% jitter. */
  readonly initialReconnectBackoffMs: number;
  /** The cap of the reconnect delay, in ms. */
  readonly maxReconnectBackoffMs: number;
  /** @internal */
  readonly clock: Clock;
  /** @internal */
  readonly pollIntervalMs: number;
  readonly #kind: BackendKind;
  readonly #actor: Actor<typeof coordinatorLogic>;
  readonly #engine: CoordinatorEngine;
  readonly #state$: Observable<CoordinatorState>;
  readonly #elections = new Map<string, Election>();

  constructor(options?: CoordinatorOptions) {
    // Checked here, so a bad option throws to the caller rather than failing the actor.
    const settings = resolveOptions(options);
    this.url = settings.url;
    this.#kind = settings.kind;
    this.prefix = settings.prefix;
    this.memberId = settings.memberId;
    this.heartbeatMs = settings.heartbeatMs;
    this.initialReconnectBackoffMs = settings.initialReconnectBackoffMs;
    this.maxReconnectBackoffMs = settings.maxReconnectBackoffMs;
    this.lockTtlMs = settings.lockTtlMs;
    this.pollIntervalMs = settings.pollIntervalMs;
    this.clock = settings.clock;
    // The actor's delays (heartbeat, back-off) run on this clock and never hold the process open.
    const clock = settings.clock;
    const upkeepClock = {
      setTimeout: (fn: () => void, ms: number) => background(clock.setTimeout(fn, ms)),
      clearTimeout: (handle: unknown) => clock.clearTimeout(handle),
    };
    // The settings are handed on whole (the agent id is drawn once).
    const input = { options: { ...(options ?? {}), agentId: settings.memberId.slice(settings.prefix.length) } as Record<string, unknown> };
    this.#actor = startActor('coordinator', coordinatorLogic, { input, id: `coordinator:${this.memberId}`, clock: upkeepClock });
    this.#engine = this.#actor.getSnapshot().context.engine as CoordinatorEngine;
    this.#engine.forceKey = this;
    const actor = this.#actor;
    this.#state$ = new Observable<CoordinatorState>((subscriber) => {
      subscriber.next(topState(actor.getSnapshot().value));
      const subscription = actor.subscribe((snapshot) => subscriber.next(topState(snapshot.value)));
      return () => subscription.unsubscribe();
    }).pipe(distinctUntilChanged());
  }

  /** The connection state now. */
  get state(): CoordinatorState {
    return topState(this.#actor.getSnapshot().value);
  }

  /** The connection state as it changes (the current one first). */
  get state$(): Observable<CoordinatorState> {
    return this.#state$;
  }

  /**
   * The coordinator's actor (`coordinatorLogic`). Its states run
   * `disconnected → connecting → connected → reconnecting → stopping → stopped`.
   * It owns the connection, the timers and every grant (its context's `grants`).
   */
  get actor(): Actor<typeof coordinatorLogic> {
    return this.#actor;
  }

  /** The actor's engine. @internal */
  get engine(): CoordinatorEngine {
    return this.#engine;
  }

  /** What the backend guarantees; `undefined` before the first `start()`. */
  get capabilities(): BackendCapabilities | undefined {
    return this.#engine.capabilities;
  }

  /** Which backend the URL names. */
  get backendKind(): BackendKind {
    return this.#kind;
  }

  /**
   * Connects. Does nothing when already started. Rejects with a `CoordinationError` when
   * the client is missing, the backend lacks a required capability, or it cannot be
   * reached; the coordinator is then `disconnected` and may be started again.
   * `options` bound the wait (`signal`, `timeoutMs`); the start itself goes on, and
   * `stop()` ends it.
   */
  // Async: a bad option or an aborted signal rejects rather than throws; the command is still sent in the call itself.
  async start(options?: WaitOptions): Promise<void> {
    const wait = waitOptions('options', options);
    wait.signal?.throwIfAborted();
    const snapshot = this.#actor.getSnapshot();
    if (snapshot.status !== 'active') throw new ActorStoppedError(this.#actor.id, snapshot.status, snapshot.value);
    const state = this.state;
    if (state === 'connected' || state === 'reconnecting') return;
    const started = new Promise<void>((resolve, reject) => {
      const subscriptions = [
        this.#actor.on('statesmith.coordinator.started', () => {
          for (const s of subscriptions) s.unsubscribe();
          resolve();
        }),
        this.#actor.on('statesmith.coordinator.failed', (reply) => {
          if (reply.command !== 'statesmith.coordinator.start') return;
          for (const s of subscriptions) s.unsubscribe();
          reject((reply as unknown as { [kError]: unknown })[kError]);
        }),
      ];
      this.#actor.send({ type: 'statesmith.coordinator.start' });
    });
    await boundedWait(started, wait, this.clock, `starting coordinator ${this.memberId}`);
  }

  /**
   * Releases every lock still held through this coordinator, then disconnects. Does
   * nothing when not started. `options` bound the wait (`signal`, `timeoutMs`); the stop
   * itself goes on.
   */
  // Async: a bad option or an aborted signal rejects rather than throws; the command is still sent in the call itself.
  async stop(options?: WaitOptions): Promise<void> {
    const wait = waitOptions('options', options);
    wait.signal?.throwIfAborted();
    // An actor stopped directly (not through this command) has nothing left to release: done.
    if (this.#actor.getSnapshot().status !== 'active') return;
    const stopped = new Promise<void>((resolve) => {
      const subscription = this.#actor.on('statesmith.coordinator.stopped', () => {
        subscription.unsubscribe();
        resolve();
      });
      this.#actor.send({ type: 'statesmith.coordinator.stop' });
    });
    await boundedWait(stopped, wait, this.clock, `stopping coordinator ${this.memberId}`);
  }

  /** `await using` support: the same as {@link Coordinator.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * The lock named `prefix + name` (a new object each call; objects of one name share the
   * lock). A name over 1,024 bytes with the prefix is refused (`ERR_OUT_OF_RANGE`).
   */
  getLock(name: string): DistributedLock {
    return new DistributedLock(name, this);
  }

  /**
   * Frees the lock `prefix + name` whoever holds it: an operator's break (tooz's `break_`).
   * The holder's handle aborts at its next renewal (at once on PostgreSQL, whose lock can
   * only be freed by ending the holder's session: its other locks go too), and the next
   * grant has a larger fence. Resolves false when nobody held it.
   */
  async breakLock(name: string, options?: WaitOptions): Promise<boolean> {
    requireNonEmptyString('name', name);
    checkLockName(this.prefix + name);
    const wait = waitOptions('options', options);
    wait.signal?.throwIfAborted();
    const reply = await boundedWait(
      askReply<CoordinatorReply>(this.#actor, { type: 'statesmith.coordinator.breakLock', lock: name }, ['statesmith.coordinator.broken'], failedReply),
      wait,
      this.clock,
      `breaking lock ${name}`,
    );
    return (reply as Extract<CoordinatorReply, { type: 'statesmith.coordinator.broken' }>).broken;
  }

  /**
   * The leader election of `group` (one object per group): campaign, read the leader, or
   * watch it. Its actor is the coordinator actor's child `election:<group>`. A group name
   * is a non-empty string of at most 256 bytes.
   */
  getElection(group: string): Election {
    checkGroup(group);
    const existing = this.#elections.get(group);
    if (existing !== undefined) return existing;
    this.#actor.send({ type: 'statesmith.coordinator.election', group });
    const child = (this.#actor.getSnapshot().children as Record<string, AnyActorRef | undefined>)[`election:${group}`];
    if (child === undefined)
      throw new CoordinationError(
        'ERR_COORDINATION_STATE',
        `the election of group ${group} could not be opened (asked from inside the coordinator's own step?)`,
      );
    const election = new Election(this.#engine.electionEngine(group), child);
    this.#elections.set(group, election);
    return election;
  }

  /**
   * Joins `group` with `capabilities` (JSON) for as long as this coordinator's heartbeat
   * keeps it alive: a member whose process dies leaves the list within `lockTtlMs`. Joining
   * a group twice is refused (`ERR_ALREADY_MEMBER`).
   */
  async joinGroup(group: string, options?: { readonly capabilities?: unknown } & WaitOptions): Promise<Membership> {
    checkGroup(group);
    const opts = optionalObject<{ capabilities: unknown; signal: AbortSignal; timeoutMs: number }>('options', options, ['capabilities', 'signal', 'timeoutMs']);
    const wait = waitOptions('options', {
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    });
    wait.signal?.throwIfAborted();
    let capabilities: unknown = null;
    try {
      capabilities = JSON.parse(JSON.stringify(opts.capabilities ?? null) ?? 'null');
    } catch {
      throw new ArgumentTypeError('options.capabilities', 'a JSON value (no cycles, no bigints)', opts.capabilities);
    }
    await boundedWait(
      askReply(this.#actor, { type: 'statesmith.coordinator.join', group, capabilities }, ['statesmith.coordinator.joined'], failedReply),
      wait,
      this.clock,
      `joining group ${group}`,
    );
    let left: Promise<boolean> | undefined;
    const leave = (leaveOptions?: WaitOptions): Promise<boolean> => {
      const bounds = waitOptions('options', leaveOptions);
      left ??= askReply<CoordinatorReply>(this.#actor, { type: 'statesmith.coordinator.leave', group }, ['statesmith.coordinator.left'], failedReply).then(
        (reply) => (reply as { wasMember: boolean }).wasMember,
      );
      return boundedWait(left, bounds, this.clock, `leaving group ${group}`);
    };
    return { group, memberId: this.memberId, capabilities, leave, [Symbol.asyncDispose]: async () => void (await leave()) };
  }

  /** The live members of `group`, by member id. */
  async getMembers(group: string, options?: WaitOptions): Promise<GroupMember[]> {
    checkGroup(group);
    const wait = waitOptions('options', options);
    wait.signal?.throwIfAborted();
    const reply = await boundedWait(
      askReply<CoordinatorReply>(this.#actor, { type: 'statesmith.coordinator.members', group }, ['statesmith.coordinator.members'], failedReply),
      wait,
      this.clock,
      `listing group ${group}`,
    );
    return [...(reply as Extract<CoordinatorReply, { type: 'statesmith.coordinator.members' }>).members];
  }

  /**
   * The members of `group` as they change: read at once, then on each heartbeat; a list
   * equal to the last is not sent again. Reads that fail (a reconnect) are skipped.
   */
  members$(group: string): Observable<GroupMember[]> {
    checkGroup(group);
    return new Observable<GroupMember[]>((subscriber) => {
      let last: string | undefined;
      let timer: unknown;
      let closed = false;
      const loop = (): void => {
        this.#engine.groups.list(group).then(
          (members) => {
            const key = JSON.stringify(members);
            if (!closed && key !== last) {
              last = key;
              subscriber.next(members);
            }
          },
          (error: unknown) => getLogger().debug(`group ${group}: reading its members failed`, { error }),
        );
        if (closed) return;
        timer = this.clock.setTimeout(loop, Number.isFinite(this.heartbeatMs) ? this.heartbeatMs : this.lockTtlMs / 3);
        (timer as { unref?: () => void }).unref?.();
      };
      loop();
      return () => {
        closed = true;
        this.clock.clearTimeout(timer);
      };
    });
  }

  /** The backend, when connected; a `CoordinationError` otherwise. @internal */
  backend(): Backend {
    return this.#engine.backend();
  }
}

/**
 * A timer that does not keep the process alive: a coordinator's upkeep (heartbeats,
 * reconnects) must not hold an otherwise finished program open. Open sockets of a started
 * Redis or PostgreSQL coordinator do that until `stop()`.
 */
function background(handle: unknown): unknown {
  (handle as { unref?: () => void } | null)?.unref?.();
  return handle;
}

let defaultCoordinator: Coordinator | undefined;

/**
 * Sets the coordinator `Lock` and `synchronized` use when given none. Without one they
 * use an in-memory coordinator of their own, started on first use.
 */
export function setDefaultCoordinator(coordinator: Coordinator | null): void {
  if (coordinator !== null && !(coordinator instanceof Coordinator)) throw new ArgumentTypeError('coordinator', 'a Coordinator or null', coordinator);
  defaultCoordinator = coordinator ?? undefined;
}

/** The coordinator `Lock` and `synchronized` use when given none. */
export function getDefaultCoordinator(): Coordinator {
  defaultCoordinator ??= createCoordinator({ agentId: `default-${randomBytes(4).toString('hex')}` });
  return defaultCoordinator;
}
