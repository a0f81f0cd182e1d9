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

/**
 * The real clock: `performance.now()` and Node's timers.
 *
 * @example
 * ```ts
 * import { systemClock } from 'statesmith';
 * const t0 = systemClock.now();
 * systemClock.setTimeout(() => console.log(systemClock.now() - t0 >= 0), 1); // true
 * ```
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clearTimeout: (handle: unknown): void => clearTimeout(handle as ReturnType<typeof setTimeout>),
});
