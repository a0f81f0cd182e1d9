/**
 * A lock in shared memory that the main thread and worker threads contend for: Python's
 * `threading.Lock` as `async_lock` uses it, on `Atomics`.
 *
 * @module
 */
import { systemClock } from '../clock.ts';
import { InvalidStateError, TimeoutError } from '../errors.ts';
import { LockHandle, type HoldRecord } from '../locks/LockHandle.ts';
import { getLogger } from '../logger.ts';
import { optionalDuration, optionalObject, optionalSignal, requireDuration } from '../runtime/validate.ts';
import { newCell, requirePollInterval, requireWorkerThread, viewCell, waitCells, type Cell } from './cells.ts';

// The cell holds one of three values (Drepper's "futexes are tricky" mutex): free, held,
// or held with someone possibly asleep on it. Only a release of a contended lock pays for
// a notify, so the uncontended pair is two atomic operations.
const FREE = 0;
const HELD = 1;
const CONTENDED = 2;

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
  readonly #releaser = (): void => this.release();

  private constructor(cell: Cell) {
    this.#cell = cell;
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
    return new SharedMutex(viewCell('SharedMutex', buffer, index, [FREE, HELD, CONTENDED]));
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

  /** Takes the lock if it is free; never waits. */
  tryAcquire(): boolean {
    return Atomics.compareExchange(this.#cell.cells, this.#cell.index, FREE, HELD) === FREE;
  }

  /**
   * Waits for the lock without blocking the event loop. Rejects with `signal.reason`
   * when aborted and with a `TimeoutError` after `timeoutMs`; a caller that gave up
   * never takes the lock later (the lock leak of Python's `async_lock` is closed: the
   * lock is only ever taken by this thread, after the wait, and only if still wanted).
   */
  async acquire(options?: SharedMutexAcquireOptions): Promise<LockHandle> {
    const opts = optionalObject<SharedMutexAcquireOptions>('options', options);
    const signal = optionalSignal('options.signal', opts.signal);
    const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    const pollMs = requirePollInterval('options.pollIntervalMs', opts.pollIntervalMs);
    if (signal?.aborted) throw signal.reason;
    if (this.tryAcquire()) return this.#handle();
    const { cells, index } = this.#cell;
    const deadline = systemClock.now() + timeoutMs;
    const watch = [{ cell: this.#cell, expected: CONTENDED }];
    for (;;) {
      // Mark the lock contended so its release notifies; if that finds it free, it is ours.
      if (Atomics.exchange(cells, index, CONTENDED) === FREE) return this.#handle();
      const remaining = deadline - systemClock.now();
      if (remaining <= 0) throw new TimeoutError(`timed out after ${timeoutMs} ms waiting for a SharedMutex`);
      const woke = await waitCells(watch, Math.min(pollMs, remaining), systemClock, signal);
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
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (Atomics.exchange(cells, index, CONTENDED) === FREE) return true;
      const remaining = deadline - performance.now();
      if (remaining <= 0) return false;
      Atomics.wait(cells, index, CONTENDED, remaining);
    }
  }

  /**
   * Frees the lock, whichever thread took it, and wakes its waiters. Throws
   * `InvalidStateError` when the lock is not held.
   */
  release(): void {
    const { cells, index } = this.#cell;
    const previous = Atomics.exchange(cells, index, FREE);
    if (previous === FREE) throw new InvalidStateError('release() of a SharedMutex that is not held');
    // Wake every sleeper, not one: a sleeper may be an abandoned main-thread wait that
    // would swallow a single wake-up and leave a live waiter asleep on a free lock.
    if (previous === CONTENDED) Atomics.notify(cells, index);
  }

  #handle(): LockHandle {
    const hold: HoldRecord = { controller: undefined };
    return new LockHandle(this.#releaser, hold);
  }
}
