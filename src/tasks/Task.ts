/**
 * The `Task` contract of task groups and services, and the one implementation behind it.
 *
 * @module
 */
import type { Actor } from 'xstate';
import { taskMachine } from '../../machines/task.machine.ts';
import type { Clock } from '../clock.ts';
import { CancelledError, InvalidStateError } from '../errors.ts';
import { runDetached } from '../locks/Mutex.ts';
import { getLogger } from '../logger.ts';
import { LazyActor, type LazySpawn } from '../runtime/LazyActor.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { runAsOwner } from '../runtime/ownerContext.ts';
import { backoffDelay, type ResolvedRestartPolicy } from './restartPolicy.ts';

/**
 * A unit of background work with a cancel signal of its own. Tasks are created by a
 * `TaskGroup` (or a service's `createTask`), never directly.
 */
export interface Task<T> {
  /** `TaskGroup:<uniqueId>:<name>`. */
  readonly name: string;
  /** True once the task has completed, failed or been cancelled. */
  readonly done: boolean;
  /** True when it ended by cancellation. */
  readonly cancelled: boolean;
  /** The error it failed with, or `undefined` (also when cancelled). */
  readonly error: unknown;
  /**
   * The value it completed with. Throws its error if it failed, a `CancelledError` if it
   * was cancelled, and an `InvalidStateError` while it is not done.
   */
  result(): T;
  /** Asks the task to stop (aborts `signal` with a `CancelledError`); false once it is done. */
  cancel(reason?: string): boolean;
  /**
   * Resolves with the value or rejects as `result()` would, once done. `signal` and
   * `timeoutMs` abandon the wait (`signal.reason`, `TimeoutError`); the task runs on.
   */
  wait(options?: WaitOptions): Promise<T>;
  /** The signal handed to the task's function. */
  readonly signal: AbortSignal;
  /** The statechart actor (`idle → scheduled → running → cancelling → done`), created on first read. */
  readonly actor: Actor<typeof taskMachine>;
}

/**
 * What a task tells its group (or service) when it ends. The owner does its bookkeeping
 * and then calls `task.notifyDone()`, which resumes whoever awaits the task. @internal
 */
export type TaskDoneHook = (task: TaskRecord<unknown>) => void;

/** The body of a task: the group's named tasks get the command's `params` too. @internal */
export type TaskBody<T> = (signal: AbortSignal, params: unknown) => T | Promise<T>;

/** Construction options of a task, shared by the tasks of a group that have the same options. @internal */
export interface TaskSetup {
  readonly logException: boolean;
  readonly restart: ResolvedRestartPolicy | undefined;
  readonly clock: Clock;
  readonly random: () => number;
  readonly onDone: TaskDoneHook;
  /** Told as the body starts (each time, restarts included). */
  readonly onStart?: (task: TaskRecord<unknown>) => void;
  /** How `cancel()` reaches the task: through its owner's actor (a command); default straight to `abort`. */
  readonly cancel?: (task: TaskRecord<unknown>, reason: string | undefined) => boolean;
  /** Starts the task's actor as a child of its owner's actor. */
  readonly spawn?: (task: TaskRecord<unknown>, key: string) => void;
}

/** Where a task came from, for its owner's replies. @internal */
export interface TaskOrigin {
  /** Its name in the owner (after the group's prefix). */
  readonly shortName: string;
  /** The registry name it runs, or null for an in-process function. */
  readonly taskName: string | null;
  readonly params: unknown;
  /** Who gets its `taskDone`. */
  readonly replyTo: unknown;
}

const taskContext = (name: string): { name: string } => ({ name });

/** Whether a body can see its arguments, by function (computed once per function). */
const takesArguments = new WeakMap<Function, boolean>();

/**
 * False only for an arrow function whose parameter list is empty, `() =>` or
 * `async () =>`: it cannot read an argument (an arrow function has no `arguments` of its
 * own). Anything else, bound and native functions included, gets its signal.
 */
function takesSignal(fn: Function): boolean {
  let takes = takesArguments.get(fn);
  if (takes === undefined) {
    takes = !/^(?:async\s*)?\(\s*\)\s*=>/.test(Function.prototype.toString.call(fn));
    takesArguments.set(fn, takes);
  }
  return takes;
}

const enum Outcome {
  Pending,
  Completed,
  Failed,
  Cancelled,
}

/**
 * The task implementation: state in its (lazy) actor, value or error beside it.
 *
 * @internal
 */
