/**
 * Injected time. The runtime never calls global timers directly: every facility takes a
 * {@link Clock}, so tests drive time with a {@link ManualClock} instead of sleeping. The
 * shape is a superset of XState's clock, so the same object can be handed to an actor.
 *
 * @module
 */

/** A source of time and timers. `now()` is monotonic milliseconds. */
export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer; unknown or already fired handles are ignored. */
  clearTimeout(handle: unknown): void;
}

import { MAX_TIMER_MS } from '../machines/protocol.ts';

export { MAX_TIMER_MS };

/**
 * A timer longer than Node allows, run as a chain of slices of at most
 * {@link MAX_TIMER_MS}; an infinite one never fires and holds no native timer at all.
 * It keeps `ref()`/`unref()` like a native timer, across slices.
 */
class LongTimer {
  readonly #fn: () => void;
  readonly #deadline: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ref = true;

  constructor(fn: () => void, ms: number) {
    this.#fn = fn;
    this.#deadline = performance.now() + ms;
    if (Number.isFinite(ms)) this.#arm();
  }

  #arm(): void {
    const remaining = this.#deadline - performance.now();
    if (remaining <= 0) {
      this.#timer = undefined;
      this.#fn();
      return;
    }
    this.#timer = setTimeout(() => this.#arm(), Math.min(remaining, MAX_TIMER_MS));
    if (!this.#ref) this.#timer.unref();
  }

  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  ref(): this {
    this.#ref = true;
    this.#timer?.ref();
    return this;
  }

  unref(): this {
    this.#ref = false;
    this.#timer?.unref();
    return this;
  }

  hasRef(): boolean {
    return this.#ref && this.#timer !== undefined;
  }
}

/**
 * The real clock: `performance.now()` and Node's timers. Any delay works: one of 2^31 ms
 * or more is sliced rather than clamped to 1 ms as Node would, and `Infinity` never
 * fires (and keeps nothing alive).
 *
 * @example
 * ```ts
 * import { systemClock } from 'statesmith';
 * const t0 = systemClock.now();
 * systemClock.setTimeout(() => console.log(systemClock.now() - t0 >= 0), 1); // true
 * const never = systemClock.setTimeout(() => console.log('not in this lifetime'), 2 ** 40);
 * systemClock.clearTimeout(never);
 * ```
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (fn: () => void, ms: number): unknown => (ms > MAX_TIMER_MS ? new LongTimer(fn, ms) : setTimeout(fn, ms)),
  clearTimeout: (handle: unknown): void => {
    if (handle instanceof LongTimer) handle.cancel();
    else clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
});
