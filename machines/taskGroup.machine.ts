/**
 * frequenz's `PersistentTaskGroup` as a statechart: a group of tasks that keep running
 * until stopped. `taskGroupLogic` (src/tasks/) gives it its table and its actions with
 * `.provide()`; this file stays pure (no I/O, no timers).
 *
 * - `idle`: no task runs (finished tasks may wait to be acknowledged).
 * - `running`: at least one task runs.
 * - `stopping`: a `stop` (or the group's failure) stops the tasks one at a time, newest
 *   first, each within the shutdown budget (`shutdownMs`); one that ignores its cancel
 *   past it is abandoned, and reported as a `TaskAbandonedError`.
 *
 * The group supervises its tasks as an OTP supervisor: a task that exits and is to be
 * restarted (by its restart type) is restarted alone or with its siblings (`strategy`),
 * and each restart counts towards the group's intensity (`maxRestarts` within
 * `withinMs`). Past it, the task that exceeded it fails with a `TaskGroupError`, the group
 * sends `failed` to its parent and stops every task.
 *
 * The group's table is its truth: the running tasks by name, and the finished ones
 * waiting for acknowledgement, in the order they finished. Only the group's own actions
 * change it. Each task is a child: a task's actor is stepped through the task machine's
 * table until someone reads it, and then spawned here, in the state it has reached.
 *
 * Tasks report their end as a batch (one `settled` event per microtask, however many
 * tasks ended in it): the group moves them to the acknowledgement queue, answers each
 * one's `taskDone`, and then resumes whoever awaits them. `wait` and `stop` are answered
 * once nothing runs, all at once, with every finished task acknowledged.
 *
 * Every command is answered: with its reply, or with `statesmith.rejected` when it is
 * malformed. A rejection changes nothing. `createTask` has no immediate reply: its
 * answer is the task's `taskDone` (the hot path of a group of 100,000 tasks).
 */
import { assign, enqueueActions, fromCallback, setup, type AnyActorRef, type EventObject } from 'xstate';
import { answer, forgedRejection, rejectUnknownCommand, rejectAnyOther, replyToOf, type ErrorData, type Rejected, kInternal } from './protocol.ts';
import { taskMachine } from './task.machine.ts';
import type { ExecutorRun } from './executor.machine.ts';

/**
 * What a task's function is told about its run, besides its signal and params: the same
 * `{ idempotencyKey, attempt }` an executor's action gets. The key is the same for every
 * run of one task (its restarts, and its re-run after a crash under `durable()`), and never
 * the same for two tasks; the attempt counts those runs from 1.
 */
export type TaskRun = ExecutorRun;

/** A named task of the registry: gets the task's signal, the command's `params`, and its run's key and attempt. */
export type TaskGroupTask = (signal: AbortSignal, params: unknown, run: TaskRun) => unknown;

/**
 * How a task ended. `interrupted`: a durable group's task was running when its process
 * ended, and was not run again (it is not marked `idempotent()`); it may have done part of
 * its work.
 */
export type TaskOutcome = 'completed' | 'failed' | 'cancelled' | 'interrupted';

/** A failure as it travels in `stopped`/`finished`: which task, and its error. */
export interface TaskFailure {
  /** The registry name it ran, or null for an in-process function. */
  readonly task: string | null;
  /** Its name in the group. */
  readonly name: string;
  /** The error's message, repeated here for readers of the reply. */
  readonly message: string;
  /** The task's error as data. */
  readonly error: ErrorData;
}

/** What the group's actions keep their tasks in; the runtime provides it. */
export interface TaskTableLike {
  /** How many tasks run. */
  readonly runningCount: number;
  /** True when a task named `name` runs. */
  isRunning(name: string): boolean;
}

/** A `stop` or `wait` still to be answered. */
export interface TaskGroupWaiter {
  readonly kind: 'stop' | 'wait';
  readonly replyTo: AnyActorRef | null;
}

/** The task group actor's context. The task table itself lives in the runtime's `table`. */
export interface TaskGroupContext {
  /** `TaskGroup:<uniqueId>`. */
  readonly name: string;
  /** The group's id. */
  readonly uniqueId: string;
  /** The named tasks a `createTask` may ask for. */
  readonly tasks: Readonly<Record<string, TaskGroupTask>>;
  /** The runtime's table of tasks, made as the actor starts. */
  readonly table: TaskTableLike | null;
  /** The `stop` and `wait` commands waiting for the group to fall idle. */
  readonly waiters: readonly TaskGroupWaiter[];
  /** The input's clock and random source, for the table. */
  readonly options: TaskGroupInput;
}

