/**
 * The single-slot executor (Patroni's `AsyncExecutor`) as a statechart that owns all of
 * its state and does its work through child actors. `executorLogic` (src/executor/) gives
 * it the real children with `.provide()`; this file stays pure (no I/O, no timers).
 *
 * `idle → scheduled → running → cancelling → done → idle`.
 *
 * - The slot (`action`) is taken by `schedule` or `run`, and cleared when the machine is
 *   back in `idle`; `busy` is `action !== null`. Each task gets a new `generation`.
 * - One long-lived child, `task`, takes on each task (`claim`, `drop`) and does its work
 *   in three steps the machine asks for:
 *   - `scheduled.waiting`: the slot is taken but no runner has come. `scheduled.starting`:
 *     a `run` came and handed `task` the job, which acquires the executor lock (an HA cycle
 *     holding it delays the start) and answers `gate`; the start check, the subprocess
 *     flag reset and the start happen in the step that handles it, then the lock goes.
 *   - `running`: `task` runs the function with an AbortSignal and answers `settled`.
 *     `cancel` asks it to stop and moves to `cancelling`, where `stopSubprocess` stops
 *     the shared subprocess.
 *   - `done`: asked to clean up, `task` takes the executor lock, resets the critical task
 *     and answers `cleaned`; that step frees the slot, replies `done`, releases the lock,
 *     and then wakes the HA loop.
 * - A task cancelled before it started ends at once, and Patroni's sticky flag
 *   (`cancelledBeforeStart`) makes the next runner skip its function, until the next
 *   `schedule`: a cancelled task never runs, even when its runner comes late.
 *
 * Every command is answered: with its reply, or with `statesmith.rejected` when the state
 * does not accept it or it is malformed. A rejection changes nothing.
 */
import { assign, enqueueActions, fromCallback, fromPromise, setup, type AnyActorRef } from 'xstate';
import {
  answer,
  commandData,
  forgedRejection,
  rejectUnknownCommand,
  rejectAnyOther,
  replyToOf,
  shown,
  type ErrorData,
  type Rejected,
  kInternal,
} from './protocol.ts';
import { criticalTaskMachine } from './criticalTask.machine.ts';
import { subprocessMachine, type SubprocessInput } from './subprocess.machine.ts';

export { commandData, type ErrorData, type Rejected } from './protocol.ts';

/**
 * How a task ended. `interrupted`: a durable executor's task was running when its process
 * ended, and was not run again (it is not marked `idempotent()`); it may have done part of
 * its work.
 */
export type ExecutorOutcome = 'completed' | 'failed' | 'cancelled' | 'interrupted';

/** What a task's function is told about its run, besides its signal and params. */
export interface ExecutorRun {
  /**
   * The same for every attempt of one task, and never the same for two tasks: key your
   * side effects with it, and a re-run after a crash (a durable executor's `idempotent()`
   * action) can tell that it already did them.
   */
  readonly idempotencyKey: string;
  /** 1 for the first run; one more for each re-run after a crash. */
  readonly attempt: number;
}

/**
 * A named action of the registry: gets the task's signal, the command's `params`, and its run's key and attempt.
 * An action written `() => …` cannot read them, and no signal is made for it.
 */
export type ExecutorAction = (signal: AbortSignal, params: unknown, run: ExecutorRun) => unknown;

/** What the runner of a task runs. (Internal: not part of the API.) */
export interface ExecutorJob {
  readonly fn: ExecutorAction;
  readonly params: unknown;
  /** True when `fn` is the named action of the slot (a durable executor can look it up again); false for a runner's own function. */
  readonly named: boolean;
  readonly run: ExecutorRun;
}

/** On a `run` the executor sends itself as it is restored: the attempt of a re-run. (Internal: not part of the API.) */
export const kAttempt: unique symbol = Symbol('statesmith.executor.attempt');

