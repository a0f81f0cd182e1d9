/**
 * A service (frequenz's `ServiceBase`) on the shared lifecycle, following its `main`:
 * `idle → scheduled → running → cancelling → done`, with `done.completed`, `done.failed`
 * or `done.cancelled`. A finished service may be started again (`done → scheduled`).
 * `serviceLogic` (src/tasks/) gives it its actions with `.provide()`; this file stays pure.
 *
 * - The service's subtasks run in a task group that is its child (`taskGroup`), spawned
 *   as the service starts, and kept across restarts.
 * - `start` makes `main` a task of the service (`scheduled`); its body starts on a
 *   microtask (`running`), as asyncio schedules a task. A cancel before then ends it
 *   without running it.
 * - `cancel` aborts `main` and cancels the group; `stop` does the same and is answered
 *   with `stopped` once `main` has ended and the group has stopped.
 * - When the group fails (a subtask exceeded its restart intensity), `main` is aborted
 *   and fails with the group's `TaskGroupError`: the service ends `done.failed`, and
 *   whoever supervises the service sees it fail.
 *
 * Every command is answered: with its reply, or with `statesmith.rejected` when the state
 * does not accept it or it is malformed. A rejection changes nothing.
 */
import { assign, enqueueActions, fromCallback, setup, type AnyActorRef, type EventObject } from 'xstate';
import {
  answer,
  forgedRejection,
  rejection,
  rejectUnknownCommand,
  rejectAnyOther,
  replyToOf,
  withInProcess,
  type ErrorData,
  type Rejected,
  kInternal,
} from './protocol.ts';
import { kErrors, taskGroupMachine } from './taskGroup.machine.ts';
import { taskMachine } from './task.machine.ts';
import type { TaskFailure, TaskGroupTask, TaskOutcome } from './taskGroup.machine.ts';

/** What a service's `main` gets besides its signal: a way to start subtasks in the service's group. */
export interface ServiceTools {
  /** Starts `fn` as a task of the service's group (the group child), as `TaskGroup.createTask`. */
  createTask<T>(
    fn: (signal: AbortSignal) => T | Promise<T>,
    options?: { readonly name?: string; readonly logException?: boolean; readonly restart?: Readonly<Record<string, unknown>> },
  ): unknown;
}

/** The body of a service: runs until `signal` aborts. */
export type ServiceMain = (signal: AbortSignal, service: ServiceTools) => Promise<void>;

/** The service actor's context: its `main`, how it ended, and the stops waiting for it. */
export interface ServiceContext {
  /** `<Name>:<uniqueId>`. */
  readonly name: string;
  /** The service's id, shared with its task group. */
  readonly uniqueId: string;
  /** How many times `main` has been started. */
  readonly starts: number;
  /** The runtime's record of the current `main` (in-process), or null before the first start. */
  readonly main: unknown;
  /** How the last `main` ended, and with what. */
  readonly outcome: TaskOutcome | null;
  /** The last `main`'s error as data, when it failed. */
  readonly error: ErrorData | null;
  /** The `stop`s waiting for `main` and the group; `groupErrors` once the group answered. */
  readonly stopWaiters: readonly (AnyActorRef | null)[];
  /** True once the task group answered the current stop. */
  readonly groupStopped: boolean;
  /** The task group's failures as data, from its answer to the stop. */
  readonly groupErrors: readonly TaskFailure[];
  /** The group's failures themselves, in-process. */
  readonly groupRaw: readonly unknown[];
  /** The input, for the runtime. */
  readonly options: ServiceInput;
}

/** The input of `serviceLogic`. */
export interface ServiceInput {
  /** The service's name before the id (default `Service`): the service is `<name>:<uniqueId>`. */
  readonly name?: string;
  /** The service's id, and its task group's; default a unique hex number. */
  readonly uniqueId?: string;
  /** The service's work: it should run until `signal` aborts. */
  readonly main: ServiceMain;
  /** Named tasks that the group's `createTask` commands may name. */
  readonly tasks?: Readonly<Record<string, TaskGroupTask>>;
  /** The clock for the group (restart back-offs, timeouts); default the system clock. */
  readonly clock?: unknown;
  /** The group's supervision strategy (see `TaskGroupInput`); default `'one_for_one'`. */
  readonly strategy?: 'one_for_one' | 'one_for_all' | 'rest_for_one';
  /** The group's restart intensity: past it the group fails, and so does the service; default `Infinity`. */
  readonly maxRestarts?: number;
  /** The window of `maxRestarts`, in ms; default 5,000. */
  readonly withinMs?: number;
  /** How long each stopped subtask may take to end before it is abandoned, in ms; default 5,000. */
  readonly shutdownMs?: number;
}

