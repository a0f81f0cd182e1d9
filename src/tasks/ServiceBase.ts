/**
 * frequenz's `Service` and `ServiceBase`: a background service whose subclass writes
 * only `main(signal)`, with subtasks in a task group of its own.
 *
 * @module
 */
import { untilEmitted } from '../runtime/untilEmitted.ts';
import { inspect } from 'node:util';
import type { Actor } from 'xstate';
import { kErrors } from '../../machines/taskGroup.machine.ts';
import { type Clock } from '../clock.ts';
import { ArgumentTypeError, TaskGroupError } from '../errors.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { startActor } from '../runtime/startActor.ts';
import { optionalClock, optionalObject, optionalSignal } from '../runtime/validate.ts';
import { SUPERVISION_KEYS, supervisionOf, type SupervisionStrategy } from './supervision.ts';
import { type Task, type TaskRecord } from './Task.ts';
import { TaskGroup, type CreateTaskOptions, type TaskGroupOptions } from './TaskGroup.ts';
import { serviceLogic } from './serviceLogic.ts';
import { uniqueHexId, withoutCancellations } from './taskGroupLogic.ts';

/** What users of a service see: start it, stop it, wait for it. */
export interface Service extends AsyncDisposable {
  /** Starts the service unless it is running; returns it (`await using s = new S().start()`). */
  start(): this;
  /** Cancels everything, waits, and rejects once with the failures other than cancellations. */
  stop(reason?: string): Promise<void>;
  /** Asks `main` and every subtask to stop; does not wait. */
  cancel(reason?: string): void;
  /**
   * Waits for `main` and every subtask; rejects with every failure, cancellations
   * included. `signal` and `timeoutMs` abandon the wait; the service runs on.
   */
  wait(options?: WaitOptions): Promise<void>;
  /** True from `start()` until `main` has ended (subtasks do not count). */
  readonly isRunning: boolean;
  /** The service's id, unique in the process unless the user chose it. */
  readonly uniqueId: string;
}

/** Options of {@link ServiceBase}. */
export interface ServiceOptions {
  /** The service's id; default a unique hex number. Its task group gets the same id. */
  readonly uniqueId?: string;
  /** The clock for its task group (restart back-offs, timeouts); default the system clock. */
  readonly clock?: Clock;
  /** How its subtasks restart together (see {@link TaskGroupOptions.strategy}); default `'one_for_one'`. */
  readonly strategy?: SupervisionStrategy;
  /**
   * The restart intensity of its subtasks: past it the group fails, `main` is aborted and
   * fails with the group's `TaskGroupError`, and so the service fails; default `Infinity`.
   */
  readonly maxRestarts?: number;
  /** The window of `maxRestarts`, in ms; default 5,000. */
  readonly withinMs?: number;
  /** How long each subtask may take to end once stopped before it is abandoned, in ms; default 5,000. */
  readonly shutdownMs?: number;
}

/**
 * The base of a service: implement `main(signal)`, start extra work with `createTask`.
 *
 * Deliberate choices where frequenz's docs and code disagree: `isRunning` follows `main`
 * only (as the code); subtask names carry one prefix, the task group's
 * (`TaskGroup:<id>:<name>`), not two; `wait()` reports cancellations and `stop()` hides
 * them (as the code, confirmed by its maintainers); a failure of `main` is logged when it
 * happens and reported by every `wait()`/`stop()` until the next `start()`; the errors of
 * `main` and of the subtasks come in one flat `TaskGroupError`, `main`'s first.
 *
 * @example
 * ```ts
 * import { ServiceBase } from 'statesmith';
 * import { setTimeout as sleep } from 'node:timers/promises';
 * class Heartbeat extends ServiceBase {
 *   beats = 0;
 *   protected async main(signal: AbortSignal): Promise<void> {
 *     this.createTask(async (sub) => { await sleep(60_000, undefined, { signal: sub }); }, { name: 'watchdog' });
 *     for (;;) {
 *       this.beats++;
 *       await sleep(5, undefined, { signal });
 *     }
 *   }
 * }
 * const service = new Heartbeat({ uniqueId: 'hb' }).start();
 * console.log(String(service), service.isRunning); // Heartbeat:hb true
 * await sleep(30);
 * await service.stop();
 * console.log(service.isRunning, service.beats > 1); // false true
 * ```
 */
export abstract class ServiceBase implements Service {
  /** The service's id, from the options or a unique hex number; its task group has the same. */
  readonly uniqueId: string;
  /** The group the service's subtasks run in: a facade over the service actor's `taskGroup` child. */
  readonly taskGroup: TaskGroup;
  /**
   * The service's actor (`serviceLogic`), following `main`:
   * `idle → scheduled → running → cancelling → done`. Its children are the task group
   * and, once someone reads it, `main`'s task actor.
   */
  readonly actor: Actor<typeof serviceLogic>;
  readonly #clock: Clock;

