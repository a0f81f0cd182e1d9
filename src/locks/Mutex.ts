/**
 * The in-process async lock every statesmith facility uses: FIFO hand-off, cancellable
 * and timed waits, and ownership tracked per async context so a re-entrant lock can
 * let its holder back in (Patroni's executor lock) and a plain one can refuse a
 * self-deadlock with an error instead of hanging.
 *
 * @module
 */
import { telemetry, type LockSeries, type TelemetrySink, type TelemetrySpan } from '../telemetry/hooks.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import { type Clock } from '../clock.ts';
import { CancelledError, DeadlockError, LockLostError, TimeoutError } from '../errors.ts';
import { inspection, lateReporters } from '../inspect/capture.ts';
import { currentOwner } from '../runtime/ownerContext.ts';
import { LockHandle, type HoldRecord } from './LockHandle.ts';
import { optionalBoolean, optionalClock, optionalDuration, optionalName, optionalObject, optionalSignal, requireFunction } from '../runtime/validate.ts';
import { describeAs } from '../inspect/safeJson.ts';

/** One holding of a mutex; shared by the nested handles of a re-entrant holder. */
interface Hold extends HoldRecord {
  readonly owner: unknown;
  depth: number;
  released: boolean;
  /** When it was granted (`performance.now()`), only while telemetry is on. */
  heldAt?: number;
}

interface Waiter {
  readonly owner: unknown;
  settled: boolean;
  readonly resolve: (handle: LockHandle) => void;
  readonly reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  timer: unknown;
  /** The wait's telemetry, only while telemetry is on. */
  span?: TelemetrySpan;
}

/**
 * Which mutexes the current async context holds through `runExclusive`. A context
 * started with {@link runDetached} holds nothing, whatever its caller held: that is how
 * a background task becomes a new owner, as a new thread would in Python.
 */
const holdings = new AsyncLocalStorage<ReadonlyMap<Mutex, Hold>>();

/**
 * Runs `fn` as a fresh owner: locks its caller holds are not held by `fn`.
 *
 * @internal
 */
export function runDetached<R>(fn: () => R): R {
  // Most callers hold nothing: skip the context switch then (it shows in 100,000-task runs).
  return holdings.getStore() === undefined ? fn() : holdings.exit(fn);
}

/**
 * An acquire option only the locksmith uses: the waiter goes to the front of the line,
 * so a lock forced free passes straight to the task hosted under it. @internal
 */
/** Every inspected mutex that has been held at least once, weakly: what a late capture reports. */
const knownMutexes = new Set<WeakRef<Mutex>>();
let pruneAt = 1_024;

/** Drops the collected ones; the next prune comes when the set has doubled again. */
function pruneKnown(): void {
  for (const ref of knownMutexes) if (ref.deref() === undefined) knownMutexes.delete(ref);
  pruneAt = Math.max(1_024, knownMutexes.size * 2);
}

/** Reports every live mutex that is held or waited for (a capture starting late). @internal */
export function reportKnownMutexes(): void {
  pruneKnown();
  for (const ref of knownMutexes) ref.deref()?.reportState();
}

export const kJumpQueue: unique symbol = Symbol('statesmith.mutex.jumpQueue');

/**
 * A construction option for locks that are a facility's own inner workings (the
 * executor's lock, a coordinator's local queue): they stay out of the inspector's locks
 * view. @internal
 */
export const kUninspected: unique symbol = Symbol('statesmith.mutex.uninspected');

/** Options of {@link Mutex.acquire}. */
export interface MutexAcquireOptions {
  /** Abort the wait; the acquire rejects with `signal.reason` and never holds the lock. */
  readonly signal?: AbortSignal;
  /** Give up after this many milliseconds with a `TimeoutError`; default `Infinity`. */
  readonly timeoutMs?: number;
  /** Who holds the lock once granted (shown by `owner`, used by the locksmith); default the current owner (`runAsOwner`). */
  readonly owner?: unknown;
}

/** Options of the {@link Mutex} constructor. */
export interface MutexOptions {
  /** A name for messages and the inspector. */
  readonly name?: string;
  /** Let a holder acquire again from its own `runExclusive` context (counted). Default false. */
  readonly reentrant?: boolean;
  /** The clock for `timeoutMs`; default the system clock. */
  readonly clock?: Clock;
}

