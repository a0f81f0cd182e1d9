/**
 * The steps of a force that a subclass may change: asyncutils' `LocksmithBase` hooks, with
 * their defaults. `Locksmith` extends this class; the engine calls these hooks on the
 * locksmith (or on a plain `LocksmithHooks` for an actor started from `locksmithLogic`).
 *
 * @module
 */
import { CriticalError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { runAsOwner } from '../runtime/ownerContext.ts';
import { holdIn } from './inFlight.ts';
import { lockKindOf } from './lockKinds.ts';
import type { Locksmith } from './Locksmith.ts';
import type { LockForceRequest } from './protocol.ts';
import { ForceResult } from './results.ts';

/** The engine a set of hooks runs under (set by the engine). @internal */
export const kEngine: unique symbol = Symbol('statesmith.locksmith.engine');

/** A lock-class-specific step run after an owner gave up its lock (asyncutils' `handlers`). */
export type ForceHandler = (lock: object) => unknown;

/** Lock-class-specific steps, by exact constructor; shared by every locksmith class, as in the original. @internal */
export const forceHandlers: Map<Function, ForceHandler> = new Map();

/**
 * The overridable steps of a locksmith, with asyncutils' defaults. Extend `Locksmith`
 * (which extends this) to change them.
 *
 * @example
 * ```ts
 * import { Locksmith, Mutex, runAsOwner } from 'statesmith';
 * class Watchdog extends Locksmith {
 *   protected override getInfo(lock: object): unknown {
 *     return `stuck past its deadline: ${this.describe(lock)}`;
 *   }
 * }
 * const mutex = new Mutex({ name: 'volume-9' });
 * const handle = await runAsOwner('wedged job', () => mutex.acquire());
 * const smith = new Watchdog({ name: 'watchdog' });
 * await smith.recognize(mutex);
 * console.log(String(await smith.force(mutex, { answerTimeoutMs: 10 }))); // ForceResult.RELEASED
 * console.log(handle.signal.reason.message); // volume-9 was taken away by watchdog: stuck past its deadline: volume-9
 * ```
 */
export class LocksmithHooks {
  /** The locksmith's name, shown to owners and in the inspector. */
  readonly name: string;
  /** @internal */
  [kEngine]: { isRecognized(lock: object): boolean } | undefined;

  /** @internal Extend `Locksmith` rather than this class. */
  constructor(name: string) {
    this.name = name;
  }

  /** `String(lock)` for messages. */
  protected describe(lock: object): string {
    return lockKindOf(lock)?.describe(lock) ?? describeObject(lock);
  }

  // ---- The hooks of asyncutils' LocksmithBase, overridable by subclasses ----

  /** Is `lock` a lock at all? Default: a `Mutex`, a `SharedMutex`, or an object with `acquire`, `release` and `locked`. */
  protected preliminaryCheckLock(lock: object): boolean {
    return lockKindOf(lock) !== undefined;
  }

  /** Does the lock consent? Default: its `acknowledgeLocksmith(this)` if it has one, otherwise yes. */
  protected recognizeLock(lock: object): boolean | Promise<boolean> {
    const acknowledge = (lock as { acknowledgeLocksmith?: unknown }).acknowledgeLocksmith;
    if (typeof acknowledge !== 'function') return true;
    return Promise.resolve(acknowledge.call(lock, this)).then((answer) => answer === true);
  }

  /** May the lock be forced now? Default: recognized and held. */
  protected canForceLockHeld(lock: object): boolean | Promise<boolean> {
    const kind = lockKindOf(lock);
    return kind !== undefined && this[kEngine]?.isRecognized(lock) === true && kind.isLocked(lock);
  }

  /** The info when the caller gives none. */
  protected getInfo(lock: object): unknown {
    return `potential deadlock involving ${lock.constructor?.name ?? 'lock'} ${this.describe(lock)}`;
  }

  /** Who holds the lock. Default: the `owner` the lock reports. */
  protected findOwner(lock: object): unknown {
    return lockKindOf(lock)?.ownerOf(lock);
  }

  /** Records the hosted task as the holder, for locks that keep an owner field of their own. Default: nothing (the acquire named it). */
  protected patchOwner(_owner: unknown, _lock: object): void {}

  /** Rejects the lock's waiters after a force (`purgeWaiters: true`). */
  protected purgeWaiters(lock: object, info: unknown): void | Promise<void> {
    const reason = new LockForcedWaiterError(`${this.describe(lock)} was forced by ${this.name}; its waiters were dropped`, info);
    lockKindOf(lock)?.purge(lock, reason);
  }

  /** The lock refused the locksmith's release and no owner is known. */
  protected throwFallback(_lock: object): ForceResult | Promise<ForceResult> {
    return ForceResult.NO_CURRENT_TASK;
  }

  /**
   * The owner finished without releasing. Default: free the lock (nobody else ever
   * could) and say so with `OWNER_COMPLETED`.
   */
  protected eagerFallback(lock: object, owner: unknown, info: unknown): ForceResult | Promise<ForceResult> {
    const kind = lockKindOf(lock);
    if (kind && kind.isLocked(lock) && (kind.ownerOf(lock) === undefined || kind.ownerOf(lock) === owner))
      kind.compel(lock, this.name, info, holdIn(kind, lock));
    return ForceResult.OWNER_COMPLETED;
  }

  /** `release()` returned `false`. */
  protected releaseReturnedFalse(_lock: object): ForceResult | Promise<ForceResult> {
    return ForceResult.RELEASED_WITH_FALSE;
  }

  /** This locksmith is already forcing the lock. */
  protected alreadyForcing(_lock: object): ForceResult | Promise<ForceResult> {
    return ForceResult.ALREADY_BEING_FORCED;
  }

  /** Another locksmith is forcing the lock (or the owner is answering one). Default: log at info. */
  protected lockBusy(lock: object, other: Locksmith | string): void | Promise<void> {
    const by = typeof other === 'string' ? other : other.name;
    getLogger().info(`${this.name} found ${this.describe(lock)} already being forced by ${by}`);
  }

  /** The owner answered. Default: log at info. */
  protected answerReceived(lock: object, answer: unknown): void | Promise<void> {
    getLogger().info(`the owner of ${this.describe(lock)} answered ${this.name}`, { answer });
  }

  /** The owner threw the request back. Default: log a warning (the lock is then compelled). */
  protected taskReraisedRequest(lock: object, _request: LockForceRequest): void | Promise<void> {
    getLogger().warn(`the owner of ${this.describe(lock)} threw ${this.name}'s force request back; taking the lock`);
  }

  /** The owner raised an ordinary error. Default: log it (the lock is then compelled). */
  protected taskRaisedOther(lock: object, error: unknown): void | Promise<void> {
    getLogger().error(`the owner of ${this.describe(lock)} raised while answering ${this.name}; taking the lock`, { error });
  }

  /**
   * The owner raised a critical error. Default: reject the force with a `CriticalError`
   * (the cause is the owner's); a subclass may return `FAILURE` instead.
   */
  protected taskRaisedCritical(lock: object, error: unknown): ForceResult | Promise<ForceResult> {
    throw new CriticalError(`the owner of ${this.describe(lock)} raised a critical error while answering ${this.name}`, { cause: error });
  }

  /** Runs the hosted task as the lock's owner. */
  protected wrapTask<T>(task: (signal: AbortSignal) => T | Promise<T>, signal: AbortSignal, owner: unknown): Promise<T> {
    return runAsOwner(owner, async () => task(signal));
  }
}

/** What the waiters of a forced lock are rejected with (when the force purges them). `code` is `ERR_LOCK_FORCED`. */
export class LockForcedWaiterError extends Error {
  /** The class name, `'LockForcedWaiterError'`, as Node's own errors have it. */
  override readonly name = 'LockForcedWaiterError';
  /** A stable code to branch on, always `'ERR_LOCK_FORCED'`; messages may change, codes do not. */
  readonly code = 'ERR_LOCK_FORCED';
  /** The force's info: why the lock was forced. */
  readonly info: unknown;
  constructor(message: string, info: unknown) {
    super(message);
    this.info = info;
  }
}

function describeObject(value: object): string {
  return value.constructor?.name ?? 'object';
}