/** The input of `taskGroupLogic`. */
export interface TaskGroupInput {
  /** The group's id: tasks are named `TaskGroup:<uniqueId>:<name>`; default a unique hex number. */
  readonly uniqueId?: string;
  /** Named tasks that a `createTask` command may name (the only way across a process). */
  readonly tasks?: Readonly<Record<string, TaskGroupTask>>;
  /** The clock for restart back-offs; default the system clock. */
  readonly clock?: unknown;
  /** The source of back-off jitter, in [0, 1); default `Math.random`. */
  readonly random?: () => number;
  /** Which tasks restart with one that is restarted (OTP's strategies); default `'one_for_one'`. */
  readonly strategy?: 'one_for_one' | 'one_for_all' | 'rest_for_one';
  /** The group's restart intensity: more restarts than this within `withinMs` fail the group; default `Infinity`. */
  readonly maxRestarts?: number;
  /** The window of `maxRestarts`, in ms; default 5,000 (OTP's period). */
  readonly withinMs?: number;
  /** How long each stopped task may take to end before it is abandoned, in ms; default 5,000, `Infinity` to wait for ever. */
  readonly shutdownMs?: number;
}

/** The restart policy a `createTask` may carry (see `RestartPolicy`). */
export type TaskRestartData = Readonly<Record<string, unknown>>;

/**
 * The commands a task group accepts: plain data, plus `fn` and `replyTo` in-process.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, taskGroupLogic, type TaskGroupCommand } from 'statesmith';
 * const group = createActor(taskGroupLogic, { input: { uniqueId: 'doc-group', tasks: { sum: async (_signal, params) => (params as number[]).reduce((a, b) => a + b, 0) } } }).start();
 * const create: TaskGroupCommand = { type: 'statesmith.taskGroup.createTask', name: 'total', task: 'sum', params: [1, 2, 3] };
 * const done = await ask(group, create, { timeoutMs: 5000 });
 * console.log(done.type, done['result']); // statesmith.taskGroup.taskDone 6
 * group.stop();
 * ```
 */
export type TaskGroupCommand =
  | {
      readonly type: 'statesmith.taskGroup.createTask';
      /** Its name in the group, unique among the running tasks; default a unique hex number. */
      readonly name?: string;
      /** The registry name to run. */
      readonly task?: string;
      readonly params?: unknown;
      /** In-process only: the function to run instead of a named task. */
      readonly fn?: TaskGroupTask;
      readonly restart?: TaskRestartData;
      /** Log a failure when it happens (default true). */
      readonly logException?: boolean;
      readonly replyTo?: AnyActorRef;
    }
  | { readonly type: 'statesmith.taskGroup.cancelTask'; readonly name: string; readonly reason?: string; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.taskGroup.cancel'; readonly reason?: string; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.taskGroup.stop'; readonly reason?: string; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.taskGroup.wait'; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.taskGroup.acknowledge'; readonly name: string; readonly replyTo?: AnyActorRef };

/** The failures themselves that a `stopped`/`finished` reply carries in-process (a symbol never crosses JSON). (Internal: not part of the API.) */
export const kErrors: unique symbol = Symbol('statesmith.taskGroup.errors');

/** Marks the group's own events, so no message from outside can settle or spawn a task. (Internal: not part of the API.) */
export const kFromGroup: typeof kInternal = kInternal;

/** The group's own events: tasks ended (drain the table's queue), or a task's actor is wanted. (Internal: not part of the API.) */
export type TaskGroupInternalEvent =
  | { readonly type: 'statesmith.taskGroup.settled'; readonly [kFromGroup]: true }
  | { readonly type: 'statesmith.taskGroup.escalated'; readonly [kFromGroup]: true }
  | { readonly type: 'statesmith.taskGroup.shutdownTimeout'; readonly [kFromGroup]: true; readonly id: number }
  | { readonly type: 'statesmith.taskGroup.idleCheck'; readonly [kFromGroup]: true }
  | { readonly type: 'statesmith.taskGroup.materialise'; readonly [kFromGroup]: true; readonly task: unknown; readonly at: string };

