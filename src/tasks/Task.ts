/**
 * The `Task` contract of task groups and services, and the one implementation behind it.
 *
 * @module
 */
import type { Actor } from 'xstate';
import { taskMachine } from '../../machines/task.machine.ts';
import type { TaskRun } from '../../machines/taskGroup.machine.ts';
import { errorData, type ErrorData } from '../../machines/protocol.ts';
import type { Clock } from '../clock.ts';
import { CancelledError, InvalidStateError } from '../errors.ts';
import { isCancellation, isCancelledError } from '../runtime/cancellation.ts';
import { runDetached } from '../locks/Mutex.ts';
import { getLogger } from '../logger.ts';
import { LazyActor, type LazySpawn } from '../runtime/LazyActor.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { runAsOwner } from '../runtime/ownerContext.ts';
import { takesSignal } from '../runtime/takesSignal.ts';
import type { ResolvedRestartPolicy } from './restartPolicy.ts';
import { describeAs } from '../inspect/safeJson.ts';

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

/** The body of a task: the group's named tasks get the command's `params` too, and every body its run's key and attempt. @internal */
export type TaskBody<T> = (signal: AbortSignal, params: unknown, run: TaskRun) => T | Promise<T>;

/** How a task's body ended, held for its group's decision. @internal */
export interface TaskExit {
  readonly outcome: 'completed' | 'failed' | 'cancelled';
  readonly value: unknown;
  readonly error: unknown;
  /** How long the run lasted, in ms of the group's clock. */
  readonly ranMs: number;
}

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
  /** What a body's idempotency key starts with: its group's lineage (`<lineage>:<seq>`). */
  readonly lineage?: string;
  /**
   * Under `durable()`: the save barrier the body waits for before it starts (each time), so
   * the store holds the task as started before it can act. Looked up as the body starts.
   */
  readonly barrier?: () => (() => Promise<void>) | undefined;
  /**
   * The supervisor: told of an exit that may lead to a restart (by the task's restart type,
   * or because a restart of its siblings holds it). The task then stays undone until the
   * supervisor calls `restartAfter` or `conclude`. Without one, a task never restarts.
   */
  readonly onExit?: (task: TaskRecord<unknown>, exit: TaskExit) => void;
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
  /** Its number in its group, for its idempotency key (`<lineage>:<seq>`); absent for a service's own tasks. */
  readonly seq?: number;
  /** The attempt of its first run here: 1, or one more than the run a crash cut short (a durable group's re-run). */
  readonly attempt?: number;
}

const taskContext = (name: string): { name: string } => ({ name });

const enum Outcome {
  Pending,
  Completed,
  Failed,
  Cancelled,
}

/** The bits of a task's `#flags`. */
const enum Flag {
  /** The owner did its bookkeeping for the end: `whenDone()` resolves from then on. */
  Reported = 1,
  /** A restart of its siblings holds the task: its exit goes to the supervisor whatever it is. */
  Held = 2,
  /** A cancel came from outside while the task was held: it is not restarted. */
  CancelledOnPurpose = 4,
  /** The group gave up waiting for it to stop: it runs on, unowned. */
  Abandoned = 8,
}

/** What few tasks need, made on first use. */
interface RareState {
  whenDone?: Promise<void>;
  resolveDone?: () => void;
  /** The timer of a restart waiting for its back-off. */
  restartTimer?: unknown;
  /** What the task fails with, whatever its body does, once its group decided so. */
  failWith?: unknown;
  restarts?: number[] | undefined;
  /** How many times the supervisor started it again (its attempt counts them). */
  reruns?: number;
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
  /** When the current run started (the group's clock), for `resetAfterMs`; kept only for a task with a restart policy. */
  #startedAt = 0;
  /** The `Flag` bits: four booleans in one field (a pending task is mostly bookkeeping; 50,000 of them add up). */
  #flags = 0;
  /** What few tasks need (a waiter, a restart, a group's verdict): made on first use. */
  #rare: RareState | undefined;

