/**
 * The shared-memory cells under `SharedMutex` and `SharedEvent`, and the one wait on the
 * main thread that every non-blocking API of `src/threads/` goes through.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 * @module
 */
import { isMainThread } from 'node:worker_threads';
import type { Clock } from '../clock.ts';
import { ArgumentRangeError, ArgumentTypeError, ArgumentValueError, InvalidStateError } from '../errors.ts';
import { requireDuration } from '../runtime/validate.ts';

/** Python's `_DEFAULT_POLLING_TIMEOUT` (5 s), in milliseconds. */
export const DEFAULT_POLL_INTERVAL_MS = 5000;

/**
 * The longest single `Atomics.waitAsync`. A wait that was abandoned (its caller aborted)
 * stays registered until it times out or is notified; slicing unbounded waits bounds how
 * long such a leftover lives, at the cost of one wake-up a minute.
 */
const MAX_SLICE_MS = 60_000;

/** A cell: the Int32Array over the whole buffer and the element index of the cell. */
export interface Cell {
  readonly cells: Int32Array;
  readonly index: number;
}

/** Checks a buffer and index handed to `from()` and views the cell; `valid` tells the values a cell of this kind may hold. */
export function viewCell(kind: string, buffer: unknown, index: unknown, valid: (value: number) => boolean, expected: string): Cell {
  if (!(buffer instanceof SharedArrayBuffer)) {
    throw new ArgumentTypeError('buffer', `a SharedArrayBuffer holding the ${kind} cell`, buffer);
  }
  const length = Math.floor(buffer.byteLength / Int32Array.BYTES_PER_ELEMENT);
  if (length === 0) {
    throw new ArgumentRangeError('buffer', `a SharedArrayBuffer of at least ${Int32Array.BYTES_PER_ELEMENT} bytes`, buffer.byteLength);
  }
  if (typeof index !== 'number' || !Number.isInteger(index)) {
    throw new ArgumentTypeError('index', 'an integer index of a 32-bit cell in the buffer', index);
  }
  if (index < 0 || index >= length) {
    throw new ArgumentRangeError('index', `an integer from 0 to ${length - 1} (the buffer holds ${length} cells)`, index);
  }
  const cells = new Int32Array(buffer, 0, length);
  const value = Atomics.load(cells, index);
  if (!valid(value)) {
    throw new ArgumentValueError('buffer', `a ${kind} cell at index ${index} (${expected})`, value);
  }
  return { cells, index };
}

/** A fresh one-cell buffer. */
export function newCell(): Cell {
  return { cells: new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT)), index: 0 };
}

/** Blocking waits freeze the event loop; refuse them on the main thread. */
export function requireWorkerThread(what: string, instead: string): void {
  if (isMainThread) {
    throw new InvalidStateError(`${what} blocks the thread and would freeze the main event loop; use ${instead} on the main thread`);
  }
}

/** A polling interval: > 0 milliseconds, `Infinity` for none (Python's `NO_POLLING`). */
export function requirePollInterval(name: string, value: unknown): number {
  if (value === undefined) return DEFAULT_POLL_INTERVAL_MS;
  const ms = requireDuration(name, value);
  if (ms === 0) throw new ArgumentRangeError(name, 'a number > 0 (or Infinity for no polling)', ms);
  return ms;
}

/** One cell to watch: it is woken when the cell stops holding `expected`. */
export interface Watch {
  readonly cell: Cell;
  readonly expected: number;
}

/**
 * Waits, without blocking the event loop, until one of `watches` is notified or no longer
 * holds its expected value, or `ms` pass. Resolves the index of the watch that woke ('ok'
 * or 'not-equal'), or -1 on time-out; rejects with `signal.reason` when aborted.
 *
 * A pending `Atomics.waitAsync` does not keep Node alive, so a ref'd timer of the same
 * length runs beside it: the process stays up exactly as long as someone waits. On abort
 * the timer and listener go at once; the abandoned waitAsync ends by itself within a
 * slice, and nothing acts on it.
 */
export function waitCells(watches: readonly Watch[], ms: number, clock: Clock, signal?: AbortSignal): Promise<number> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  const slice = Math.min(ms, MAX_SLICE_MS);
  const pending: Promise<number>[] = [];
  for (let i = 0; i < watches.length; i++) {
    const { cell, expected } = watches[i] as Watch;
    const result = Atomics.waitAsync(cell.cells, cell.index, expected, slice);
    if (!result.async) {
      if (result.value === 'not-equal') return Promise.resolve(i);
      continue;
    }
    pending.push(result.value.then((outcome) => (outcome === 'ok' ? i : -1)));
  }
  if (pending.length === 0) return Promise.resolve(-1);
  return new Promise<number>((resolve, reject) => {
    let done = false;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      clock.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const onAbort = (): void => {
      if (finish()) reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      if (finish()) resolve(-1);
    }, slice);
    signal?.addEventListener('abort', onAbort, { once: true });
    // Every watch shares the slice, so the first to time out ends the wait as well.
    for (const wake of pending) {
      void wake.then((woke) => {
        if (finish()) resolve(woke);
      });
    }
  });
}
