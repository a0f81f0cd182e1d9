/**
 * A simulated clock for tests: time moves only when the test says so, and every timer
 * due on the way fires in order, with pending promise callbacks run between timers so
 * async code reacts exactly as it would in real time.
 *
 * @module
 */
import type { Clock } from '../clock.ts';
import { requireDuration } from '../runtime/validate.ts';
import { describeAs } from '../inspect/safeJson.ts';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** Lets every queued promise callback run (one macrotask turn drains the microtask queue). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A {@link Clock} whose time only moves through {@link ManualClock.advance}.
 *
 * @example
 * ```ts
 * import { ManualClock } from 'statesmith';
 * const clock = new ManualClock();
 * clock.setTimeout(() => console.log('fired at', clock.now()), 100);
 * await clock.advance(150); // fired at 100
 * console.log(clock.now()); // 150
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Timer>();

  constructor(start = 0) {
    this.#now = start;
  }

  /** The clock's time in ms: the start plus everything advanced and stalled so far. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` at `now() + ms` (any `ms` up to `Infinity`, which never fires); returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    // NaN and negative delays fire at once, as Node's; Infinity never fires.
    this.#timers.set(id, { id, at: this.#now + (ms > 0 ? ms : 0), fn });
    return id;
  }

  /** Cancels a timer from `setTimeout`; unknown and already fired handles are ignored. */
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** How many timers are waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in order of due time
   * (then creation), and letting promise callbacks run after each one.
   */
  async advance(ms: number): Promise<void> {
    requireDuration('ms', ms, { allowInfinity: false });
    const target = this.#now + ms;
    await flushMicrotasks();
    for (;;) {
      const next = this.#earliest();
      if (next === undefined || next.at > target) break;
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await flushMicrotasks();
    }
    this.#now = target;
    await flushMicrotasks();
  }

  /**
   * Moves time forward by `ms` without firing any timer, as a frozen process sees it (a
   * blocked event loop, SIGSTOP): code that runs next finds the time moved on while the
   * timers due meanwhile have not fired yet; they fire at the next {@link ManualClock.advance}.
   *
   * @example
   * ```ts
   * import { ManualClock } from 'statesmith';
   * const clock = new ManualClock();
   * clock.setTimeout(() => console.log('fired late, at', clock.now()), 100);
   * clock.stall(500);
   * console.log(clock.now()); // 500
   * await clock.advance(0); // fired late, at 500
   * ```
   */
  stall(ms: number): void {
    requireDuration('ms', ms, { allowInfinity: false });
    this.#now += ms;
  }

  /** Advances to the next due timer and fires it (and any due at the same instant). */
  async next(): Promise<boolean> {
    await flushMicrotasks();
    const next = this.#earliest();
    if (next === undefined || next.at === Infinity) return false;
    await this.advance(next.at - this.#now);
    return true;
  }

  #earliest(): Timer | undefined {
    let best: Timer | undefined;
    for (const timer of this.#timers.values()) {
      if (best === undefined || timer.at < best.at || (timer.at === best.at && timer.id < best.id)) best = timer;
    }
    return best;
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(ManualClock, () => '[ManualClock]');