  /** The clock times of the restarts the supervisor counted (its `maxRestarts` window). @internal */
  get restarts(): number[] | undefined {
    return this.#rare?.restarts;
  }
  set restarts(times: number[] | undefined) {
    (this.#rare ??= {}).restarts = times;
  }

  /** The attempt of its current (or last) run: its first run's attempt, plus one per restart. @internal */
  get attempt(): number {
    return (this.origin?.attempt ?? 1) + (this.#rare?.reruns ?? 0);
  }

  /** The key every run of this task gets (`<lineage>:<seq>`), or undefined outside a group. @internal */
  get idempotencyKey(): string | undefined {
    const seq = this.origin?.seq;
    return seq === undefined ? undefined : `${this.#setup.lineage ?? 'task'}:${seq}`;
  }

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
    if ((this.#flags & Flag.Held) !== 0) this.#flags |= Flag.CancelledOnPurpose;
    if (this.#abortReason === undefined) {
      this.#abortReason = new CancelledError(reason ?? `${this.name} was cancelled`);
      this.#controller?.abort(this.#abortReason);
    }
    if (this.#lazy.matches('running')) {
      this.#lazy.send({ type: 'statesmith.task.cancel', ...(reason === undefined ? {} : { reason }) });
    } else if (this.#lazy.matches('scheduled')) {
      // Not started yet, or waiting to be restarted: it ends here, its body does not run again.
      this.#clearRestartTimer();
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
    if ((this.#flags & Flag.Reported) !== 0) return Promise.resolve();
    const rare = (this.#rare ??= {});
    rare.whenDone ??= new Promise<void>((resolve) => (rare.resolveDone = resolve));
    return rare.whenDone;
  }

  #settledResult(): Promise<T> {
    try {
      return Promise.resolve(this.result());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #start(): void {
    if (this.done || this.#abortReason !== undefined || (this.#flags & Flag.Held) !== 0) return;
    if (this.#rare !== undefined) this.#rare.restartTimer = undefined;
    // Under durable(): the body starts once the store holds the task (a failed save fails the task unstarted).
    const barrier = this.#setup.barrier?.();
    if (barrier !== undefined) {
      let saved: Promise<void>;
      try {
        saved = barrier();
      } catch (error) {
        saved = Promise.reject(error);
      }
      saved.then(
        () => this.#run(),
        (error: unknown) => {
          if (this.done || this.#abortReason !== undefined || (this.#flags & Flag.Held) !== 0) return;
          // It ends as a run that failed at once (its owner hears it start, then fail): the body never ran.
          this.#markStarted();
          this.#lazy.send({ type: 'statesmith.task.start' });
          this.#setup.onStart?.(this as TaskRecord<unknown>);
          this.#ended(Outcome.Failed, undefined, error);
        },
      );
      return;
    }
    this.#run();
  }

  #run(): void {
    // A cancel (or a hold) that came while the store was saving: the body never starts.
    if (this.done || this.#abortReason !== undefined || (this.#flags & Flag.Held) !== 0) return;
    this.#markStarted();
    this.#lazy.send({ type: 'statesmith.task.start' });
    this.#setup.onStart?.(this as TaskRecord<unknown>);
    let pending: Promise<T>;
    try {
      // A body that takes no parameter cannot see a signal: none is made for it (an AbortSignal costs a fifth of a trivial task).
      const takes = takesSignal(this.#fn);
      const signal = takes ? this.signal : (undefined as unknown as AbortSignal);
      const params = this.origin?.params;
      // Its run's key and attempt, made only for a body that can read them.
      const key = takes ? this.idempotencyKey : undefined;
      const run = key === undefined ? (undefined as unknown as TaskRun) : { idempotencyKey: key, attempt: this.attempt };
      pending = Promise.resolve(runDetached(() => runAsOwner(this, () => this.#fn(signal, params, run))));
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

  /**
   * Notes when this run started: only a task with a restart policy reads it (its
   * `resetAfterMs`). A clock time is a double, and a double in a field is a heap number of
   * its own: 16 B a pending task that most tasks never need.
   */
  #markStarted(): void {
    if (this.#setup.restart !== undefined) this.#startedAt = this.#setup.clock.now();
  }

  #isCancellation(error: unknown): boolean {
    // A task's signal is made lazily: before it aborts it may not exist, and #abortReason says it did.
    if (this.#abortReason !== undefined && error === this.#abortReason) return true;
    return isCancellation(error, this.#abortReason === undefined ? undefined : this.signal);
  }

  #ended(outcome: Outcome, value: T | undefined, error: unknown): void {
    const failWith = this.#rare?.failWith;
    if (failWith !== undefined) {
      outcome = Outcome.Failed;
      error = failWith;
    }
    const onExit = this.#setup.onExit;
    if (onExit !== undefined && (this.#flags & Flag.Abandoned) === 0 && ((this.#flags & Flag.Held) !== 0 || this.#wantsRestart(outcome))) {
      const named = outcome === Outcome.Completed ? 'completed' : outcome === Outcome.Failed ? 'failed' : 'cancelled';
      onExit(this as TaskRecord<unknown>, { outcome: named, value, error, ranMs: this.#setup.clock.now() - this.#startedAt });
      return;
    }
    this.#conclude(outcome, value, error);
  }

  /** Whether this exit may restart the task, by its restart type; a cancel on purpose never does. */
  #wantsRestart(outcome: Outcome): boolean {
    const type = this.#setup.restart?.type;
    if (type === undefined || type === 'temporary' || this.#abortReason !== undefined) return false;
    return type === 'permanent' || outcome === Outcome.Failed;
  }

  #conclude(outcome: Outcome, value: T | undefined, error: unknown): void {
    // A task waiting to be restarted has no body running: it is cancelled (or failed) where it waits.
    const waiting = this.#lazy.matches('scheduled');
    const event = outcome === Outcome.Completed ? 'complete' : outcome === Outcome.Failed ? 'fail' : waiting ? 'cancel' : 'cancelled';
    // A failure carries its error for whoever watches the task's actor (the inspector shows it);
    // a task no one made an actor of steps its table, where only the type counts.
    const detailed = outcome === Outcome.Failed && this.#lazy.materialised;
    this.#lazy.send(
      detailed ? ({ type: 'statesmith.task.fail', error: failureData(error) } as { readonly type: string }) : { type: `statesmith.task.${event}` },
    );
    // A cancelled task reports the cancellation it was given (with its reason), as Python.
    const reported = outcome === Outcome.Cancelled && !isCancelledError(error) ? (this.#abortReason ?? error) : error;
    this.#finish(outcome, value, reported);
  }

  /** Whether a failure is logged as it happens (its `logException`). @internal */
  get logsException(): boolean {
    return this.#setup.logException;
  }

  /** The restart policy the task was created with, if any. @internal */
  get restartPolicy(): ResolvedRestartPolicy | undefined {
    return this.#setup.restart;
  }

  /** True while no body of the task runs: not started yet, or waiting to be started again. @internal */
  get awaitingRestart(): boolean {
    return !this.done && this.#lazy.matches('scheduled');
  }

  /** True when a cancel from outside reached it while a restart of its siblings held it. @internal */
  get cancelledOnPurpose(): boolean {
    return (this.#flags & Flag.CancelledOnPurpose) !== 0;
  }

  /** True once its group gave up waiting for it to stop. @internal */
  get abandoned(): boolean {
    return (this.#flags & Flag.Abandoned) !== 0;
  }

  /**
   * The supervisor's decision to end the task after an exit it was told of: it ends as
   * it exited, or failed with `error` when one is given. @internal
   */
  conclude(exit: TaskExit, error?: unknown): void {
    if (this.done) return;
    this.#flags &= ~Flag.Held;
    if (error !== undefined) this.#conclude(Outcome.Failed, undefined, error);
    else
      this.#conclude(
        exit.outcome === 'completed' ? Outcome.Completed : exit.outcome === 'failed' ? Outcome.Failed : Outcome.Cancelled,
        exit.value as T,
        exit.error,
      );
  }

  /**
   * Marks the task as waiting to be started again (`running → scheduled`, the event
   * carrying the attempt and the delay), before the supervisor knows when. @internal
   */
  markRestarting(attempt: number, delayMs: number | undefined): void {
    if (this.done || this.#lazy.matches('scheduled')) return;
    this.#lazy.send({ type: 'statesmith.task.restart', attempt, ...(delayMs === undefined ? {} : { delayMs }) } as { type: 'statesmith.task.restart' });
  }

  /** The supervisor's decision to run the task again after `delayMs`, with a fresh signal. @internal */
  restartAfter(delayMs: number, attempt: number): void {
    if (this.done) return;
    this.markRestarting(attempt, delayMs);
    const rare = (this.#rare ??= {});
    rare.reruns = (rare.reruns ?? 0) + 1;
    this.#flags &= ~(Flag.Held | Flag.CancelledOnPurpose);
    this.#abortReason = undefined;
    this.#controller = undefined;
    this.#clearRestartTimer();
    (this.#rare ??= {}).restartTimer = this.#setup.clock.setTimeout(() => this.#start(), delayMs);
  }

  /**
   * A restart of its siblings stops it: its signal aborts with `reason` and its exit goes to
   * the supervisor, however it ends. A task waiting to be restarted just stays waiting. @internal
   */
  hold(reason: string): void {
    if (this.done) return;
    this.#flags |= Flag.Held;
    this.#clearRestartTimer();
    // One not started yet, or waiting for its own restart, has nothing running: it just does not start.
    if (this.#abortReason === undefined && !this.#lazy.matches('scheduled')) {
      this.#abortReason = new CancelledError(reason);
      this.#controller?.abort(this.#abortReason);
      this.#lazy.send({ type: 'statesmith.task.cancel', ...{ reason } });
    }
  }

  /** Its group stopped waiting for it: it runs on, and its end is no longer reported. @internal */
  abandon(): void {
    this.#flags = (this.#flags | Flag.Abandoned) & ~Flag.Held;
  }

  /**
   * Its group failed: the signal aborts with `error`, and the task ends failed with it
   * however its body ends. A task that has not started ends at once. @internal
   */
  failWith(error: unknown): void {
    if (this.done) return;
    (this.#rare ??= {}).failWith = error;
    if (this.#lazy.matches('scheduled')) {
      this.#clearRestartTimer();
      this.#conclude(Outcome.Failed, undefined, error);
      return;
    }
    this.abort(errorData(error).message);
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

  /**
   * A task a durable group's restore brings back already ended (finished before the crash
   * and not yet acknowledged, or cut short by it): it never runs, and its end is not
   * reported again. @internal
   */
  restoreEnded(outcome: 'completed' | 'failed' | 'cancelled', value: T | undefined, error: unknown): void {
    if (this.done) return;
    // Its actor goes from scheduled to the end it had: completed (through running), failed or cancelled.
    if (outcome === 'completed') {
      this.#lazy.send({ type: 'statesmith.task.start' });
      this.#lazy.send({ type: 'statesmith.task.complete' });
    } else this.#lazy.send({ type: outcome === 'failed' ? 'statesmith.task.fail' : 'statesmith.task.cancel' });
    this.#outcome = outcome === 'completed' ? Outcome.Completed : outcome === 'failed' ? Outcome.Failed : Outcome.Cancelled;
    this.#value = value;
    this.#error = error;
    this.notifyDone();
  }

  /** Called by the owner once its bookkeeping for the end is done: resumes the task's waiters. @internal */
  notifyDone(): void {
    if ((this.#flags & Flag.Reported) !== 0) return;
    this.#flags |= Flag.Reported;
    this.#rare?.resolveDone?.();
  }

  /** Clears a pending restart's timer, if there is one. */
  #clearRestartTimer(): void {
    const rare = this.#rare;
    if (rare?.restartTimer === undefined) return;
    this.#setup.clock.clearTimeout(rare.restartTimer);
    rare.restartTimer = undefined;
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(TaskRecord, (task) => `[Task ${task.name}]`);

/** An error as a task's fail event carries it: name, message, code, and the stack. */
function failureData(error: unknown): ErrorData & { readonly stack?: string } {
  const data = errorData(error);
  let stack: string | undefined;
  try {
    stack = error instanceof Error && typeof error.stack === 'string' ? error.stack : undefined;
  } catch {
    stack = undefined; // a hostile value: errorData already said so
  }
  return stack === undefined ? data : { ...data, stack };
}
