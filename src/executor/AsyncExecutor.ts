/**
 * Patroni's one-at-a-time executor of long actions, as a statechart actor.
 *
 * @module
 */
import type { Actor, AnyActorRef } from 'xstate';
import { kFromTask, type ExecutorAction, type ExecutorCommand, type ExecutorContext, type ExecutorReply } from '../../machines/executor.machine.ts';
import { executorLogic } from './executorLogic.ts';
import type { WakeupBus } from '../bus/WakeupBus.ts';
import { ActorStoppedError, ArgumentTypeError, ArgumentValueError, BusyError, DeadlockError, InvalidStateError } from '../errors.ts';
import { kUninspected, Mutex, runDetached, type MutexAcquireOptions, type MutexOptions } from '../locks/Mutex.ts';
import { systemClock } from '../clock.ts';
import { boundedWait, createDeferred, waitOptions, type Deferred, type WaitOptions } from '../runtime/deferred.ts';
import { requireIdleActor, startActor } from '../runtime/startActor.ts';
import { optionalDuration, optionalName, optionalObject, requireFunction, requireNonEmptyString } from '../runtime/validate.ts';
import { CancellableSubprocess } from '../subprocess/CancellableSubprocess.ts';
import { CriticalTask } from './CriticalTask.ts';

/** Options of the {@link AsyncExecutor} constructor. */
export interface AsyncExecutorOptions {
  /** Woken when a task ends (see the wake-up rule on {@link AsyncExecutor}). */
  readonly wakeup: WakeupBus | (() => void);
  /** The subprocess runner that `cancel()` stops; its cancelled flag is reset as each task starts. */
  readonly cancellable?: CancellableSubprocess;
  /**
   * A subprocess runner for the executor to own, instead of `cancellable`: its actor is the
   * executor actor's child `subprocess`, and {@link AsyncExecutor.subprocess} drives it.
   */
  readonly subprocess?: OwnedSubprocessOptions;
  /** A name for logs and the inspector. */
  readonly name?: string;
}

/** The options of a subprocess runner an executor owns. */
export interface OwnedSubprocessOptions {
  /** A name for logs and the inspector; default the executor's name followed by `.subprocess`. */
  readonly name?: string;
  /** How long a cancel waits after SIGTERM before SIGKILL; default 10,000 ms. */
  readonly terminateTimeoutMs?: number;
  /** How long a finished call waits for output pipes held open by leftover descendants; default 1,000 ms. */
  readonly pipeGraceMs?: number;
}

let counter = 0;

/** What a durable executor that is still restoring shows: a slot no one can take. */
const RECOVERING = Object.freeze({ action: '(recovering)', generation: -1, started: false, job: null }) as unknown as ExecutorContext;

/** True for an actor of `durable(…)` logic (marked for the inspector with the same symbol). */
function isDurable(actor: AnyActorRef): boolean {
  return (actor as { logic?: Record<symbol, unknown> }).logic?.[Symbol.for('statesmith.logicKind')] === 'durable';
}

