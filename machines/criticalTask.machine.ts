/**
 * Patroni's `CriticalTask` interlock as a statechart on the shared lifecycle,
 * `idle → scheduled → running → cancelling → done`: a critical step either happened
 * (`done.completed`, with its result) or was cancelled before it could (`done.cancelled`).
 * `reset` makes it `idle` again for the next task.
 *
 * - `idle`: no task that may take the step has started since the last reset.
 * - `scheduled`: the executor is starting a task that may take the critical step.
 * - `running`: that task runs; its worker may take the step (`complete`) at any time.
 * - `cancelling`: a cancel met the running task before its step: the step is marked
 *   cancelled (the worker must skip it; a `complete` is refused) until the task ends.
 * - `done.completed` / `done.cancelled`: how the step ended, until `reset`. A cancel that
 *   comes once the step completed answers `false` (Patroni's `cancel()` returning False).
 *
 * The worker takes its step and the main side cancels it each as one atomic step under the
 * task's lock, so a cancel and a completion never interleave: whichever comes first wins.
 * Unlike the original, completion is a state, not "result is not None": a step that
 * completes with `undefined` still counts as done. Every command is answered; one the
 * state does not accept gets `statesmith.rejected`.
 */
import { assign, enqueueActions, setup, type AnyActorRef } from 'xstate';
import { commandData, rejectUnknownCommand, rejectAnyOther, type Rejected } from './protocol.ts';

/** The critical task actor's context. */
export interface CriticalTaskContext {
  /** The critical task's name. */
  readonly name: string;
  /** True once a cancel reached it before a result: the action must not run on. */
  readonly isCancelled: boolean;
  /** The action's result, once it completed; `undefined` before. */
  readonly result: unknown;
}