/**
 * A FIFO async mutex with cancellable, timed waits.
 *
 * @example
 * ```ts
 * import { Mutex } from 'statesmith';
 * const mutex = new Mutex({ name: 'volumes' });
 * const order: string[] = [];
 * await Promise.all([
 *   mutex.runExclusive(async () => { order.push('a:start'); await null; order.push('a:end'); }),
 *   mutex.runExclusive(async () => { order.push('b:start'); }),
 * ]);
 * console.log(order.join(' ')); // a:start a:end b:start
 * ```
 */
export class Mutex {
  /** The mutex's name in messages (`LockLostError.lock`) and the inspector. */
  readonly name: string;
  /** Whether a holder may acquire again from its own `runExclusive` context. */
  readonly reentrant: boolean;
  readonly #clock: Clock;
  readonly #inspected: boolean;
  #seriesSink: TelemetrySink | undefined;
  #lockSeries: LockSeries | undefined;
  #hold: Hold | null = null;
  #queue: Waiter[] = [];
  #head = 0;
  #waiting = 0;

  /** One release function per mutex, shared by all its handles. */
  readonly #releaser = (hold: Hold): void => this.#release(hold);
  #known = false;

  constructor(options?: MutexOptions) {
    const opts = optionalObject<MutexOptions>('options', options, ['name', 'reentrant', 'clock']);
    this.name = optionalName('options.name', opts.name, () => 'mutex');
    this.reentrant = optionalBoolean('options.reentrant', opts.reentrant, false);
    this.#clock = optionalClock('options.clock', opts.clock);
    this.#inspected = (opts as { [kUninspected]?: boolean })[kUninspected] !== true;
  }

  /** True while someone holds the lock. */
  get locked(): boolean {
    return this.#hold !== null;
  }

  /** The holder's `owner` value, or `undefined` when free or held anonymously. */
  get owner(): unknown {
    return this.#hold?.owner;
  }

  /** How many callers are waiting for the lock. */
  get waiting(): number {
    return this.#waiting;
  }

  /** The owners of the callers waiting for the lock, first in line first. */
  get waiters(): unknown[] {
    const owners: unknown[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const waiter = this.#queue[i] as Waiter;
      if (!waiter.settled) owners.push(waiter.owner);
    }
    return owners;
  }

