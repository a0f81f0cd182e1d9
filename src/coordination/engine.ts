/**
 * The coordinator's engine: the backend I/O that the coordinator actor's children run.
 * `coordinatorLogic` makes one as its actor starts, keeps it in its context, and is the
 * only one that drives it: the connection, every grant (through its `acquire` command),
 * the one renewal loop, the records the heartbeat keeps alive, and the elections.
 *
 * Internal to statesmith (not exported from the package).
 */
import { randomBytes } from 'node:crypto';
import type { AnyActorRef } from 'xstate';
import {
  kError,
  kFromEngine,
  type CoordinatorCommand,
  type CoordinatorEngine as MachineEngine,
  type CoordinatorReply,
} from '../../machines/coordinator.machine.ts';
import { errorData, withInProcess } from '../../machines/protocol.ts';
import type { Clock } from '../clock.ts';
import { ActorStoppedError, ArgumentRangeError, ArgumentTypeError, CoordinationError, DeadlockError, TimeoutError } from '../errors.ts';
import { kUninspected, Mutex, type MutexOptions } from '../locks/Mutex.ts';
import { getLogger } from '../logger.ts';
import { telemetry } from '../telemetry/hooks.ts';
import { checkLockName } from './backends/common.ts';
import { createBackend } from './backends/registry.ts';
import { ElectionRuntime } from './election/electionLogic.ts';
import { acquireGrant, measuredAcquire, type AcquireHost } from './lock/acquire.ts';
import { serveForces } from './lock/forcing.ts';
import type { Grant } from './lock/grant.ts';
import { LeaseKeeper } from './lock/leases.ts';
import { Groups } from './membership/groups.ts';
import { OwnedRecords } from './membership/records.ts';
import { commandTimeout, messageOf, resolveOptions, shownUrl, type CoordinatorSettings } from './options.ts';
import type { Backend, BackendCapabilities, BackendKind, CoordinatorState, DistributedLockHandle, RecordStore } from './types.ts';

/** How an in-process `acquire` command carries its signal and its waiter (the `DistributedLock` object). */
export const kVia: unique symbol = Symbol('statesmith.coordinator.via');
/** The grant an in-process `acquired` reply carries. */
export const kGrant: unique symbol = Symbol('statesmith.coordinator.grant');

/** What an in-process `acquire` command adds: who waits, and the signal that abandons the wait. */
export interface AcquireVia {
  readonly owner: object;
  readonly signal?: AbortSignal | undefined;
}

/** The connection state of a snapshot value (`{ connected: 'waiting' }` is `connected`). */
export function topState(value: unknown): CoordinatorState {
  return (typeof value === 'string' ? value : Object.keys(value as object)[0]) as CoordinatorState;
}

/** `blocking` and `timeoutMs` as one budget in ms: the earlier bound. */
export function acquireBudget(blocking: unknown, timeoutMs: unknown): number {
  let budget: number;
  if (blocking === undefined || blocking === true) budget = Infinity;
  else if (blocking === false) budget = 0;
  else if (typeof blocking !== 'number' || Number.isNaN(blocking))
    throw new ArgumentTypeError('options.blocking', 'true, false or a number of milliseconds', blocking);
  else if (blocking < 0) throw new ArgumentRangeError('options.blocking', 'a number of milliseconds >= 0', blocking);
  else budget = blocking;
  return timeoutMs === undefined ? budget : Math.min(budget, timeoutMs as number);
}

export class CoordinatorEngine implements MachineEngine, AcquireHost {
  readonly settings: CoordinatorSettings;
  readonly memberId: string;
  readonly prefix: string;
  readonly heartbeatMs: number;
  readonly lockTtlMs: number;
  readonly pollIntervalMs: number;
  readonly clock: Clock;
  readonly kind: BackendKind;
  /** The records this member keeps alive with its heartbeat (memberships, leader records). */
  readonly records: OwnedRecords;
  readonly groups: Groups;
  /** Whose force-request server answers for this member's locks: the facade when there is one. */
  forceKey: object = this;
  readonly #actor: AnyActorRef;
  readonly #leases: LeaseKeeper;
  #backend: Backend | undefined;
  /** Per-name FIFO queues in front of the backend. */
  readonly #queues = new Map<string, Mutex>();
  /** Blocked acquires waiting for a name to come free. */
  readonly #wakeups = new Map<string, Set<() => void>>();
  readonly #elections = new Map<string, ElectionRuntime>();
  /** Grants taken by `acquire` commands from outside, by lock name (without the prefix): `release` frees them. */
  readonly #commandGrants = new Map<string, Grant>();
  readonly #tokenPrefix = randomBytes(6).toString('hex');
  #tokens = 0;
  #grantIds = 0;
  #listening = false;
  #contenders = 0;