/** The actor and lock `AsyncExecutor.attach` hands to the constructor it calls. */
let attaching: { readonly actor: Actor<typeof executorLogic>; readonly lock: Mutex } | undefined;

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
  /** The executor's name in logs, `toString()` and the inspector. */
  readonly name: string;
  /** The statechart actor (`executorLogic`): `idle → scheduled → running → cancelling → done → idle`. It holds all the state. */
  readonly actor: Actor<typeof executorLogic>;
  /** The executor lock: an in-process interlock with HA cycles, not state. */
  readonly #lock: Mutex;
  #criticalTask: CriticalTask | undefined;
  /** Runs waiting for their task's `done`, by generation. */
  readonly #runs = new Map<number, Deferred<DoneReply>>();
  /** Replies emitted while a command is being sent (the actor answers synchronously). */
  #captured: ExecutorReply[] | undefined;

  constructor(options: AsyncExecutorOptions) {
    const opts = optionalObject<AsyncExecutorOptions>('options', options, ['wakeup', 'cancellable', 'subprocess', 'name']);
    if (!isWakeupBus(opts.wakeup) && typeof opts.wakeup !== 'function') {
      throw new ArgumentTypeError('options.wakeup', 'a WakeupBus or a function', opts.wakeup);
    }
    if (opts.cancellable !== undefined && !(opts.cancellable instanceof CancellableSubprocess)) {
      throw new ArgumentTypeError('options.cancellable', 'a CancellableSubprocess', opts.cancellable);
    }
    this.name = optionalName('options.name', opts.name, () => `executor-${++counter}`);
    let owned: Required<OwnedSubprocessOptions> | undefined;
    if (opts.subprocess !== undefined) {
      if (opts.cancellable !== undefined)
        throw new ArgumentValueError('options.subprocess', 'no subprocess when a cancellable is given (one runner per executor)', opts.subprocess);
      const sub = optionalObject<OwnedSubprocessOptions>('options.subprocess', opts.subprocess, ['name', 'terminateTimeoutMs', 'pipeGraceMs']);
      owned = {
        name: optionalName('options.subprocess.name', sub.name, () => `${this.name}.subprocess`),
        terminateTimeoutMs: optionalDuration('options.subprocess.terminateTimeoutMs', sub.terminateTimeoutMs, 10_000),
        pipeGraceMs: optionalDuration('options.subprocess.pipeGraceMs', sub.pipeGraceMs, 1_000),
      };
    }
    const attached = attaching;
    attaching = undefined;
    this.#lock = attached?.lock ?? new Mutex({ name: `${this.name} lock`, reentrant: true, [kUninspected]: true } as MutexOptions);
    this.actor =
      attached?.actor ??
      startActor('executor', executorLogic, {
        input: {
          name: this.name,
          wakeup: opts.wakeup,
          ...(opts.cancellable ? { cancellable: opts.cancellable } : {}),
          ...(owned ? { subprocess: owned } : {}),
          lock: this.#lock,
          criticalTask: () => this.#criticalTask,
        },
        id: this.name,
      });
    this.actor.on('*', (reply) => this.#heard(reply as ExecutorReply));
    // An executor actor that is stopped or fails while runs wait for their done: each rejects at once.
    const ended = (): void => {
      if (this.#runs.size === 0) return;
      const snapshot = this.actor.getSnapshot();
      const error = new ActorStoppedError(this.actor.id, snapshot.status, snapshot.value);
      const runs = [...this.#runs.values()];
      this.#runs.clear();
      for (const run of runs) run.reject(error);
    };
    this.actor.subscribe({ error: ended, complete: ended });
    const child = this.actor.getSnapshot().children.subprocess;
    this.subprocess = child ? CancellableSubprocess.attach(child, owned?.name ?? child.getSnapshot().context.name) : undefined;
  }

  /**
   * A facade over an executor actor that someone's machine spawned (`executorLogic`), with
   * the executor lock given in its input, so that `withLock` is the same interlock.
   */
  static attach(actor: AnyActorRef, options: { readonly name: string; readonly lock: Mutex }): AsyncExecutor {
    attaching = { actor: actor as Actor<typeof executorLogic>, lock: options.lock };
    return new AsyncExecutor({ wakeup: () => undefined, name: options.name });
  }

  /** The subprocess runner the executor owns (the `subprocess` option), or undefined. */
  readonly subprocess: CancellableSubprocess | undefined;

  /**
   * The interlock shared with tasks that have a critical step; reset after every task.
   * Created on first use, so executors that never need it stay small.
   */
  get criticalTask(): CriticalTask {
    if (this.#criticalTask === undefined) {
      const name = `${this.name}.criticalTask`;
      // Its actor is the executor actor's child.
      this.actor.send({ type: 'statesmith.executor.spawnCriticalTask', [kFromTask]: true, name });
      const child = this.actor.getSnapshot().children.criticalTask;
      this.#criticalTask = child ? CriticalTask.attach(child, name) : new CriticalTask({ name });
    }
    return this.#criticalTask;
  }

  /** True while an action holds the slot. */
  get busy(): boolean {
    return this.#context().action !== null;
  }

  /** The action in the slot, or `null`. */
  get scheduledAction(): string | null {
    return this.#context().action;
  }

  /**
   * Takes the slot for `action` if it is free and returns `null`; otherwise returns the
   * occupant's name and changes nothing.
   */
  schedule(action: string): string | null {
    requireNonEmptyString('action', action);
    const reply = this.#command({ type: 'statesmith.executor.schedule', action });
    return reply?.type === 'statesmith.executor.refused' ? reply.occupant : null;
  }

  /**
   * Gives up a scheduled action that has not started. A task already waiting to run it
   * will not run. Throws an `InvalidStateError` for a started task: use `cancel()`.
   */
  resetScheduledAction(): void {
    const reply = this.#command({ type: 'statesmith.executor.reset' });
    if (reply?.type === 'statesmith.rejected') {
      throw new InvalidStateError(`${this.name}: action '${String(this.scheduledAction)}' has already started; use cancel() to stop it`);
    }
  }

  /**
   * Runs `fn(...args)` as the scheduled task (scheduling it under `fn.name` when the slot
   * is free) and resolves its result, or `undefined` when it threw or was cancelled
   * before it started. Rejects with a `BusyError` when the scheduled task already has a
   * runner.
   */
  run<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, args?: A): Promise<R | undefined> {
    let done: Promise<DoneReply>;
    try {
      done = this.#claim(fn, args);
    } catch (error) {
      return Promise.reject(error);
    }
    // What the function returned, also when a cancel reached it first; undefined when it threw or never ran.
    return done.then((reply) => reply.result as R | undefined);
  }

  /**
   * Starts `run(fn, args)` in the background, as a new owner of the executor lock (so it
   * waits for the current HA cycle). Throws at once for bad input or a `BusyError`.
   */
  runAsync<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, args?: A): void {
    // A fresh owner: the task's start and cleanup wait for whoever holds the lock now.
    void runDetached(() => this.#claim(fn, args));
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
    if (this.scheduledAction === null) return;
    if (this.#lock.isHeldByCaller() && this.#context().started) {
      throw new DeadlockError(
        `${this.name}.cancel() was called while holding the executor lock, but '${String(this.scheduledAction)}' is running ` +
          'and needs that lock to finish; call cancel() outside withLock()',
      );
    }
    // Patroni's cancel decides under the executor lock: within an HA cycle the slot never goes free.
    const generation = await this.#lock.runExclusive(
      () => {
        const { action, generation } = this.#context();
        if (action === null) return null;
        this.actor.send({ type: 'statesmith.executor.cancel' });
        return generation;
      },
      { ...(signal ? { signal } : {}), timeoutMs },
    );
    if (generation === null) return;
    const remaining = Math.max(0, deadline - systemClock.now());
    await boundedWait(this.#ended(generation), { signal, timeoutMs: remaining }, systemClock, `the cancelled task of ${this.name} cleaning up`);
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

  /** Sends `run` for `fn` and resolves the task's `done`; throws at once when the actor refuses. */
  #claim(fn: unknown, args: unknown): Promise<DoneReply> {
    requireFunction('fn', fn);
    let array = false;
    try {
      array = Array.isArray(args);
    } catch {
      // a revoked proxy: not an array
    }
    if (args !== undefined && !array) throw new ArgumentTypeError('args', 'an array or undefined', args);
    const call = fn as (...a: unknown[]) => unknown;
    const list = args as unknown[] | undefined;
    const job: ExecutorAction = list ? () => call(...list) : () => call();
    // The runner of whatever is scheduled; with the slot free, the actor schedules it
    // under the function's name, unless a task cancelled before it started awaits its runner.
    const replies = this.#commandAll({ type: 'statesmith.executor.run', fn: job, scheduleAs: call.name || 'anonymous task' });
    for (const reply of replies) {
      if (reply.type === 'statesmith.executor.done') return Promise.resolve(reply); // a late runner of a cancelled task
      if (reply.type === 'statesmith.executor.refused' || reply.type === 'statesmith.rejected') {
        throw new BusyError(
          `${this.name}: action '${String(this.scheduledAction)}' already has a running task; wait for it or cancel() it before running another`,
        );
      }
    }
    const { generation, job: claimed } = this.#context();
    if (claimed?.fn !== job) throw new BusyError(`${this.name}: the task was not accepted`);
    const done = createDeferred<DoneReply>();
    this.#runs.set(generation, done);
    return done.promise;
  }

  /** Sends `command` and returns the first reply the actor gave while handling it. */
  #command(command: ExecutorCommand): ExecutorReply | undefined {
    return this.#commandAll(command)[0];
  }

  #commandAll(command: ExecutorCommand): ExecutorReply[] {
    // Its answer must come now: a command that waited behind the actor's current step would act unseen.
    requireIdleActor(this.actor, `${this.name}.${command.type.slice('statesmith.executor.'.length)}`);
    const outer = this.#captured;
    const captured: ExecutorReply[] = [];
    this.#captured = captured;
    try {
      this.actor.send(command);
    } finally {
      this.#captured = outer;
    }
    return captured;
  }

  #heard(reply: ExecutorReply): void {
    this.#captured?.push(reply);
    if (reply.type === 'statesmith.executor.done') {
      const run = this.#runs.get(reply.generation);
      if (run !== undefined) {
        this.#runs.delete(reply.generation);
        run.resolve(reply);
      }
    }
  }

  /**
   * The executor's context: its actor's, or the inner executor's when the actor is
   * `durable(executorLogic)`. A durable executor still restoring shows its slot taken by
   * `(recovering)`: nothing can be scheduled on it until it runs.
   */
  #context(): ExecutorContext {
    const snapshot = this.actor.getSnapshot() as unknown as { context: ExecutorContext; inner?: { context: ExecutorContext }; value?: unknown };
    if (!isDurable(this.actor)) return snapshot.context;
    return snapshot.inner?.context ?? RECOVERING;
  }

  /** Resolves once the task of `generation` has left the slot. */
  #ended(generation: number): Promise<void> {
    const over = (): boolean => {
      const { action, generation: current } = this.#context();
      return action === null || current !== generation;
    };
    if (over()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const subscription = this.actor.subscribe(() => {
        if (!over()) return;
        subscription.unsubscribe();
        resolve();
      });
    });
  }
}

type DoneReply = Extract<ExecutorReply, { type: 'statesmith.executor.done' }>;
