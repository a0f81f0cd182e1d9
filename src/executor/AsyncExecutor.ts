/**
 * Patroni's one-at-a-time executor of long actions, as a statechart actor.
 *
 * @module
 */
import type { Actor } from 'xstate';
import { executorMachine, type ExecutorOutcome } from '../../machines/executor.machine.ts';
import type { WakeupBus } from '../bus/WakeupBus.ts';
import { BusyError, CancelledError, DeadlockError, InvalidStateError, ArgumentTypeError } from '../errors.ts';
import { kUninspected, Mutex, runDetached, type MutexAcquireOptions, type MutexOptions } from '../locks/Mutex.ts';
import { getLogger } from '../logger.ts';
import { systemClock } from '../clock.ts';
import { boundedWait, createDeferred, waitOptions, type Deferred, type WaitOptions } from '../runtime/deferred.ts';
import { startActor } from '../runtime/startActor.ts';
import { optionalName, optionalObject, requireFunction, requireNonEmptyString } from '../runtime/validate.ts';
import { CancellableSubprocess } from '../subprocess/CancellableSubprocess.ts';
import { CriticalTask } from './CriticalTask.ts';

/** Options of the {@link AsyncExecutor} constructor. */
export interface AsyncExecutorOptions {
  /** Woken when a task ends (see the wake-up rule on {@link AsyncExecutor}). */
  readonly wakeup: WakeupBus | (() => void);
  /** The subprocess runner that `cancel()` stops; its cancelled flag is reset as each task starts. */
  readonly cancellable?: CancellableSubprocess;
  /** A name for logs and the inspector. */
  readonly name?: string;
}

/** The task in the slot: its generation and what has happened to it. */
interface Slot {
  readonly generation: number;
  readonly action: string;
  /** A run()/runAsync() has taken this task; a second one is refused. */
  claimed: boolean;
  cancelled: boolean;
  started: boolean;
  /** Settles once the task can no longer touch the slot (Patroni's finish event, per task). */
  readonly finished: Deferred<void>;
}

let counter = 0;

/** Duck-typed, so a bus from another copy of the package still counts. */
function isWakeupBus(value: unknown): value is WakeupBus {
  return typeof value === 'object' && value !== null && typeof (value as WakeupBus).wakeup === 'function';
}

/**
 * Runs at most one long action at a time in a named slot (Patroni's `AsyncExecutor`).
 *
 * - `schedule(action)` is an atomic test-and-set: it takes the free slot and returns
 *   `null`, or returns the occupant's name and changes nothing. `busy` is "the slot is
 *   taken"; both are read from the {@link AsyncExecutor.actor | actor}.
 * - `run(fn)` runs the scheduled task: it catches errors (logged with the action name)
 *   and resolves `undefined` for them. `runAsync` starts it in the background;
 *   `tryRunAsync` is schedule + runAsync in one step.
 * - **Wake-up rule:** when a task ends, the HA loop is woken unless the task returned
 *   `undefined` (the one JS "no value"; `null`, `false` and `0` wake). A task that threw,
 *   and a task cancelled before it started, wake too.
 * - **Cleanup order:** slot cleared, task marked finished, `criticalTask` reset (all
 *   under the executor lock), lock released, then the wake-up.
 * - **The executor lock** (`withLock`) is re-entrant and held by an HA cycle across its
 *   awaits: a task scheduled during a cycle starts only after the cycle releases it, and
 *   the slot never frees itself in the middle of a cycle. **Never call `cancel()` while
 *   holding it:** the running task needs the lock to finish, so such a call rejects with
 *   a `DeadlockError` instead of hanging.
 *
 * Two races of the original are closed on purpose: a `cancel()` landing just as a task
 * starts is never lost (the start check and the subprocess flag reset happen in one step
 * under the lock), and a task cancelled before it started can never run later, even if
 * another action was scheduled meanwhile (each task carries a generation id).
 *
 * @example
 * ```ts
 * import { AsyncExecutor, WakeupBus } from 'statesmith';
 * const bus = new WakeupBus();
 * const executor = new AsyncExecutor({ wakeup: bus, name: 'ha' });
 * console.log(executor.tryRunAsync('restart', async () => true)); // null
 * console.log(executor.busy, executor.scheduledAction); // true restart
 * console.log(executor.tryRunAsync('promote', async () => true));
 * // Failed to run promote, restart is already in progress
 * const woken = await bus.wait(1000);
 * console.log(woken?.reason, executor.busy); // restart completed false
 * ```
 */
export class AsyncExecutor {
  readonly name: string;
  /** The statechart actor: `idle → scheduled → running → cancelling → done → idle`. */
  readonly actor: Actor<typeof executorMachine>;
  readonly #lock: Mutex;
  readonly #wakeup: WakeupBus | (() => void);
  readonly #cancellable: CancellableSubprocess | undefined;
  #slot: Slot | null = null;
  #criticalTask: CriticalTask | undefined;

