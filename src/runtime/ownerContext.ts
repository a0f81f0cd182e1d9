/**
 * Who the current async context works for: the actor or task a lock acquired here
 * belongs to by default. Tasks and actors run their bodies inside {@link runAsOwner}.
 *
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const owners = new AsyncLocalStorage<unknown>();

/**
 * Runs `fn` with `owner` as the current owner: locks acquired inside without an explicit
 * `owner` are held by it.
 *
 * @example
 * ```ts
 * import { Mutex, runAsOwner } from 'statesmith';
 * const mutex = new Mutex();
 * await runAsOwner('health-check task', async () => {
 *   using _lock = await mutex.acquire();
 *   console.log(mutex.owner); // health-check task
 * });
 * ```
 */
export function runAsOwner<R>(owner: unknown, fn: () => R): R {
  return owners.run(owner, fn);
}

/** The current owner (set by {@link runAsOwner}), or `undefined`. */
export function currentOwner(): unknown {
  return owners.getStore();
}
