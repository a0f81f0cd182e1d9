/**
 * `executorLogic`: the executor machine with its real children, as actor logic that
 * `createActor`, `spawn` and `invoke` accept. The machine holds every bit of state; these
 * children only do the work: take the executor lock, run the task, stop the subprocess,
 * clean up.
 *
 * @module
 */
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { telemetry } from '../telemetry/hooks.ts';
import { fromCallback, fromPromise } from 'xstate';
import {
  executorMachine,
  kFromTask,
  type ExecutorGateInput,
  type ExecutorInternalEvent,
  type ExecutorLockEvent,
  type ExecutorTaskCommand,
  type ExecutorServices,
  type ExecutorTaskInput,
  type ExecutorJob,
  type OutcomeParams,
  type WakeParams,
} from '../../machines/executor.machine.ts';
import { errorData } from '../../machines/protocol.ts';
import { ArgumentTypeError, CancelledError } from '../errors.ts';
import { outcomeOf } from '../runtime/cancellation.ts';
import { optionalObject, requireNonEmptyString } from '../runtime/validate.ts';
import { runDetached } from '../locks/Mutex.ts';
import { takesSignal } from '../runtime/takesSignal.ts';
import { subprocessLogic } from '../subprocess/subprocessLogic.ts';
import { getLogger } from '../logger.ts';
import { persistWith, saveBarrierAbove } from '../runtime/persistence.ts';
import { executorPersistence } from './executorPersistence.ts';

export { errorData } from '../../machines/protocol.ts';

/** Why a task's pending lock wait is given up: its claim was dropped. */
const CHILD_STOPPED = Object.freeze({ name: 'ClaimDropped', message: 'the executor task was dropped' });

/**
 * Takes the executor lock and resolves its release. The acquire starts synchronously in
 * the sender's async context, so a caller that holds the lock (an HA cycle running a task
 * inline) re-enters it.
 */
function takeLock(lock: NonNullable<ExecutorServices['lock']>, signal: AbortSignal): Promise<() => void> {
  return lock.acquire({ signal }).then((handle) => () => handle.release());
}

/** The release of a lock that is not there (an executor with no lock). */
const noRelease = (): void => undefined;

function wake(deps: ExecutorServices, name: string, { action, outcome }: WakeParams): void {
  const wakeup = deps.wakeup;
  if (wakeup === undefined) return;
  try {
    if (typeof wakeup === 'function') wakeup();
    else wakeup.wakeup(`${action} ${outcome}`, { executor: name, action, outcome });
  } catch (error) {
    getLogger().error(`${name}: the wake-up function threw`, { error });
  }
}

/**
 * One task on the executor's task child: takes the executor lock and answers `gate`;
 * on `start` runs the job and answers `settled` (`cancel` aborts its signal); on
 * `cleanup` takes the lock again, resets the critical task and answers `cleaned`.
 */
class TaskClaim {
  readonly generation: number;
  readonly #action: string;
  readonly #job: ExecutorJob;
  readonly #deps: ExecutorServices;
  readonly #sendBack: (event: ExecutorInternalEvent | ExecutorLockEvent) => void;
  /**
   * The task's signal's controller, made when the function starts (or a cancel comes first).
   * On Node 20 every AbortSignal costs ~3 µs and a hidden class of its own, which the young
   * generation then promotes (bench/PROFILE.md, "AbortSignals on Node 20"): a claim makes
   * none it does not hand out.
   */
  #controller: AbortController | undefined;
  /** Set by the first cancel or drop: the task's signal is (or will be made) aborted with `#reason`. */
  #cancelled = false;
  #reason: unknown;
  /** Aborted when the claim is dropped while a lock wait is in progress: the wait is given up. Made only when there is a lock to wait for. */
  #dropped: AbortController | undefined;
  /** Lock waits in progress (an abort with nobody waiting would only cost an event). */
  #waiting = 0;
  #isDropped = false;
  #settled = false;

