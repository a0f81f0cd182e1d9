/**
 * Python's `asyncnullcontext`.
 *
 * @module
 */

const nullContext: AsyncDisposable = Object.freeze({
  [Symbol.asyncDispose]: (): Promise<void> => Promise.resolve(),
});

/**
 * An `AsyncDisposable` that does nothing: the placeholder for `await using` when a lock or
 * other scope is needed only sometimes.
 *
 * @example
 * ```ts
 * import { asyncNullContext } from 'statesmith';
 * const exclusive = false;
 * const lockScope = async (): Promise<AsyncDisposable> => ({ [Symbol.asyncDispose]: async () => {} });
 * {
 *   await using _scope = exclusive ? await lockScope() : asyncNullContext();
 *   console.log('inside'); // inside
 * }
 * ```
 */
export function asyncNullContext(): AsyncDisposable {
  return nullContext;
}