  constructor(actor: AnyActorRef, options: unknown) {
    const settings = resolveOptions(options);
    this.settings = settings;
    this.memberId = settings.memberId;
    this.prefix = settings.prefix;
    this.heartbeatMs = settings.heartbeatMs;
    this.lockTtlMs = settings.lockTtlMs;
    this.pollIntervalMs = settings.pollIntervalMs;
    this.clock = settings.clock;
    this.kind = settings.kind;
    this.#actor = actor;
    this.records = new OwnedRecords(settings.lockTtlMs);
    this.groups = new Groups(this);
    this.#leases = new LeaseKeeper(settings.clock, settings.lockTtlMs, () => this.#backend);
    // Telemetry hears every change of the connection state (one test per change while off).
    let last: CoordinatorState | undefined;
    actor.subscribe({
      next: (snapshot: { value: unknown }) => {
        const state = topState(snapshot.value);
        if (state === last) return;
        last = state;
        if (!telemetry.enabled) return;
        if (state === 'reconnecting') telemetry.sink.coordinatorReconnect();
        telemetry.sink.coordinatorState(this.memberId, this.kind, state);
      },
      // The actor's failure is logged where it is started; this observer must not make it unhandled.
      error: () => undefined,
    });
  }

  /** The connection state now (the actor's). */
  get state(): CoordinatorState {
    return topState((this.#actor.getSnapshot() as { value: unknown }).value);
  }

  /** What the backend guarantees; `undefined` before the first connection. */
  get capabilities(): BackendCapabilities | undefined {
    return this.#backend?.capabilities;
  }

  /** The grants held now. */
  held(): Grant[] {
    return this.#leases.grants();
  }

  // ---- the connection: the steps the actor's children run ----

  /** The first connection (the `connect` child). */
  async connectNow(): Promise<void> {
    const backend = (this.#backend ??= await this.#createBackend());
    this.#checkCapabilities(backend);
    try {
      await backend.connect();
      await serveForces(this, backend, () => this.held());
    } catch (error) {
      await backend.close();
      // A TLS URL against a plaintext server shows only as a handshake that never completes.
      const tls =
        this.settings.parsed.protocol === 'rediss:' &&
        /ETIMEDOUT|ECONNRESET|wrong version number|Connection is closed|socket disconnected|EPROTO/i.test(messageOf(error));
      const hint = tls ? ' (the TLS handshake did not complete: is the server speaking TLS? rediss:// needs a TLS port; use redis:// for a plaintext one)' : '';
      throw new CoordinationError('ERR_COORDINATION_BACKEND', `could not connect to ${shownUrl(this.settings.url)}: ${messageOf(error)}${hint}`, {
        cause: error,
      });
    }
  }

  async #createBackend(): Promise<Backend> {
    const { factory, kind, parsed } = this.settings;
    const backend = factory
      ? factory()
      : await createBackend(kind, {
          url: parsed,
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
    for (const [capability, wanted] of Object.entries(this.settings.require)) {
      if (wanted === true && backend.capabilities[capability as keyof BackendCapabilities] !== true) {
        throw new CoordinationError(
          'ERR_COORDINATION_URL',
          `the ${backend.kind} backend is not ${capability}, and options.require asks for it (url ${shownUrl(this.settings.url)})`,
        );
      }
    }
  }

  /** One heartbeat, bounded by its own timeout (the `ping` child). */
  async pingNow(): Promise<void> {
    const backend = this.#backend;
    if (backend === undefined) throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${this.memberId} has no backend`);
    const bound = Math.max(this.heartbeatMs, 50);
    await withTimeout(backend.ping(), this.clock, bound, 'heartbeat');
    // The heartbeat is what proves this member alive to others: its records live on.
    await withTimeout(this.records.refresh(backend.records, false), this.clock, bound, 'heartbeat');
  }

  /** The connection is lost (the `connectionLost` action): no lock held through it can be vouched for. */
  loseAll(error: unknown): void {
    const message = (error as { message?: string } | undefined)?.message ?? String(error);
    getLogger().warn(`coordinator ${this.memberId} lost its connection to ${shownUrl(this.settings.url)}; reconnecting`, { error: message });
    this.#listening = false;
    for (const grant of this.held()) grant.lose(`the connection to the ${this.kind} backend was lost (${message})`, 'connection');
    void this.#backend?.close();
  }

  /** One reconnect attempt (the `reconnect` child). */
  async reconnectNow(): Promise<void> {
    const backend = this.#backend;
    if (backend === undefined) throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${this.memberId} has no backend`);
    const attempt = (this.#actor.getSnapshot() as { context: { attempt: number } }).context.attempt;
    try {
      await backend.connect();
      await serveForces(this, backend, () => this.held());
    } catch (error) {
      getLogger().info(`coordinator ${this.memberId}: reconnect attempt ${attempt} failed`, { error: messageOf(error) });
      throw error;
    }
    if (this.state !== 'reconnecting') {
      await backend.close();
      return;
    }
    getLogger().info(`coordinator ${this.memberId} reconnected to ${shownUrl(this.settings.url)} after ${attempt} attempt(s)`);
    // Its memberships come back with it (a leader record does not: leadership ended with the connection).
    await this.records
      .refresh(backend.records, true)
      .catch((error: unknown) => getLogger().warn(`coordinator ${this.memberId}: restoring its group memberships failed`, { error }));
  }

  /** Releases what is held and closes the backend (the `shutdown` child). */
  async shutdownNow(): Promise<void> {
    // Leaders resign first, so their signals say why; then the groups are left.
    await Promise.all([...this.#elections.values()].map((runtime) => runtime.resignNow('resigned: its coordinator stopped').catch(() => undefined)));
    await this.records.disownAll(this.#backend?.records);
    this.groups.clear();
    this.#commandGrants.clear();
    await Promise.all(this.held().map((grant) => grant.release()));
    await this.#backend?.close();
    this.wakeAll();
  }

  /** After a reconnect or a stop: waiters retry at once rather than at their next poll. */
  wakeAll(): void {
    for (const name of [...this.#wakeups.keys()]) this.#wake(name);
  }

  /** The delay before reconnect attempt `attempt`: exponential, capped, with up to 20% jitter below. */
  backoffDelay(attempt: number): number {
    const { initialReconnectBackoffMs: initial, maxReconnectBackoffMs: max, random } = this.settings;
    const capped = Math.min(max, initial * 2 ** Math.min(attempt - 1, 52));
    return Math.max(initial, capped * (1 - 0.2 * random()));
  }

  // ---- commands: what the `backend` child runs ----

  /** Runs one command the machine accepted, and answers it (never rejects). */
  async runCommand(command: CoordinatorCommand): Promise<CoordinatorReply> {
    try {
      switch (command.type) {
        case 'statesmith.coordinator.acquire':
          return await this.#acquireCommand(command);
        case 'statesmith.coordinator.release': {
          const grant = this.#commandGrants.get(command.lock);
          this.#commandGrants.delete(command.lock);
          const freed = grant === undefined ? false : await grant.release();
          return { type: 'statesmith.coordinator.released', lock: command.lock, freed };
        }
        case 'statesmith.coordinator.breakLock':
          return await this.#breakLock(command.lock);
        case 'statesmith.coordinator.join':
          return await this.groups.join(command.group, command.capabilities);
        case 'statesmith.coordinator.leave':
          return await this.groups.leave(command.group);
        case 'statesmith.coordinator.members':
          return { type: 'statesmith.coordinator.members', group: command.group, members: await this.groups.list(command.group) };
        default:
          return { type: 'statesmith.coordinator.failed', command: command.type, error: { name: 'Error', message: 'not a command the engine runs' } };
      }
    } catch (error) {
      return withInProcess({ type: 'statesmith.coordinator.failed', command: command.type, error: errorData(error) }, kError, error) as CoordinatorReply;
    }
  }

  async #acquireCommand(command: Extract<CoordinatorCommand, { type: 'statesmith.coordinator.acquire' }>): Promise<CoordinatorReply> {
    const via = (command as { [kVia]?: AcquireVia })[kVia];
    const budget = acquireBudget(command.blocking, command.timeoutMs);
    const name = checkLockName(this.prefix + command.lock);
    if (via === undefined && this.#commandGrants.get(command.lock)?.held === true) {
      // The actor already holds it for a command: a lock is not re-entrant.
      if (budget !== Infinity) return { type: 'statesmith.coordinator.notAcquired', lock: command.lock };
      throw new DeadlockError(`${name} is already held through this coordinator's commands and is not re-entrant; waiting for it would never end`);
    }
    const grant = await measuredAcquire(name, () => acquireGrant(this, name, { budget, signal: via?.signal, owner: via?.owner ?? this, announce: false }));
    if (grant === null) return { type: 'statesmith.coordinator.notAcquired', lock: command.lock };
    if (via === undefined) this.#commandGrants.set(command.lock, grant);
    return withInProcess({ type: 'statesmith.coordinator.acquired', lock: command.lock, fence: String(grant.fence) }, kGrant, grant) as CoordinatorReply;
  }

  async #breakLock(lock: string): Promise<CoordinatorReply> {
    const backend = this.backend();
    if (backend.breakLock === undefined) throw new CoordinationError('ERR_COORDINATION_BACKEND', `the ${backend.kind} backend cannot break locks`);
    const name = checkLockName(this.prefix + lock);
    const broken = await backend.breakLock(name);
    getLogger().warn(`coordinator ${this.memberId} broke lock ${name}${broken ? '' : ' (nobody held it)'}`);
    // A holder in this process learns at once.
    if (broken) for (const grant of this.held()) if (grant.name === name) grant.lose(`broken by ${this.memberId}`);
    return { type: 'statesmith.coordinator.broken', lock, broken };
  }

  /** Takes a lock for the engine's own use (an election's lock): the grant is listed like any other. */
  async acquireOwn(name: string, blocking: boolean | number, signal: AbortSignal): Promise<DistributedLockHandle | null> {
    const budget = acquireBudget(blocking, undefined);
    return measuredAcquire(checkLockName(name), () => acquireGrant(this, name, { budget, signal, owner: this, announce: true }));
  }

  // ---- grants ----

  /** A grant begins: the renewal loop keeps it, and the actor's `grants` list it. */
  granted(grant: Grant, sentAt: number, announce: boolean): void {
    grant.id = `grant-${++this.#grantIds}`;
    this.#leases.add(grant, sentAt);
    if (announce) this.#actor.send({ type: 'statesmith.coordinator.granted', [kFromEngine]: true, ...grant.record() });
  }

  /** A grant ended (released or lost). */
  ended(grant: Grant): void {
    this.#leases.delete(grant);
    this.dropQueue(grant.name);
    for (const [lock, held] of this.#commandGrants) if (held === grant) this.#commandGrants.delete(lock);
    // A stopped actor has nothing to update.
    if ((this.#actor.getSnapshot() as { status: string }).status === 'active') {
      this.#actor.send({ type: 'statesmith.coordinator.grantEnded', [kFromEngine]: true, id: grant.id });
    }
  }

  // ---- what the wait for a grant uses ----

  /** Throws an `ActorStoppedError` once the coordinator's actor has stopped or failed (a wait loop's check). */
  requireRunning(): void {
    const snapshot = this.#actor.getSnapshot() as { status: string; value: unknown };
    if (snapshot.status !== 'active') throw new ActorStoppedError(this.#actor.id, snapshot.status as never, snapshot.value);
  }

  /** The backend, when connected; a `CoordinationError` otherwise. */
  backend(): Backend {
    if (this.state !== 'connected' || this.#backend === undefined) {
      throw new CoordinationError('ERR_COORDINATION_STATE', `coordinator ${this.memberId} is ${this.state}, not connected`);
    }
    return this.#backend;
  }

  /** The backend's record store; a backend without one cannot hold elections or groups. */
  recordStore(): RecordStore {
    const records = this.backend().records;
    if (records === undefined)
      throw new CoordinationError('ERR_COORDINATION_BACKEND', `the ${this.kind} backend keeps no records: it cannot hold elections or groups`);
    return records;
  }

  /** The record store whatever the state (a leave or a resignation deletes what it can). */
  currentRecords(): RecordStore | undefined {
    return this.#backend?.records;
  }

  /** The engine of the election of `group` (one per group; its actor's children call it). */
  electionEngine(group: string): ElectionRuntime {
    let runtime = this.#elections.get(group);
    if (runtime === undefined) this.#elections.set(group, (runtime = new ElectionRuntime(this, group)));
    return runtime;
  }

  /** A token unique to one grant: member, a random per-coordinator part, a counter. */
  nextToken(): string {
    return `${this.memberId}:${this.#tokenPrefix}:${++this.#tokens}`;
  }

  queue(name: string): Mutex {
    let queue = this.#queues.get(name);
    if (queue === undefined) this.#queues.set(name, (queue = new Mutex({ name, clock: this.clock, [kUninspected]: true } as MutexOptions)));
    return queue;
  }

  dropQueue(name: string): void {
    const queue = this.#queues.get(name);
    if (queue !== undefined && !queue.locked && queue.waiting === 0) this.#queues.delete(name);
  }

  /** An acquire enters (+1) or leaves (-1) the backend wait loop; the last one out stops listening. */
  contending(delta: 1 | -1): void {
    this.#contenders += delta;
    if (this.#contenders === 0 && this.#listening) {
      this.#listening = false;
      void this.#backend?.listen?.(false).catch((error: unknown) => getLogger().debug('stopping release wake-ups failed', { error }));
    }
  }

  /** Resolves when `name` may have come free, after `ms`, or when `signal` aborts. */
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
