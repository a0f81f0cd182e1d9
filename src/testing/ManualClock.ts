/**
 * A simulated clock for tests: time moves only when the test says so, and every timer
 * due on the way fires in order, with pending promise callbacks run between timers so
 * async code reacts exactly as it would in real time.
 *
 * @module
 */
import type { Clock } from '../clock.ts';
import { requireDuration } from '../runtime/validate.ts';

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

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, Number.isFinite(ms) ? ms : 0), fn });
    return id;
  }

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

  /** Advances to the next due timer and fires it (and any due at the same instant). */
  async next(): Promise<boolean> {
    await flushMicrotasks();
    const next = this.#earliest();
    if (next === undefined) return false;
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