/** The commands a critical task accepts: plain data, plus `replyTo` in-process. */
export type CriticalTaskEvent =
  | { readonly type: 'statesmith.critical.schedule'; readonly replyTo?: AnyActorRef }
  /** The task that may take the step started (the executor sends it). */
  | { readonly type: 'statesmith.critical.start'; readonly replyTo?: AnyActorRef }
  /** That task ended (the executor sends it before its reset). */
  | { readonly type: 'statesmith.critical.end'; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.critical.complete'; readonly result: unknown; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.critical.cancel'; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.critical.reset'; readonly replyTo?: AnyActorRef };

/**
 * The replies of a critical task (to `replyTo`, to its parent, and emitted).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, criticalTaskLogic, type CriticalTaskReply } from 'statesmith';
 * const task = createActor(criticalTaskLogic, { input: { name: 'start-postmaster' } }).start();
 * await ask(task, { type: 'statesmith.critical.schedule' }, { timeoutMs: 5000 });
 * // A cancel before the critical step started wins: the step will not run.
 * const reply = (await ask(task, { type: 'statesmith.critical.cancel' }, { timeoutMs: 5000 })) as CriticalTaskReply;
 * console.log(reply.type, reply.type === 'statesmith.critical.cancelResult' ? reply.cancelled : null); // statesmith.critical.cancelResult true
 * task.stop();
 * ```
 */
export type CriticalTaskReply =
  | { readonly type: 'statesmith.critical.scheduled' }
  | { readonly type: 'statesmith.critical.started' }
  | { readonly type: 'statesmith.critical.ended' }
  | { readonly type: 'statesmith.critical.completed' }
  /** `cancelled: false` when the step already happened (Patroni's `cancel()` returning False). */
  | { readonly type: 'statesmith.critical.cancelResult'; readonly cancelled: boolean }
  | { readonly type: 'statesmith.critical.wasReset' }
  | Rejected;

const replyToOf = (event: CriticalTaskEvent): AnyActorRef | undefined => event.replyTo;

/** The critical task interlock as a statechart; it does all its work in its transitions, so `criticalTaskLogic` is this machine. */
export const criticalTaskMachine = setup({
  types: {
    context: {} as CriticalTaskContext,
    events: {} as CriticalTaskEvent,
    input: {} as { readonly name?: string },
    emitted: {} as CriticalTaskReply,
  },
  actions: {
    storeResult: assign(({ event }) => (event.type === 'statesmith.critical.complete' ? { result: event.result } : {})),
    markCancelled: assign({ isCancelled: true }),
    clear: assign({ isCancelled: false, result: undefined }),
    reply: enqueueActions(({ enqueue, event, self }, params: unknown) => {
      const reply = params as CriticalTaskReply;
      const to = replyToOf(event);
      if (to) enqueue.sendTo(to, reply);
      enqueue.emit(reply as never);
      if ((self as { _parent?: unknown })._parent !== undefined) enqueue.sendParent(reply as never);
    }),
    reject: enqueueActions(({ enqueue, event, self }, params: unknown) => {
      const reply: Rejected = {
        type: 'statesmith.rejected',
        command: commandData(event),
        state: (self.getSnapshot() as { value: unknown }).value,
        ...(params as { code: string; reason: string }),
      };
      const to = replyToOf(event);
      if (to) enqueue.sendTo(to, reply);
      enqueue.emit(reply as never);
      if ((self as { _parent?: unknown })._parent !== undefined) enqueue.sendParent(reply as never);
    }),
  },
}).createMachine({
  id: 'statesmith.criticalTask',
  context: ({ input }) => ({ name: input.name ?? 'criticalTask', isCancelled: false, result: undefined }),
  initial: 'idle',
  on: {
    // A verb the critical does not know is answered, never dropped (known commands outrank the wildcard).
    'statesmith.critical.*': { actions: rejectUnknownCommand('critical', ['schedule', 'start', 'complete', 'cancel', 'end', 'reset']) as never },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('critical', ['schedule', 'start', 'complete', 'cancel', 'end', 'reset']) as never,
    'statesmith.critical.reset': { target: '.idle', actions: ['clear', { type: 'reply', params: { type: 'statesmith.critical.wasReset' } }] },
  },
  states: {
    idle: {
      on: {
        'statesmith.critical.schedule': { target: 'scheduled', actions: { type: 'reply', params: { type: 'statesmith.critical.scheduled' } } },
        'statesmith.critical.start': { target: 'running', actions: { type: 'reply', params: { type: 'statesmith.critical.started' } } },
        'statesmith.critical.complete': {
          target: 'done.completed',
          actions: ['storeResult', { type: 'reply', params: { type: 'statesmith.critical.completed' } }],
        },
        'statesmith.critical.cancel': {
          target: 'done.cancelled',
          actions: ['markCancelled', { type: 'reply', params: { type: 'statesmith.critical.cancelResult', cancelled: true } }],
        },
        'statesmith.critical.end': { actions: { type: 'reply', params: { type: 'statesmith.critical.ended' } } },
      },
    },
    scheduled: {
      on: {
        'statesmith.critical.schedule': { actions: { type: 'reply', params: { type: 'statesmith.critical.scheduled' } } },
        'statesmith.critical.start': { target: 'running', actions: { type: 'reply', params: { type: 'statesmith.critical.started' } } },
        'statesmith.critical.complete': {
          target: 'done.completed',
          actions: ['storeResult', { type: 'reply', params: { type: 'statesmith.critical.completed' } }],
        },
        // Cancelled before its task ran: the step can never happen.
        'statesmith.critical.cancel': {
          target: 'done.cancelled',
          actions: ['markCancelled', { type: 'reply', params: { type: 'statesmith.critical.cancelResult', cancelled: true } }],
        },
        'statesmith.critical.end': { target: 'idle', actions: { type: 'reply', params: { type: 'statesmith.critical.ended' } } },
      },
    },
    running: {
      on: {
        'statesmith.critical.schedule': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'a task that may take the critical step is running' } },
        },
        'statesmith.critical.start': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'a task that may take the critical step is already running' } },
        },
        'statesmith.critical.complete': {
          target: 'done.completed',
          actions: ['storeResult', { type: 'reply', params: { type: 'statesmith.critical.completed' } }],
        },
        // The cancel came before the step: the worker must skip it, and the task is left to end.
        'statesmith.critical.cancel': {
          target: 'cancelling',
          actions: ['markCancelled', { type: 'reply', params: { type: 'statesmith.critical.cancelResult', cancelled: true } }],
        },
        // The task ended without taking its step: nothing happened.
        'statesmith.critical.end': { target: 'idle', actions: { type: 'reply', params: { type: 'statesmith.critical.ended' } } },
      },
    },
    cancelling: {
      on: {
        'statesmith.critical.schedule': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'the cancelled task has not ended yet' } },
        },
        'statesmith.critical.start': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'the cancelled task has not ended yet' } },
        },
        'statesmith.critical.cancel': { actions: { type: 'reply', params: { type: 'statesmith.critical.cancelResult', cancelled: true } } },
        'statesmith.critical.complete': {
          actions: {
            type: 'reject',
            params: { code: 'ERR_INVALID_STATE', reason: 'the critical step was cancelled; the worker must check isCancelled and skip it' },
          },
        },
        'statesmith.critical.end': { target: 'done.cancelled', actions: { type: 'reply', params: { type: 'statesmith.critical.ended' } } },
      },
    },
    done: {
      initial: 'completed',
      on: {
        'statesmith.critical.schedule': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'the critical step has ended; reset it before the next task' } },
        },
        'statesmith.critical.start': {
          actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'the critical step has ended; reset it before the next task' } },
        },
        'statesmith.critical.end': { actions: { type: 'reply', params: { type: 'statesmith.critical.ended' } } },
      },
      states: {
        completed: {
          on: {
            // Patroni: the step already happened; the canceller reads the result instead.
            'statesmith.critical.cancel': { actions: { type: 'reply', params: { type: 'statesmith.critical.cancelResult', cancelled: false } } },
            'statesmith.critical.complete': {
              actions: {
                type: 'reject',
                params: { code: 'ERR_INVALID_STATE', reason: 'the critical step is already completed; reset it before the next task' },
              },
            },
          },
        },
        cancelled: {
          on: {
            'statesmith.critical.cancel': { actions: { type: 'reply', params: { type: 'statesmith.critical.cancelResult', cancelled: true } } },
            'statesmith.critical.complete': {
              actions: {
                type: 'reject',
                params: { code: 'ERR_INVALID_STATE', reason: 'the critical step was cancelled; the worker must check isCancelled and skip it' },
              },
            },
          },
        },
      },
    },
  },
});

/** The machine type XState infers for the critical task (long: every action spelled out). */
type CriticalTaskMachineType = typeof criticalTaskMachine;

/**
 * The type of {@link criticalTaskLogic}: XState logic for the interlock between a task's
 * critical step and a cancel. `createActor`, `spawn` and `invoke` take it; its commands,
 * replies and context are typed as the README's table of its commands says.
 */
export interface CriticalTaskLogic extends CriticalTaskMachineType {}

/**
 * The critical task as actor logic (it does all its work in its transitions, so the
 * machine itself is the logic).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { criticalTaskLogic } from 'statesmith';
 * const task = createActor(criticalTaskLogic, { input: { name: 'start-postmaster' } }).start();
 * task.send({ type: 'statesmith.critical.complete', result: 4242 });
 * const answer = new Promise((resolve) => task.on('statesmith.critical.cancelResult', resolve));
 * task.send({ type: 'statesmith.critical.cancel' });
 * console.log(await answer, task.getSnapshot().context.result); // { type: 'statesmith.critical.cancelResult', cancelled: false } 4242
 * ```
 */
export const criticalTaskLogic: CriticalTaskLogic = criticalTaskMachine;
