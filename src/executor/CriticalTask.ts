/**
 * Patroni's two-party interlock for a critical step in a background task.
 *
 * @module
 */
import type { Actor } from 'xstate';
import { criticalTaskMachine } from '../../machines/criticalTask.machine.ts';
import { InvalidStateError } from '../errors.ts';
import { kUninspected, Mutex, type MutexAcquireOptions, type MutexOptions } from '../locks/Mutex.ts';
import { requireIdleActor, startActor } from '../runtime/startActor.ts';
import { optionalName, optionalObject } from '../runtime/validate.ts';

let counter = 0;

/** The actor `CriticalTask.attach` hands to the constructor it calls. */
let attaching: Actor<typeof criticalTaskMachine> | undefined;

/**
 * Settles the race "did the background task already do its critical step?" between the
 * worker and the main side.
 *
 * - **Worker:** inside `withLock`, skip the step if `isCancelled`; otherwise do it and
 *   `complete(result)` before leaving.
 * - **Main side:** while holding the executor's lock (so the worker cannot reset the
 *   task), inside `withLock` call `cancel()`. `true` means the worker will see the flag
 *   and not do the step; `false` means the step happened and `result` holds its artefact.
 *
 * `cancel`, `complete` and `reset` must be called inside `withLock` (they throw an
 * `InvalidStateError` otherwise), and the lock is not re-entrant (a nested `withLock`
 * rejects with a `DeadlockError` instead of hanging). `cancel()` is false exactly when a
 * result exists, even a result of `undefined`.
 *
 * @example
 * ```ts
 * import { CriticalTask } from 'statesmith';
 * const task = new CriticalTask<number>();
 * // worker side
 * await task.withLock(() => { if (!task.isCancelled) task.complete(4242); });
 * // main side
 * const cancelled = await task.withLock(() => task.cancel());
 * console.log(cancelled, task.result); // false 4242
 * ```
 */
export class CriticalTask<T = unknown> {
  /** The critical task's name in logs and the inspector. */
  readonly name: string;
  /** The statechart actor (`criticalTaskLogic`): `idle`, `scheduled`, `running`, `cancelling`, `done.completed` or `done.cancelled`. */
  readonly actor: Actor<typeof criticalTaskMachine>;
  readonly #mutex: Mutex;

  constructor(options?: { readonly name?: string }) {
    const opts = optionalObject<{ name: string }>('options', options, ['name']);
    this.name = optionalName('options.name', opts.name, () => `criticalTask-${++counter}`);
    this.#mutex = new Mutex({ name: `${this.name} lock`, [kUninspected]: true } as MutexOptions);
    const attached = attaching;
    attaching = undefined;
    this.actor = attached ?? startActor('criticalTask', criticalTaskMachine, { input: { name: this.name }, id: this.name });
  }

  /** A facade over a critical task actor someone else started (an executor's child). @internal */
  static attach(actor: unknown, name: string): CriticalTask {
    attaching = actor as Actor<typeof criticalTaskMachine>;
    return new CriticalTask({ name });
  }

  /** True once the main side cancelled the step (until `reset`). */
  get isCancelled(): boolean {
    return this.actor.getSnapshot().context.isCancelled;
  }

  /** The critical step's result, once completed. */
  get result(): T | undefined {
    return this.actor.getSnapshot().context.result as T | undefined;
  }

  /** True once the worker completed the step (until `reset`). */
  get completed(): boolean {
    return this.actor.getSnapshot().matches({ done: 'completed' });
  }

  /** True while someone is inside `withLock`. */
  get locked(): boolean {
    return this.#mutex.locked;
  }

  /**
   * Tries to cancel the step. Returns false (changing nothing) when it already completed;
   * otherwise marks it cancelled and returns true. Call inside `withLock`.
   */
  cancel(): boolean {
    this.#requireLock('cancel');
    requireIdleActor(this.actor, `${this.name}.cancel`);
    let cancelled = false;
    const listening = this.actor.on('statesmith.critical.cancelResult', (reply) => (cancelled = reply.cancelled));
    try {
      this.actor.send({ type: 'statesmith.critical.cancel' });
    } finally {
      listening.unsubscribe();
    }
    return cancelled;
  }

  /** Records the step's result. Call inside `withLock`, after checking `isCancelled`. */
  complete(result: T): void {
    this.#requireLock('complete');
    if (this.isCancelled) {
      throw new InvalidStateError(`${this.name} was cancelled; the worker must check isCancelled inside withLock() and skip the step`);
    }
    if (this.completed) throw new InvalidStateError(`${this.name} is already completed; reset() it before the next task`);
    this.actor.send({ type: 'statesmith.critical.complete', result });
  }

  /** Clears the cancelled flag and the result for the next task. Call inside `withLock`. */
  reset(): void {
    this.#requireLock('reset');
    this.actor.send({ type: 'statesmith.critical.reset' });
  }

  /** The executor is starting a task that may take the critical step. @internal */
  schedule(): void {
    this.actor.send({ type: 'statesmith.critical.schedule' });
  }

  /** That task started. @internal */
  start(): void {
    this.actor.send({ type: 'statesmith.critical.start' });
  }

  /** That task ended (before the executor resets the interlock). @internal */
  end(): void {
    this.actor.send({ type: 'statesmith.critical.end' });
  }

  /** Runs `fn` holding the task's lock (Python's `with task:`). */
  withLock<R>(fn: () => R | Promise<R>, options?: Pick<MutexAcquireOptions, 'signal' | 'timeoutMs'>): Promise<R> {
    return this.#mutex.runExclusive(fn, options);
  }

  #requireLock(method: string): void {
    if (!this.#mutex.isHeldByCaller()) {
      throw new InvalidStateError(`${this.name}.${method}() must be called inside ${this.name}.withLock()`);
    }
  }
}
