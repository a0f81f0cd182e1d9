/**
 * Distributed locks over a coordination backend (OpenStack coordination over tooz), with
 * what tooz lacks: a fence on every grant and a signal that says when a lock is lost.
 *
 * @module
 */
import { telemetry } from '../telemetry/hooks.ts';
import { randomBytes, randomUUID } from 'node:crypto';
import { Observable, distinctUntilChanged } from 'rxjs';
import type { Actor, AnyActorRef } from 'xstate';
import { kError, kFromEngine, type CoordinatorCommand, type CoordinatorReply } from '../../machines/coordinator.machine.ts';
import { errorData } from '../../machines/protocol.ts';
import { MAX_TIMER_MS, type Clock } from '../clock.ts';
import {
  ArgumentRangeError,
  ArgumentTypeError,
  CoordinationError,
  DeadlockError,
  LockLostError,
  TimeoutError,
  ActorStoppedError,
  asBackendError,
} from '../errors.ts';
import type { LockHandle } from '../locks/LockHandle.ts';
import { kUninspected, Mutex, type MutexOptions } from '../locks/Mutex.ts';
import { inspection, lateReporters } from '../inspect/capture.ts';
import { getLogger } from '../logger.ts';
import { startActor } from '../runtime/startActor.ts';
import { optionalClock, optionalDuration, optionalObject, optionalRandom, optionalSignal, requireNonEmptyString } from '../runtime/validate.ts';
import { checkLockName, createBackend, parseUrl, type Backend, type BackendCapabilities, type BackendKind, type RecordStore } from './backend.ts';
import { checkGroup, Election, ElectionRuntime } from './election.ts';
import { kDistributedLock, serveForces } from './forcing.ts';
import { askReply } from '../runtime/askReply.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { coordinatorLogic } from './coordinatorLogic.ts';

/** Where a coordinator's connection is. */
export type CoordinatorState = 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'stopping' | 'stopped';

/** Options of {@link createCoordinator}. */
export interface CoordinatorOptions {
  /** `memory://` (default, this process only), `redis://host:port/db`, `postgresql://user@host/db`, `etcd://h1:2379[,h2:2379]`; `?namespace=` sets the key namespace. */
  readonly url?: string;
  /** Put in front of the agent id to make the member id, and in front of every lock name (Cinder uses `'cinder-'`). */
  readonly prefix?: string;
  /** This process's id; default a random UUID. */
  readonly agentId?: string;
  /** How often the connection is checked (default 1000 ms, Cinder's `heartbeat`; `Infinity`: never). */
  readonly heartbeatMs?: number;
  /** First delay before reconnecting (default 100 ms). */
  readonly initialReconnectBackoffMs?: number;
  /** Cap of the reconnect delay (default 60,000 ms; `Infinity`: no cap). */
  readonly maxReconnectBackoffMs?: number;
  /** Lease of a lock on TTL backends, renewed every third of it (default 30,000 ms, tooz's; finite: a lease must end). */
  readonly lockTtlMs?: number;
  /** Capabilities the backend must have; `start()` fails otherwise (`{ distributed: true }` refuses `memory://`). */
  readonly require?: Partial<BackendCapabilities>;
  /** The clock for heartbeats, back-off and leases; default the system clock (monotonic). */
  readonly clock?: Clock;
  /** Randomness for the back-off jitter (tests pass a fixed one). */
  readonly random?: () => number;
  /** How often a blocked acquire looks again when no release wake-up comes (TTL expiry); default 250 ms, `Infinity` for wake-ups only. */
  readonly pollIntervalMs?: number;
}

/** Options of {@link DistributedLock.acquire}. */
export interface DistributedAcquireOptions {
  /** `true` (default) waits as long as it takes; `false` tries once; a number waits at most that many ms. */
  readonly blocking?: boolean | number;
  /**
   * Waits at most this many ms, then resolves `null` (as a numeric `blocking`); `Infinity`
   * (default) waits as long as it takes. With both, the wait ends at the earlier bound.
   */
  readonly timeoutMs?: number;
  /** Abandon the wait; the acquire rejects with `signal.reason` and never holds the lock. */
  readonly signal?: AbortSignal;
}

const COORDINATOR_OPTIONS: (keyof CoordinatorOptions & string)[] = [
  'url',
  'prefix',
  'agentId',
  'heartbeatMs',
  'initialReconnectBackoffMs',
  'maxReconnectBackoffMs',
  'lockTtlMs',
  'require',
  'clock',
  'random',
  'pollIntervalMs',
];

/** Test seam: build the backend yourself. @internal */
export const kBackendFactory: unique symbol = Symbol('statesmith.coordinator.backendFactory');

interface Internals {
  readonly [kBackendFactory]?: () => Backend;
}

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

/**
 * A bound on how long one command may take, from the heartbeat and the TTL. The clients
 * time commands with Node's own timers (pg doubles it for its read timeout), which fire
 * after 1 ms past 2^31 ms, so the bound stays under half of that.
 */
function commandTimeout(heartbeatMs: number, ttlMs: number): number {
  return Math.min(Math.max(50, Math.min(heartbeatMs, ttlMs / 3)), Math.floor(MAX_TIMER_MS / 2));
}

