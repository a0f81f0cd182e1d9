/**
 * The one rule that tells a cancellation from a failure, for every facility (ARCHITECTURE.md,
 * "Cancellation is one rule"): once a unit of work's own signal has aborted, a rejection with
 * that signal's reason, an `AbortError` (what `node:timers/promises`, `events.once`, `fetch`,
 * `stream.pipeline` and `child_process` reject with when their signal aborts) or a
 * `CancelledError` ends it `cancelled`. Anything else thrown after the abort is a failure.
 *
 * A `CancelledError` counts as a cancellation even before the signal aborts: it is
 * statesmith's own way of saying "cancelled" (a task that re-raises one from a wait it was
 * given), as frequenz treats `asyncio.CancelledError`.
 *
 * The checks read only own data of the thrown value, inside a guard: a hostile value (a
 * proxy whose traps throw, a revoked proxy) is a failure, never a throw from here.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { CancelledError } from '../errors.ts';

/** Whether `error`, thrown by work whose own signal is `signal`, ends that work `cancelled`. */
export function isCancellation(error: unknown, signal: AbortSignal | undefined): boolean {
  if (error === null || (typeof error !== 'object' && typeof error !== 'function')) {
    // A primitive reason (abort('stop')) is the signal's own only by identity.
    return signal !== undefined && signal.aborted && error !== undefined && error === signal.reason;
  }
  try {
    if (error instanceof CancelledError) return true;
    if (signal === undefined || !signal.aborted) return false;
    if (error === signal.reason) return true;
    return (error as { name?: unknown }).name === 'AbortError';
  } catch {
    // A getter or trap that throws: not a cancellation this can vouch for.
    return false;
  }
}

/** `'cancelled'` or `'failed'` for `error` by {@link isCancellation}: the outcome label of logs and metrics. */
export function outcomeOf(error: unknown, signal: AbortSignal | undefined): 'cancelled' | 'failed' {
  return isCancellation(error, signal) ? 'cancelled' : 'failed';
}

/** `error instanceof CancelledError`, false for a value whose prototype lookup throws. */
export function isCancelledError(error: unknown): error is CancelledError {
  try {
    return error instanceof CancelledError;
  } catch {
    return false;
  }
}
