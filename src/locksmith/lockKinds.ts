/**
 * What the locksmith needs to know about each kind of lock it can force: a statesmith
 * `Mutex` (owner in this thread), a `SharedMutex` (owner possibly in a worker), or any
 * object shaped like a lock (`acquire`, `release`, `locked`), as asyncutils accepts any
 * lock class.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { kAdoptController } from '../locks/LockHandle.ts';
import { Mutex, kJumpQueue } from '../locks/Mutex.ts';
import { kHolder, kReleaseToken, SharedMutex } from '../threads/SharedMutex.ts';

/** A lock of a class statesmith does not know: what the locksmith calls on it. */
export interface LockLike {
  /** True (or a function returning true) while held. */
  readonly locked: boolean | (() => boolean);
  /** Frees the lock; returning exactly `false` means nothing was released. May be async. */
  release(): unknown;
  /** Waits for the lock; may return a handle with `release()`. */
  acquire(options?: { readonly signal?: AbortSignal }): unknown;
  /** Who holds it, if the lock knows. */
  readonly owner?: unknown;
  /** Asked by `Locksmith.recognize`: true lets the locksmith force this lock. */
  acknowledgeLocksmith?(locksmith: unknown): boolean | Promise<boolean>;
  /** Rejects the waiters, if the lock keeps a line. */
  purgeWaiters?(reason: unknown): unknown;
  /** Frees the lock whoever holds it (used to compel an owner); `release()` otherwise. */
  forceRelease?(options: { readonly by: unknown; readonly info: unknown }): unknown;
}

/** What travels to a worker in a force request: enough to rebuild the lock there. */
export type WireLock =
  { readonly kind: 'SharedMutex'; readonly buffer: SharedArrayBuffer; readonly index: number } | { readonly kind: 'opaque'; readonly name: string };

/** One hold taken by the locksmith's `host()`. */
export interface HostHold {
  release(): void;
  /** Makes the hold abort `controller` if the lock is taken away; false if it cannot (then read `signal`). */
  adopt?(controller: AbortController): boolean;
  /** Aborts if the lock is taken from the host in turn (a Mutex handle's signal). */
  readonly signal?: AbortSignal;
}

export interface LockKind {
  /** Learns what the synchronous questions below need, once per force (a distributed lock asks its server). */
  prepare?(lock: object): Promise<void>;
  /** Waits for what `compel` started (a distributed lock's break on its server). */
  flush?(lock: object): Promise<void>;
  /** The lock's identity, shared by every object viewing the same lock. */
  key(lock: object): object;
  describe(lock: object): string;
  isLocked(lock: object): boolean;
  /** The holder the lock knows of, or `undefined`. */
  ownerOf(lock: object): unknown;
  /**
   * What names the hold in place now (a SharedMutex's token), taken when a force starts:
   * the force's own release and compel then free only that hold, never one taken after it
   * (the old holder let go meanwhile and someone else acquired). `undefined` where the
   * lock tells no holds apart.
   */
  holdOf?(lock: object): unknown;
  /**
   * The locksmith's own release: returns what the lock's release returned, or
   * {@link OWNED} when the lock will only be released by its owner (the locksmith then
   * asks the owner). A foreign lock's release may also throw, with the same meaning.
   */
  release(lock: object, knownOwner: unknown, by: string, info: unknown, hold: unknown): unknown;
  /** Frees the lock over its holder's head (only while `hold`, from {@link holdOf}, is in place). */
  compel(lock: object, by: string, info: unknown, hold: unknown): void;
  /** Waits for the lock for `host()`, ahead of other waiters where the lock allows. */
  acquire(lock: object, owner: unknown, signal: AbortSignal): Promise<HostHold>;
  /** Rejects the waiters; returns how many. */
  purge(lock: object, reason: unknown): number;
  toWire(lock: object): WireLock;
}

/** What `LockKind.release` returns for a lock only its owner may release. */
export const OWNED: unique symbol = Symbol('statesmith.locksmith.owned');

const mutexKind: LockKind = {
  key: (lock) => lock,
  describe: (lock) => (lock as Mutex).name,
  isLocked: (lock) => (lock as Mutex).locked,
  ownerOf: (lock) => (lock as Mutex).owner,
  release(lock, knownOwner, by, info) {
    const mutex = lock as Mutex;
    if (knownOwner !== undefined || mutex.owner !== undefined) return OWNED;
    return mutex.forceRelease({ by, info });
  },
  compel: (lock, by, info) => void (lock as Mutex).forceRelease({ by, info }),
  acquire(lock, owner, signal) {
    return (lock as Mutex).acquire({ owner, signal, [kJumpQueue]: true } as never).then((handle) => ({
      release: () => handle.release(),
      adopt: (controller: AbortController) => handle[kAdoptController](controller),
      get signal() {
        return handle.signal;
      },
    }));
  },
  purge: (lock, reason) => (lock as Mutex).purgeWaiters(reason),
  toWire: (lock) => ({ kind: 'opaque', name: (lock as Mutex).name }),
};

