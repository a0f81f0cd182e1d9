/**
 * The HA loop pattern: run a cycle, then sleep on the wake-up bus until the next one is
 * due, running at once when woken (Patroni's `_run_cycle` + `schedule_next_run`).
 *
 * @module
 */
import { systemClock, type Clock } from '../clock.ts';
import { ArgumentTypeError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { optionalSignal, requireDuration, requireFunction } from '../runtime/validate.ts';
import type { AsyncExecutor } from '../executor/AsyncExecutor.ts';
import type { Wakeup, WakeupBus } from './WakeupBus.ts';

/** Options of {@link runLoop}. */
export interface RunLoopOptions {
  /** The wake-up bus the loop sleeps on between cycles. */
  readonly bus: WakeupBus;
  /** How often a cycle runs when nothing wakes the loop (Patroni's `loop_wait`), in ms. */
  readonly intervalMs: number;
  /** Stops the loop; `runLoop` then rejects with `signal.reason`. */
  readonly signal: AbortSignal;
  /** When given, every cycle runs holding the executor lock, as Patroni's HA cycle does. */
  readonly executor?: AsyncExecutor;
  /** The clock for the interval and overrun timing; `systemClock` by default, `ManualClock` in tests. */
  readonly clock?: Clock;
  /** Told about each wake-up that ended a sleep early. */
  readonly onWakeup?: (wakeup: Wakeup) => void;
  /** Told by how many ms a cycle ran past `intervalMs`, each time one does. */
  readonly onOverrun?: (overrunMs: number) => void;
}

/** What a cycle receives: the loop's signal and the cycle number (from 1). */
export interface CycleContext {
  /** Aborts when the loop is stopped; pass it to anything the cycle awaits. */
  readonly signal: AbortSignal;
  /** The cycle's number, counting from 1. */
  readonly cycle: number;
}

/**
 * Runs `cycle` every `intervalMs` until `signal` aborts, sleeping on `bus` in between:
 * a wake-up (even one that came during the cycle) starts the next cycle at once. A cycle
 * that throws is logged and the loop goes on. When a cycle overruns its interval, the
 * next one runs at once after yielding to the event loop, so tasks waiting for the
 * executor lock get their turn. Rejects with `signal.reason` when stopped.
 *
 * @example
 * ```ts
 * import { runLoop, WakeupBus } from 'statesmith';
 * const bus = new WakeupBus();
 * const stop = new AbortController();
 * const seen: number[] = [];
 * const loop = runLoop(async ({ cycle }) => {
 *   seen.push(cycle);
 *   if (cycle === 3) stop.abort(new Error('done'));
 *   else bus.wakeup('more work');
 * }, { bus, intervalMs: 10_000, signal: stop.signal });
 * await loop.catch((reason: Error) => console.log(reason.message, seen)); // done [ 1, 2, 3 ]
 * ```
 */
export async function runLoop(cycle: (context: CycleContext) => unknown, options: RunLoopOptions): Promise<never> {
  requireFunction('cycle', cycle);
  if (typeof options !== 'object' || options === null) throw new ArgumentTypeError('options', 'an options object', options);
  const { bus, executor, onWakeup, onOverrun } = options;
  if (typeof bus?.wait !== 'function') throw new ArgumentTypeError('options.bus', 'a WakeupBus', bus);
  const intervalMs = requireDuration('options.intervalMs', options.intervalMs); // Infinity: cycles come only from wake-ups
  const signal = optionalSignal('options.signal', options.signal);
  if (!signal) throw new ArgumentTypeError('options.signal', 'an AbortSignal', signal);
  const clock = options.clock ?? systemClock;
  const log = getLogger();

  let nextRun = clock.now();
  for (let count = 1; ; count++) {
    signal.throwIfAborted();
    const context: CycleContext = { signal, cycle: count };
    try {
      if (executor) await executor.withLock(() => cycle(context));
      else await cycle(context);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      log.error(`loop cycle ${count} failed`, { error });
    }
    signal.throwIfAborted();
    nextRun += intervalMs;
    const nap = nextRun - clock.now();
    if (nap <= 0) {
      log.warn('Loop time exceeded, rescheduling immediately.', { overrunMs: -nap });
      onOverrun?.(-nap);
      nextRun = clock.now();
      // Let timers and I/O callbacks (and lock waiters behind them) run before the next cycle.
      await new Promise<void>((resolve) => setImmediate(resolve));
      continue;
    }
    const wakeup = await bus.wait(nap, { signal });
    if (wakeup) {
      nextRun = clock.now();
      onWakeup?.(wakeup);
    }
  }
}
