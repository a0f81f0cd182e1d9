/**
 * The handle every statesmith lock kind gives its holder.
 *
 * @module
 */

/**
 * Lets a handle's hold use a controller its holder already has (the locksmith's host
 * passes its own), instead of making one on first read of `signal`. @internal
 */
export const kAdoptController: unique symbol = Symbol('statesmith.lockHandle.adoptController');

/** What a lock keeps about one holding; the handle aborts `controller` when the lock is taken away. @internal */
export interface HoldRecord {
  controller: AbortController | undefined;
  /**
   * Why the lock was taken away, when it was taken before anyone read `signal`: the
   * signal (and the error) are made on first read, so a forced release that nobody
   * watches costs no controller and no stack trace.
   */
  lost?: () => unknown;
}

/**
 * A held lock. `release()` is idempotent; `using handle = await lock.acquire()` releases
 * at the end of the block. `signal` aborts with a `LockLostError` if the lock is taken
 * away from this holder while held (a forced release, a lost lease).
 *
 * @example
 * ```ts
 * import { Mutex } from 'statesmith';
 * const mutex = new Mutex();
 * {
 *   using handle = await mutex.acquire();
 *   console.log(mutex.locked, handle.signal.aborted); // true false
 * }
 * console.log(mutex.locked); // false
 * ```
 */
export class LockHandle implements Disposable {
  readonly #release: (hold: never) => void;
  readonly #hold: HoldRecord;
  #released = false;

  /**
   * @param release called once, with `hold`, on the first `release()`; one function per
   * lock, so an acquire allocates nothing but the handle.
   * @internal
   */
  constructor(release: (hold: never) => void, hold: HoldRecord) {
    this.#release = release;
    this.#hold = hold;
  }

  /** True once this handle has been released. */
  get released(): boolean {
    return this.#released;
  }

  /** Aborts if the lock is taken away from this holder while held. */
  get signal(): AbortSignal {
    const hold = this.#hold;
    if (hold.controller === undefined) {
      hold.controller = new AbortController();
      if (hold.lost !== undefined) hold.controller.abort(hold.lost());
    }
    return hold.controller.signal;
  }

  /** @internal Uses `controller` as this hold's; false if the hold already has one. */
  [kAdoptController](controller: AbortController): boolean {
    const hold = this.#hold;
    if (hold.controller !== undefined) return false;
    hold.controller = controller;
    if (hold.lost !== undefined) controller.abort(hold.lost());
    return true;
  }

  /** Releases this handle's hold; later calls do nothing. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    (this.#release as (hold: HoldRecord) => void)(this.#hold);
  }

  /** `using` support: the same as {@link LockHandle.release}. */
  [Symbol.dispose](): void {
    this.release();
  }
}