/** The executor actor's context: the slot, the task in it, and the last finished one. */
export interface ExecutorContext {
  /** The executor's name. */
  readonly name: string;
  /** The slot: the scheduled action's name, or null when free. */
  readonly action: string | null;
  /** Increases with every task; identifies the task in the slot. */
  readonly generation: number;
  /**
   * Random, made once when the executor starts fresh and kept by a durable one across its
   * incarnations: with the generation, each task's idempotency key.
   */
  readonly lineage: string;
  /** The function a runner brought, once `run` came for the task in the slot. */
  readonly job: ExecutorJob | null;
  /** True once the task's function was started. */
  readonly started: boolean;
  /** True once `cancel` reached the current task. */
  readonly cancelRequested: boolean;
  /** Patroni's sticky `_is_cancelled` for a task cancelled before it started, until the next schedule. */
  readonly cancelledBeforeStart: boolean;
  /** Who gets the task's `done`: the `replyTo` of its `run`. */
  readonly runner: AnyActorRef | null;
  /** The `replyTo` of every `cancel` waiting for the task to clean up. */
  readonly cancelWaiters: readonly AnyActorRef[];
  /** How the task in `done` ended, and with what. */
  readonly outcome: ExecutorOutcome | null;
  /** What the task's function returned, in `done` after a success. */
  readonly result: unknown;
  /** The task's error as data, in `done` after a failure. */
  readonly error: ErrorData | null;
  /** True when its function returned (a throw and a cancel before the start do not). */
  readonly returned: boolean;
  /** The last finished task: its action, outcome and error (`Name: message`), and whether it woke the loop. */
  readonly lastAction: string | null;
  /** Whether the last finished task woke the loop. */
  readonly lastWoke: boolean;
  /** How the last finished task ended. */
  readonly lastOutcome: ExecutorOutcome | null;
  /** The last finished task's error as `Name: message`, or null. */
  readonly lastError: string | null;
  /** The named actions a `run` may ask for. */
  readonly actions: Readonly<Record<string, ExecutorAction>>;
  /** The runtime's services, handed to the children. */
  readonly deps: ExecutorServices;
  /** The input of the subprocess runner the executor owns, if any. */
  readonly ownedSubprocess: SubprocessInput | null;
  /** True once the long-lived task child is spawned (with the first task). */
  readonly hasTaskChild: boolean;
}

/** The input of `executorLogic`. */
export interface ExecutorInput {
  /** A name for logs and the inspector (default `executor`). */
  readonly name?: string;
  /** Named actions that a `run` command may name (the only way across a process). */
  readonly actions?: Readonly<Record<string, ExecutorAction>>;
  /** Woken when a task ends: a `WakeupBus` or a function. */
  readonly wakeup?: ExecutorServices['wakeup'];
  /** The subprocess runner a cancel stops; its cancelled flag is reset as each task starts. */
  readonly cancellable?: ExecutorServices['cancellable'];
  /** The executor lock that the start check and the cleanup take (an HA cycle holds it); none by default. */
  readonly lock?: ExecutorServices['lock'];
  /** The critical task to reset after each task, when there is one. */
  readonly criticalTask?: ExecutorServices['criticalTask'];
  /**
   * A subprocess runner the executor owns: spawned as its child `subprocess`, re-armed as
   * each task starts and cancelled with a task being cancelled (instead of `cancellable`).
   */
  readonly subprocess?: SubprocessInput;
}

/** The in-process services the runtime's children use, by their shape only. */
export interface ExecutorServices {
  readonly wakeup: { wakeup(reason: string, detail?: object): void } | (() => void) | undefined;
  readonly cancellable: { cancel(): Promise<void>; resetIsCancelled(): void } | undefined;
  readonly lock: { acquire(options: { readonly signal?: AbortSignal }): Promise<{ release(): void }> } | undefined;
  readonly criticalTask:
    (() => { withLock<R>(fn: () => R): Promise<R>; reset(): void; schedule?(): void; start?(): void; end?(): void } | undefined) | undefined;
}

/**
 * The commands an executor accepts: plain data, plus `fn` and `replyTo` in-process.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, executorLogic, type ExecutorCommand } from 'statesmith';
 * const executor = createActor(executorLogic, { input: { actions: { promote: async () => 'primary' } } }).start();
 * const run: ExecutorCommand = { type: 'statesmith.executor.run', action: 'promote' };
 * const done = await ask(executor, run, { timeoutMs: 5000 });
 * console.log(done.type, done['outcome'], done['result']); // statesmith.executor.done completed primary
 * executor.stop();
 * ```
 */