/**
 * The commands a service accepts: plain data, plus `replyTo` in-process.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, serviceLogic, type ServiceCommand } from 'statesmith';
 * const main = (signal: AbortSignal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
 * const service = createActor(serviceLogic, { input: { name: 'Doc', uniqueId: 'doc-service', main } }).start();
 * const start: ServiceCommand = { type: 'statesmith.service.start' };
 * console.log((await ask(service, start, { timeoutMs: 5000 })).type); // statesmith.service.started
 * service.stop();
 * ```
 */
export type ServiceCommand =
  | { readonly type: 'statesmith.service.start'; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.service.cancel'; readonly reason?: string; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.service.stop'; readonly reason?: string; readonly replyTo?: AnyActorRef };

/** Marks the service's own events (from its `main`), so no message from outside can end it. (Internal: not part of the API.) */
export const kFromMain: typeof kInternal = kInternal;

/** What `main` tells its service. (Internal: not part of the API.) */
export type ServiceInternalEvent =
  | { readonly type: 'statesmith.service.running'; readonly [kFromMain]: true; readonly main: unknown }
  | {
      readonly type: 'statesmith.service.settled';
      readonly [kFromMain]: true;
      readonly main: unknown;
      readonly outcome: TaskOutcome;
      readonly error?: ErrorData;
    }
  | { readonly type: 'statesmith.service.materialise'; readonly [kFromMain]: true; readonly main: unknown; readonly at: string };

/** What the group child answers a service's `stop` with. */
type GroupStopped = { readonly type: 'statesmith.taskGroup.stopped'; readonly errors: readonly TaskFailure[] };

/** Every event the service actor takes: its commands, its internal events, and its task group's replies. */
export type ServiceEvent = ServiceCommand | ServiceInternalEvent | GroupStopped | { readonly type: `statesmith.taskGroup.${string}` };

/**
 * The replies and notices of a service (to `replyTo`, to its parent, and emitted).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, serviceLogic, type ServiceReply } from 'statesmith';
 * const main = (signal: AbortSignal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
 * const service = createActor(serviceLogic, { input: { name: 'Doc', uniqueId: 'doc-service-2', main } }).start();
 * await ask(service, { type: 'statesmith.service.start' }, { timeoutMs: 5000 });
 * const stopped = (await ask(service, { type: 'statesmith.service.stop' }, { timeoutMs: 5000 })) as ServiceReply;
 * console.log(stopped.type, stopped.type === 'statesmith.service.stopped' ? stopped.errors : null); // statesmith.service.stopped []
 * ```
 */
export type ServiceReply =
  | { readonly type: 'statesmith.service.started'; readonly starts: number }
  | { readonly type: 'statesmith.service.cancelling' }
  /** `main` ended. */
  | { readonly type: 'statesmith.service.done'; readonly outcome: TaskOutcome; readonly error?: ErrorData }
  /** To `stop`: `main` has ended and the group has stopped; the failures other than cancellations, `main`'s first. */
  | { readonly type: 'statesmith.service.stopped'; readonly errors: readonly TaskFailure[] }
  | Rejected;

const fromMain = (context: ServiceContext, event: ServiceEvent): boolean =>
  (event as { [kFromMain]?: true })[kFromMain] === true && (event as { main?: unknown }).main === context.main && context.main !== null;

/** How `main`'s end leads to `done`, by its outcome (running or cancelling alike). */
const mainSettled = (['completed', 'failed', 'cancelled'] as const).map((outcome) => ({
  guard: { type: 'settledAs' as const, params: { outcome } },
  target: `done.${outcome}` as const,
  actions: 'recordOutcome' as const,
}));