  constructor(options?: ServiceOptions) {
    const opts = optionalObject<ServiceOptions>('options', options, ['uniqueId', 'clock', ...SUPERVISION_KEYS]);
    const supervision = supervisionOf('options', opts);
    if (opts.uniqueId !== undefined && typeof opts.uniqueId !== 'string') {
      throw new ArgumentTypeError('options.uniqueId', 'a string', opts.uniqueId);
    }
    this.uniqueId = opts.uniqueId || uniqueHexId();
    this.#clock = optionalClock('options.clock', opts.clock);
    this.actor = startActor('service', serviceLogic, {
      input: { name: this.constructor.name, uniqueId: this.uniqueId, clock: this.#clock, main: (signal) => this.main(signal), ...supervision },
      id: String(this),
    });
    this.taskGroup = TaskGroup.attach(this.actor.getSnapshot().children.taskGroup as never, this.#clock);
  }

  /** The service's work; it should run until `signal` aborts. */
  protected abstract main(signal: AbortSignal): Promise<void>;

  /** True from `start()` until `main` has ended (subtasks do not count). */
  get isRunning(): boolean {
    const snapshot = this.actor.getSnapshot();
    return snapshot.matches('scheduled') || snapshot.matches('running') || snapshot.matches('cancelling');
  }

  get #main(): TaskRecord<void> | null {
    return this.actor.getSnapshot().context.main as TaskRecord<void> | null;
  }

  /** Sends `statesmith.service.start` unless the service is running. */
  start(): this {
    if (!this.isRunning) this.actor.send({ type: 'statesmith.service.start' });
    return this;
  }

  /**
   * Runs the service as one piece of work, the way a supervisor runs a child: starts it,
   * waits until `main` ends or `signal` aborts, then stops it. Rejects with the service's
   * failures (as `stop()` does: `main`'s first, a failure of its group included), else
   * with `signal.reason` when aborted; resolves when `main` returned. Run it as a task of
   * a supervising group to restart the service when it fails:
   * `group.createTask((signal) => service.run({ signal }), { restart: { type: 'permanent' } })`.
   */
  async run(options?: { readonly signal?: AbortSignal }): Promise<void> {
    const { signal } = optionalObject<{ signal?: AbortSignal }>('options', options, ['signal']);
    const abort = optionalSignal('options.signal', signal);
    abort?.throwIfAborted();
    this.start();
    const main = this.#main as TaskRecord<void>;
    let onAbort: (() => void) | undefined;
    const aborted = abort && new Promise<void>((resolve) => abort.addEventListener('abort', (onAbort = () => resolve()), { once: true }));
    try {
      await (aborted ? Promise.race([main.whenDone(), aborted]) : main.whenDone());
    } finally {
      if (onAbort) abort?.removeEventListener('abort', onAbort);
    }
    await this.stop(abort?.aborted ? String(abort.reason instanceof Error ? abort.reason.message : abort.reason) : undefined);
    abort?.throwIfAborted();
  }

  /** Starts `fn` as a subtask in {@link ServiceBase.taskGroup}. */
  protected createTask<T>(fn: (signal: AbortSignal) => T | Promise<T>, options?: CreateTaskOptions): Task<T> {
    return this.taskGroup.createTask(fn, options);
  }

  /** Sends `statesmith.service.cancel`: aborts `main` and cancels every subtask. */
  cancel(reason?: string): void {
    if (reason !== undefined && typeof reason !== 'string') throw new ArgumentTypeError('reason', 'a string', reason);
    this.actor.send({ type: 'statesmith.service.cancel', ...(reason === undefined ? {} : { reason }) });
  }

  /**
   * Waits for `main` and every subtask; rejects with a `TaskGroupError` holding every
   * failure, cancellations included. `signal` and `timeoutMs` abandon the wait (rejecting
   * with `signal.reason` or a `TimeoutError`); the service runs on.
   */
  async wait(options?: WaitOptions): Promise<void> {
    const bounds = waitOptions('options', options);
    const main = this.#main;
    if (bounds.signal !== undefined || bounds.timeoutMs !== Infinity) {
      await boundedWait(Promise.all([main?.whenDone(), this.taskGroup.whenIdle()]), bounds, this.#clock, `${String(this)} finishing`);
    }
    const errors: unknown[] = [];
    if (main) {
      await main.whenDone();
      if (main.cancelled || main.failed) errors.push(main.failure);
    }
    try {
      await this.taskGroup.wait();
    } catch (error) {
      // The group's own failure (a restart intensity exceeded) is kept whole: it names the task and the budget.
      if (error instanceof TaskGroupError && error.budget === undefined) errors.push(...error.errors);
      else errors.push(error);
    }
    if (errors.length > 0) throw new TaskGroupError([...new Set(errors)], `Error while stopping ${String(this)}`);
  }

  /**
   * Sends `statesmith.service.stop` and awaits `stopped`: `main` aborted and ended, every
   * subtask cancelled and ended. Rejects once with the failures other than cancellations,
   * `main`'s first.
   */
  async stop(reason?: string): Promise<void> {
    if (reason !== undefined && typeof reason !== 'string') throw new ArgumentTypeError('reason', 'a string', reason);
    const main = this.#main;
    const stopped = await untilEmitted(
      this.actor,
      { type: 'statesmith.service.stop', ...(reason === undefined ? {} : { reason }) },
      'statesmith.service.stopped',
    );
    const groupErrors = (stopped as unknown as { [kErrors]?: readonly unknown[] })[kErrors] ?? [];
    const mainFailure = main?.failed ? withoutCancellations(main.failure) : undefined;
    // A failure of the group is main's failure too: it is reported once.
    const errors = [...new Set([...(mainFailure === undefined ? [] : [mainFailure]), ...groupErrors])];
    if (errors.length > 0) throw new TaskGroupError(errors, `Error while stopping ${String(this)}`);
  }

  /** `await using` support: the same as {@link ServiceBase.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** `<ClassName>:<uniqueId>`, as in log lines. */
  toString(): string {
    return `${this.constructor.name}:${this.uniqueId}`;
  }

  /** What `console.log` and `util.inspect` show: the id, whether `main` runs, and how many subtasks. */
  [inspect.custom](): string {
    const extra = this.taskGroup.isRunning ? `, ${this.taskGroup.tasks.size} extra tasks` : '';
    return `${this.constructor.name}<${this.uniqueId} main ${this.isRunning ? 'running' : 'not running'}${extra}>`;
  }
}