export class TaskRecord<T> implements Task<T> {
  readonly name: string;
  /** Where it came from; null for a service's `main`. */
  readonly origin: TaskOrigin | null;
  readonly #fn: TaskBody<T>;
  readonly #setup: TaskSetup;
  /** Made when someone needs the signal: the body (if it takes one) or `task.signal`. */
  #controller: AbortController | undefined;
  /** Set (to a CancelledError) when the task is cancelled: the signal aborts with it, at once or when it is made. */
  #abortReason: CancelledError | undefined;
  readonly #lazy: LazyActor<typeof taskMachine>;
  #outcome = Outcome.Pending;
  #value: T | undefined;
  #error: unknown;
  /** True once the owner did its bookkeeping for the end: `whenDone()` resolves from then on. */
  #reported = false;
  #whenDone: Promise<void> | undefined;
  #resolveDone: (() => void) | undefined;
  #restartTimer: unknown;
  #failures: number[] | undefined;

  constructor(fn: TaskBody<T>, name: string, setup: TaskSetup, origin: TaskOrigin | null = null) {
    this.name = name;
    this.origin = origin;
    this.#fn = fn;
    this.#setup = setup;
    this.#lazy = new LazyActor(taskMachine, 'task', name, taskContext, 'idle', setup.spawn as LazySpawn | undefined, this);
    this.#lazy.send({ type: 'statesmith.task.schedule' });
    // Start on a microtask, as asyncio schedules a task: a task cancelled before then
    // never runs its body, and a throwing body is not done right after creation.
    queueMicrotask(() => this.#start());
  }

  get done(): boolean {
    return this.#outcome !== Outcome.Pending;
  }

  get cancelled(): boolean {
    return this.#outcome === Outcome.Cancelled;
  }

  get error(): unknown {
    return this.#outcome === Outcome.Failed ? this.#error : undefined;
  }

  /** True when it ended by failing (not by cancellation). @internal */
  get failed(): boolean {
    return this.#outcome === Outcome.Failed;
  }

  /** What `result()` throws: the error or the cancellation; `undefined` otherwise. @internal */
  get failure(): unknown {
    return this.#outcome === Outcome.Failed || this.#outcome === Outcome.Cancelled ? this.#error : undefined;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get actor(): Actor<typeof taskMachine> {
    return this.#lazy.actor;
  }

  /** The task's lazy actor, for its owner. @internal */
  get lazy(): LazyActor<typeof taskMachine> {
    return this.#lazy;
  }

  result(): T {
    switch (this.#outcome) {
      case Outcome.Completed:
        return this.#value as T;
      case Outcome.Failed:
      case Outcome.Cancelled:
        throw this.#error;
      default:
        throw new InvalidStateError(`${this.name} has not finished yet; its result is not set`);
    }
  }

  cancel(reason?: string): boolean {
    if (this.done) return false;
    const via = this.#setup.cancel;
    return via ? via(this as TaskRecord<unknown>, reason) : this.abort(reason);
  }

  /** What a cancel does, once it reached the task (through its owner's actor). @internal */
  abort(reason?: string): boolean {
    if (this.done) return false;
    if (this.#abortReason === undefined) {
      this.#abortReason = new CancelledError(reason ?? `${this.name} was cancelled`);
      this.#controller?.abort(this.#abortReason);
    }
    if (this.#lazy.matches('running')) {
      this.#lazy.send({ type: 'statesmith.task.cancel', ...(reason === undefined ? {} : { reason }) });
    } else if (this.#lazy.matches('scheduled')) {
      // Not started yet, or waiting to be restarted: it ends here, its body does not run again.
      if (this.#restartTimer !== undefined) this.#setup.clock.clearTimeout(this.#restartTimer);
      this.#restartTimer = undefined;
      this.#lazy.send({ type: 'statesmith.task.cancel' });
      this.#finish(Outcome.Cancelled, undefined, this.#abortReason);
    }
    return true;
  }

  wait(options?: WaitOptions): Promise<T> {
    let bounds: ReturnType<typeof waitOptions> | undefined;
    if (options !== undefined) {
      try {
        bounds = waitOptions('options', options);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.done) return this.#settledResult();
    const done = bounds === undefined ? this.whenDone() : boundedWait(this.whenDone(), bounds, this.#setup.clock, `task ${this.name} finishing`);
    return done.then(() => this.result());
  }

  /** The clock of the task's group. @internal */
  get clock(): Clock {
    return this.#setup.clock;
  }

  /** Resolves (never rejects) once the task is done. */
  whenDone(): Promise<void> {
    if (this.#reported) return Promise.resolve();
    this.#whenDone ??= new Promise<void>((resolve) => (this.#resolveDone = resolve));
    return this.#whenDone;
  }

  #settledResult(): Promise<T> {
    try {
      return Promise.resolve(this.result());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #start(): void {
    if (this.done || this.#abortReason !== undefined) return;
    this.#restartTimer = undefined;
    this.#lazy.send({ type: 'statesmith.task.start' });
    this.#setup.onStart?.(this as TaskRecord<unknown>);
    let pending: Promise<T>;
    try {
      // A body that takes no parameter cannot see a signal: none is made for it (an AbortSignal costs a fifth of a trivial task).
      const signal = takesSignal(this.#fn) ? this.signal : (undefined as unknown as AbortSignal);
      const params = this.origin?.params;
      pending = Promise.resolve(runDetached(() => runAsOwner(this, () => this.#fn(signal, params))));
    } catch (error) {
      pending = Promise.reject(error);
    }
    // Both outcomes are always handled here, so a failed task nobody has looked at yet
    // can never become an unhandled rejection.
    pending.then(
      (value) => this.#ended(Outcome.Completed, value, undefined),
      (error: unknown) => this.#ended(this.#isCancellation(error) ? Outcome.Cancelled : Outcome.Failed, undefined, error),
    );
  }

  #isCancellation(error: unknown): boolean {
    if (error instanceof CancelledError) return true;
    if (this.#abortReason === undefined) return false;
    // Node's abortable APIs reject with an AbortError whose cause is the reason.
    return error === this.#abortReason || (error instanceof Error && error.name === 'AbortError');
  }

  #ended(outcome: Outcome, value: T | undefined, error: unknown): void {
    if (outcome === Outcome.Failed && this.#setup.restart && this.#abortReason === undefined && this.#scheduleRestart(error)) return;
    const event = outcome === Outcome.Completed ? 'complete' : outcome === Outcome.Failed ? 'fail' : 'cancelled';
    this.#lazy.send({ type: `statesmith.task.${event}` });
    // A cancelled task reports the cancellation it was given (with its reason), as Python.
    const reported = outcome === Outcome.Cancelled && !(error instanceof CancelledError) ? this.#abortReason ?? error : error;
    this.#finish(outcome, value, reported);
  }

  /** Restarts a failed task if its policy allows; false when the budget is spent. */
  #scheduleRestart(error: unknown): boolean {
    const policy = this.#setup.restart as ResolvedRestartPolicy;
    const now = this.#setup.clock.now();
    const failures = (this.#failures ??= []).filter((at) => now - at < policy.withinMs);
    failures.push(now);
    this.#failures = failures;
    const attempt = failures.length;
    if (attempt > policy.maxRestarts) {
      getLogger().warn(`Task ${this.name} failed ${attempt} times within ${policy.withinMs} ms; giving up`, { error });
      return false;
    }
    const delayMs = backoffDelay(policy, attempt, this.#setup.random());
    // An expected restart is one line at info: the reason, the attempt, the delay. Its stack only at debug.
    const reason = error instanceof Error ? error.message : String(error);
    getLogger().info(`Task ${this.name} failed (${reason}); restarting in ${Math.round(delayMs)} ms (restart ${attempt} of ${policy.maxRestarts})`);
    getLogger().debug(`Task ${this.name} failed`, { error });
    this.#lazy.send({ type: 'statesmith.task.restart', attempt, delayMs } as { type: 'statesmith.task.restart' });
    this.#restartTimer = this.#setup.clock.setTimeout(() => this.#start(), delayMs);
    return true;
  }

  #finish(outcome: Outcome, value: T | undefined, error: unknown): void {
    this.#outcome = outcome;
    this.#value = value;
    this.#error = error;
    if (outcome === Outcome.Failed && this.#setup.logException) {
      getLogger().error(`Task ${this.name} raised an unhandled exception`, { error });
    }
    // The owner's bookkeeping runs before anyone awaiting the task resumes: it calls notifyDone().
    this.#setup.onDone(this as TaskRecord<unknown>);
  }

  /**
   * The owner refused the task before taking it on (a rejected `createTask`): it ends
   * cancelled, with `error` as its failure, without running. @internal
   */
  refuse(error: unknown): void {
    if (this.done) return;
    this.#lazy.send({ type: 'statesmith.task.cancel' });
    this.#outcome = Outcome.Cancelled;
    this.#error = error;
    this.notifyDone();
  }

  /** Called by the owner once its bookkeeping for the end is done: resumes the task's waiters. @internal */
  notifyDone(): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#resolveDone?.();
  }
}
