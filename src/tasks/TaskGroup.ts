/**
 * frequenz's `PersistentTaskGroup`: tasks that keep running until stopped. A failing
 * task does not cancel its siblings; each finished task waits to be acknowledged through
 * `asCompleted()`, and whatever nobody acknowledged is reported, once, by `wait()` or
 * `stop()`.
 *
 * @module
 */
import { inspect } from 'node:util';
import { type Clock } from '../clock.ts';
import { ArgumentTypeError, CancelledError, TaskGroupError } from '../errors.ts';
import { optionalClock, optionalDuration, optionalObject, optionalRandom, requireFunction } from '../runtime/validate.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { resolveRestartPolicy, type ResolvedRestartPolicy, type RestartPolicy } from './restartPolicy.ts';
import { TaskRecord, type Task, type TaskSetup } from './Task.ts';

/** Options of {@link TaskGroup}. */
export interface TaskGroupOptions {
  /** The group's id, shown in task names and errors; default a unique hex number. */
  readonly uniqueId?: string;
  /** The clock for restart back-offs and `asCompleted` timeouts; default the system clock. */
  readonly clock?: Clock;
  /** The source of back-off jitter, in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/** Options of {@link TaskGroup.createTask}. */
export interface CreateTaskOptions {
  /** The task's name after the group's prefix; default a unique hex number. */
  readonly name?: string;
  /** Log a failure through the package logger when it happens (it is still reported later); default true. */
  readonly logException?: boolean;
  /** Restart the task when it fails, within a budget, after a back-off. */
  readonly restart?: RestartPolicy;
}

let nextId = 0;
/** A unique lowercase hex id, standing in for Python's `id()`. @internal */
export function uniqueHexId(): string {
  return (++nextId).toString(16);
}

/**
 * A group of background tasks that persist until stopped.
 *
 * @example
 * ```ts
 * import { TaskGroup } from 'statesmith';
 * import { setTimeout as sleep } from 'node:timers/promises';
 * await using group = new TaskGroup({ uniqueId: 'volumes' });
 * group.createTask(async () => 'scrubbed', { name: 'scrub' });
 * const poller = group.createTask((signal) => sleep(60_000, undefined, { signal }), { name: 'poll' });
 * for await (const task of group.asCompleted({ timeoutMs: 100 })) {
 *   console.log(task.name, task.result()); // TaskGroup:volumes:scrub scrubbed
 * }
 * console.log(poller.done, group.isRunning); // false true
 * // leaving the block stops the group: the poller is cancelled
 * ```
 */
export class TaskGroup implements AsyncDisposable {
  readonly uniqueId: string;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #running = new Set<TaskRecord<unknown>>();
  readonly #waitingAck = new Set<TaskRecord<unknown>>();
  /** Resolved (and replaced) whenever a task finishes; what `asCompleted` sleeps on. */
  #changed: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly #onDone = (task: TaskRecord<unknown>): void => {
    this.#running.delete(task);
    this.#waitingAck.add(task);
    const changed = this.#changed;
    this.#changed = undefined;
    changed?.resolve();
  };

  /** The setups of tasks without a restart policy, by logException; shared so a task allocates less. */
  readonly #shared: [TaskSetup?, TaskSetup?] = [];

  #setup(logException: boolean, restart: ResolvedRestartPolicy | undefined): TaskSetup {
    return { logException, restart, clock: this.#clock, random: this.#random, onDone: this.#onDone };
  }

  constructor(options?: TaskGroupOptions) {
    const opts = optionalObject<TaskGroupOptions>('options', options, ['uniqueId', 'clock', 'random']);
    if (opts.uniqueId !== undefined && typeof opts.uniqueId !== 'string') {
      throw new ArgumentTypeError('options.uniqueId', 'a string', opts.uniqueId);
    }
    this.uniqueId = opts.uniqueId || uniqueHexId();
    this.#clock = optionalClock('options.clock', opts.clock);
    this.#random = optionalRandom('options.random', opts.random);
  }

