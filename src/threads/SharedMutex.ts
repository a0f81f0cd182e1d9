/**
 * A lock in shared memory that the main thread and worker threads contend for: Python's
 * `threading.Lock` as `async_lock` uses it, on `Atomics`.
 *
 * @module
 */
import { threadId } from 'node:worker_threads';
import { systemClock } from '../clock.ts';
import { InvalidStateError, TimeoutError } from '../errors.ts';
import { LockHandle, type HoldRecord } from '../locks/LockHandle.ts';
import { getLogger } from '../logger.ts';
import { inspection } from '../inspect/capture.ts';
import { optionalDuration, optionalObject, optionalSignal, requireDuration } from '../runtime/validate.ts';
import { newCell, requirePollInterval, requireWorkerThread, viewCell, waitCells, type Cell } from './cells.ts';
import { describeAs } from '../inspect/safeJson.ts';

// The cell holds 0 when free, else the holder's token shifted left by one, with the low
// bit set while someone may be asleep on it (Drepper's "futexes are tricky" mutex, with
// a token in place of "held"). Only a release of a contended lock pays for a notify.
//
// A token names one acquire: the holder's thread (its low 14 bits) and a per-thread
// count (16 bits, never 0). Release is a compare-and-swap on the token, so a holder
// whose hold was forced away (by a locksmith, or because its thread died) can never free
// the next holder's hold with a late release. The count wraps after 65,535 acquires of
// one thread; a stale release could only match if that thread took the same lock
// exactly 65,535 acquires later, while the forced hold was still unreleased.
const FREE = 0;
const CONTENDED = 1;
const THREAD_MASK = 0x3fff;
const COUNT_MASK = 0xffff;
const THREAD_TAG = (threadId & THREAD_MASK) << 16;
let count = 0;

function nextToken(): number {
  count = (count % COUNT_MASK) + 1;
  return THREAD_TAG | count;
}

/** The token in a cell value (0 when free). */
const tokenOf = (value: number): number => value >>> 1;

/** The thread (its low 14 bits) whose acquire a token names. */
export const threadOfToken = (token: number): number => (token >>> 16) & THREAD_MASK;

/** The 14 bits of a thread id a token keeps. @internal */
export const threadTag = (id: number): number => id & THREAD_MASK;

/** The token of the hold in the cell now, 0 when free. @internal */
export const kHolder: unique symbol = Symbol('statesmith.sharedMutex.holder');
/** Frees the lock if `token` still holds it; true when it did. @internal */
export const kReleaseToken: unique symbol = Symbol('statesmith.sharedMutex.releaseToken');

/**
 * Every SharedMutex made in this thread, weakly: when a worker dies, `WorkerThread` looks
 * through them for cells the dead thread still holds.
 */
const views = new Set<WeakRef<SharedMutex>>();

/**
 * Frees every SharedMutex cell known to this thread (made here by `create()` or `from()`)
 * that thread `id` holds; returns how many it freed. `WorkerThread` calls it when its
 * worker exits. For a worker of your own, call it from the worker's exit handler:
 * `worker.on('exit', () => releaseSharedMutexesOf(worker.threadId))`.
 *
 * @example
 * ```ts
 * import { releaseSharedMutexesOf, SharedMutex } from 'statesmith';
 * const lock = SharedMutex.create();
 * console.log(releaseSharedMutexesOf(42), lock.locked); // 0 false
 * ```
 */
export function releaseSharedMutexesOf(id: number): number {
  const tag = threadTag(id);
  let freed = 0;
  for (const ref of views) {
    const lock = ref.deref();
    if (lock === undefined) {
      views.delete(ref);
      continue;
    }
    const holder = lock[kHolder]();
    // Two views of one cell: the second finds it free already, or held by someone else.
    if (holder === 0 || threadOfToken(holder) !== tag) continue;
    if (lock[kReleaseToken](holder)) {
      freed++;
      getLogger().warn(`thread ${id} exited holding SharedMutex[${lock.index}]; released it`);
    }
  }
  return freed;
}

