/**
 * The coordination room's shared shapes: what a backend implements, and what the
 * coordinator, its locks and its groups hand out. Types only: every other file of the
 * room may import it, and it imports none of them.
 *
 * @module
 */
import type { Clock } from '../clock.ts';
import type { WaitOptions } from '../runtime/deferred.ts';

/** What a backend guarantees, so a caller can require what it needs (tooz's characteristics). */
export interface BackendCapabilities {
  /** Locks are shared across processes (false: this process only). `sqlite://` shares them between the processes of one host. */
  readonly distributed: boolean;
  /** A lock lives as long as its holder's session, not a TTL: it frees at once when the holder dies. */
  readonly sessionBased: boolean;
  /** Every grant carries a fence that grows per name. */
  readonly fencing: boolean;
  /** Named locks (every backend statesmith ships). */
  readonly locks: boolean;
  /** Every grant carries a fence (the same as `fencing`, under the name the capability table uses). */
  readonly fences: boolean;
  /** Leader election with terms. */
  readonly election: boolean;
  /** Group membership, with dead members leaving at their TTL. */
  readonly membership: boolean;
  /** `breakLock`: an operator frees a lock whoever holds it. */
  readonly breakLock: boolean;
  /** The locksmith can force a lock held in another process (messages between members, and `breakLock`). */
  readonly forcing: boolean;
  /** Releases and messages are pushed by the server (pub/sub, `NOTIFY`, a watch); false: polled (`sqlite://`, `mysql://`). */
  readonly watch: boolean;
}

/** Which backend a coordination URL names. */
export type BackendKind = 'memory' | 'redis' | 'postgresql' | 'etcd' | 'sqlite' | 'mysql';

export interface Backend {
  readonly kind: BackendKind;
  readonly capabilities: BackendCapabilities;
  /**
   * True when this process's commands run in the order sent (one Redis connection, one
   * PostgreSQL session, memory): a release's bookkeeping, and the next local waiter's
   * acquire, may then go while the release is on its way, since it is sure to run first.
   */
  readonly ordered?: boolean;
  /** Opens the connection(s). May be called again after `close()` (a reconnect). */
  connect(): Promise<void>;
  /** Closes the connection(s); never throws. */
  close(): Promise<void>;
  /** One round trip; throws when the backend cannot be reached. */
  ping(): Promise<void>;
  /** Takes `name` for `token` with a lease of `ttlMs`; the fence, or null when held by someone else. */
  tryAcquire(name: string, token: string, ttlMs: number): Promise<bigint | null>;
  /** Sets the lease back to the full `ttlMs` if `token` still holds `name`; false when it does not. */
  renew(name: string, token: string, ttlMs: number): Promise<boolean>;
  /**
   * Renews every grant of the batch in one round trip where the backend can (a pipeline, a
   * statement); the answers in the batch's order. Without it, `renew` runs per grant.
   */
  renewAll?(grants: ReadonlyArray<{ readonly name: string; readonly token: string }>, ttlMs: number): Promise<boolean[]>;
  /** Frees `name` if `token` holds it (and wakes waiters); false when it did not. */
  release(name: string, token: string): Promise<boolean>;
  /** Called with a name when it may have come free (push wake-ups). */
  onReleased(listener: (name: string) => void): void;
  /**
   * Starts (`true`) or stops (`false`) hearing release wake-ups. The coordinator listens
   * only while someone waits, so an uncontended release costs no message to anyone.
   */
  listen?(on: boolean): Promise<void>;
  /** Called when the connection is lost: locks held through it can no longer be vouched for. */
  onLost(listener: (error: unknown) => void): void;
  /** Frees `name` whoever holds it (an operator's break), or only while `hold` (from `holderOf`) does; true when it freed it. */
  breakLock?(name: string, hold?: string): Promise<boolean>;
  /** Who holds `name` now: the member, and what names this hold for a conditional `breakLock`; null when free. */
  holderOf?(name: string): Promise<{ readonly memberId: string; readonly hold: string } | null>;
  /** Asks the server whether `token` holds `name` now. */
  isHolder?(name: string, token: string): Promise<boolean>;
  /** Messages between members (the distributed locksmith's requests and replies). */
  readonly messages?: MessageBus;
  /**
   * Small records that live for `ttlMs` unless put again: group members, an election's
   * leader. `dir` ends with `/`; `id` is unique in it. Every backend statesmith ships has
   * them; a backend without them cannot hold elections or groups.
   */
  readonly records?: RecordStore;
}

/** A backend's own messaging: Redis pub/sub, PostgreSQL `NOTIFY`, an etcd watch. At most once, in order per sender. */
export interface MessageBus {
  /** Sends `payload` (a string, under 7,000 bytes) to whoever listens on `channel` now. */
  publish(channel: string, payload: string): Promise<void>;
  /** Listens on `channel` until the returned function is called (or the connection closes). */
  subscribe(channel: string, listener: (payload: string) => void): Promise<() => Promise<void>>;
}

/** The records of a backend (see {@link Backend.records}). */
export interface RecordStore {
  /** Sets `dir + id` to `value` for `ttlMs` (on etcd: for the connection's lease). */
  put(dir: string, id: string, value: string, ttlMs: number): Promise<void>;
  /** The live value, or null. */
  get(dir: string, id: string): Promise<string | null>;
  /** Every live record of `dir`, by id. */
  list(dir: string): Promise<Array<{ readonly id: string; readonly value: string }>>;
  /** Deletes `dir + id` (only if its value is `value`, when given); true when it was there. */
  delete(dir: string, id: string, value?: string): Promise<boolean>;
  /** True when a put lives on the connection's lease, so the heartbeat keeps it and puts need not be repeated. */
  readonly onLease: boolean;
}

/** What a backend is built with. */
export interface BackendOptions {
  readonly url: URL;
  readonly memberId: string;
  readonly clock: Clock;
  /** Bound on one command (Redis `commandTimeout`). */
  readonly commandTimeoutMs: number;
  /** The coordinator's `lockTtlMs`: the TTL of a backend's session lease (etcd's). */
  readonly leaseTtlMs?: number;
}

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
   * A "no" also loses the handle: its signal aborts at once. `options` bound the wait
   * (`signal`, `timeoutMs`); the question goes on.
   */
  isStillOwner(options?: WaitOptions): Promise<boolean>;
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
