/**
 * An event flag in shared memory: Python's `threading.Event` as `await_threading_event`
 * waits on it, on `Atomics`.
 *
 * @module
 */
import { systemClock } from '../clock.ts';
import { getLogger } from '../logger.ts';
import { optionalDuration, optionalObject, optionalSignal, requireDuration } from '../runtime/validate.ts';
import { newCell, requirePollInterval, requireWorkerThread, viewCell, waitCells, type Cell } from './cells.ts';

const CLEAR = 0;
const SET = 1;

/** Options of {@link SharedEvent.wait}. */
export interface SharedEventWaitOptions {
  /**
   * Give up after this many milliseconds and resolve false; default `Infinity`. `0`
   * looks once and does not wait (unlike Python, where a timeout of 0 meant "forever").
   */
  readonly timeoutMs?: number;
  /** The longest single wait before the flag is looked at again; default 5000, `Infinity` for none. */
  readonly pollIntervalMs?: number;
  /** Abort the wait; it rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

/**
 * A flag in a `SharedArrayBuffer` that one thread sets and others wait for: `set()`
 * wakes every waiter, `clear()` resets it. Hand `buffer` and `index` to a worker, which
 * calls {@link SharedEvent.from}. The main thread waits with `wait()`, which never blocks
 * the event loop; a worker may block with `waitSync()`.
 *
 * @example
 * ```ts
 * import { SharedEvent } from 'statesmith';
 * const ready = SharedEvent.create();
 * const waiting = ready.wait({ timeoutMs: 1000 });
 * // A worker would call SharedEvent.from(buffer, index) and set() it:
 * SharedEvent.from(ready.buffer, ready.index).set();
 * console.log(await waiting, ready.isSet); // true true
 * ready.clear();
 * console.log(await ready.wait({ timeoutMs: 0 })); // false
 * ```
 */
export class SharedEvent {
  readonly #cell: Cell;

  private constructor(cell: Cell) {
    this.#cell = cell;
  }

  /** A new, clear event in a buffer of its own. */
  static create(): SharedEvent {
    return new SharedEvent(newCell());
  }

  /** The event whose cell is element `index` (default 0) of `buffer`; a zero cell is clear. */
  static from(buffer: SharedArrayBuffer, index = 0): SharedEvent {
    return new SharedEvent(viewCell('SharedEvent', buffer, index, (value) => value === CLEAR || value === SET, `one of ${CLEAR}, ${SET}`));
  }

  /** The shared memory holding the cell; post it to a worker with `index`. */
  get buffer(): SharedArrayBuffer {
    return this.#cell.cells.buffer as SharedArrayBuffer;
  }

  /** The cell's element index in {@link SharedEvent.buffer}. */
  get index(): number {
    return this.#cell.index;
  }

  /** True while the flag is set. */
  get isSet(): boolean {
    return Atomics.load(this.#cell.cells, this.#cell.index) === SET;
  }

  /** Sets the flag and wakes every waiter, in every thread. */
  set(): void {
    const { cells, index } = this.#cell;
    // Waiters sleep only while the cell is clear, so only the clear-to-set edge needs a notify.
    if (Atomics.exchange(cells, index, SET) === CLEAR) Atomics.notify(cells, index);
  }

  /** Clears the flag; later waits block until the next `set()`. */
  clear(): void {
    Atomics.store(this.#cell.cells, this.#cell.index, CLEAR);
  }

  /**
   * Waits for the flag without blocking the event loop. Resolves true once it is set (or
   * when a `set()` woke this wait, even if the flag was cleared again before the wait
   * looked, as Python's `Event.wait`), false after `timeoutMs`; rejects with
   * `signal.reason` when aborted.
   */
  async wait(options?: SharedEventWaitOptions): Promise<boolean> {
    const opts = optionalObject<SharedEventWaitOptions>('options', options, ['timeoutMs', 'pollIntervalMs', 'signal']);
    const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    const pollMs = requirePollInterval('options.pollIntervalMs', opts.pollIntervalMs);
    const signal = optionalSignal('options.signal', opts.signal);
    if (signal?.aborted) throw signal.reason;
    if (this.isSet) return true;
    const deadline = systemClock.now() + timeoutMs;
    const watch = [{ cell: this.#cell, expected: CLEAR }];
    for (;;) {
      const remaining = deadline - systemClock.now();
      if (remaining <= 0) return this.isSet;
      const woke = await waitCells(watch, Math.min(pollMs, remaining), systemClock, signal);
      if (woke === 0 || this.isSet) return true;
      getLogger().debug('SharedEvent not set within the poll interval; waiting again', { pollMs });
    }
  }

  /**
   * Blocks this worker thread until the flag is set (true) or `timeoutMs` pass (false).
   * Throws `InvalidStateError` on the main thread, whose event loop it would freeze.
   */
  waitSync(timeoutMs = Infinity): boolean {
    requireDuration('timeoutMs', timeoutMs);
    requireWorkerThread('SharedEvent.waitSync()', 'await wait()');
    if (this.isSet) return true;
    if (timeoutMs === 0) return false;
    return Atomics.wait(this.#cell.cells, this.#cell.index, CLEAR, timeoutMs) !== 'timed-out' || this.isSet;
  }
}