// Every SharedMutex object viewing one cell shares one key, so two views are one lock.
const cellKeys = new WeakMap<SharedArrayBuffer, Map<number, object>>();

const sharedMutexKind: LockKind = {
  key(lock) {
    const { buffer, index } = lock as SharedMutex;
    let byIndex = cellKeys.get(buffer);
    if (byIndex === undefined) cellKeys.set(buffer, (byIndex = new Map()));
    let key = byIndex.get(index);
    if (key === undefined) byIndex.set(index, (key = { buffer, index }));
    return key;
  },
  describe: (lock) => `SharedMutex[${(lock as SharedMutex).index}]`,
  isLocked: (lock) => (lock as SharedMutex).locked,
  ownerOf: () => undefined,
  holdOf: (lock) => (lock as SharedMutex)[kHolder](),
  release(lock, knownOwner, _by, _info, hold) {
    if (knownOwner !== undefined) return OWNED;
    return (lock as SharedMutex)[kReleaseToken](hold as number);
  },
  compel(lock, _by, _info, hold) {
    // Free the cell from the hold the force was about; its holder's late release is then
    // a no-op, and a hold taken since is left alone.
    const shared = lock as SharedMutex;
    shared[kReleaseToken]((hold as number | undefined) ?? shared[kHolder]());
  },
  acquire: (lock, _owner, signal) => (lock as SharedMutex).acquire({ signal }),
  purge: () => 0,
  toWire: (lock) => ({ kind: 'SharedMutex', buffer: (lock as SharedMutex).buffer, index: (lock as SharedMutex).index }),
};

function lockLikeName(lock: object): string {
  const name = (lock as { name?: unknown }).name;
  return typeof name === 'string' && name.length > 0 ? name : (lock.constructor?.name ?? 'lock');
}

const lockLikeKind: LockKind = {
  key: (lock) => lock,
  describe: lockLikeName,
  isLocked(lock) {
    const locked = (lock as LockLike).locked;
    return typeof locked === 'function' ? locked.call(lock) === true : locked === true;
  },
  ownerOf: (lock) => (lock as LockLike).owner,
  release: (lock) => (lock as LockLike).release(),
  compel(lock, by, info) {
    const like = lock as LockLike;
    if (typeof like.forceRelease === 'function') like.forceRelease({ by, info });
    else void Promise.resolve(like.release()).catch(() => undefined);
  },
  async acquire(lock, _owner, signal) {
    const like = lock as LockLike;
    const got = await like.acquire({ signal });
    if (got === false) throw new Error(`${lockLikeName(lock)}.acquire() returned false`);
    const handle = got as { release?: unknown } | null | undefined;
    if (handle && typeof handle.release === 'function') return handle as HostHold;
    return { release: () => void like.release() };
  },
  purge(lock, reason) {
    const like = lock as LockLike;
    const purged = typeof like.purgeWaiters === 'function' ? like.purgeWaiters(reason) : 0;
    return typeof purged === 'number' ? purged : 0;
  },
  toWire: (lock) => ({ kind: 'opaque', name: lockLikeName(lock) }),
};

/** Kinds other modules add (the distributed lock's, from coordination), tried before the shape check. */
const registered: Array<{ readonly test: (lock: unknown) => boolean; readonly kind: LockKind }> = [];

/** Adds a lock kind: `test` says whether a lock is of it. @internal */
export function registerLockKind(test: (lock: unknown) => boolean, kind: LockKind): void {
  registered.push({ test, kind });
}

/** The kind of `lock`, or `undefined` when it is not a lock the locksmith can handle. */
export function lockKindOf(lock: unknown): LockKind | undefined {
  if (lock instanceof Mutex) return mutexKind;
  if (lock instanceof SharedMutex) return sharedMutexKind;
  for (const entry of registered) if (entry.test(lock)) return entry.kind;
  if (typeof lock !== 'object' || lock === null) return undefined;
  const like = lock as Partial<Record<'acquire' | 'release', unknown>> & { locked?: unknown };
  if (typeof like.acquire !== 'function' || typeof like.release !== 'function') return undefined;
  if (!('locked' in like) || (typeof like.locked !== 'boolean' && typeof like.locked !== 'function')) return undefined;
  return lockLikeKind;
}

/** Rebuilds a lock sent in a force request (in the worker that receives it). */
export function fromWire(wire: WireLock): unknown {
  return wire.kind === 'SharedMutex' ? SharedMutex.from(wire.buffer, wire.index) : wire;
}