  readonly #executor: string;
  /** A durable executor's: resolves once its snapshot, with this task started, is in the store. */
  readonly #saved: (() => Promise<void>) | undefined;

  constructor(
    generation: number,
    action: string,
    job: ExecutorJob,
    deps: ExecutorServices,
    sendBack: (event: never) => void,
    executor = 'executor',
    saved?: () => Promise<void>,
  ) {
    this.generation = generation;
    this.#saved = saved;
    this.#executor = executor;
    this.#action = action;
    this.#job = job;
    this.#deps = deps;
    this.#sendBack = sendBack as never;
    this.#handOver('statesmith.executor.gate');
  }

  /** Takes the executor lock, does `underLock`, and hands the lock's release to the machine. */
  #handOver(type: ExecutorLockEvent['type'], underLock?: () => Promise<void>): void {
    if (this.#isDropped) return;
    this.#waiting++;
    const lock = this.#deps.lock;
    const taken = lock === undefined ? Promise.resolve(noRelease) : takeLock(lock, (this.#dropped ??= new AbortController()).signal);
    taken.then(
      async (release) => {
        this.#waiting--;
        if (underLock) await underLock();
        // Dropped while the lock was on its way: nobody will release it but us.
        if (this.#isDropped) release();
        else this.#sendBack({ type, [kFromTask]: true, generation: this.generation, release } satisfies ExecutorLockEvent);
      },
      () => void this.#waiting--, // the wait was given up because the claim was dropped
    );
  }

  start(): void {
    const saved = this.#saved;
    if (saved === undefined) {
      this.#run();
      return;
    }
    // Durable: the function starts only once the store says it started, so a crash after this
    // point always finds the task started (run again when idempotent, reported interrupted if
    // not), never forgotten. A save that fails, or a fence lost meanwhile, means it never starts.
    saved().then(
      () => {
        if (this.#isDropped) return;
        if (this.#cancelled) {
          const reason = this.#reason;
          this.#settle({ outcome: 'cancelled', returned: false, error: errorData(reason), result: reason });
        } else this.#run();
      },
      (error: unknown) => {
        if (!this.#isDropped) this.#settle({ outcome: 'failed', returned: false, error: errorData(error), result: error });
      },
    );
  }

  /** The task's signal: made now, and already aborted if a cancel came before. */
  #signal(): AbortSignal {
    let controller = this.#controller;
    if (controller === undefined) {
      controller = this.#controller = new AbortController();
      if (this.#cancelled) controller.abort(this.#reason);
    }
    return controller.signal;
  }

  /** Cancels the task once: its signal aborts now if it was handed out, or is made aborted when it is. */
  #abort(reason: unknown): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }

  #run(): void {
    const job = this.#job;
    // A function written `() =>` cannot see its signal: none is made for it (the facade's
    // wrapper of run(fn, args) is one). A cancel still reaches its outcome, below.
    const signal = takesSignal(job.fn) ? this.#signal() : undefined;
    // With telemetry on, the function runs inside its span, so the user's own spans nest.
    const span = telemetry.enabled ? telemetry.sink.executorTask(this.#executor, this.#action) : undefined;
    const call = (): unknown => {
      try {
        return job.fn(signal as AbortSignal, job.params, job.run);
      } catch (error) {
        return Promise.reject(error);
      }
    };
    // The function runs as a fresh owner: locks its runner holds (an HA cycle's) are not
    // the task's. Its answer comes back in the runner's own async context, so the
    // cleanup re-enters the executor lock when the runner holds it (run() in a cycle).
    const pending = runDetached(span === undefined ? call : () => span.run(call));
    Promise.resolve(pending).then(
      (result) => {
        span?.end('completed');
        this.#settle({ outcome: 'completed', returned: true, result });
      },
      (error: unknown) => {
        // Judged against the task's signal, made now (aborted) for a function that had none.
        const outcome = outcomeOf(error, signal ?? (this.#cancelled ? this.#signal() : undefined));
        span?.end(outcome, error);
        this.#settle({
          outcome,
          returned: false,
          error: errorData(error),
          // The thrown value itself stays in-process, for the log's stack.
          result: error,
        });
      },
    );
  }

  #settle(event: Omit<ExecutorInternalEvent, 'type' | 'generation' | typeof kFromTask>): void {
    this.#settled = true;
    this.#sendBack({ type: 'statesmith.executor.settled', [kFromTask]: true, generation: this.generation, ...event } satisfies ExecutorInternalEvent);
  }

  cancel(): void {
    if (!this.#cancelled) this.#abort(new CancelledError(`${this.#action} was cancelled`));
  }

  cleanup(): void {
    this.#handOver('statesmith.executor.cleaned', async () => {
      try {
        const critical = this.#deps.criticalTask?.();
        // The task ended: its critical task shows how (a cancelled step ends `done.cancelled`), then is reset.
        if (critical)
          await critical.withLock(() => {
            critical.end?.();
            critical.reset();
          });
      } catch (error) {
        getLogger().error('resetting the critical task failed', { error });
      }
    });
  }

  drop(why: string): void {
    this.#isDropped = true;
    // Only a wait in progress needs the abort. A shared reason: abort() without one makes a DOMException (a stack capture) per task.
    if (this.#waiting > 0) this.#dropped?.abort(CHILD_STOPPED);
    if (!this.#settled && !this.#cancelled) this.#abort(new CancelledError(`${this.#action} was cancelled: ${why}`));
  }
}

const INPUT_KEYS = ['name', 'actions', 'wakeup', 'cancellable', 'lock', 'criticalTask', 'subprocess'] as const;

/** Refuses a bad `input` with a typed error: what was expected, what was received. */
function checkExecutorInput(input: unknown): void {
  const given = optionalObject<Record<(typeof INPUT_KEYS)[number], unknown>>('input', input, [...INPUT_KEYS]);
  // Read once, here: a getter that throws is refused with a typed error, not left to fail the machine's context.
  let opts: typeof given;
  try {
    opts = Object.fromEntries(INPUT_KEYS.map((key) => [key, given[key]]));
    if (opts.actions !== null && typeof opts.actions === 'object') Object.entries(opts.actions);
  } catch (error) {
    throw Object.assign(new ArgumentTypeError('input', 'an input object whose values can be read', input), { cause: error });
  }
  if (opts.name !== undefined) requireNonEmptyString('input.name', opts.name);
  if (opts.actions !== undefined) {
    if (opts.actions === null || typeof opts.actions !== 'object')
      throw new ArgumentTypeError('input.actions', 'an object of named action functions', opts.actions);
    for (const [name, action] of Object.entries(opts.actions))
      if (typeof action !== 'function') throw new ArgumentTypeError(`input.actions.${name}`, 'a function (signal, params) => result', action);
  }
  const wakeup = opts.wakeup as { wakeup?: unknown } | undefined;
  if (wakeup !== undefined && typeof wakeup !== 'function' && (wakeup === null || typeof wakeup !== 'object' || typeof wakeup.wakeup !== 'function')) {
    throw new ArgumentTypeError('input.wakeup', 'a WakeupBus or a function', opts.wakeup);
  }
}

const providedExecutor = guardedLogic(
  executorMachine.provide({
    actors: {
      subprocess: subprocessLogic,
      // One long-lived child per executor: each task is a claim on it (spawning a child per
      // task cost a fifth of a cycle).
      task: fromCallback<ExecutorTaskCommand, ExecutorTaskInput>(({ input, sendBack, receive, self }) => {
        const { deps, name } = input;
        // Under durable(): the save barrier of the durable actor it runs in, or under (a durable machine's child).
        const saved = saveBarrierAbove((self as { _parent?: unknown })._parent);
        let current: TaskClaim | undefined;
        receive((command) => {
          if (command.type === 'claim') {
            current?.drop(`${command.action} took the slot`);
            // Runs synchronously in the sender's async context: a caller that holds the lock re-enters it.
            current = new TaskClaim(command.generation, command.action, command.job, deps, sendBack, name, saved);
            return;
          }
          const claim = current;
          if (claim === undefined || (command.type === 'drop' && command.generation !== claim.generation)) return;
          switch (command.type) {
            case 'start':
              claim.start();
              break;
            case 'cancel':
              claim.cancel();
              break;
            case 'cleanup':
              claim.cleanup();
              break;
            case 'drop':
              claim.drop('its task is over');
              current = undefined;
              break;
          }
        });
        // Stopping the executor while a task runs cancels the task.
        return () => current?.drop('its executor stopped');
      }),
      stopSubprocess: fromPromise<void, ExecutorGateInput>(async ({ input }) => {
        try {
          await input.deps.cancellable?.cancel();
        } catch (error) {
          getLogger().error('cancelling the subprocess of a task failed', { error });
        }
      }),
    },
    actions: {
      beforeStart: ({ context }) => {
        context.deps.cancellable?.resetIsCancelled();
        // The task may take a critical step now: its critical task walks `scheduled → running`.
        const critical = context.deps.criticalTask?.();
        critical?.schedule?.();
        critical?.start?.();
      },
      // After the step: XState commits the snapshot once the actions ran, and the woken loop
      // must already see the slot free.
      wake: ({ context }, params) => queueMicrotask(() => wake(context.deps, context.name, params as WakeParams)),
      logCancel: ({ context }, params) => getLogger().info(`Cancelling long running task ${(params as { action: string }).action}`, { executor: context.name }),
      logOutcome: ({ context }, params) => {
        const { action, outcome, error } = params as OutcomeParams;
        if (outcome === 'cancelled' && error !== null) getLogger().info(`Long running task ${action} was cancelled`, { executor: context.name });
        else if (outcome === 'failed') {
          // The thrown value itself, when this process has it, for its stack.
          const thrown = context.result instanceof Error ? context.result : error;
          getLogger().error(`Exception during execution of long running task ${action}`, { executor: context.name, error: thrown });
        }
      },
    },
  }),
  'executor',
  { checkInput: checkExecutorInput },
);

/** The machine type XState infers for the executor with its children (long: every action and child spelled out). */
type ProvidedExecutor = typeof providedExecutor;

/**
 * The type of {@link executorLogic}: an XState state machine whose context is
 * {@link ExecutorContext}, whose events are {@link ExecutorEvent} (the commands
 * {@link ExecutorCommand} and its own), whose input is {@link ExecutorInput}, and which
 * emits {@link ExecutorReply}. `createActor`, `spawn` and `invoke` take it.
 */
export interface ExecutorLogic extends ProvidedExecutor {}

/**
 * The executor as actor logic: spawn it in your machine, drive it with commands, and hear
 * its replies (see the README's table of executor commands).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { executorLogic } from 'statesmith';
 * const executor = createActor(executorLogic, {
 *   input: { name: 'volumes', actions: { resize: async (_signal, params) => `resized ${(params as { id: number }).id}` } },
 * }).start();
 * const done = new Promise<{ outcome: string; result?: unknown }>((resolve) => executor.on('statesmith.executor.done', resolve));
 * executor.send({ type: 'statesmith.executor.run', action: 'resize', params: { id: 7 } });
 * const { outcome, result } = await done;
 * console.log(outcome, result); // completed resized 7
 * // A bad command is answered with statesmith.rejected, never thrown:
 * executor.send({ type: 'statesmith.executor.run', action: 'shrink' });
 * console.log(executor.getSnapshot().value); // idle
 * ```
 */
export const executorLogic: ExecutorLogic = providedExecutor;

// durable(executorLogic, …) saves the slot and the last task by name, never the functions (see executorPersistence.ts).
persistWith(
  executorLogic,
  executorPersistence(executorLogic as never, (context, params) => wake(context.deps, context.name, params)),
);
