/**
 * Small promise plumbing shared by the facades.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { Clock } from '../clock.ts';
import { TimeoutError } from '../errors.ts';
import { optionalDuration, optionalObject, optionalSignal } from './validate.ts';

export interface Deferred<T> {
  readonly promise: Promise<T>;
  readonly settled: boolean;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** A promise with its resolve/reject exposed (Node 20 has no `Promise.withResolvers`). */
export function createDeferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  let settled = false;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    promise,
    get settled() {
      return settled;
    },
    resolve(value) {
      settled = true;
      resolve(value);
    },
    reject(reason) {
      settled = true;
      reject(reason);
    },
  };
}

/**
 * Waits for `promise`, or rejects with `signal.reason` as soon as `signal` aborts,
 * removing its listener either way.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** The options of a wait that may be abandoned: `signal` aborts it, `timeoutMs` (default `Infinity`) bounds it. */
export interface WaitOptions {
  /** Abandons the wait: it rejects with `signal.reason`. What it waited for goes on. */
  readonly signal?: AbortSignal;
  /** Abandons the wait after this many ms with a `TimeoutError`; default `Infinity`. */
  readonly timeoutMs?: number;
}

/** Reads a `{ signal?, timeoutMs? }` options object. */
export function waitOptions(name: string, value: unknown): { signal: AbortSignal | undefined; timeoutMs: number } {
  const opts = optionalObject<WaitOptions>(name, value, ['signal', 'timeoutMs']);
  return { signal: optionalSignal(`${name}.signal`, opts.signal), timeoutMs: optionalDuration(`${name}.timeoutMs`, opts.timeoutMs, Infinity) };
}

/**
 * Waits for `promise`, or rejects with `signal.reason` when `signal` aborts, or with a
 * `TimeoutError` saying `what` did not happen once `timeoutMs` pass on `clock`; every
 * listener and timer it added is gone when it settles.
 */
export function boundedWait<T>(promise: Promise<T>, options: { signal?: AbortSignal | undefined; timeoutMs: number }, clock: Clock, what: string): Promise<T> {
  const { signal, timeoutMs } = options;
  if (timeoutMs === Infinity) return raceSignal(promise, signal);
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const finish = (): void => {
      clock.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      finish();
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      finish();
      reject(new TimeoutError(`${what} did not happen within ${timeoutMs} ms`));
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        finish();
        resolve(value);
      },
      (error: unknown) => {
        finish();
        reject(error);
      },
    );
  });
}