export type TaskGroupEvent = TaskGroupCommand | TaskGroupInternalEvent;

/**
 * The replies and notices of a task group (to `replyTo`, to its parent, and emitted).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, taskGroupLogic, type TaskGroupReply } from 'statesmith';
 * const group = createActor(taskGroupLogic, { input: { uniqueId: 'doc-group-2', tasks: { fail: async () => Promise.reject(new Error('disk full')) } } }).start();
 * const done = (await ask(group, { type: 'statesmith.taskGroup.createTask', name: 'f', task: 'fail', logException: false }, { timeoutMs: 5000 })) as TaskGroupReply;
 * console.log(done.type, done.type === 'statesmith.taskGroup.taskDone' ? [done.outcome, done.error?.message] : null); // statesmith.taskGroup.taskDone [ 'failed', 'disk full' ]
 * group.stop();
 * ```
 */
export type TaskGroupReply =
  | {
      readonly type: 'statesmith.taskGroup.taskDone';
      readonly name: string;
      readonly task: string | null;
      readonly outcome: TaskOutcome;
      readonly result?: unknown;
      readonly error?: ErrorData;
    }
  | { readonly type: 'statesmith.taskGroup.cancelling'; readonly names: readonly string[] }
  | { readonly type: 'statesmith.taskGroup.acknowledged'; readonly name: string }
  /** To `stop`: the failures other than cancellations, of every task acknowledged. */
  | { readonly type: 'statesmith.taskGroup.stopped'; readonly errors: readonly TaskFailure[] }
  /** To `wait` (Python's `await group`): every failure, cancellations included. */
  | { readonly type: 'statesmith.taskGroup.finished'; readonly errors: readonly TaskFailure[] }
  /** To the parent and listeners: a task exceeded the group's restart intensity, and the group stops every task. */
  | { readonly type: 'statesmith.taskGroup.failed'; readonly task: string; readonly error: ErrorData }
  | Rejected;

const isInternal = (event: TaskGroupEvent): boolean => (event as { [kFromGroup]?: true })[kFromGroup] === true;

