/**
 * Python's `async_lock`: run a function holding a lock shared with worker threads.
 *
 * @module
 */
import { optionalObject, requireFunction } from '../runtime/validate.ts';
import { SharedMutex, type SharedMutexAcquireOptions } from './SharedMutex.ts';
import { ArgumentTypeError } from '../errors.ts';

/**
 * Runs `fn` holding `lock` and releases it however `fn` ends, without blocking the event
 * loop while waiting. Rejects with `signal.reason` when aborted before `fn` starts, and
 * then the lock is not held: unlike Python's `async_lock`, a cancelled wait can never
 * take the lock later and leave it locked for good.
 *
 * @example
 * ```ts
 * import { SharedMutex, withSharedLock } from 'statesmith';
 * const lock = SharedMutex.create();
 * const total = await withSharedLock(lock, async () => {
 *   console.log(lock.locked); // true
 *   return 42;
 * });
 * console.log(total, lock.locked); // 42 false
 * ```
 */
export async function withSharedLock<R>(lock: SharedMutex, fn: () => R | Promise<R>, options?: SharedMutexAcquireOptions): Promise<R> {
  if (!(lock instanceof SharedMutex)) throw new ArgumentTypeError('lock', 'a SharedMutex', lock);
  requireFunction('fn', fn);
  const opts = optionalObject<SharedMutexAcquireOptions>('options', options, ['signal', 'timeoutMs', 'pollIntervalMs']);
  const handle = await lock.acquire(opts);
  try {
    // The acquire may have finished in the same turn as an abort; honour the abort.
    if (opts.signal?.aborted) throw opts.signal.reason;
    return await fn();
  } finally {
    handle.release();
  }
}