/**
 * One process's membership in a coordination backend: its connection (watched by a
 * heartbeat, re-made with back-off when lost) and its locks.
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
  readonly #parsed: URL;
  readonly #require: Partial<BackendCapabilities>;
  readonly #random: () => number;
  readonly #factory: (() => Backend) | undefined;
  readonly #actor: Actor<typeof coordinatorLogic>;
  readonly #state$: Observable<CoordinatorState>;
  #backend: Backend | undefined;
  /** Per-name FIFO queues in front of the backend. */
  readonly #queues = new Map<string, Mutex>();
  /** Blocked acquires waiting for a name to come free. */
  readonly #wakeups = new Map<string, Set<() => void>>();
  /** Records this member keeps alive (memberships, its leader records), by dir + id. */
  readonly #owned = new Map<string, { readonly dir: string; readonly id: string; readonly value: string; readonly live: () => boolean }>();
  readonly #elections = new Map<string, { runtime: ElectionRuntime; facade?: Election }>();
  /** The groups this member is in: group → its record's value. */
  readonly #groups = new Map<string, string>();

  constructor(options?: CoordinatorOptions) {
    const opts = optionalObject<CoordinatorOptions & Internals>('options', options, COORDINATOR_OPTIONS);
    const url = opts.url === undefined ? 'memory://' : requireNonEmptyString('options.url', opts.url);
    const { url: parsed, kind } = parseUrl(url);
    this.url = url;
    this.#parsed = parsed;
    this.#kind = kind;
    this.prefix = opts.prefix === undefined ? '' : requireString('options.prefix', opts.prefix);
    const agentId = opts.agentId === undefined ? randomUUID() : requireNonEmptyString('options.agentId', opts.agentId);
    this.memberId = this.prefix + agentId;
    this.heartbeatMs = positive('options.heartbeatMs', opts.heartbeatMs, 1_000, Infinity);
    this.initialReconnectBackoffMs = positive('options.initialReconnectBackoffMs', opts.initialReconnectBackoffMs, 100, Infinity);
    this.maxReconnectBackoffMs = positive('options.maxReconnectBackoffMs', opts.maxReconnectBackoffMs, 60_000, Infinity);
    if (this.maxReconnectBackoffMs < this.initialReconnectBackoffMs) {
      throw new ArgumentRangeError(
        'options.maxReconnectBackoffMs',
        `a number >= initialReconnectBackoffMs (${this.initialReconnectBackoffMs})`,
        this.maxReconnectBackoffMs,
      );
    }
    // A lease must end: Redis takes it as an integer PX.
    this.lockTtlMs = positive('options.lockTtlMs', opts.lockTtlMs, 30_000, Number.MAX_SAFE_INTEGER);
    this.pollIntervalMs = positive('options.pollIntervalMs', opts.pollIntervalMs, 250, Infinity);
    this.#require = optionalObject<BackendCapabilities>('options.require', opts.require, ['distributed', 'sessionBased', 'fencing']);
    this.clock = optionalClock('options.clock', opts.clock);
    this.#random = optionalRandom('options.random', opts.random);
    this.#factory = opts[kBackendFactory];
    const attached = attaching;
    attaching = undefined;
    // The actor's delays (heartbeat, back-off) run on this clock and never hold the process open.
    const clock = this.clock;
    const upkeepClock = {
      setTimeout: (fn: () => void, ms: number) => background(clock.setTimeout(fn, ms)),
      clearTimeout: (handle: unknown) => clock.clearTimeout(handle),
    };
    this.#actor = attached ?? startActor('coordinator', coordinatorLogic, { input: { engine: this }, id: `coordinator:${this.memberId}`, clock: upkeepClock });
    const actor = this.#actor;
    // Telemetry hears every change of the connection state (one test per change while off).
    // (An actor that makes its engine while it starts has no snapshot yet.)
    let last: CoordinatorState | undefined =
      (actor.getSnapshot() as { value?: unknown } | undefined)?.value === undefined ? undefined : topState(actor.getSnapshot().value);
    actor.subscribe({
      next: (snapshot) => {
        const state = topState(snapshot.value);
        if (state === last) return;
        last = state;
        if (!telemetry.enabled) return;
        if (state === 'reconnecting') telemetry.sink.coordinatorReconnect();
        telemetry.sink.coordinatorState(this.memberId, this.#kind, state);
      },
      // The actor's failure is logged where it is started; this observer must not make it unhandled.
      error: () => undefined,
    });
    this.#state$ = new Observable<CoordinatorState>((subscriber) => {
      subscriber.next(topState(actor.getSnapshot().value));
      const subscription = actor.subscribe((snapshot) => subscriber.next(topState(snapshot.value)));
      return () => subscription.unsubscribe();
    }).pipe(distinctUntilChanged());
  }

  /** A coordinator (the engine) for an actor `coordinatorLogic` started on its own. @internal */
  static attach(actor: AnyActorRef, options: CoordinatorOptions | undefined): Coordinator {
    attaching = actor as Actor<typeof coordinatorLogic>;
    return new Coordinator(options);
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
   * It holds the connection state and the timers,
   * and each held lock is its `lease-<n>` child.
   */
  get actor(): Actor<typeof coordinatorLogic> {
    return this.#actor;
  }

  /** What the backend guarantees; `undefined` before the first `start()`. */
  get capabilities(): BackendCapabilities | undefined {
    return this.#backend?.capabilities;
  }

  /** Which backend the URL names. */
  get backendKind(): BackendKind {
    return this.#kind;
  }

  /**
   * Connects. Does nothing when already started. Rejects with a `CoordinationError` when
   * the client is missing, the backend lacks a required capability, or it cannot be
   * reached; the coordinator is then `disconnected` and may be started again.
   */
  start(): Promise<void> {
    const state = this.state;
    if (state === 'connected' || state === 'reconnecting') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
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
  }

  /** The URL as the user gave it, without its password, for messages. */
  #shownUrl(): string {
    // Several etcd hosts (etcd://h1:2379,h2:2379) are no WHATWG URL: mask the password by hand.
    return this.url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
  }

  /** The first connection, run by the actor's `connect` child. @internal */
  async connectNow(): Promise<void> {
    const backend = (this.#backend ??= await this.#createBackend());
    this.#checkCapabilities(backend);
    try {
      await backend.connect();
      await this.#listenForForces(backend);
    } catch (error) {
      await backend.close();
      // A TLS URL against a plaintext server shows only as a handshake that never completes.
      const tls =
        this.#parsed.protocol === 'rediss:' &&
        /ETIMEDOUT|ECONNRESET|wrong version number|Connection is closed|socket disconnected|EPROTO/i.test(messageOf(error));
      const hint = tls ? ' (the TLS handshake did not complete: is the server speaking TLS? rediss:// needs a TLS port; use redis:// for a plaintext one)' : '';
      throw new CoordinationError('ERR_COORDINATION_BACKEND', `could not connect to ${this.#shownUrl()}: ${messageOf(error)}${hint}`, { cause: error });
    }
  }

  /** Answers locksmiths that force this member's locks (over the backend's messaging). */
  async #listenForForces(backend: Backend): Promise<void> {
    await serveForces(this, backend, () => this.#held());
  }

  async #createBackend(): Promise<Backend> {
    const backend = this.#factory
      ? this.#factory()
      : await createBackend(this.#kind, {
          url: this.#parsed,
          memberId: this.memberId,
          clock: this.clock,
          commandTimeoutMs: commandTimeout(this.heartbeatMs, this.lockTtlMs),
          leaseTtlMs: this.lockTtlMs,
        });
    backend.onReleased((name) => this.#wake(name));
    backend.onLost((error) => this.#actor.send({ type: 'statesmith.coordinator.lost', [kFromEngine]: true, error: errorData(error) }));
    return backend;
  }

  #checkCapabilities(backend: Backend): void {
    for (const [capability, wanted] of Object.entries(this.#require)) {
      if (wanted === true && backend.capabilities[capability as keyof BackendCapabilities] !== true) {
        throw new CoordinationError(
          'ERR_COORDINATION_URL',
          `the ${backend.kind} backend is not ${capability}, and options.require asks for it (url ${this.#shownUrl()})`,
        );
      }
    }
  }

  /**
   * Releases every lock still held through this coordinator, then disconnects. Does
   * nothing when not started.
   */
  stop(): Promise<void> {
    return new Promise<void>((resolve) => {
      const subscription = this.#actor.on('statesmith.coordinator.stopped', () => {
        subscription.unsubscribe();
        resolve();
      });
      this.#actor.send({ type: 'statesmith.coordinator.stop' });
    });
  }

  /** Releases what is held and closes the backend, run by the actor's `shutdown` child. @internal */
  async shutdownNow(): Promise<void> {
    // Leaders resign first, so their signals say why; then the groups are left.
    await Promise.all([...this.#elections.values()].map(({ runtime }) => runtime.resignNow('resigned: its coordinator stopped').catch(() => undefined)));
    await Promise.all([...this.#owned.values()].map((record) => this.disown(record.dir, record.id).catch(() => false)));
    this.#groups.clear();
    await Promise.all(this.#held().map((record) => record.release()));
    await this.#backend?.close();
    this.wakeAll();
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

  // ---- connection upkeep: the steps the actor's children run ----

  /** The grants held now: the actor's leases. */
  #held(): HandleRecord[] {
    return Object.values(this.#actor.getSnapshot().context.leases).map((lease) => lease.lease as HandleRecord);
  }

  /** One heartbeat, bounded by its own timeout (the `ping` child). @internal */
  async pingNow(): Promise<void> {
    const backend = this.#backend;
    if (backend === undefined) throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${this.memberId} has no backend`);
    await withTimeout(backend.ping(), this.clock, Math.max(this.heartbeatMs, 50), 'heartbeat');
    // The heartbeat is what proves this member alive to others: its records live on.
    await withTimeout(this.#refreshOwned(backend, false), this.clock, Math.max(this.heartbeatMs, 50), 'heartbeat');
  }

  /** Puts the owned records again (all of them after a reconnect; on a lease-bound store only then); drops the dead ones. */
  async #refreshOwned(backend: Backend, all: boolean): Promise<void> {
    const records = backend.records;
    if (records === undefined || this.#owned.size === 0) return;
    await Promise.all(
      [...this.#owned.entries()].map(async ([key, record]) => {
        if (!record.live()) {
          this.#owned.delete(key);
          await records.delete(record.dir, record.id, record.value).catch(() => false);
          return;
        }
        if (all || !records.onLease) await records.put(record.dir, record.id, record.value, this.lockTtlMs);
      }),
    );
  }

  /** The connection is lost (the `connectionLost` action): no lock held through it can be vouched for. @internal */
  loseAll(error: unknown): void {
    const message = (error as { message?: string } | undefined)?.message ?? String(error);
    getLogger().warn(`coordinator ${this.memberId} lost its connection to ${this.#shownUrl()}; reconnecting`, { error: message });
    this.#listening = false;
    for (const record of this.#held()) record.lose(`the connection to the ${this.#kind} backend was lost (${message})`, 'connection');
    void this.#backend?.close();
  }

  /** One reconnect attempt (the `reconnect` child). @internal */
  async reconnectNow(): Promise<void> {
    const backend = this.#backend;
    if (backend === undefined) throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${this.memberId} has no backend`);
    const attempt = this.#actor.getSnapshot().context.attempt;
    try {
      await backend.connect();
      await this.#listenForForces(backend);
    } catch (error) {
      getLogger().info(`coordinator ${this.memberId}: reconnect attempt ${attempt} failed`, { error: messageOf(error) });
      throw error;
    }
    if (this.state !== 'reconnecting') {
      await backend.close();
      return;
    }
    getLogger().info(`coordinator ${this.memberId} reconnected to ${this.#shownUrl()} after ${attempt} attempt(s)`);
    // Its memberships come back with it (a leader record does not: leadership ended with the connection).
    await this.#refreshOwned(backend, true).catch((error: unknown) =>
      getLogger().warn(`coordinator ${this.memberId}: restoring its group memberships failed`, { error }),
    );
  }

  // ---- records, elections and groups ----

  /** The backend's record store; a backend without one cannot hold elections or groups. @internal */
  recordStore(): RecordStore {
    const records = this.backend().records;
    if (records === undefined)
      throw new CoordinationError('ERR_COORDINATION_BACKEND', `the ${this.#kind} backend keeps no records: it cannot hold elections or groups`);
    return records;
  }

  /** Puts a record and keeps it alive with the heartbeat while `live()` says so. @internal */
  async own(dir: string, id: string, value: string, live: () => boolean = () => true): Promise<void> {
    await this.recordStore().put(dir, id, value, this.lockTtlMs);
    this.#owned.set(dir + id, { dir, id, value, live });
  }

  /** Stops keeping a record and deletes it (if it is still this member's). @internal */
  async disown(dir: string, id: string): Promise<boolean> {
    const record = this.#owned.get(dir + id);
    if (record === undefined) return false;
    this.#owned.delete(dir + id);
    return (await this.#backend?.records?.delete(dir, id, record.value)) ?? false;
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

  /** The engine of the election of `group` (the election actor's children call it). @internal */
  electionEngine(group: string): ElectionRuntime {
    let entry = this.#elections.get(group);
    if (entry === undefined) this.#elections.set(group, (entry = { runtime: new ElectionRuntime(this, group) }));
    return entry.runtime;
  }

  /**
   * The leader election of `group` (one object per group): campaign, read the leader, or
   * watch it. Its actor is the coordinator actor's child `election:<group>`. A group name
   * is a non-empty string of at most 256 bytes.
   */
  getElection(group: string): Election {
    checkGroup(group);
    const existing = this.#elections.get(group)?.facade;
    if (existing !== undefined) return existing;
    this.#actor.send({ type: 'statesmith.coordinator.election', group });
    const child = (this.#actor.getSnapshot().children as Record<string, AnyActorRef | undefined>)[`election:${group}`];
    if (child === undefined)
      throw new CoordinationError(
        'ERR_COORDINATION_STATE',
        `the election of group ${group} could not be opened (asked from inside the coordinator's own step?)`,
      );
    const entry = this.#elections.get(group) as { runtime: ElectionRuntime; facade?: Election };
    entry.facade = new Election(this, entry.runtime, child);
    return entry.facade;
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
        this.#listMembers(group).then(
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

  #groupDir(group: string): string {
    return `group/${this.prefix}${group}/`;
  }

  async #listMembers(group: string): Promise<GroupMember[]> {
    const records = await this.recordStore().list(this.#groupDir(group));
    const members: GroupMember[] = [];
    for (const { id, value } of records) {
      let capabilities: unknown = null;
      try {
        capabilities = (JSON.parse(value) as { capabilities?: unknown }).capabilities ?? null;
      } catch {
        // A record not written by statesmith: the member is there, its capabilities unknown.
      }
      members.push({ memberId: id, capabilities });
    }
    return members.sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  }

  /** Runs a group command (the `op` child). */
  async #runGroupCommand(
    command: Extract<CoordinatorCommand, { type: 'statesmith.coordinator.join' | 'statesmith.coordinator.leave' | 'statesmith.coordinator.members' }>,
  ): Promise<CoordinatorReply> {
    const { group } = command;
    switch (command.type) {
      case 'statesmith.coordinator.join': {
        if (this.#groups.has(group)) {
          return {
            type: 'statesmith.rejected',
            command: { type: command.type, group },
            state: 'connected',
            code: 'ERR_ALREADY_MEMBER',
            reason: `${this.memberId} is already a member of group ${JSON.stringify(group)}`,
          };
        }
        const value = JSON.stringify({ capabilities: command.capabilities ?? null });
        this.#groups.set(group, value);
        try {
          await this.own(this.#groupDir(group), this.memberId, value, () => this.#groups.get(group) === value);
        } catch (error) {
          this.#groups.delete(group);
          throw error;
        }
        return { type: 'statesmith.coordinator.joined', group, memberId: this.memberId };
      }
      case 'statesmith.coordinator.leave': {
        const wasMember = this.#groups.delete(group);
        if (wasMember) await this.disown(this.#groupDir(group), this.memberId);
        return { type: 'statesmith.coordinator.left', group, memberId: this.memberId, wasMember };
      }
      case 'statesmith.coordinator.members':
        return { type: 'statesmith.coordinator.members', group, members: await this.#listMembers(group) };
    }
  }

  /** After a reconnect or a stop: waiters retry at once rather than at their next poll. @internal */
  wakeAll(): void {
    for (const name of [...this.#wakeups.keys()]) this.#wake(name);
  }

  /** A lease child starts: its lock's renewals begin. @internal */
  startUpkeep(lease: unknown): void {
    (lease as HandleRecord).startUpkeep();
  }

  /** A lease child stops: its lock's renewals end. @internal */
  stopUpkeep(lease: unknown): void {
    (lease as HandleRecord).stopUpkeep();
  }

  readonly #commandLocks = new Map<string, DistributedLock>();

  /** Runs an `acquire` or `release` command (the `op` child): the same lock object per name. @internal */
  async runCommand(command: CoordinatorCommand): Promise<CoordinatorReply> {
    if (
      command.type === 'statesmith.coordinator.join' ||
      command.type === 'statesmith.coordinator.leave' ||
      command.type === 'statesmith.coordinator.members'
    ) {
      try {
        return await this.#runGroupCommand(command);
      } catch (error) {
        return Object.defineProperty({ type: 'statesmith.coordinator.failed', command: command.type, error: errorData(error) }, kError, {
          value: error,
        }) as CoordinatorReply;
      }
    }
    if (command.type === 'statesmith.coordinator.breakLock') {
      try {
        const backend = this.backend();
        if (backend.breakLock === undefined) throw new CoordinationError('ERR_COORDINATION_BACKEND', `the ${backend.kind} backend cannot break locks`);
        const name = checkLockName(this.prefix + command.lock);
        const broken = await backend.breakLock(name);
        getLogger().warn(`coordinator ${this.memberId} broke lock ${name}${broken ? '' : ' (nobody held it)'}`);
        // A holder in this process learns at once.
        if (broken) for (const record of this.#held()) if (record.name === name) record.lose(`broken by ${this.memberId}`);
        return { type: 'statesmith.coordinator.broken', lock: command.lock, broken };
      } catch (error) {
        return Object.defineProperty({ type: 'statesmith.coordinator.failed', command: command.type, error: errorData(error) }, kError, {
          value: error,
        }) as CoordinatorReply;
      }
    }
    if (command.type !== 'statesmith.coordinator.acquire' && command.type !== 'statesmith.coordinator.release') {
      return { type: 'statesmith.coordinator.failed', command: command.type, error: { name: 'Error', message: 'not a lock command' } };
    }
    let lock = this.#commandLocks.get(command.lock);
    if (lock === undefined) this.#commandLocks.set(command.lock, (lock = this.getLock(command.lock)));
    try {
      if (command.type === 'statesmith.coordinator.release') {
        const freed = await lock.release();
        return { type: 'statesmith.coordinator.released', lock: command.lock, freed };
      }
      const handle = await lock.acquire({
        ...(command.blocking === undefined ? {} : { blocking: command.blocking }),
        ...(command.timeoutMs === undefined ? {} : { timeoutMs: command.timeoutMs }),
      });
      return handle === null
        ? { type: 'statesmith.coordinator.notAcquired', lock: command.lock }
        : { type: 'statesmith.coordinator.acquired', lock: command.lock, fence: String(handle.fence) };
    } catch (error) {
      return { type: 'statesmith.coordinator.failed', command: command.type, error: errorData(error) };
    }
  }

  /** The delay before reconnect attempt `attempt`: exponential, capped, with up to 20% jitter below. */
  backoffDelay(attempt: number): number {
    const exponential = this.initialReconnectBackoffMs * 2 ** Math.min(attempt - 1, 52);
    const capped = Math.min(this.maxReconnectBackoffMs, exponential);
    return Math.max(this.initialReconnectBackoffMs, capped * (1 - 0.2 * this.#random()));
  }

  // ---- what locks use ----

  /** Throws an `ActorStoppedError` once the coordinator's actor has stopped or failed (a wait loop's check). @internal */
  requireRunning(): void {
    const snapshot = this.#actor.getSnapshot();
    if (snapshot.status !== 'active') throw new ActorStoppedError(this.#actor.id, snapshot.status, snapshot.value);
  }

  /** @internal */
  backend(): Backend {
    if (this.state !== 'connected' || this.#backend === undefined) {
      throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${this.memberId} is ${this.state}, not connected`);
    }
    return this.#backend;
  }

  readonly #tokenPrefix = randomBytes(6).toString('hex');
  #tokens = 0;

  /** A token unique to one grant: member, a random per-coordinator part, a counter. @internal */
  nextToken(): string {
    return `${this.memberId}:${this.#tokenPrefix}:${++this.#tokens}`;
  }

  /** @internal */
  queue(name: string): Mutex {
    let queue = this.#queues.get(name);
    if (queue === undefined) this.#queues.set(name, (queue = new Mutex({ name, clock: this.clock, [kUninspected]: true } as MutexOptions)));
    return queue;
  }

  /** @internal */
  dropQueue(name: string): void {
    const queue = this.#queues.get(name);
    if (queue !== undefined && !queue.locked && queue.waiting === 0) this.#queues.delete(name);
  }

  /** A grant begins (its lease becomes the actor's child) or ends. @internal */
  track(record: HandleRecord, held: boolean): void {
    if (held) {
      this.#actor.send({ type: 'statesmith.coordinator.leaseGranted', [kFromEngine]: true, lease: record, lock: record.name, fence: String(record.fence) });
    } else {
      if (record.leaseId !== undefined) this.#actor.send({ type: 'statesmith.coordinator.leaseEnded', [kFromEngine]: true, id: record.leaseId });
    }
  }

  #listening = false;
  #contenders = 0;

  /** An acquire enters (+1) or leaves (-1) the backend wait loop; the last one out stops listening. @internal */
  contending(delta: 1 | -1): void {
    this.#contenders += delta;
    if (this.#contenders === 0 && this.#listening) {
      this.#listening = false;
      void this.#backend?.listen?.(false).catch((error: unknown) => getLogger().debug('stopping release wake-ups failed', { error }));
    }
  }

  /** Resolves when `name` may have come free, after `ms`, or when `signal` aborts. @internal */
  async waitForRelease(name: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    const backend = this.#backend;
    if (!this.#listening && backend?.listen !== undefined && this.state === 'connected') {
      // Start hearing releases, then look again at once: one may have come before we listened.
      this.#listening = true;
      try {
        await backend.listen(true);
      } catch (error) {
        this.#listening = false;
        getLogger().debug('listening for release wake-ups failed; polling', { error });
      }
      return;
    }
    return new Promise<void>((resolve) => {
      let waiters = this.#wakeups.get(name);
      if (waiters === undefined) this.#wakeups.set(name, (waiters = new Set()));
      const set = waiters;
      const done = (): void => {
        this.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        set.delete(done);
        if (set.size === 0 && this.#wakeups.get(name) === set) this.#wakeups.delete(name);
        resolve();
      };
      const timer = this.clock.setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      set.add(done);
    });
  }

  #wake(name: string): void {
    const waiters = this.#wakeups.get(name);
    if (waiters !== undefined) for (const wake of [...waiters]) wake();
  }
}

/**
 * A held distributed lock. `fence` grows with every grant of the name: hand it to the
 * resource you write to, so a stale holder's writes can be refused. `signal` aborts with
 * a `LockLostError` when the lease cannot be kept (a renewal refused, the local lease
 * deadline passed, the connection lost). `release()` returns false when the lock was no
 * longer held; errors are logged, never thrown.
 */
export interface DistributedLockHandle extends AsyncDisposable {
  /** The full lock name, the coordinator's prefix included. */
  readonly name: string;
  /** This grant's fence: greater than the fence of every earlier grant of the name on the backend. */
  readonly fence: bigint;
  /** Aborts with a `LockLostError` the moment the lock is known to be lost; never aborts after a release. */
  readonly signal: AbortSignal;
  /** True until released or lost. */
  readonly held: boolean;
  /** Frees the lock; resolves false when it was no longer held. Idempotent, and never rejects. */
  release(): Promise<boolean>;
  /**
   * Asks the server whether this grant still holds the lock (tooz's `is_still_owner`).
   * A "no" also loses the handle: its signal aborts at once.
   */
  isStillOwner(): Promise<boolean>;
}

/** A member of a group, as `getMembers` and `members$` list it. */
export interface GroupMember {
  /** The member's id (its coordinator's `memberId`). */
  readonly memberId: string;
  /** What it joined with (JSON), or null. */
  readonly capabilities: unknown;
}

/** This member's place in a group, from `joinGroup`. */
export interface Membership extends AsyncDisposable {
  /** The group. */
  readonly group: string;
  /** This member's id. */
  readonly memberId: string;
  /** What it joined with. */
  readonly capabilities: unknown;
  /** Leaves the group; resolves false when it was no longer a member. Idempotent. `signal` and `timeoutMs` bound the wait (the leave goes on). */
  leave(options?: WaitOptions): Promise<boolean>;
}

/** A coordinator `failed` reply as the error it carries. */
const failedReply = {
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

/** The grants of this process that are held now: what a capture starting late reports. */
const heldGrants = new Set<HandleRecord>();

function reportHeldGrants(): void {
  for (const grant of heldGrants) grant.reportHeld();
}

/** One grant: its lease upkeep and its handle. */
class HandleRecord implements DistributedLockHandle {
  readonly name: string;
  readonly fence: bigint;
  readonly #coordinator: Coordinator;
  readonly #backend: Backend;
  readonly #token: string;
  readonly #local: LockHandle;
  /** Made on first read of `signal` (most holders never read it); `#lost` is its reason if lost before. */
  #controller: AbortController | undefined;
  #lost: LockLostError | undefined;
  readonly #grantedAt: number;
  #deadline: number;
  #renewTimer: unknown;
  #deadlineTimer: unknown;
  #state: 'held' | 'lost' | 'released' = 'held';
  #releasing: Promise<boolean> | undefined;
  readonly #onEnd: () => void;

  constructor(coordinator: Coordinator, backend: Backend, name: string, token: string, fence: bigint, sentAt: number, local: LockHandle, onEnd: () => void) {
    this.#coordinator = coordinator;
    this.#backend = backend;
    this.name = name;
    this.#token = token;
    this.fence = fence;
    this.#local = local;
    this.#onEnd = onEnd;
    this.#grantedAt = coordinator.clock.now();
    this.#deadline = leaseDeadline(sentAt, coordinator.lockTtlMs);
    coordinator.track(this, true);
    heldGrants.add(this);
    lateReporters.add(reportHeldGrants);
    if (inspection.enabled) this.reportHeld();
  }

  /** Reports this grant as held, for the locks view (a capture that starts while it is held, too). @internal */
  reportHeld(): void {
    inspection.lock({ lock: `distributed:${this.name}`, kind: this.#backend.kind, op: 'held', holder: this.#coordinator.memberId, fence: this.fence });
  }

  /** Its child id among the coordinator actor's children (`lease-<n>`), once it is one. @internal */
  leaseId: string | undefined;

  /** The lease child started: renewals begin. @internal */
  startUpkeep(): void {
    // While no renewal is in flight the renewal timer is the only one: it fires before the
    // deadline, and a late firing (a frozen process) finds the deadline passed and gives up.
    if (this.#state === 'held' && this.#renewTimer === undefined) this.#scheduleRenewal();
  }

  /** The lease child stopped. @internal */
  stopUpkeep(): void {
    this.#stopUpkeep();
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#lost !== undefined) this.#controller.abort(this.#lost);
      else checkedOnRead(this.#controller.signal, this.#expireIfDue);
    }
    this.#expireIfDue();
    return this.#controller.signal;
  }

  get held(): boolean {
    this.#expireIfDue();
    return this.#state === 'held';
  }

  /**
   * After a freeze (a blocked event loop, SIGSTOP) the deadline timer has not fired yet,
   * but the lease may be gone and another member may hold the lock: whoever looks first
   * (`held`, `signal.aborted`, `signal.reason`, `signal.throwIfAborted()`) loses it here.
   */
  readonly #expireIfDue = (): void => {
    if (this.#state === 'held' && this.#coordinator.clock.now() >= this.#deadline) this.lose('the lease ran out before it could be renewed');
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

  async isStillOwner(): Promise<boolean> {
    if (!this.held) return false;
    if (this.#backend.isHolder === undefined)
      throw new CoordinationError('ERR_COORDINATION_BACKEND', `the ${this.#backend.kind} backend cannot say who holds a lock`);
    let owner: boolean;
    try {
      owner = await this.#backend.isHolder(this.name, this.#token);
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
    if (wasHeld && telemetry.enabled) telemetry.sink.lockReleased('distributed', this.name, this.#coordinator.clock.now() - this.#grantedAt);
    this.#state = 'released';
    this.#stopUpkeep();
    let freed = false;
    try {
      // Also after a loss: if the lease is still ours server-side, free it for the next holder.
      freed = await this.#backend.release(this.name, this.#token);
    } catch (error) {
      getLogger().error(`releasing distributed lock ${this.name} failed`, { error });
    }
    this.#end();
    getLogger().debug(`released lock ${this.name} (held ${Math.round(this.#coordinator.clock.now() - this.#grantedAt)} ms)`);
    return wasHeld && freed;
  }

  /** @internal */
  lose(info: string, reason: 'lease' | 'connection' = 'lease'): void {
    if (this.#state !== 'held') return;
    this.#state = 'lost';
    if (telemetry.enabled) telemetry.sink.lockLost('distributed', reason);
    this.#stopUpkeep();
    getLogger().warn(`distributed lock ${this.name} lost: ${info}`);
    this.#lost = new LockLostError(this.name, `the ${this.#backend.kind} backend`, info);
    this.#controller?.abort(this.#lost);
    // Give the server-side lease back if it is still ours (a frozen holder's may be), then let the next local waiter in.
    this.#releasing = this.#backend
      .release(this.name, this.#token)
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
    this.#coordinator.track(this, false);
    this.#local.release();
    this.#onEnd();
  }

  #scheduleRenewal(): void {
    this.#renewTimer = background(this.#coordinator.clock.setTimeout(() => void this.#renew(), this.#coordinator.lockTtlMs / 3));
  }

  #scheduleDeadline(): void {
    const clock = this.#coordinator.clock;
    if (this.#deadlineTimer !== undefined) clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = background(
      clock.setTimeout(() => this.lose('the lease ran out before it could be renewed'), Math.max(0, this.#deadline - clock.now())),
    );
  }

  async #renew(): Promise<void> {
    this.#renewTimer = undefined;
    if (this.#state !== 'held') return;
    const clock = this.#coordinator.clock;
    const sentAt = clock.now();
    if (sentAt >= this.#deadline) {
      this.lose('the lease ran out before it could be renewed');
      return;
    }
    // Until the answer comes, the deadline needs a timer of its own.
    if (this.#deadlineTimer === undefined) this.#scheduleDeadline();
    let kept: boolean;
    try {
      kept = await this.#backend.renew(this.name, this.#token, this.#coordinator.lockTtlMs);
    } catch (error) {
      if (telemetry.enabled) telemetry.sink.leaseRenewFailure();
      // Keep trying; the local deadline decides when the lease is gone.
      getLogger().warn(`renewing distributed lock ${this.name} failed; retrying`, { error: messageOf(error) });
      if (this.#state === 'held') this.#renewTimer = background(clock.setTimeout(() => void this.#renew(), Math.min(this.#coordinator.lockTtlMs / 10, 1_000)));
      return;
    }
    if (this.#state !== 'held') return;
    if (!kept) {
      this.lose('the backend refused to renew the lease (it expired or was broken)');
      return;
    }
    if (clock.now() >= this.#deadline) {
      this.lose('the lease ran out before it could be renewed');
      return;
    }
    this.#deadline = leaseDeadline(sentAt, this.#coordinator.lockTtlMs);
    if (this.#deadlineTimer !== undefined) clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#scheduleRenewal();
  }

  #stopUpkeep(): void {
    const clock = this.#coordinator.clock;
    if (this.#renewTimer !== undefined) clock.clearTimeout(this.#renewTimer);
    if (this.#deadlineTimer !== undefined) clock.clearTimeout(this.#deadlineTimer);
    this.#renewTimer = undefined;
    this.#deadlineTimer = undefined;
  }
}

/**
 * A timer that does not keep the process alive: a coordinator's upkeep (heartbeats,
 * reconnects, renewals) must not hold an otherwise finished program open. Open sockets
 * of a started Redis or PostgreSQL coordinator do that until `stop()`.
 */
function background(handle: unknown): unknown {
  (handle as { unref?: () => void } | null)?.unref?.();
  return handle;
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

/** The local end of a lease: the send time of the request that set it, plus the TTL, less a margin for clock drift. */
function leaseDeadline(sentAt: number, ttlMs: number): number {
  return sentAt + ttlMs - Math.max(1, ttlMs * 0.02);
}

let defaultCoordinator: Coordinator | undefined;

/** The actor `Coordinator.attach` hands to the constructor it calls. */
let attaching: Actor<typeof coordinatorLogic> | undefined;

/** The connection state of a snapshot value (`{ connected: 'waiting' }` is `connected`). */
function topState(value: unknown): CoordinatorState {
  return (typeof value === 'string' ? value : Object.keys(value as object)[0]) as CoordinatorState;
}

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
  readonly #coordinator: Coordinator | undefined;
  #handle: HandleRecord | undefined;

  /**
   * @internal Use `coordinator.getLock(name)` or `new Lock(template, data)`. `name` is
   * without the coordinator's prefix: the lock adds it, so every way of naming a lock
   * (`getLock`, `Lock`, `synchronized`) means the same lock.
   */
  constructor(name: string, coordinator: Coordinator | undefined) {
    this.#base = requireNonEmptyString('name', name);
    if (coordinator !== undefined && !(coordinator instanceof Coordinator)) throw new ArgumentTypeError('coordinator', 'a Coordinator', coordinator);
    this.#coordinator = coordinator;
    if (coordinator !== undefined) checkLockName(coordinator.prefix + name);
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
    return this.#coordinator ?? getDefaultCoordinator();
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
    if (!telemetry.enabled) return this.#acquire(options);
    const span = telemetry.sink.lockAcquire('distributed', this.name);
    telemetry.sink.lockWaiters('distributed', 1);
    try {
      const handle = await this.#acquire(options);
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

  async #acquire(options?: DistributedAcquireOptions): Promise<DistributedLockHandle | null> {
    const opts = optionalObject<DistributedAcquireOptions>('options', options, ['blocking', 'timeoutMs', 'signal']);
    const signal = optionalSignal('options.signal', opts.signal);
    const budget = Math.min(blockingBudget(opts.blocking), optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity));
    signal?.throwIfAborted();
    if (this.#handle?.held === true) {
      if (budget !== Infinity) return null;
      throw new DeadlockError(`${this.name} is already held through this lock object and is not re-entrant; waiting for it would never end`);
    }
    const coordinator = this.#coordinator ?? getDefaultCoordinator();
    const name = checkLockName(coordinator.prefix + this.#base);
    if (this.#coordinator === undefined) await coordinator.start();
    // Not connected: refused at once, unless reconnecting with time to wait, which the loop below waits through.
    if (coordinator.state !== 'reconnecting' || budget === 0) coordinator.backend(); // throws when not connected
    const clock = coordinator.clock;
    const started = clock.now();
    getLogger().debug(`acquiring lock ${name}`);
    // First in line in this process...
    const queue = coordinator.queue(name);
    let local: LockHandle;
    try {
      local = await queue.acquire({ owner: this, ...(signal ? { signal } : {}), timeoutMs: budget });
    } catch (error) {
      coordinator.dropQueue(name);
      if (error instanceof TimeoutError) return null;
      throw error;
    }
    // ...then the backend.
    const token = coordinator.nextToken();
    coordinator.contending(1);
    try {
      for (;;) {
        signal?.throwIfAborted();
        // A coordinator actor stopped under the wait (not through stop()): no grant can come.
        coordinator.requireRunning();
        const sentAt = clock.now();
        let fence: bigint | null = null;
        if (coordinator.state === 'connected') {
          const backend = coordinator.backend();
          try {
            fence = await backend.tryAcquire(name, token, coordinator.lockTtlMs);
          } catch (error) {
            // The script may have run even though its reply was lost: give back whatever
            // this token may hold (a compare-and-delete never frees another holder's lock).
            void backend.release(name, token).catch(() => undefined);
            // A connection lost meanwhile: wait for the reconnect like for a release.
            if (coordinator.state === 'connected') {
              throw new CoordinationError('ERR_COORDINATION_BACKEND', `acquiring ${name} failed: ${messageOf(error)}`, { cause: error });
            }
          }
        }
        if (fence !== null && (signal?.aborted === true || clock.now() >= leaseDeadline(sentAt, coordinator.lockTtlMs))) {
          // Aborted while the grant was on its way, or the reply came back after the lease
          // could have run out (a frozen process): the grant is worthless; give it back.
          await coordinator
            .backend()
            .release(name, token)
            .catch(() => false);
          signal?.throwIfAborted();
          getLogger().warn(`lock ${name} was granted after its lease could have run out; gave it back`);
          fence = null;
        }
        if (fence === null && coordinator.state !== 'connected' && (budget === 0 || coordinator.state !== 'reconnecting')) {
          throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${coordinator.memberId} is ${coordinator.state}, not connected`);
        }
        if (fence !== null) {
          const record = new HandleRecord(coordinator, coordinator.backend(), name, token, fence, sentAt, local, () => coordinator.dropQueue(name));
          this.#handle = record;
          getLogger().debug(`acquired lock ${name} (waited ${Math.round(clock.now() - started)} ms, fence ${fence})`);
          return record;
        }
        const remaining = budget - (clock.now() - started);
        if (remaining <= 0) {
          local.release();
          coordinator.dropQueue(name);
          return null;
        }
        // The locks view: held elsewhere, and how many of this process wait for it (this one, and those queued behind).
        if (inspection.enabled) inspection.lock({ lock: `distributed:${name}`, kind: coordinator.backendKind, op: 'waiting', waiters: queue.waiting + 1 });
        await coordinator.waitForRelease(name, Math.min(remaining, coordinator.pollIntervalMs), signal);
      }
    } catch (error) {
      // Never keep the local place after giving up.
      local.release();
      coordinator.dropQueue(name);
      throw error;
    } finally {
      coordinator.contending(-1);
    }
  }

  /** Releases the hold this object has; false when it holds nothing. Errors are logged, not thrown. */
  async release(): Promise<boolean> {
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle === undefined) return false;
    return handle.release();
  }
}

function blockingBudget(blocking: unknown): number {
  if (blocking === undefined || blocking === true) return Infinity;
  if (blocking === false) return 0;
  if (typeof blocking !== 'number' || Number.isNaN(blocking))
    throw new ArgumentTypeError('options.blocking', 'true, false or a number of milliseconds', blocking);
  if (blocking < 0) throw new ArgumentRangeError('options.blocking', 'a number of milliseconds >= 0', blocking);
  return blocking;
}

function positive(name: string, value: unknown, fallback: number, max: number): number {
  const ms = optionalDuration(name, value, fallback);
  if (ms <= 0 || ms > max) throw new ArgumentRangeError(name, max === Infinity ? 'a number > 0 (or Infinity)' : `a number > 0 and <= ${max}`, ms);
  return ms;
}

function requireString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new ArgumentTypeError(name, 'a string', value);
  return value;
}

function messageOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // gRPC (etcd) wraps the one fact that matters in boilerplate: '14 UNAVAILABLE: No connection
  // established. Last error: Error: connect ECONNREFUSED h:p. Resolution note: ' says 'unavailable (connect ECONNREFUSED h:p)'.
  const grpc = /^\d+ ([A-Z_]+): (?:.*?Last error: (?:Error: )?)?(.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(message);
  if (grpc !== null) return `${(grpc[1] as string).toLowerCase().replaceAll('_', ' ')} (${(grpc[2] as string).trim()})`;
  return message;
}

function withTimeout<T>(promise: Promise<T>, clock: Clock, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(new TimeoutError(`${what} got no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clock.clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clock.clearTimeout(timer);
        reject(error);
      },
    );
  });
}