/** The pure task group machine (see the file's comment); `taskGroupLogic` is it with its table and actions. */
export const taskGroupMachine = setup({
  types: {
    context: {} as TaskGroupContext,
    events: {} as TaskGroupEvent,
    input: {} as TaskGroupInput,
    emitted: {} as TaskGroupReply,
  },
  actors: {
    /** A task's actor, spawned when someone reads it (the runtime starts it in the state it has reached). */
    task: taskMachine,
    /** Lives as long as the group's actor (`statesmith.lifetime`): its cleanup cancels the tasks left (provided by the runtime). */
    lifetime: fromCallback<EventObject, unknown>(() => undefined),
  },
  actions: {
    /** Answers a malformed command with `statesmith.rejected`. */
    rejectMalformed: () => undefined,
    /** Makes the table (an `assign`, provided by the runtime). */
    openTable: () => undefined,
    /** Starts a task (the command was checked by the `malformed` guard); its answer is `taskDone`, when it ends. */
    createTask: () => undefined,
    /** Cancels the named running task; answers `cancelling` or `rejected`. */
    cancelTask: () => undefined,
    /** Cancels every running task; answers `cancelling` with their names. params `{ reply: boolean }` */
    cancelAll: (_, _params: unknown) => undefined,
    /** Stops the running tasks one at a time, newest first, each within the shutdown budget. */
    beginStop: () => undefined,
    /** A stopped task's shutdown budget ran out: it is abandoned, and the next one is stopped. */
    abandonTask: () => undefined,
    /** Takes the oldest finished task of that name off the queue; answers `acknowledged` or `rejected`. */
    acknowledge: () => undefined,
    /** Moves the tasks that ended to the acknowledgement queue and answers their `taskDone`. */
    recordSettled: () => undefined,
    /** Answers every waiting `stop` and `wait`, acknowledging every finished task; nothing when none waits. */
    answerWaiters: () => undefined,
    /** Spawns a task's actor as a child, in the state it has reached. */
    materialise: () => undefined,
    clearWaiters: assign({ waiters: [] }),
    /** After a batch of ends: when nothing runs any more, go back to idle (an internal event). */
    checkIdle: enqueueActions(({ enqueue, context }) => {
      if ((context.table?.runningCount ?? 0) === 0) enqueue.raise({ type: 'statesmith.taskGroup.idleCheck', [kFromGroup]: true });
    }),
    addWaiter: enqueueActions(({ enqueue, context, event }) => {
      const kind = event.type === 'statesmith.taskGroup.stop' ? 'stop' : 'wait';
      enqueue.assign({ waiters: [...context.waiters, { kind, replyTo: replyToOf(event) ?? null }] });
    }),
    rejectForged: enqueueActions(({ enqueue, event, self }) =>
      answer<TaskGroupReply>(enqueue as never, self, replyToOf(event), forgedRejection(event, self, 'group')),
    ),
  },
  guards: {
    /** The command cannot be accepted at all (provided by the runtime). */
    malformed: () => false,
    internal: ({ event }) => isInternal(event),
  },
}).createMachine({
  id: 'statesmith.taskGroup',
  context: ({ input }) => ({
    name: `TaskGroup:${input.uniqueId ?? ''}`,
    uniqueId: input.uniqueId ?? '',
    tasks: input.tasks ?? {},
    table: null,
    waiters: [],
    options: input,
  }),
  entry: 'openTable',
  initial: 'idle',
  // No eventless transitions: XState checks them after every event, and createTask is the
  // hot path. The group leaves idle on createTask and comes back when a batch of ends
  // leaves nothing running (checked once per batch).
  on: {
    // A verb the taskGroup does not know is answered, never dropped (known commands outrank the wildcard).
    'statesmith.taskGroup.*': { actions: rejectUnknownCommand('taskGroup', ['createTask', 'cancelTask', 'cancel', 'stop', 'wait', 'acknowledge']) as never },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('taskGroup', ['createTask', 'cancelTask', 'cancel', 'stop', 'wait', 'acknowledge']) as never,
    'statesmith.taskGroup.createTask': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'createTask' }],
    'statesmith.taskGroup.cancelTask': { actions: 'cancelTask' },
    'statesmith.taskGroup.cancel': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: { type: 'cancelAll', params: { reply: true } } }],
    'statesmith.taskGroup.acknowledge': { actions: 'acknowledge' },
    'statesmith.taskGroup.settled': [{ guard: 'internal', actions: ['recordSettled', 'checkIdle'] }, { actions: 'rejectForged' }],
    'statesmith.taskGroup.shutdownTimeout': [{ guard: 'internal', actions: ['abandonTask', 'checkIdle'] }, { actions: 'rejectForged' }],
    // A task exceeded the group's intensity while the group was already stopping: it goes on stopping.
    'statesmith.taskGroup.escalated': [{ guard: 'internal' }, { actions: 'rejectForged' }],
    'statesmith.taskGroup.idleCheck': [{ guard: 'internal', target: '.idle' }, { actions: 'rejectForged' }],
    'statesmith.taskGroup.materialise': [{ guard: 'internal', actions: 'materialise' }, { actions: 'rejectForged' }],
  },
  states: {
    idle: {
      // A stop or wait that came while tasks ran is answered as the last one ends; one that comes now, at once.
      entry: ['answerWaiters', 'clearWaiters'],
      on: {
        'statesmith.taskGroup.createTask': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { target: 'running', actions: 'createTask' },
        ],
        'statesmith.taskGroup.stop': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: ['addWaiter', 'answerWaiters', 'clearWaiters'] }],
        'statesmith.taskGroup.wait': { actions: ['addWaiter', 'answerWaiters', 'clearWaiters'] },
        'statesmith.taskGroup.idleCheck': { guard: 'internal' },
      },
    },
    running: {
      on: {
        'statesmith.taskGroup.stop': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { target: 'stopping', actions: ['addWaiter', 'beginStop'] },
        ],
        'statesmith.taskGroup.wait': { actions: 'addWaiter' },
        // The group failed (its restart intensity was exceeded): it stops every task, as a stop would.
        'statesmith.taskGroup.escalated': { guard: 'internal', target: 'stopping', actions: 'beginStop' },
      },
    },
    stopping: {
      on: {
        'statesmith.taskGroup.stop': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'addWaiter' }],
        'statesmith.taskGroup.wait': { actions: 'addWaiter' },
      },
    },
  },
});