  /**
   * Rejects every waiting caller with `reason` (a `CancelledError` by default) and
   * returns how many there were. The holder keeps the lock.
   */
  purgeWaiters(reason: unknown = new CancelledError(`the waiters of ${this.name} were purged`)): number {
    let purged = 0;
    for (let i = this.#head; i < this.#queue.length; i++) {
      const waiter = this.#queue[i] as Waiter;
      if (!this.#take(waiter, 'purged')) continue;
      purged++;
      waiter.reject(reason);
    }
    this.#queue = [];
    this.#head = 0;
    return purged;
  }

  /**
   * Takes the lock away from its holder: the holder's handles' `signal` aborts with a
   * {@link LockLostError} naming `by` and `info`, their `release()` becomes a no-op, and
   * the lock passes to the next waiter (or becomes free). Returns false when the lock was
   * free. This is what a locksmith does when an owner does not answer.
   */
  forceRelease(options?: { readonly by?: unknown; readonly info?: unknown }): boolean {
    const hold = this.#hold;
    if (hold === null) return false;
    const opts = optionalObject<{ by: unknown; info: unknown }>('options', options, ['by', 'info']);
    hold.depth = 1;
    const lost = (): LockLostError => new LockLostError(this.name, opts.by ?? 'a forced release', opts.info);
    // Tell the old holder first (abort listeners run now), then hand the lock on. A
    // holder whose signal nobody has read gets it, already aborted, on first read.
    if (hold.controller === undefined) hold.lost = lost;
    else hold.controller.abort(lost());
    if (inspection.enabled && this.#inspected)
      inspection.lock({ lock: `mutex:${this.name}`, kind: 'mutex', op: 'forced', holder: hold.owner, by: opts.by, waiters: this.#waiting });
    if (telemetry.enabled && this.#inspected) telemetry.sink.lockLost('mutex', 'forced');
    this.#release(hold);
    return true;
  }

  /** True when the calling async context holds this lock through `runExclusive`. */
  isHeldByCaller(): boolean {
    const mine = holdings.getStore()?.get(this);
    return mine !== undefined && mine === this.#hold && !mine.released;
  }

  /**
   * Waits for the lock in FIFO order. Rejects with `signal.reason` when aborted, with a
   * `TimeoutError` after `timeoutMs`, and with a `DeadlockError` when the caller already
   * holds this non-re-entrant lock. A waiter that gives up never ends up holding it.
   */
  acquire(options?: MutexAcquireOptions): Promise<LockHandle> {
    let signal: AbortSignal | undefined;
    let timeoutMs = Infinity;
    let owner: unknown;
    if (options === undefined) {
      owner = currentOwner();
    } else {
      try {
        const opts = optionalObject<MutexAcquireOptions>('options', options, ['signal', 'timeoutMs', 'owner']);
        signal = optionalSignal('options.signal', opts.signal);
        timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
        owner = 'owner' in opts ? opts.owner : currentOwner();
      } catch (error) {
        return Promise.reject(error);
      }
      if (signal?.aborted) return Promise.reject(signal.reason);
    }
    const reentry = this.#reenter();
    if (reentry) return reentry;
    if (this.#hold === null) {
      if (telemetry.enabled && this.#inspected) this.#series().acquiredAtOnce();
      return Promise.resolve(new LockHandle(this.#releaser, this.#grant(owner)));
    }
    if (timeoutMs === 0) {
      if (telemetry.enabled && this.#inspected) telemetry.sink.lockAcquire('mutex', this.name).end('timeout');
      return Promise.reject(this.#timeoutError(0));
    }
    return new Promise<LockHandle>((resolve, reject) => {
      // A plain record, no closures unless a signal or a timeout needs one: the contended path stays cheap.
      const waiter: Waiter = { owner, settled: false, resolve, reject, signal, onAbort: undefined, timer: undefined };
      if ((options as { [kJumpQueue]?: boolean } | undefined)?.[kJumpQueue] === true) this.#pushFront(waiter);
      else this.#queue.push(waiter);
      this.#waiting++;
      // The locks view counts waiters as they come, not only at the next grant.
      if (inspection.enabled && this.#inspected) this.#reportWaiters();
      if (telemetry.enabled && this.#inspected) {
        waiter.span = telemetry.sink.lockAcquire('mutex', this.name);
        telemetry.sink.lockWaiters('mutex', 1);
      }
      if (signal) {
        waiter.onAbort = () => this.#giveUp(waiter, signal.reason);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = this.#clock.setTimeout(() => this.#giveUp(waiter, this.#timeoutError(timeoutMs)), timeoutMs);
      }
    });
  }

  /** Takes the lock if it is free (or re-enters a re-entrant lock the caller holds); `null` otherwise. */
  tryAcquire(options?: { readonly owner?: unknown }): LockHandle | null {
    optionalObject<{ owner: unknown }>('options', options, ['owner']);
    if (this.isHeldByCaller() && this.reentrant) {
      const hold = this.#hold as Hold;
      hold.depth++;
      return new LockHandle(this.#releaser, hold);
    }
    if (this.#hold !== null) return null;
    return new LockHandle(this.#releaser, this.#grant(options && 'owner' in options ? options.owner : currentOwner()));
  }

  /**
   * Runs `fn` holding the lock and releases it however `fn` ends. Inside `fn` the lock
   * counts as held by the caller: a re-entrant lock lets nested calls straight in.
   */
  async runExclusive<R>(fn: () => R | Promise<R>, options?: MutexAcquireOptions): Promise<R> {
    requireFunction('fn', fn);
    const handle = await this.acquire(options);
    try {
      const hold = this.#hold as Hold;
      const outer = holdings.getStore();
      const inner = new Map(outer);
      inner.set(this, hold);
      return await holdings.run(inner, fn);
    } finally {
      handle.release();
    }
  }

  #reenter(): Promise<LockHandle> | undefined {
    if (!this.isHeldByCaller()) return undefined;
    if (!this.reentrant) {
      return Promise.reject(new DeadlockError(`${this.name} is already held by this caller and is not re-entrant; waiting for it would never end`));
    }
    const hold = this.#hold as Hold;
    hold.depth++;
    return Promise.resolve(new LockHandle(this.#releaser, hold));
  }

  #pushFront(waiter: Waiter): void {
    if (this.#head > 0) this.#queue[--this.#head] = waiter;
    else this.#queue.unshift(waiter);
  }

  #grant(owner: unknown): Hold {
    const hold: Hold = { owner, depth: 1, released: false, controller: undefined };
    this.#hold = hold;
    // Known (weakly) from its first hold on, so an inspector started later finds it held.
    if (!this.#known && this.#inspected) {
      this.#known = true;
      knownMutexes.add(new WeakRef(this));
      lateReporters.add(reportKnownMutexes);
      if (knownMutexes.size > pruneAt) pruneKnown();
    }
    if (telemetry.enabled && this.#inspected && this.#series().timesHold()) hold.heldAt = performance.now();
    if (inspection.enabled && this.#inspected)
      inspection.lock({ lock: `mutex:${this.name}`, kind: 'mutex', op: 'held', holder: owner ?? '(anonymous)', waiters: this.#waiting });
    return hold;
  }

  #release(hold: Hold): void {
    if (hold.released || --hold.depth > 0) return;
    hold.released = true;
    if (hold.heldAt !== undefined && telemetry.enabled) this.#series().held((performance.now() - hold.heldAt) / 1000);
    if (this.#hold !== hold) return;
    this.#hold = null;
    // Hand the lock straight to the first waiter that is still waiting, so nobody can barge in.
    while (this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head] as Waiter;
      this.#queue[this.#head++] = undefined as unknown as Waiter;
      if (!this.#take(waiter, 'acquired')) continue;
      waiter.resolve(new LockHandle(this.#releaser, this.#grant(waiter.owner)));
      break;
    }
    if (this.#hold === null && inspection.enabled && this.#inspected) inspection.lock({ lock: `mutex:${this.name}`, kind: 'mutex', op: 'free', waiters: 0 });
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #giveUp(waiter: Waiter, reason: unknown): void {
    if (!this.#take(waiter, reason instanceof TimeoutError ? 'timeout' : 'aborted')) return;
    waiter.reject(reason);
    if (inspection.enabled && this.#inspected) this.#reportWaiters();
    // Waiters that gave up stay in the array until the next release; under a long hold
    // with many time-outs, drop them once they outnumber the live waiters (amortised O(1)).
    const queued = this.#queue.length - this.#head;
    if (queued > 64 && queued > 2 * this.#waiting) {
      this.#queue = this.#queue.slice(this.#head).filter((w) => !w.settled);
      this.#head = 0;
    }
  }

  /** Reports this lock as it is now, for a capture that starts after it was taken. @internal */
  reportState(): void {
    if (this.#hold !== null || this.#waiting > 0) this.#reportWaiters();
  }

  /** The lock as it is now, for the locks view: its holder and how many wait. */
  #reportWaiters(): void {
    const hold = this.#hold;
    inspection.lock({
      lock: `mutex:${this.name}`,
      kind: 'mutex',
      op: hold === null ? 'free' : 'held',
      ...(hold === null ? {} : { holder: hold.owner ?? '(anonymous)' }),
      waiters: this.#waiting,
    });
  }

  /** How many entries the wait queue holds, including ones not yet compacted away. @internal */
  get queueLength(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Takes a waiter out of line, whichever way it leaves (granted, purged, gave up):
   * marks it settled, counts it out, removes its timer and abort listener. False when it
   * had already left.
   */
  #take(waiter: Waiter, outcome: string): boolean {
    if (waiter.settled) return false;
    waiter.settled = true;
    this.#waiting--;
    if (waiter.span !== undefined) {
      waiter.span.end(outcome);
      if (telemetry.enabled) telemetry.sink.lockWaiters('mutex', -1);
    }
    if (waiter.timer !== undefined) this.#clock.clearTimeout(waiter.timer);
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    return true;
  }

  /** This mutex's telemetry series, asked of the current sink once. */
  #series(): LockSeries {
    const sink = telemetry.sink;
    if (this.#seriesSink !== sink) {
      this.#seriesSink = sink;
      this.#lockSeries = sink.lockSeries('mutex', this.name);
    }
    return this.#lockSeries as LockSeries;
  }

  #timeoutError(ms: number): TimeoutError {
    return new TimeoutError(`timed out after ${ms} ms waiting for ${this.name}`);
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(Mutex, (mutex) => `[Mutex ${mutex.name}]`);