/** Options of {@link SharedMutex.acquire}. */
export interface SharedMutexAcquireOptions {
  /** Abort the wait; the acquire rejects with `signal.reason` and never takes the lock. */
  readonly signal?: AbortSignal;
  /** Give up after this many milliseconds with a `TimeoutError`; default `Infinity`. */
  readonly timeoutMs?: number;
  /**
   * The longest single wait before the lock is looked at again (Python's polling
   * timeout, 5000 ms by default; `Infinity` for none). Wake-ups do not wait for it: a
   * release notifies at once. It bounds how long an abandoned wait lingers.
   */
  readonly pollIntervalMs?: number;
}

/**
 * A mutual-exclusion lock in a `SharedArrayBuffer`, shared by the main thread and worker
 * threads. Create it on one side and hand `buffer` and `index` to the other, which calls
 * {@link SharedMutex.from}. The main thread waits with `acquire()`, which never blocks
 * the event loop; a worker may block with `acquireSync()`.
 *
 * Like `threading.Lock` it has no owner: any thread may release it, and releasing a lock
 * that is not held throws. It is not FIFO. The handle's `signal` never aborts, since
 * nothing can take a shared lock away.
 *
 * @example
 * ```ts
 * import { SharedMutex } from 'statesmith';
 * const lock = SharedMutex.create();
 * // A worker would call SharedMutex.from(buffer, index):
 * const twin = SharedMutex.from(lock.buffer, lock.index);
 * const handle = await lock.acquire();
 * console.log(twin.locked, twin.tryAcquire()); // true false
 * handle.release();
 * console.log(twin.tryAcquire()); // true
 * twin.release();
 * ```
 */
export class SharedMutex {
  readonly #cell: Cell;
  /** The token of the hold taken through this object (for `release()`), 0 when none. */
  #token = 0;

  private constructor(cell: Cell) {
    this.#cell = cell;
    views.add(new WeakRef(this));
  }

  /** A new, free lock in a buffer of its own. */
  static create(): SharedMutex {
    return new SharedMutex(newCell());
  }

  /**
   * The lock whose cell is element `index` (in 32-bit cells, default 0) of `buffer`. A
   * zero-filled cell is a free lock, so one buffer of `4 * n` bytes can hold `n` locks.
   */
  static from(buffer: SharedArrayBuffer, index = 0): SharedMutex {
    return new SharedMutex(viewCell('SharedMutex', buffer, index, (value) => value >= 0, "a value >= 0: 0 when free, else the holder's token"));
  }

  /** The shared memory holding the cell; post it to a worker with `index`. */
  get buffer(): SharedArrayBuffer {
    return this.#cell.cells.buffer as SharedArrayBuffer;
  }

  /** The cell's element index in {@link SharedMutex.buffer}. */
  get index(): number {
    return this.#cell.index;
  }

