/**
 * Argument checks shared by every facade, so each bad input gets the same typed error
 * with the argument's name, what was expected and what was received.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import { ArgumentRangeError, ArgumentTypeError, ArgumentValueError, UnknownOptionError } from '../errors.ts';

export function requireFunction<F extends (...args: never[]) => unknown>(name: string, value: unknown): F {
  if (typeof value !== 'function') throw new ArgumentTypeError(name, 'a function', value);
  return value as F;
}

export function requireNonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new ArgumentTypeError(name, 'a non-empty string', value);
  if (value.length === 0) throw new ArgumentValueError(name, 'a non-empty string', value);
  return value;
}

/** A duration in milliseconds: a finite number >= 0, or `Infinity` where `allowInfinity`. */
export function requireDuration(name: string, value: unknown, { allowInfinity = true } = {}): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new ArgumentTypeError(name, 'a number of milliseconds', value);
  }
  if (value < 0 || (!allowInfinity && !Number.isFinite(value))) {
    throw new ArgumentRangeError(name, allowInfinity ? 'a number >= 0 (or Infinity)' : 'a finite number >= 0', value);
  }
  return value;
}

export function optionalDuration(name: string, value: unknown, fallback: number, opts?: { allowInfinity?: boolean }): number {
  return value === undefined ? fallback : requireDuration(name, value, opts);
}

export function optionalSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw new ArgumentTypeError(name, 'an AbortSignal', value);
  return value;
}

/**
 * An options object (or `undefined`, read as `{}`) whose own string keys are all in
 * `accepted`: an unknown key is an {@link UnknownOptionError}, never ignored. Symbol keys
 * (internal seams) are not checked.
 */
export function optionalObject<T extends object>(name: string, value: unknown, accepted: readonly (keyof T & string)[]): Partial<T> {
  if (value === undefined) return {};
  let array: boolean;
  try {
    array = Array.isArray(value);
  } catch (error) {
    throw Object.assign(new ArgumentTypeError(name, 'an options object whose keys can be read', value), { cause: error });
  }
  if (value === null || typeof value !== 'object' || array) {
    throw new ArgumentTypeError(name, 'an options object', value);
  }
  let unknown: string | undefined;
  try {
    for (const key in value) {
      if (Object.hasOwn(value, key) && !(accepted as readonly string[]).includes(key)) {
        unknown = key;
        break;
      }
    }
  } catch (error) {
    // A proxy whose traps throw, or a revoked one: its keys cannot be read.
    throw Object.assign(new ArgumentTypeError(name, 'an options object whose keys can be read', value), { cause: error });
  }
  if (unknown !== undefined) throw new UnknownOptionError(name, unknown, accepted);
  return value as Partial<T>;
}

/** A `{ signal? }` options object: its signal. */
export function signalOption(name: string, value: unknown): AbortSignal | undefined {
  return optionalSignal(`${name}.signal`, optionalObject<{ signal: AbortSignal }>(name, value, ['signal']).signal);
}

export function optionalBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ArgumentTypeError(name, 'a boolean', value);
  return value;
}

/** A name: a non-empty string, or `fallback()` when none was given. */
export function optionalName(name: string, value: unknown, fallback: () => string): string {
  return value === undefined ? fallback() : requireNonEmptyString(name, value);
}

/** A {@link Clock}: an object with `now`, `setTimeout` and `clearTimeout`; the system clock when none was given. */
export function optionalClock(name: string, value: unknown): Clock {
  if (value === undefined) return systemClock;
  const clock = value as Partial<Record<keyof Clock, unknown>> | null;
  if (
    typeof clock !== 'object' ||
    clock === null ||
    typeof clock.now !== 'function' ||
    typeof clock.setTimeout !== 'function' ||
    typeof clock.clearTimeout !== 'function'
  ) {
    throw new ArgumentTypeError(name, 'a Clock (an object with now(), setTimeout() and clearTimeout(), such as systemClock or a ManualClock)', value);
  }
  return value as Clock;
}

/** A source of randomness in [0, 1): a function; `Math.random` when none was given. */
export function optionalRandom(name: string, value: unknown): () => number {
  if (value === undefined) return Math.random;
  return requireFunction<() => number>(name, value);
}

/**
 * Reads every own key of an actor's input once (and of the objects under `nested`), so a
 * getter that throws is refused here with a typed error (`ERR_INVALID_ARG_TYPE`, the thrown
 * value as its `cause`) instead of failing the machine's context with the raw error. @internal
 */
export function requireReadableInput(input: unknown, nested: readonly string[] = []): void {
  if (input === undefined || input === null || typeof input !== 'object') return;
  try {
    for (const key of Object.keys(input)) {
      const value = (input as Record<string, unknown>)[key];
      if (nested.includes(key) && value !== null && typeof value === 'object')
        for (const inner of Object.keys(value)) void (value as Record<string, unknown>)[inner];
    }
  } catch (error) {
    throw Object.assign(new ArgumentTypeError('input', 'an input object whose values can be read', input), { cause: error });
  }
}