  constructor(options: AsyncExecutorOptions) {
    const opts = optionalObject<AsyncExecutorOptions>('options', options, ['wakeup', 'cancellable', 'name']);
    if (!isWakeupBus(opts.wakeup) && typeof opts.wakeup !== 'function') {
      throw new ArgumentTypeError('options.wakeup', 'a WakeupBus or a function', opts.wakeup);
    }
    this.name = optionalName('options.name', opts.name, () => `executor-${++counter}`);
    this.#wakeup = opts.wakeup;
    if (opts.cancellable !== undefined && !(opts.cancellable instanceof CancellableSubprocess)) {
      throw new ArgumentTypeError('options.cancellable', 'a CancellableSubprocess', opts.cancellable);
    }
    this.#cancellable = opts.cancellable;
    this.#lock = new Mutex({ name: `${this.name} lock`, reentrant: true, [kUninspected]: true } as MutexOptions);
    this.actor = startActor('executor', executorMachine, { input: { name: this.name }, id: this.name });
  }

  /**
   * The interlock shared with tasks that have a critical step; reset after every task.
   * Created on first use, so executors that never need it stay small.
   */
  get criticalTask(): CriticalTask {
    this.#criticalTask ??= new CriticalTask({ name: `${this.name}.criticalTask` });
    return this.#criticalTask;
  }

  /** True while an action holds the slot. */
  get busy(): boolean {
    return this.actor.getSnapshot().context.action !== null;
  }

  /** The action in the slot, or `null`. */
  get scheduledAction(): string | null {
    return this.actor.getSnapshot().context.action;
  }

