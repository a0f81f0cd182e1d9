/**
 * Python's `await_event_with_stop`: wait for one shared event unless another says stop.
 *
 * @module
 */
import { systemClock } from '../clock.ts';
import { ArgumentTypeError, TimeoutError } from '../errors.ts';
import { optionalDuration, optionalObject, optionalSignal } from '../runtime/validate.ts';
import { requirePollInterval, waitCells, type Cell } from './cells.ts';
import { isSetValue, SharedEvent } from './SharedEvent.ts';

/** Options of {@link awaitEventWithStop}. */
export interface AwaitEventWithStopOptions {
  /** The longest single wait before both flags are looked at again; default 5000, `Infinity` for none. */
  readonly pollIntervalMs?: number;
  /** Abort the wait; it rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** Give up after this many ms with a `TimeoutError` (neither event was set); default `Infinity`. */
  readonly timeoutMs?: number;
}

/**
 * Waits for `wait` to be set, giving up when `stop` is set. Resolves true when `wait`
 * was set, false when `stop` was; `stop` is looked at first, so when both are set the
 * answer is false. Unlike Python, which noticed `stop` only once per polling interval,
 * this waits on both flags at once, so a stop is seen as soon as it is set.
 *
 * @example
 * ```ts
 * import { SharedEvent, awaitEventWithStop } from 'statesmith';
 * const response = SharedEvent.create();
 * const stop = SharedEvent.create();
 * const waiting = awaitEventWithStop(response, stop);
 * stop.set();
 * console.log(await waiting); // false
 * ```
 */
export async function awaitEventWithStop(wait: SharedEvent, stop: SharedEvent, options?: AwaitEventWithStopOptions): Promise<boolean> {
  if (!(wait instanceof SharedEvent)) throw new ArgumentTypeError('wait', 'a SharedEvent', wait);
  if (!(stop instanceof SharedEvent)) throw new ArgumentTypeError('stop', 'a SharedEvent', stop);
  const opts = optionalObject<AwaitEventWithStopOptions>('options', options, ['pollIntervalMs', 'signal', 'timeoutMs']);
  const pollMs = requirePollInterval('options.pollIntervalMs', opts.pollIntervalMs);
  const signal = optionalSignal('options.signal', opts.signal);
  const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
  if (signal?.aborted) throw signal.reason;
  const deadline = systemClock.now() + timeoutMs;
  const stopCell = cellOf(stop);
  const waitCell = cellOf(wait);
  const stopSeen = Atomics.load(stopCell.cells, stopCell.index);
  if (isSetValue(stopSeen)) return false;
  const waitSeen = Atomics.load(waitCell.cells, waitCell.index);
  if (isSetValue(waitSeen)) return true;
  const watches = [
    { cell: stopCell, expected: stopSeen },
    { cell: waitCell, expected: waitSeen },
  ];
  for (;;) {
    const remaining = deadline - systemClock.now();
    if (remaining <= 0) throw new TimeoutError(`neither event was set within ${timeoutMs} ms`);
    await waitCells(watches, Math.min(pollMs, remaining), systemClock, signal);
    // A cell that moved off the clear value seen at the start had a set(), even if it was
    // cleared again (as in SharedEvent.wait); an unmoved one was only a late notify.
    if (Atomics.load(stopCell.cells, stopCell.index) !== stopSeen) return false;
    if (Atomics.load(waitCell.cells, waitCell.index) !== waitSeen) return true;
  }
}

function cellOf(event: SharedEvent): Cell {
  const { buffer } = event;
  return { cells: new Int32Array(buffer, 0, Math.floor(buffer.byteLength / Int32Array.BYTES_PER_ELEMENT)), index: event.index };
}
