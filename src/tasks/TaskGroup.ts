/**
 * frequenz's `PersistentTaskGroup`: tasks that keep running until stopped. A failing
 * task does not cancel its siblings; each finished task waits to be acknowledged through
 * `asCompleted()`, and whatever nobody acknowledged is reported, once, by `wait()` or
 * `stop()`.
 *
 * @module
 */
import { inspect } from 'node:util';
import type { Actor, AnyActorRef } from 'xstate';
import type { Rejected } from '../../machines/protocol.ts';
import { type Clock } from '../clock.ts';
import { ArgumentTypeError, RejectedError, TaskGroupError } from '../errors.ts';
import { untilEmitted } from '../runtime/untilEmitted.ts';
import { optionalClock, optionalDuration, optionalObject, optionalRandom, requireFunction } from '../runtime/validate.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { startActor } from '../runtime/startActor.ts';
import { resolveRestartPolicy, type RestartPolicy } from './restartPolicy.ts';
import { type Task, type TaskBody, type TaskRecord } from './Task.ts';
import { kErrors, kRecord, taskGroupLogic, type TaskTable } from './taskGroupLogic.ts';

import { uniqueHexId } from './taskGroupLogic.ts';
import { SUPERVISION_KEYS, supervisionOf, type SupervisionStrategy } from './supervision.ts';

/** Options of {@link TaskGroup}. */
export interface TaskGroupOptions {
  /** The group's id, shown in task names and errors; default a unique hex number. */
  readonly uniqueId?: string;
  /** The clock for restart back-offs and `asCompleted` timeouts; default the system clock. */
  readonly clock?: Clock;
  /** The source of back-off jitter, in [0, 1); default `Math.random`. */
  readonly random?: () => number;
  /**
   * Which tasks restart along with a task that is restarted, as OTP's strategies:
   * `'one_for_one'` (default) the task alone; `'one_for_all'` every task of the group;
   * `'rest_for_one'` the task and those created after it. The siblings are stopped
   * first (newest first, each within `shutdownMs`), then all start again, in creation
   * order, after the restarted task's back-off. A sibling whose restart type is
   * `'temporary'` is stopped and not started again.
   */
  readonly strategy?: SupervisionStrategy;
  /**
   * The group's restart intensity: a restart that makes more than `maxRestarts` within
   * `withinMs` fails the group. The task that exceeded it fails with a `TaskGroupError`
   * that names it, every other task is stopped, and the group tells its parent
   * (`statesmith.taskGroup.failed`; a service then fails). One restart counts once,
   * however many siblings it takes along. Default `Infinity`.
   */
  readonly maxRestarts?: number;
  /** The window of `maxRestarts`, in ms; default 5,000 (OTP's period). */
  readonly withinMs?: number;
  /**
   * How long a stopped task may take to end (ms): `stop()` and restarts of siblings stop
   * tasks one at a time, newest first, and abandon one that ignores its signal past this
   * budget, logging an error and reporting a `TaskAbandonedError`. Default 5,000;
   * `Infinity` waits for ever.
   */
  readonly shutdownMs?: number;
}

/** Options of {@link TaskGroup.createTask}. */
export interface CreateTaskOptions {
  /** The task's name after the group's prefix, unique among the group's running tasks; default a unique hex number. */
  readonly name?: string;
  /** Log a failure through the package logger when it happens (it is still reported later); default true. */
  readonly logException?: boolean;
  /**
   * Restart the task when it exits, within a budget, after a back-off: on a failure
   * (`type: 'transient'`, the default), on any exit (`'permanent'`), or never
   * (`'temporary'`, as a task without a policy). A task cancelled on purpose never restarts.
   */
  readonly restart?: RestartPolicy;
}

/** The task group actor a `TaskGroup` drives: its own, or a service's `taskGroup` child. */
export type TaskGroupActor = Actor<typeof taskGroupLogic>;