  /** True while some thread holds the lock. */
  get locked(): boolean {
    return Atomics.load(this.#cell.cells, this.#cell.index) !== FREE;
  }

  /** The thread id (its low 14 bits) of the holder, or `undefined` when free. */
  get holderThread(): number | undefined {
    const holder = this[kHolder]();
    return holder === 0 ? undefined : threadOfToken(holder);
  }

  /** Takes the lock if it is free; never waits. */
  tryAcquire(): boolean {
    const token = nextToken();
    if (Atomics.compareExchange(this.#cell.cells, this.#cell.index, FREE, token << 1) !== FREE) return false;
    this.#token = token;
    if (inspection.enabled) this.#report('held');
    return true;
  }

  /**
   * Waits for the lock without blocking the event loop. Rejects with `signal.reason`
   * when aborted and with a `TimeoutError` after `timeoutMs`; a caller that gave up
   * never takes the lock later (the lock leak of Python's `async_lock` is closed: the
   * lock is only ever taken by this thread, after the wait, and only if still wanted).
   */
  async acquire(options?: SharedMutexAcquireOptions): Promise<LockHandle> {
    const opts = optionalObject<SharedMutexAcquireOptions>('options', options, ['signal', 'timeoutMs', 'pollIntervalMs']);
    const signal = optionalSignal('options.signal', opts.signal);
    const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    const pollMs = requirePollInterval('options.pollIntervalMs', opts.pollIntervalMs);
    if (signal?.aborted) throw signal.reason;
    if (this.tryAcquire()) return this.#handle(this.#token);
    const token = nextToken();
    const deadline = systemClock.now() + timeoutMs;
    for (;;) {
      const seen = this.#takeOrMark(token);
      if (seen === FREE) {
        const handle = this.#handle(token);
        if (inspection.enabled) this.#report('held');
        return handle;
      }
      const remaining = deadline - systemClock.now();
      if (remaining <= 0) throw new TimeoutError(`timed out after ${timeoutMs} ms waiting for a SharedMutex`);
      const woke = await waitCells([{ cell: this.#cell, expected: seen }], Math.min(pollMs, remaining), systemClock, signal);
      if (woke < 0) getLogger().debug('SharedMutex not acquired within the poll interval; trying again', { pollMs });
      if (signal?.aborted) throw signal.reason;
    }
  }

  /**
   * Blocks this worker thread until the lock is taken (true) or `timeoutMs` pass (false).
   * Throws `InvalidStateError` on the main thread, whose event loop it would freeze.
   */
  acquireSync(timeoutMs = Infinity): boolean {
    requireDuration('timeoutMs', timeoutMs);
    requireWorkerThread('SharedMutex.acquireSync()', 'await acquire() or tryAcquire()');
    if (this.tryAcquire()) return true;
    const { cells, index } = this.#cell;
    const token = nextToken();
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const seen = this.#takeOrMark(token);
      if (seen === FREE) {
        this.#token = token;
        return true;
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) return false;
      Atomics.wait(cells, index, seen, remaining);
    }
  }

  /**
   * Frees the hold taken through this object and wakes the waiters. When that hold was
   * taken away meanwhile (forced by a locksmith, or freed because its worker died), this
   * is a no-op: the next holder keeps the lock. Through an object that holds nothing it
   * frees whoever holds the lock, as `threading.Lock` lets any thread do, and throws
   * `InvalidStateError` when the lock is not held at all.
   */
  release(): void {
    const token = this.#token;
    this.#token = 0;
    if (token !== 0) {
      if (!this[kReleaseToken](token)) getLogger().debug(`SharedMutex[${this.index}]: its hold was taken away before release(); nothing to release`);
      return;
    }
    const holder = this[kHolder]();
    if (holder === 0 || !this[kReleaseToken](holder)) throw new InvalidStateError('release() of a SharedMutex that is not held');
  }

  /** @internal */
  [kHolder](): number {
    return tokenOf(Atomics.load(this.#cell.cells, this.#cell.index));
  }

  /** @internal */
  [kReleaseToken](token: number): boolean {
    const { cells, index } = this.#cell;
    for (;;) {
      const value = Atomics.load(cells, index);
      if (value === FREE || tokenOf(value) !== token) return false;
      if (Atomics.compareExchange(cells, index, value, FREE) === value) {
        // Wake every sleeper, not one: a sleeper may be an abandoned main-thread wait that
        // would swallow a single wake-up and leave a live waiter asleep on a free lock.
        if ((value & CONTENDED) !== 0) Atomics.notify(cells, index);
        if (inspection.enabled) this.#report('free');
        return true;
      }
    }
  }

  /**
   * Takes the lock for `token` if it is free, marked contended (a waiter got it, so
   * others may still sleep): returns FREE. Otherwise marks the holder's value contended,
   * so its release notifies, and returns that value to sleep on.
   */
  #takeOrMark(token: number): number {
    const { cells, index } = this.#cell;
    for (;;) {
      const value = Atomics.load(cells, index);
      if (value === FREE) {
        if (Atomics.compareExchange(cells, index, FREE, (token << 1) | CONTENDED) === FREE) return FREE;
        continue;
      }
      if ((value & CONTENDED) !== 0) return value;
      if (Atomics.compareExchange(cells, index, value, value | CONTENDED) === value) return value | CONTENDED;
    }
  }

  /** The locks view: this cell held (by the thread that holds it) or free. */
  #report(op: 'held' | 'free'): void {
    const thread = this.holderThread;
    inspection.lock({
      lock: `shared:SharedMutex[${this.index}]`,
      kind: 'shared',
      op,
      ...(op === 'held' && thread !== undefined ? { holder: `thread ${thread}` } : {}),
    });
  }

  #handle(token: number): LockHandle {
    this.#token = token;
    const hold: HoldRecord = { controller: undefined };
    return new LockHandle(() => {
      if (this.#token === token) this.#token = 0;
      this[kReleaseToken](token);
    }, hold);
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(SharedMutex, () => '[SharedMutex]');