export type ExecutorCommand =
  | { readonly type: 'statesmith.executor.schedule'; readonly action: string; readonly replyTo?: AnyActorRef }
  | {
      readonly type: 'statesmith.executor.run';
      /** The action to run: schedules it when the slot is free, or starts it when it is the one scheduled. */
      readonly action?: string;
      readonly params?: unknown;
      /** In-process only: the function to run instead of the named action. */
      readonly fn?: ExecutorAction;
      /**
       * Without `action`: the name to schedule `fn` under when the slot is free. A runner
       * with no `action` is first the late runner of a task cancelled before it started.
       */
      readonly scheduleAs?: string;
      readonly replyTo?: AnyActorRef;
    }
  | { readonly type: 'statesmith.executor.cancel'; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.executor.reset'; readonly replyTo?: AnyActorRef };

/** The runtime asks the executor to spawn its critical task child (the facade does, on first use). (Internal: not part of the API.) */
export type ExecutorSpawnCriticalTask = { readonly type: 'statesmith.executor.spawnCriticalTask'; readonly [kFromTask]: true; readonly name: string };

/** The params of the `wake` action. */
export interface WakeParams {
  readonly action: string;
  readonly outcome: ExecutorOutcome;
}

/** The params of the `logOutcome` action. */
export interface OutcomeParams extends WakeParams {
  readonly error: ErrorData | null;
}

/** Marks a `settled` event as coming from the task child, so no message from outside can end a task. (Internal: not part of the API.) */
export const kFromTask: typeof kInternal = kInternal;

/** What `stopSubprocess` is started with. (Internal: not part of the API.) */
export interface ExecutorGateInput {
  readonly generation: number;
  readonly deps: ExecutorServices;
}

/** What the machine asks of its task child: take on a task, start it, cancel it, clean it up, or let it go. (Internal: not part of the API.) */
export type ExecutorTaskCommand =
  | { readonly type: 'claim'; readonly generation: number; readonly action: string; readonly job: ExecutorJob }
  | { readonly type: 'start' }
  | { readonly type: 'cancel' }
  | { readonly type: 'cleanup' }
  | { readonly type: 'drop'; readonly generation: number };

/** What the task child is started with (once, as the executor starts). (Internal: not part of the API.) */
export interface ExecutorTaskInput {
  readonly deps: ExecutorServices;
  /** The executor's name, for the telemetry of its tasks. */
  readonly name?: string;
}

/** What the task child tells the executor. (Internal: not part of the API.) */
export type ExecutorInternalEvent = {
  readonly type: 'statesmith.executor.settled';
  /** Only the task child sets it: a symbol cannot cross JSON, and this one is not exported from the package. */
  readonly [kFromTask]: true;
  readonly generation: number;
  readonly outcome: ExecutorOutcome;
  readonly returned: boolean;
  readonly result?: unknown;
  readonly error?: ErrorData;
};

/** The task child holds the executor lock (for the start check, or for the cleanup) and hands over its release. (Internal: not part of the API.) */
export type ExecutorLockEvent = {
  readonly type: 'statesmith.executor.gate' | 'statesmith.executor.cleaned';
  readonly [kFromTask]: true;
  readonly generation: number;
  readonly release: () => void;
};

/** Every event the executor actor takes: its commands, and its own internal events (which a user cannot forge). */
export type ExecutorEvent = ExecutorCommand | ExecutorInternalEvent | ExecutorLockEvent | ExecutorSpawnCriticalTask;

/**
 * The replies and notices an executor sends (to `replyTo`, to its parent, and emitted).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { executorLogic, type ExecutorReply } from 'statesmith';
 * const executor = createActor(executorLogic, { input: { actions: { promote: async () => 'primary' } } }).start();
 * const heard: Array<ExecutorReply['type']> = [];
 * executor.on('*', (reply) => heard.push((reply as ExecutorReply).type));
 * executor.send({ type: 'statesmith.executor.schedule', action: 'promote' });
 * executor.send({ type: 'statesmith.executor.schedule', action: 'restart' });
 * executor.send({ type: 'statesmith.executor.frobnicate' });
 * console.log(heard.join(', ')); // statesmith.executor.scheduled, statesmith.executor.refused, statesmith.rejected
 * executor.stop();
 * ```
 */
export type ExecutorReply =
  | { readonly type: 'statesmith.executor.scheduled'; readonly action: string; readonly generation: number }
  | { readonly type: 'statesmith.executor.refused'; readonly action: string | null; readonly occupant: string }
  | { readonly type: 'statesmith.executor.started'; readonly action: string; readonly generation: number }
  | {
      readonly type: 'statesmith.executor.done';
      readonly action: string;
      readonly generation: number;
      readonly outcome: ExecutorOutcome;
      readonly result?: unknown;
      readonly error?: ErrorData;
      /** Whether the HA loop was woken (Patroni's rule: unless the function returned `undefined`). */
      readonly woke: boolean;
    }
  /** `outcome`: how the task it cancelled really ended (a task may fail, or complete, after the cancel reached it); `null` when the slot was free. */
  | { readonly type: 'statesmith.executor.cancelled'; readonly action: string | null; readonly outcome: ExecutorOutcome | null }
  | { readonly type: 'statesmith.executor.unscheduled'; readonly action: string | null }
  | Rejected;

/** Why a `run` command cannot be accepted at all, whatever the state: a code and a reason. */
function malformedRun(context: ExecutorContext, event: ExecutorEvent): { code: string; reason: string } | undefined {
  if (event.type === 'statesmith.executor.schedule') {
    if (typeof event.action !== 'string' || event.action.length === 0) {
      return { code: 'ERR_INVALID_ARG_TYPE', reason: `"action" must be a non-empty string; received ${shown(event.action)}` };
    }
    return undefined;
  }
  if (event.type !== 'statesmith.executor.run') return undefined;
  if (event.action !== undefined && (typeof event.action !== 'string' || event.action.length === 0)) {
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"action" must be a non-empty string; received ${shown(event.action)}` };
  }
  if (event.fn !== undefined && typeof event.fn !== 'function') return { code: 'ERR_INVALID_ARG_TYPE', reason: '"fn" must be a function' };
  if (event.scheduleAs !== undefined && (typeof event.scheduleAs !== 'string' || event.scheduleAs.length === 0)) {
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"scheduleAs" must be a non-empty string; received ${shown(event.scheduleAs)}` };
  }
  if (event.fn === undefined) {
    const name = event.action ?? context.action;
    if (name === undefined || name === null)
      return { code: 'ERR_INVALID_ARG_VALUE', reason: 'a run needs "action" (a name from the executor\'s actions) or "fn"' };
    if (!Object.hasOwn(context.actions, name)) {
      const known = Object.keys(context.actions);
      return {
        code: 'ERR_UNKNOWN_ACTION',
        reason: `no action named ${JSON.stringify(name)}; the executor knows ${known.length ? known.join(', ') : 'no named actions'}`,
      };
    }
  }
  return undefined;
}

