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

/**
 * The cell counts the flag's edges: even is clear, odd is set, and every `set()` or
 * `clear()` that changes the flag adds one (wrapping at 32 bits). A waiter remembers the
 * clear value it saw and answers true only when the cell holds another: then a `set()`
 * happened since, however late its notify came. A bare "woken, so set" would take the
 * notify of an earlier `set()`, already seen and cleared, for a new one.
 */
const SET_BIT = 1;
/** Whether a cell value means set. Internal to statesmith, for `awaitEventWithStop`. */
export const isSetValue = (value: number): boolean => (value & SET_BIT) === SET_BIT;

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

  /**
   * The event whose cell is element `index` (default 0) of `buffer`. A zero cell is
   * clear; the cell counts the flag's changes (even is clear, odd is set), so any value
   * is a valid cell.
   */
  static from(buffer: SharedArrayBuffer, index = 0): SharedEvent {
    return new SharedEvent(viewCell('SharedEvent', buffer, index, () => true, 'any 32-bit value'));
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
    return isSetValue(Atomics.load(this.#cell.cells, this.#cell.index));
  }

  /** Sets the flag and wakes every waiter, in every thread. */
  set(): void {
    // Waiters sleep only while the cell is clear, so only the clear-to-set edge needs a notify.
    if (this.#flip(false)) Atomics.notify(this.#cell.cells, this.#cell.index);
  }

  /** Clears the flag; later waits block until the next `set()`. */
  clear(): void {
    this.#flip(true);
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
    const { cells, index } = this.#cell;
    const seen = Atomics.load(cells, index);
    if (isSetValue(seen)) return true;
    const deadline = systemClock.now() + timeoutMs;
    const watch = [{ cell: this.#cell, expected: seen }];
    for (;;) {
      const remaining = deadline - systemClock.now();
      if (remaining <= 0) return Atomics.load(cells, index) !== seen;
      const woke = await waitCells(watch, Math.min(pollMs, remaining), systemClock, signal);
      if (Atomics.load(cells, index) !== seen) return true;
      // Woken with the cell unchanged: the late notify of a set() this wait never saw begin.
      if (woke < 0) getLogger().debug('SharedEvent not set within the poll interval; waiting again', { pollMs });
    }
  }

  /**
   * Blocks this worker thread until the flag is set (true) or `timeoutMs` pass (false).
   * Throws `InvalidStateError` on the main thread, whose event loop it would freeze.
   */
  waitSync(timeoutMs = Infinity): boolean {
    requireDuration('timeoutMs', timeoutMs);
    requireWorkerThread('SharedEvent.waitSync()', 'await wait()');
    const { cells, index } = this.#cell;
    const seen = Atomics.load(cells, index);
    if (isSetValue(seen)) return true;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) return false;
      Atomics.wait(cells, index, seen, remaining);
      // 'ok' alone proves nothing: the notify may be a late one from a set() before `seen`.
      if (Atomics.load(cells, index) !== seen) return true;
    }
  }

  /** Moves the flag off `from` (true: set) and returns true, or returns false when it was not `from`. */
  #flip(from: boolean): boolean {
    const { cells, index } = this.#cell;
    for (;;) {
      const value = Atomics.load(cells, index);
      if (isSetValue(value) !== from) return false;
      if (Atomics.compareExchange(cells, index, value, (value + 1) | 0) === value) return true;
    }
  }
}