/** The actor `TaskGroup.attach` hands to the constructor it calls. */
let attaching: TaskGroupActor | undefined;

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
  /** The group's id, from the options or a unique hex number. */
  readonly uniqueId: string;
  /**
   * The group's actor (`taskGroupLogic`): the only truth about its tasks. Each task is its
   * child once someone reads the task's `actor`.
   */
  readonly actor: TaskGroupActor;
  readonly #clock: Clock;
  /** The rejections of the command being sent, captured as the actor answers synchronously. */
  #rejections: Rejected[] | undefined;

  constructor(options?: TaskGroupOptions) {
    const opts = optionalObject<TaskGroupOptions>('options', options, ['uniqueId', 'clock', 'random', ...SUPERVISION_KEYS]);
    const supervision = supervisionOf('options', opts);
    if (opts.uniqueId !== undefined && typeof opts.uniqueId !== 'string') {
      throw new ArgumentTypeError('options.uniqueId', 'a string', opts.uniqueId);
    }
    this.#clock = optionalClock('options.clock', opts.clock);
    const random = optionalRandom('options.random', opts.random);
    let uniqueId: string | undefined;
    const attached = attaching;
    attaching = undefined;
    this.actor =
      attached ??
      startActor('taskGroup', taskGroupLogic, {
        input: { uniqueId: (uniqueId ??= opts.uniqueId || uniqueHexId()), clock: this.#clock, random, ...supervision },
        id: `TaskGroup:${uniqueId}`,
      });
    this.uniqueId = this.actor.getSnapshot().context.uniqueId;
    this.actor.on('statesmith.rejected', (reply) => this.#rejections?.push(reply));
  }

  /** A facade over a group actor someone else started (a service's child). @internal */
  static attach(actor: AnyActorRef, clock: Clock): TaskGroup {
    attaching = actor as TaskGroupActor;
    return new TaskGroup({ clock });
  }

  get #table(): TaskTable {
    return this.actor.getSnapshot().context.table as TaskTable;
  }

  /** Every task not yet acknowledged: the running ones and the finished ones waiting for `asCompleted`. */
  get tasks(): ReadonlySet<Task<unknown>> {
    const table = this.#table;
    return new Set<Task<unknown>>([...table.running.values(), ...table.waitingAck]);
  }

  /** True while at least one task runs (finished tasks waiting for acknowledgement do not count). */
  get isRunning(): boolean {
    return this.#table.running.size > 0;
  }

  /**
   * Starts `fn(signal)` as a task of this group, on a microtask: sends
   * `statesmith.taskGroup.createTask` with `fn`. The group holds it until it is
   * acknowledged. With `restart`, a failure starts it again after a back-off until the
   * policy's budget is spent. A name already running in the group is refused
   * (`RejectedError`, `ERR_DUPLICATE_TASK`). Called while the group is busy (from inside
   * one of its own replies), the command waits its turn and the task comes back at once;
   * if the group then refuses it, the task ends cancelled with that `RejectedError`.
   */
  createTask<T>(fn: (signal: AbortSignal) => T | Promise<T>, options?: CreateTaskOptions): Task<T> {
    requireFunction('fn', fn);
    const opts = optionalObject<CreateTaskOptions>('options', options, ['name', 'logException', 'restart']);
    if (opts.name !== undefined && typeof opts.name !== 'string') throw new ArgumentTypeError('options.name', 'a string', opts.name);
    if (opts.logException !== undefined && typeof opts.logException !== 'boolean') {
      throw new ArgumentTypeError('options.logException', 'a boolean', opts.logException);
    }
    const restart = opts.restart === undefined ? undefined : resolveRestartPolicy(opts.restart);
    // The facade makes the task, so it can return it at once; the group takes it on as it
    // handles the command (at once, or after the command it is busy with).
    const origin = { shortName: opts.name || uniqueHexId(), taskName: null, params: undefined, replyTo: null, seq: this.#table.nextSeq++ };
    const task = this.#table.makeRecord(fn as TaskBody<unknown>, origin, opts.logException ?? true, restart);
    const rejections: Rejected[] = [];
    this.#rejections = rejections;
    try {
      this.actor.send({
        type: 'statesmith.taskGroup.createTask',
        fn: fn as (signal: AbortSignal, params: unknown) => unknown,
        ...(opts.name ? { name: opts.name } : {}),
        ...(opts.logException === undefined ? {} : { logException: opts.logException }),
        ...(opts.restart === undefined ? {} : { restart: opts.restart as Readonly<Record<string, unknown>> }),
        [kRecord]: task,
      } as Parameters<TaskGroupActor['send']>[0]);
    } finally {
      this.#rejections = undefined;
    }
    if (rejections[0] !== undefined) throw new RejectedError(rejections[0]);
    return task as TaskRecord<T>;
  }

  /** Cancels every running task: each one's signal aborts with a `CancelledError` carrying `reason`. */
  cancel(reason?: string): void {
    if (reason !== undefined && typeof reason !== 'string') throw new ArgumentTypeError('reason', 'a string', reason);
    this.actor.send({ type: 'statesmith.taskGroup.cancel', ...(reason === undefined ? {} : { reason }) });
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
      for (const task of this.#table.waitingAck) {
        yield task;
        // Resumed: the consumer took it. (Another consumer may have taken it already.)
        if (this.#table.waitingAck.has(task)) {
          this.actor.send({ type: 'statesmith.taskGroup.acknowledge', name: task.origin?.shortName as string });
        }
      }
      if (this.#table.running.size === 0) return;
      if (!(await this.#nextEnd(timeoutMs))) return;
    }
  }

  /** Resolves true when the group reports a task's end, false when `timeoutMs` pass first. */
  #nextEnd(timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: unknown;
      const subscription = this.actor.on('statesmith.taskGroup.taskDone', () => {
        subscription.unsubscribe();
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        resolve(true);
      });
      if (Number.isFinite(timeoutMs)) {
        timer = this.#clock.setTimeout(() => {
          subscription.unsubscribe();
          resolve(false);
        }, timeoutMs);
      }
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
    const reply = await this.#awaitReply({ type: 'statesmith.taskGroup.wait' }, 'statesmith.taskGroup.finished');
    // A group that failed (a task exceeded its restart intensity) rejects with that failure, which names the task and the budget.
    const failure = reply.find((error) => error instanceof TaskGroupError && error.budget !== undefined);
    if (failure !== undefined) throw failure;
    if (reply.length > 0) throw new TaskGroupError(reply, `Error while stopping ${String(this)}`);
  }

  /** Resolves (never rejects) once no task of the group runs, tasks created meanwhile included. @internal */
  whenIdle(): Promise<void> {
    if (this.#table.running.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const subscription = this.actor.subscribe((snapshot) => {
        if ((snapshot.context.table as TaskTable).running.size > 0) return;
        subscription.unsubscribe();
        resolve();
      });
    });
  }

  /**
   * Cancels every task, waits for them, and rejects once with the failures other than
   * cancellations (a `TaskGroupError`). Stopping an idle group, or stopping twice, is quiet.
   */
  async stop(reason?: string): Promise<void> {
    if (reason !== undefined && typeof reason !== 'string') throw new ArgumentTypeError('reason', 'a string', reason);
    const errors = await this.#awaitReply({ type: 'statesmith.taskGroup.stop', ...(reason === undefined ? {} : { reason }) }, 'statesmith.taskGroup.stopped');
    if (errors.length > 0) throw new TaskGroupError(errors, `Error while stopping ${String(this)}`);
  }

  /**
   * Sends `command` and resolves the failures its `reply` carries, however late it comes; a
   * group actor that stops or fails before it answers rejects the call at once.
   */
  #awaitReply(
    command: { readonly type: 'statesmith.taskGroup.wait' | 'statesmith.taskGroup.stop'; readonly reason?: string },
    reply: 'statesmith.taskGroup.finished' | 'statesmith.taskGroup.stopped',
  ): Promise<unknown[]> {
    return untilEmitted(this.actor, command, reply).then((event) => (event as unknown as { [kErrors]: unknown[] })[kErrors]);
  }

  /** `await using group = new TaskGroup()` stops the group when the block ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** `TaskGroup:<uniqueId>`, as in log lines and `TaskGroupError` messages. */
  toString(): string {
    return `TaskGroup:${this.uniqueId}`;
  }

  /** What `console.log` and `util.inspect` show: the id and how many tasks run and await acknowledgement. */
  [inspect.custom](): string {
    const table = this.#table;
    const running = table.running.size ? ` running=${table.running.size}` : '';
    const waiting = table.waitingAck.size ? ` waitingAck=${table.waitingAck.size}` : '';
    return `TaskGroup<${this.uniqueId}${running}${waiting}>`;
  }
}