function jobOf(context: Pick<ExecutorContext, 'actions' | 'action' | 'lineage' | 'generation'>, event: ExecutorEvent): ExecutorJob {
  const run = event as Extract<ExecutorCommand, { type: 'statesmith.executor.run' }> & { [kAttempt]?: number };
  const named = run.fn === undefined;
  const fn = run.fn ?? (context.actions[(run.action ?? context.action) as string] as ExecutorAction);
  return { fn, params: run.params, named, run: { idempotencyKey: `${context.lineage}:${context.generation}`, attempt: run[kAttempt] ?? 1 } };
}

/** The per-task part of the context, as it is before a task has done anything. */
const noTask = {
  job: null,
  started: false,
  cancelRequested: false,
  cancelledBeforeStart: false,
  runner: null,
  cancelWaiters: [],
  outcome: null,
  result: undefined,
  error: null,
  returned: false,
} as const satisfies Partial<ExecutorContext>;

/** The pure executor machine (see the file's comment); `executorLogic` is it with its task child and effects. */
export const executorMachine = setup({
  types: {
    context: {} as ExecutorContext,
    events: {} as ExecutorEvent,
    input: {} as ExecutorInput,
    emitted: {} as ExecutorReply,
    children: {} as { task: 'task'; subprocess: 'subprocess'; criticalTask: 'criticalTask' },
  },
  actors: {
    /** The subprocess runner the executor owns (the runtime provides `subprocessLogic`). */
    subprocess: subprocessMachine,
    /** The critical task the executor owns, spawned on first use. */
    criticalTask: criticalTaskMachine,
    /**
     * The task: takes the lock and answers `gate`; on `start` runs the job and answers
     * `settled` (`cancel` aborts its signal); on `cleanup` takes the lock again, resets
     * the critical task and answers `cleaned`.
     */
    task: fromCallback<ExecutorTaskCommand, ExecutorTaskInput>(() => undefined),
    /** Stops the shared subprocess of a task being cancelled. */
    stopSubprocess: fromPromise<void, ExecutorGateInput>(async () => undefined),
  },
  actions: {
    rejectForged: enqueueActions(({ enqueue, event, self }) =>
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), forgedRejection(event, self, 'executor')),
    ),
    spawnOwned: assign(({ context, spawn }) => {
      if (context.ownedSubprocess !== null) spawn('subprocess', { id: 'subprocess', input: context.ownedSubprocess });
      return {};
    }),
    spawnCriticalTask: assign(({ event, spawn, self }) => {
      const spawned = (self.getSnapshot() as { children?: Record<string, unknown> } | undefined)?.children?.['criticalTask'];
      if ((event as Partial<ExecutorSpawnCriticalTask>)[kFromTask] !== true || spawned !== undefined) return {};
      spawn('criticalTask', { id: 'criticalTask', input: { name: (event as ExecutorSpawnCriticalTask).name } });
      return {};
    }),
    /** As a task starts: the owned subprocess runner is re-armed (Patroni resets `_is_cancelled`). */
    rearmOwnedSubprocess: enqueueActions(({ enqueue, context }) => {
      if (context.ownedSubprocess !== null) enqueue.sendTo('subprocess', { type: 'statesmith.subprocess.resetCancelled' });
    }),
    /** As a task is cancelled: so is the owned subprocess runner (sticky, until the next task starts). */
    cancelOwnedSubprocess: enqueueActions(({ enqueue, context }) => {
      if (context.ownedSubprocess !== null) enqueue.sendTo('subprocess', { type: 'statesmith.subprocess.cancel' });
    }),
    /** Starts the task's function: runs in the locked step that handled the start gate's answer. */
    beforeStart: () => undefined,
    // Parameterised custom actions take `unknown` params (XState's enqueueActions typing
    // cannot mix typed params with exactOptionalPropertyTypes); see WakeParams and friends.
    /** Wakes the HA loop: params {@link WakeParams}. */
    wake: (_, _params: unknown) => undefined,
    /** params `{ action }` */
    logCancel: (_, _params: unknown) => undefined,
    /** params {@link OutcomeParams} */
    logOutcome: (_, _params: unknown) => undefined,
    releaseLock: (_, params: unknown) => (params as { readonly release?: () => void }).release?.(),
    /** A lock hand-over for a task that is no longer current (cancelled meanwhile): give it back. */
    releaseStale: ({ event }) => (event as Partial<ExecutorLockEvent>).release?.(),

    // Object.assign, not `{ ...noTask, action, generation }`: on Node 20 an object literal that
    // starts with a spread and adds to it survives the young generation, and everything it
    // points to with it (bench/PROFILE.md, the executor's second pass).
    takeSlot: assign(({ context, event }) =>
      Object.assign({}, noTask, {
        action: (event as { action?: string }).action ?? (event as { scheduleAs?: string }).scheduleAs ?? 'anonymous task',
        generation: context.generation + 1,
      }),
    ),
    claim: assign(({ context, event }) => ({ job: jobOf(context, event), runner: replyToOf(event) ?? null })),
    /** `takeSlot` then `claim`, as one context write: a `run` that finds the slot free. */
    takeSlotAndClaim: assign(({ context, event }) => {
      const action = (event as { action?: string }).action ?? (event as { scheduleAs?: string }).scheduleAs ?? 'anonymous task';
      const generation = context.generation + 1;
      const job = jobOf({ actions: context.actions, action, lineage: context.lineage, generation }, event);
      return Object.assign({}, noTask, { action, generation, job, runner: replyToOf(event) ?? null });
    }),
    spawnTask: enqueueActions(({ enqueue, context }) => {
      // The task child comes with the first task: an executor that never runs one stays small.
      if (!context.hasTaskChild) {
        enqueue.spawnChild('task', { id: 'task', input: { deps: context.deps, name: context.name } });
        enqueue.assign({ hasTaskChild: true });
      }
      enqueue.sendTo('task', { type: 'claim', generation: context.generation, action: context.action as string, job: context.job as ExecutorJob });
    }),
    replyScheduled: enqueueActions(({ enqueue, context, event, self }) =>
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), {
        type: 'statesmith.executor.scheduled',
        action: context.action as string,
        generation: context.generation,
      }),
    ),
    replyRefused: enqueueActions(({ enqueue, context, event, self }) =>
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), {
        type: 'statesmith.executor.refused',
        action: (event as { action?: string }).action ?? null,
        occupant: context.action as string,
      }),
    ),
    replyStarted: enqueueActions(({ enqueue, context, self }) =>
      answer<ExecutorReply>(enqueue as never, self, context.runner, {
        type: 'statesmith.executor.started',
        action: context.action as string,
        generation: context.generation,
      }),
    ),
    reject: enqueueActions(({ enqueue, event, self }, params: unknown) => {
      const { code, reason } = params as { readonly code: string; readonly reason: string };
      const reply: Rejected = {
        type: 'statesmith.rejected',
        command: commandData(event),
        state: (self.getSnapshot() as { value: unknown }).value,
        code,
        reason,
      };
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), reply);
    }),
    rejectMalformed: enqueueActions(({ enqueue, context, event, self }) => {
      const why = malformedRun(context, event) ?? { code: 'ERR_INVALID_ARG_VALUE', reason: 'malformed command' };
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), {
        type: 'statesmith.rejected',
        command: commandData(event),
        state: (self.getSnapshot() as { value: unknown }).value,
        ...why,
      });
    }),
    /** A runner that came for a task cancelled before it started: it skips the function, and the loop is woken. */
    skipLateRunner: enqueueActions(({ enqueue, context, event, self }) => {
      enqueue.assign({ cancelledBeforeStart: false });
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), {
        type: 'statesmith.executor.done',
        action: context.lastAction ?? (event as { action?: string }).action ?? 'anonymous task',
        generation: context.generation,
        outcome: 'cancelled',
        woke: true,
      });
      enqueue({ type: 'wake', params: { action: context.lastAction ?? 'anonymous task', outcome: 'cancelled' } });
    }),
    /** A task cancelled (or reset) before it started: it ends now, its runner (if one came) gets `done` and the loop wakes. */
    endUnstarted: enqueueActions(({ enqueue, context, event, self }) => {
      const action = context.action as string;
      const cancelling = event.type === 'statesmith.executor.cancel';
      if (cancelling) enqueue({ type: 'logCancel', params: { action } });
      if (context.runner !== null || context.job !== null) {
        answer<ExecutorReply>(enqueue as never, self, context.runner, {
          type: 'statesmith.executor.done',
          action,
          generation: context.generation,
          outcome: 'cancelled',
          woke: true,
        });
        enqueue({ type: 'wake', params: { action, outcome: 'cancelled' } });
      }
      if (context.job !== null) enqueue.sendTo('task', { type: 'drop', generation: context.generation });
      enqueue.assign({
        lastAction: action,
        lastOutcome: 'cancelled',
        lastError: null,
        action: null,
        job: null,
        runner: null,
        // Patroni's sticky flag, for a runner still to come (a reset gives the slot up without it).
        cancelledBeforeStart: cancelling && context.job === null,
      });
      answer(
        enqueue as never,
        self,
        replyToOf(event),
        cancelling ? { type: 'statesmith.executor.cancelled', action, outcome: 'cancelled' } : { type: 'statesmith.executor.unscheduled', action },
      );
    }),
    markCancelRequested: enqueueActions(({ enqueue, context, event }) => {
      if (!context.cancelRequested) enqueue({ type: 'logCancel', params: { action: context.action as string } });
      const waiter = replyToOf(event);
      enqueue.assign({ cancelRequested: true, cancelWaiters: waiter ? [...context.cancelWaiters, waiter] : context.cancelWaiters });
    }),
    addCancelWaiter: assign(({ context, event }) => {
      const waiter = replyToOf(event);
      return { cancelWaiters: waiter ? [...context.cancelWaiters, waiter] : context.cancelWaiters };
    }),
    markStarted: assign({ started: true }),
    recordSettled: assign(({ context, event }) => {
      const settled = event as ExecutorInternalEvent;
      // A function that returned after a cancel reached it still counts as cancelled.
      const outcome = settled.outcome === 'completed' && context.cancelRequested ? 'cancelled' : settled.outcome;
      return { outcome, result: settled.result, error: settled.error ?? null, returned: settled.returned };
    }),
    /** The task is over and cleaned up: free the slot, then tell the runner and the cancellers, then wake. */
    finish: enqueueActions(({ enqueue, context, self }) => {
      const action = context.action as string;
      const outcome = context.outcome as ExecutorOutcome;
      // Patroni's rule: wake unless the function returned "no value" (undefined here).
      const woke = !(context.returned && context.result === undefined);
      enqueue({ type: 'logOutcome', params: { action, outcome, error: context.error } });
      enqueue.sendTo('task', { type: 'drop', generation: context.generation });
      enqueue.assign({
        lastAction: action,
        lastOutcome: outcome,
        lastError: context.error === null ? null : `${context.error.name}: ${context.error.message}`,
        action: null,
        job: null,
        runner: null,
        cancelWaiters: [],
        started: false,
        cancelRequested: false,
        lastWoke: woke,
      });
      answer<ExecutorReply>(enqueue as never, self, context.runner, {
        type: 'statesmith.executor.done',
        action,
        generation: context.generation,
        outcome,
        ...(context.returned && context.result !== undefined ? { result: context.result } : {}),
        ...(context.error !== null ? { error: context.error } : {}),
        woke,
      });
      // Every cancel that reached the task is answered once it cleaned up: each replyTo, the parent, listeners.
      if (context.cancelRequested) {
        for (const waiter of context.cancelWaiters) enqueue.sendTo(waiter, { type: 'statesmith.executor.cancelled', action, outcome });
        answer<ExecutorReply>(enqueue as never, self, null, { type: 'statesmith.executor.cancelled', action, outcome });
      }
    }),
    /** After the lock is released: wake the HA loop if the finished task said so. */
    wakeFinished: enqueueActions(({ enqueue, context }) => {
      if (context.lastWoke) enqueue({ type: 'wake', params: { action: context.lastAction as string, outcome: context.lastOutcome as ExecutorOutcome } });
    }),
    replyNothingToCancel: enqueueActions(({ enqueue, event, self }) =>
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.executor.cancelled', action: null, outcome: null }),
    ),
    replyNothingToReset: enqueueActions(({ enqueue, event, self }) =>
      answer<ExecutorReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.executor.unscheduled', action: null }),
    ),
  },
  guards: {
    markedByTask: ({ event }) => (event as { [kFromTask]?: true })[kFromTask] === true,
    malformed: ({ context, event }) => malformedRun(context, event) !== undefined,
    isCurrentLockEvent: ({ context, event }) => {
      const handed = event as Partial<ExecutorLockEvent>;
      return handed[kFromTask] === true && handed.generation === context.generation;
    },
    isCurrentTask: ({ context, event }) => {
      const settled = event as Partial<ExecutorInternalEvent>;
      return settled[kFromTask] === true && settled.generation === context.generation;
    },
    lateRunnerOfCancelled: ({ context, event }) => context.cancelledBeforeStart && (event as { action?: string }).action === undefined,
    claimed: ({ context }) => context.job !== null,
    forOtherAction: ({ context, event }) => {
      const action = (event as { action?: string }).action;
      return action !== undefined && action !== context.action;
    },
  },
}).createMachine({
  id: 'statesmith.executor',
  context: ({ input }) => ({
    ...noTask,
    name: input.name ?? 'executor',
    action: null,
    generation: 0,
    lineage: globalThis.crypto.randomUUID(),
    lastAction: null,
    lastWoke: false,
    lastOutcome: null,
    lastError: null,
    actions: input.actions ?? {},
    deps: { wakeup: input.wakeup, cancellable: input.cancellable, lock: input.lock, criticalTask: input.criticalTask },
    ownedSubprocess: input.subprocess ?? null,
    hasTaskChild: false,
  }),
  entry: 'spawnOwned',
  initial: 'idle',
  // A lock hand-over that no state below takes is stale (its task was cancelled): give the lock back.
  on: {
    // A verb the executor does not know is answered, never dropped (known commands outrank the wildcard).
    'statesmith.executor.*': { actions: rejectUnknownCommand('executor', ['schedule', 'run', 'cancel', 'reset']) as never },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('executor', ['schedule', 'run', 'cancel', 'reset']) as never,
    // Its own events when no state takes them (stale): a lock hand-over is given back. From outside: refused.
    'statesmith.executor.settled': [{ guard: 'markedByTask' }, { actions: 'rejectForged' }],
    'statesmith.executor.gate': [{ guard: 'markedByTask', actions: 'releaseStale' }, { actions: 'rejectForged' }],
    'statesmith.executor.cleaned': [{ guard: 'markedByTask', actions: 'releaseStale' }, { actions: 'rejectForged' }],
    'statesmith.executor.spawnCriticalTask': [{ guard: 'markedByTask', actions: 'spawnCriticalTask' }, { actions: 'rejectForged' }],
  },
  states: {
    idle: {
      on: {
        'statesmith.executor.schedule': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { target: 'scheduled', actions: ['takeSlot', 'replyScheduled'] },
        ],
        'statesmith.executor.run': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { guard: 'lateRunnerOfCancelled', actions: 'skipLateRunner' },
          { target: 'scheduled.starting', actions: ['takeSlotAndClaim', 'replyScheduled', 'spawnTask'] },
        ],
        'statesmith.executor.cancel': { actions: 'replyNothingToCancel' },
        'statesmith.executor.reset': { actions: 'replyNothingToReset' },
      },
    },
    scheduled: {
      initial: 'waiting',
      on: {
        'statesmith.executor.schedule': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'replyRefused' }],
        'statesmith.executor.cancel': { target: 'idle', actions: 'endUnstarted' },
        'statesmith.executor.reset': { target: 'idle', actions: 'endUnstarted' },
      },
      states: {
        waiting: {
          on: {
            'statesmith.executor.run': [
              { guard: 'malformed', actions: 'rejectMalformed' },
              { guard: 'forOtherAction', actions: 'replyRefused' },
              { target: 'starting', actions: ['claim', 'spawnTask'] },
            ],
          },
        },
        starting: {
          on: {
            'statesmith.executor.run': { actions: 'replyRefused' },
            // The executor lock is held while this step runs: the start check, the subprocess
            // flag reset and the start are one locked step, then the lock is released.
            'statesmith.executor.gate': {
              guard: 'isCurrentLockEvent',
              target: '#statesmith\\.executor.running', // the dot of the machine id escaped
              actions: [
                'beforeStart',
                'rearmOwnedSubprocess',
                'markStarted',
                'replyStarted',
                enqueueActions(({ enqueue }) => enqueue.sendTo('task', { type: 'start' })),
                { type: 'releaseLock', params: ({ event }: { event: { release?: () => void } }) => ({ release: event.release }) },
              ],
            },
          },
        },
      },
    },
    running: {
      on: {
        'statesmith.executor.cancel': {
          target: 'cancelling',
          actions: ['markCancelRequested', enqueueActions(({ enqueue }) => enqueue.sendTo('task', { type: 'cancel' }))],
        },
        'statesmith.executor.settled': { guard: 'isCurrentTask', target: 'done', actions: 'recordSettled' },
        'statesmith.executor.schedule': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'replyRefused' }],
        'statesmith.executor.run': { actions: 'replyRefused' },
        'statesmith.executor.reset': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'the task has started; cancel it instead' } },
        },
      },
    },
    cancelling: {
      entry: 'cancelOwnedSubprocess',
      invoke: { src: 'stopSubprocess', input: ({ context }) => ({ generation: context.generation, deps: context.deps }) },
      on: {
        'statesmith.executor.cancel': { actions: 'addCancelWaiter' },
        'statesmith.executor.settled': { guard: 'isCurrentTask', target: 'done', actions: 'recordSettled' },
        'statesmith.executor.schedule': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'replyRefused' }],
        'statesmith.executor.run': { actions: 'replyRefused' },
        'statesmith.executor.reset': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'the task is being cancelled; wait for it' } },
        },
      },
    },
    done: {
      entry: enqueueActions(({ enqueue }) => enqueue.sendTo('task', { type: 'cleanup' })),
      on: {
        // Patroni's order: slot cleared and critical task reset under the lock, lock released, then the wake-up.
        'statesmith.executor.cleaned': {
          guard: 'isCurrentLockEvent',
          target: 'idle',
          actions: [
            'finish',
            { type: 'releaseLock', params: ({ event }: { event: { release?: () => void } }) => ({ release: event.release }) },
            'wakeFinished',
          ],
        },
        'statesmith.executor.cancel': { actions: 'addCancelWaiter' },
        'statesmith.executor.schedule': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'replyRefused' }],
        'statesmith.executor.run': { actions: 'replyRefused' },
        'statesmith.executor.reset': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'the task has ended and is cleaning up' } },
        },
      },
    },
  },
});