/** The pure service machine (see the file's comment); `serviceLogic` is it with its group and `main`. */
export const serviceMachine = setup({
  types: {
    context: {} as ServiceContext,
    events: {} as ServiceEvent,
    input: {} as ServiceInput,
    emitted: {} as ServiceReply,
  },
  actors: {
    /** The service's task group, spawned as it starts. */
    taskGroup: taskGroupMachine,
    /** `main`'s task actor, spawned when someone reads it (the runtime starts it in the state it has reached). */
    main: taskMachine,
    /** Lives as long as the service's actor (`statesmith.lifetime`): its cleanup cancels a `main` still running (provided by the runtime). */
    lifetime: fromCallback<EventObject, unknown>(() => undefined),
  },
  actions: {
    rejectForged: enqueueActions(({ enqueue, event, self }) =>
      answer<ServiceReply>(enqueue as never, self, replyToOf(event), forgedRejection(event, self, 'service')),
    ),
    /** Spawns the group child (an `assign`, provided by the runtime). */
    spawnGroup: () => undefined,
    /** Makes `main` a task of the service (an `assign` of `main`, provided by the runtime). */
    createMain: () => undefined,
    /** Aborts `main` with the command's reason. */
    abortMain: () => undefined,
    /** Spawns `main`'s task actor as a child, in the state it has reached. */
    materialise: () => undefined,
    /** Logs how `main` ended. */
    logOutcome: () => undefined,
    /** The group failed (its intensity was exceeded): `main` is aborted and fails with the group's error. */
    failMain: () => undefined,
    countStart: assign({ starts: ({ context }) => context.starts + 1, outcome: null, error: null }),
    replyStarted: enqueueActions(({ enqueue, context, event, self }) =>
      answer<ServiceReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.service.started', starts: context.starts }),
    ),
    cancelGroup: enqueueActions(({ enqueue, event }) => {
      const reason = (event as { reason?: string }).reason;
      enqueue.sendTo('taskGroup', { type: 'statesmith.taskGroup.cancel', ...(reason === undefined ? {} : { reason }) });
    }),
    replyCancelling: enqueueActions(({ enqueue, event, self }) =>
      answer<ServiceReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.service.cancelling' }),
    ),
    stopGroup: enqueueActions(({ enqueue, context, event, self }) => {
      const reason = (event as { reason?: string }).reason;
      enqueue.assign({ stopWaiters: [...context.stopWaiters, replyToOf(event) ?? null], groupStopped: false });
      enqueue.sendTo('taskGroup', { type: 'statesmith.taskGroup.stop', replyTo: self, ...(reason === undefined ? {} : { reason }) });
    }),
    recordGroupStopped: assign(({ context, event }) => ({
      groupStopped: true,
      groupErrors: [...context.groupErrors, ...(event as GroupStopped).errors],
      groupRaw: [...context.groupRaw, ...((event as { [kErrors]?: readonly unknown[] })[kErrors] ?? [])],
    })),
    recordOutcome: enqueueActions(({ enqueue, event, self }) => {
      const settled = event as Extract<ServiceInternalEvent, { type: 'statesmith.service.settled' }>;
      enqueue.assign({ outcome: settled.outcome, error: settled.error ?? null });
      enqueue('logOutcome');
      answer<ServiceReply>(enqueue as never, self, null, {
        type: 'statesmith.service.done',
        outcome: settled.outcome,
        ...(settled.error ? { error: settled.error } : {}),
      });
    }),
    /** Once `main` has ended and the group has stopped: answer every waiting `stop`. */
    answerStops: enqueueActions(({ enqueue, context, self }) => {
      const mainFailure: TaskFailure[] =
        context.outcome === 'failed' && context.error ? [{ task: null, name: context.name, message: context.error.message, error: context.error }] : [];
      const reply = { type: 'statesmith.service.stopped' as const, errors: [...mainFailure, ...context.groupErrors] };
      for (const waiter of context.stopWaiters) answer<ServiceReply>(enqueue as never, self, waiter, withInProcess({ ...reply }, kErrors, context.groupRaw));
      enqueue.assign({ stopWaiters: [], groupStopped: false, groupErrors: [], groupRaw: [] });
    }),
    rejectMalformed: enqueueActions(({ enqueue, event, self }) =>
      answer<ServiceReply>(
        enqueue as never,
        self,
        replyToOf(event),
        rejection(event, self, 'ERR_INVALID_ARG_TYPE', `"reason" must be a string; received ${typeof (event as { reason?: unknown }).reason}`),
      ),
    ),
    rejectRunning: enqueueActions(({ enqueue, event, self }) =>
      answer<ServiceReply>(
        enqueue as never,
        self,
        replyToOf(event),
        rejection(event, self, 'ERR_INVALID_STATE', 'the service is already running; stop it first'),
      ),
    ),
  },
  guards: {
    markedByMain: ({ event }) => (event as { [kFromMain]?: true })[kFromMain] === true,
    badReason: ({ event }) => {
      const reason = (event as { reason?: unknown }).reason;
      return reason !== undefined && typeof reason !== 'string';
    },
    fromMain: ({ context, event }) => fromMain(context, event),
    fromGroup: ({ event }) => Array.isArray((event as { [kErrors]?: unknown })[kErrors]) && Array.isArray((event as { errors?: unknown }).errors),
    groupFailed: ({ event }) => Array.isArray((event as { [kErrors]?: unknown })[kErrors]) && typeof (event as { task?: unknown }).task === 'string',
    settledAs: ({ context, event }, params: { outcome: TaskOutcome }) =>
      fromMain(context, event) && (event as { outcome?: unknown }).outcome === params.outcome,
    stopsAnswerable: ({ context }) => context.stopWaiters.length > 0 && context.groupStopped,
  },
}).createMachine({
  id: 'statesmith.service',
  context: ({ input }) => ({
    name: `${input.name ?? 'Service'}:${input.uniqueId ?? ''}`,
    uniqueId: input.uniqueId ?? '',
    starts: 0,
    main: null,
    outcome: null,
    error: null,
    stopWaiters: [],
    groupStopped: false,
    groupErrors: [],
    groupRaw: [],
    options: input,
  }),
  entry: 'spawnGroup',
  initial: 'idle',
  on: {
    // A verb the service does not know is answered, never dropped (known commands outrank the wildcard).
    'statesmith.service.*': { actions: rejectUnknownCommand('service', ['start', 'cancel', 'stop']) as never },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('service', ['start', 'cancel', 'stop']) as never,
    // Its own events when no state takes them (stale): nothing to do. From outside: refused.
    'statesmith.service.running': [{ guard: 'markedByMain' }, { actions: 'rejectForged' }],
    'statesmith.service.settled': [{ guard: 'markedByMain' }, { actions: 'rejectForged' }],
    'statesmith.service.cancel': [{ guard: 'badReason', actions: 'rejectMalformed' }, { actions: ['cancelGroup', 'replyCancelling'] }],
    'statesmith.service.stop': [{ guard: 'badReason', actions: 'rejectMalformed' }, { actions: 'stopGroup' }],
    // Only the group child's own answer counts: it carries the failures in-process, under a symbol no message can have.
    'statesmith.taskGroup.stopped': { guard: 'fromGroup', actions: 'recordGroupStopped' },
    // The group escalates: a failure of the group is a failure of the service (as in OTP, up the tree).
    'statesmith.taskGroup.failed': { guard: 'groupFailed', actions: 'failMain' },
    'statesmith.service.materialise': [{ guard: 'fromMain', actions: 'materialise' }, { guard: 'markedByMain' }, { actions: 'rejectForged' }],
  },
  states: {
    idle: {
      always: { guard: 'stopsAnswerable', actions: 'answerStops' },
      on: { 'statesmith.service.start': { target: 'scheduled', actions: ['countStart', 'createMain', 'replyStarted'] } },
    },
    scheduled: {
      on: {
        'statesmith.service.start': { actions: 'rejectRunning' },
        'statesmith.service.running': { guard: 'fromMain', target: 'running' },
        'statesmith.taskGroup.failed': { guard: 'groupFailed', target: 'cancelling', actions: 'failMain' },
        // Cancelled before its body ran: it ends as it settles (at once), without running.
        'statesmith.service.cancel': [
          { guard: 'badReason', actions: 'rejectMalformed' },
          { target: 'cancelling', actions: ['abortMain', 'cancelGroup', 'replyCancelling'] },
        ],
        'statesmith.service.stop': [
          { guard: 'badReason', actions: 'rejectMalformed' },
          { target: 'cancelling', actions: ['abortMain', 'stopGroup'] },
        ],
      },
    },
    running: {
      on: {
        'statesmith.service.start': { actions: 'rejectRunning' },
        'statesmith.service.settled': mainSettled,
        'statesmith.service.cancel': [
          { guard: 'badReason', actions: 'rejectMalformed' },
          { target: 'cancelling', actions: ['abortMain', 'cancelGroup', 'replyCancelling'] },
        ],
        'statesmith.service.stop': [
          { guard: 'badReason', actions: 'rejectMalformed' },
          { target: 'cancelling', actions: ['abortMain', 'stopGroup'] },
        ],
        'statesmith.taskGroup.failed': { guard: 'groupFailed', target: 'cancelling', actions: 'failMain' },
      },
    },
    cancelling: {
      on: {
        'statesmith.service.start': { actions: 'rejectRunning' },
        'statesmith.service.settled': mainSettled,
        'statesmith.service.cancel': [{ guard: 'badReason', actions: 'rejectMalformed' }, { actions: ['cancelGroup', 'replyCancelling'] }],
      },
    },
    done: {
      initial: 'completed',
      always: { guard: 'stopsAnswerable', actions: 'answerStops' },
      states: {
        completed: {},
        failed: {},
        cancelled: {},
        /** A durable service's `main` was running when its process ended, and was not run again. */
        interrupted: {},
      },
      on: { 'statesmith.service.start': { target: 'scheduled', actions: ['countStart', 'createMain', 'replyStarted'] } },
    },
  },
});