  /**
   * Takes the slot for `action` if it is free and returns `null`; otherwise returns the
   * occupant's name and changes nothing.
   */
  schedule(action: string): string | null {
    requireNonEmptyString('action', action);
    const occupant = this.scheduledAction;
    if (occupant !== null) return occupant;
    this.actor.send({ type: 'statesmith.executor.schedule', action });
    this.#slot = {
      generation: this.actor.getSnapshot().context.generation,
      action,
      claimed: false,
      cancelled: false,
      started: false,
      finished: createDeferred(),
    };
    return null;
  }

  /**
   * Gives up a scheduled action that has not started. A task already waiting to run it
   * will not run. Throws an `InvalidStateError` for a started task: use `cancel()`.
   */
  resetScheduledAction(): void {
    const slot = this.#slot;
    if (slot === null) return;
    if (slot.started) {
      throw new InvalidStateError(
        `${this.name}: action '${slot.action}' has already started; use cancel() to stop it`,
      );
    }
    slot.cancelled = true;
    this.actor.send({ type: 'statesmith.executor.reset' });
    this.#slot = null;
    slot.finished.resolve();
  }

  /**
   * Runs `fn(...args)` as the scheduled task (scheduling it under `fn.name` when the slot
   * is free) and resolves its result, or `undefined` when it threw or was cancelled
   * before it started. Rejects with a `BusyError` when the scheduled task already has a
   * runner.
   */
  run<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, args?: A): Promise<R | undefined> {
    let slot: Slot;
    try {
      slot = this.#claim(fn, args);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#execute(slot, fn, args);
  }

  /**
   * Starts `run(fn, args)` in the background, as a new owner of the executor lock (so it
   * waits for the current HA cycle). Throws at once for bad input or a `BusyError`.
   */
  runAsync<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, args?: A): void {
    const slot = this.#claim(fn, args);
    runDetached(() => {
      this.#execute(slot, fn, args).catch((error: unknown) =>
        getLogger().error(`${this.name}: background task '${slot.action}' failed in cleanup`, { error }),
      );
    });
  }

  /**
   * Schedules `action` and starts `fn` in the background in one step. Returns `null` on
   * success, or `Failed to run <action>, <prev> is already in progress`.
   */
  tryRunAsync<A extends unknown[], R>(action: string, fn: (...args: A) => R | Promise<R>, args?: A): string | null {
    requireNonEmptyString('action', action);
    requireFunction('fn', fn);
    const previous = this.schedule(action);
    if (previous !== null) return `Failed to run ${action}, ${previous} is already in progress`;
    this.runAsync(fn, args);
    return null;
  }

  /**
   * Cancels the task in the slot and waits until it has cleaned up. Returns at once when
   * the slot is free, and promptly for a task that never started. Rejects with
   * `signal.reason` when the wait is aborted, with a `TimeoutError` after `timeoutMs`
   * (either way the cancel still stands once it was made), and with a `DeadlockError` when
   * called from inside `withLock` while the task runs.
   */
  async cancel(options?: WaitOptions): Promise<void> {
    const { signal, timeoutMs } = waitOptions('options', options);
    const deadline = systemClock.now() + timeoutMs;
    if (this.#slot === null) return;
    const callerHoldsLock = this.#lock.isHeldByCaller();
    const slot = await this.#lock.runExclusive(
      () => {
        const slot = this.#slot;
        if (slot === null) return null;
        if (callerHoldsLock && slot.started) {
          throw new DeadlockError(
            `${this.name}.cancel() was called while holding the executor lock, but '${slot.action}' is running ` +
              'and needs that lock to finish; call cancel() outside withLock()',
          );
        }
        if (!slot.cancelled) {
          getLogger().info(`Cancelling long running task ${slot.action}`, { executor: this.name });
          slot.cancelled = true;
          this.actor.send({ type: 'statesmith.executor.cancel' });
        }
        if (!slot.started) {
          // It never started: it is finished now. Its runner, if any, will see `cancelled`
          // and skip the task without touching the slot.
          this.actor.send({ type: 'statesmith.executor.finish', generation: slot.generation, outcome: 'cancelled' });
          this.actor.send({ type: 'statesmith.executor.reset' });
          this.#slot = null;
          slot.finished.resolve();
        }
        return slot;
      },
      { ...(signal ? { signal } : {}), timeoutMs },
    );
    if (slot === null) return;
    if (slot.started && this.#cancellable) {
      try {
        await this.#cancellable.cancel();
      } catch (error) {
        getLogger().error(`${this.name}: cancelling the subprocess of '${slot.action}' failed`, { error });
      }
    }
    // The task's cleanup clears the slot before it settles `finished`, so nothing is left to clear.
    await boundedWait(slot.finished.promise, { signal, timeoutMs: Math.max(0, deadline - systemClock.now()) }, systemClock, `the cancelled task '${slot.action}' cleaning up`);
  }

  /**
   * Runs `fn` holding the executor lock (Python's `with executor:`). Re-entrant: nested
   * calls from inside `fn` go straight in. An HA cycle runs inside it.
   */
  withLock<R>(fn: () => R | Promise<R>, options?: Pick<MutexAcquireOptions, 'signal' | 'timeoutMs'>): Promise<R> {
    return this.#lock.runExclusive(fn, options);
  }

  /** True while anyone (an HA cycle, a task starting or cleaning up) holds the executor lock. */
  get locked(): boolean {
    return this.#lock.locked;
  }

  /** True when the calling async context holds the executor lock. */
  isLockHeldByCaller(): boolean {
    return this.#lock.isHeldByCaller();
  }

  #claim(fn: unknown, args: unknown): Slot {
    requireFunction('fn', fn);
    if (args !== undefined && !Array.isArray(args)) throw new ArgumentTypeError('args', 'an array or undefined', args);
    if (this.#slot === null) this.schedule((fn as { name?: string }).name || 'anonymous task');
    const slot = this.#slot as Slot;
    if (slot.claimed) {
      throw new BusyError(
        `${this.name}: action '${slot.action}' already has a running task; wait for it or cancel() it before running another`,
      );
    }
    slot.claimed = true;
    return slot;
  }

  async #execute<A extends unknown[], R>(
    slot: Slot,
    fn: (...args: A) => R | Promise<R>,
    args: A | undefined,
  ): Promise<R | undefined> {
    const started = await this.#lock.runExclusive(() => {
      if (slot.cancelled) return false;
      // Reset inside the same locked step as the start check: a cancel() either comes
      // before (and is seen here) or after (and its subprocess flag survives).
      this.#cancellable?.resetIsCancelled();
      slot.started = true;
      this.actor.send({ type: 'statesmith.executor.start', generation: slot.generation });
      return true;
    });
    if (!started) {
      this.#wake(slot, 'cancelled');
      return undefined;
    }
    let result: R | undefined;
    let outcome: ExecutorOutcome;
    let errorText: string | undefined;
    // Python's rule: `wakeup = func()` starts as False, so a throw still wakes; only a
    // returned "no value" (`undefined` here) does not.
    let wake = true;
    try {
      result = await (args ? fn(...args) : (fn as () => R | Promise<R>)());
      wake = result !== undefined;
      outcome = slot.cancelled ? 'cancelled' : 'completed';
    } catch (error) {
      result = undefined;
      if (error instanceof CancelledError) {
        outcome = 'cancelled';
        getLogger().info(`Long running task ${slot.action} was cancelled`, { executor: this.name });
      } else {
        outcome = 'failed';
        errorText = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        getLogger().error(`Exception during execution of long running task ${slot.action}`, {
          executor: this.name,
          error,
        });
      }
    }
    await this.#lock.runExclusive(async () => {
      this.actor.send({
        type: 'statesmith.executor.finish',
        generation: slot.generation,
        outcome,
        ...(errorText !== undefined ? { error: errorText } : {}),
      });
      this.actor.send({ type: 'statesmith.executor.reset' });
      if (this.#slot === slot) this.#slot = null;
      slot.finished.resolve();
      const critical = this.#criticalTask;
      if (critical) await critical.withLock(() => critical.reset());
    });
    if (wake) this.#wake(slot, outcome);
    return result;
  }

  #wake(slot: Slot, outcome: ExecutorOutcome): void {
    try {
      if (isWakeupBus(this.#wakeup)) {
        this.#wakeup.wakeup(`${slot.action} ${outcome}`, { executor: this.name, action: slot.action, outcome });
      } else {
        this.#wakeup();
      }
    } catch (error) {
      getLogger().error(`${this.name}: the wake-up function threw`, { error });
    }
  }
}