  /** Every task not yet acknowledged: the running ones and the finished ones waiting for `asCompleted`. */
  get tasks(): ReadonlySet<Task<unknown>> {
    return new Set<Task<unknown>>([...this.#running, ...this.#waitingAck]);
  }

  /** True while at least one task runs (finished tasks waiting for acknowledgement do not count). */
  get isRunning(): boolean {
    return this.#running.size > 0;
  }

  /**
   * Starts `fn(signal)` as a task of this group, on a microtask. The group holds it until
   * it is acknowledged. With `restart`, a failure starts it again after a back-off until
   * the policy's budget is spent.
   */
  createTask<T>(fn: (signal: AbortSignal) => T | Promise<T>, options?: CreateTaskOptions): Task<T> {
    requireFunction('fn', fn);
    const opts = optionalObject<CreateTaskOptions>('options', options, ['name', 'logException', 'restart']);
    if (opts.name !== undefined && typeof opts.name !== 'string') throw new ArgumentTypeError('options.name', 'a string', opts.name);
    if (opts.logException !== undefined && typeof opts.logException !== 'boolean') {
      throw new ArgumentTypeError('options.logException', 'a boolean', opts.logException);
    }
    const restart = opts.restart === undefined ? undefined : resolveRestartPolicy(opts.restart);
    const logException = opts.logException ?? true;
    const setup = restart ? this.#setup(logException, restart) : (this.#shared[logException ? 1 : 0] ??= this.#setup(logException, undefined));
    const task = new TaskRecord<T>(fn, `${String(this)}:${opts.name || uniqueHexId()}`, setup);
    this.#running.add(task as TaskRecord<unknown>);
    return task;
  }

  /** Cancels every running task: each one's signal aborts with a `CancelledError` carrying `reason`. */
  cancel(reason?: string): void {
    if (reason !== undefined && typeof reason !== 'string') throw new ArgumentTypeError('reason', 'a string', reason);
    for (const task of [...this.#running]) task.cancel(reason);
  }

  /**
   * Yields tasks as they finish, first those already finished. A task is acknowledged
   * (and leaves the group) only when the iteration asks for the next one: after a
   * `break` or a throw in the loop body it is yielded again next time. Ends when nothing
   * runs, or quietly when `timeoutMs` pass without a task finishing (per wait, not overall).
   */
  asCompleted(options?: { readonly timeoutMs?: number }): AsyncIterableIterator<Task<unknown>> {
    const opts = optionalObject<{ timeoutMs: number }>('options', options, ['timeoutMs']);
    const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    return this.#asCompleted(timeoutMs);
  }

  async *#asCompleted(timeoutMs: number): AsyncGenerator<TaskRecord<unknown>, void, undefined> {
    for (;;) {
      for (const task of this.#waitingAck) {
        yield task;
        // Resumed: the consumer took it. (Another consumer may have taken it already.)
        this.#waitingAck.delete(task);
      }
      if (this.#running.size === 0) return;
      if (!(await this.#nextCompletion(timeoutMs))) return;
    }
  }

  /** Resolves true when a task finishes, false when `timeoutMs` pass first. */
  #nextCompletion(timeoutMs: number): Promise<boolean> {
    if (this.#changed === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#changed = { promise, resolve };
    }
    const changed = this.#changed.promise.then(() => true);
    if (!Number.isFinite(timeoutMs)) return changed;
    return new Promise<boolean>((resolve) => {
      const timer = this.#clock.setTimeout(() => resolve(false), timeoutMs);
      void changed.then(() => {
        this.#clock.clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * Python's `await group`: waits for every task to finish, acknowledging each, and
   * rejects with one `TaskGroupError` of every failure and cancellation, in the order the
   * tasks finished. Cancels nothing; a task that never ends keeps it waiting, unless
   * `signal` or `timeoutMs` abandon the wait (`signal.reason`, `TimeoutError`): the tasks
   * then run on, and none is acknowledged.
   */
  async wait(options?: WaitOptions): Promise<void> {
    const bounds = waitOptions('options', options);
    if (bounds.signal !== undefined || bounds.timeoutMs !== Infinity) await boundedWait(this.whenIdle(), bounds, this.#clock, `${String(this)} finishing`);
    const errors: unknown[] = [];
    for await (const task of this.#asCompleted(Infinity)) {
      if (task.cancelled || task.failed) errors.push(task.failure);
    }
    if (errors.length > 0) throw new TaskGroupError(errors, `Error while stopping ${String(this)}`);
  }

  /** Resolves (never rejects) once no task of the group runs, tasks created meanwhile included. @internal */
  async whenIdle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running].map((task) => task.whenDone()));
  }

  /**
   * Cancels every task, waits for them, and rejects once with the failures other than
   * cancellations (a `TaskGroupError`). Stopping an idle group, or stopping twice, is quiet.
   */
  stop(reason?: string): Promise<void> {
    return cancelAndReport(this, reason);
  }

  /** `await using group = new TaskGroup()` stops the group when the block ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  toString(): string {
    return `TaskGroup:${this.uniqueId}`;
  }

  [inspect.custom](): string {
    const running = this.#running.size ? ` running=${this.#running.size}` : '';
    const waiting = this.#waitingAck.size ? ` waitingAck=${this.#waitingAck.size}` : '';
    return `TaskGroup<${this.uniqueId}${running}${waiting}>`;
  }
}

/**
 * What `stop()` does for groups and services alike: cancel, wait, and throw what is left
 * of the failures once the cancellations are dropped.
 *
 * @internal
 */
export async function cancelAndReport(target: { cancel(reason?: string): void; wait(): Promise<void> }, reason?: string): Promise<void> {
  target.cancel(reason);
  try {
    await target.wait();
  } catch (error) {
    const rest = withoutCancellations(error);
    if (rest !== undefined) throw rest;
  }
}

/**
 * Removes cancellations from a failure, looking inside nested `AggregateError`s; groups
 * left empty are dropped, others rebuilt with their message. `undefined` when nothing is left.
 *
 */
function withoutCancellations(error: unknown): unknown {
  if (error instanceof CancelledError) return undefined;
  if (!(error instanceof AggregateError)) return error;
  const rest = error.errors.map(withoutCancellations).filter((e) => e !== undefined);
  if (rest.length === 0) return undefined;
  if (rest.length === error.errors.length && rest.every((e, i) => e === error.errors[i])) return error;
  return error instanceof TaskGroupError ? new TaskGroupError(rest, error.message) : new AggregateError(rest, error.message);
}
