/**
 * Patroni's `CriticalTask` interlock as a statechart: a critical step either happened
 * (`done.completed`, with its result) or was cancelled before it could (`done.cancelled`).
 * `reset` makes it `idle` again for the next task.
 *
 * Unlike the original, completion is a state, not "result is not None": a step that
 * completes with `undefined` still counts as done, so `cancel()` answers false for it.
 */
import { assign, setup } from 'xstate';

export interface CriticalTaskContext {
  readonly name: string;
  readonly isCancelled: boolean;
  readonly result: unknown;
}

export type CriticalTaskEvent =
  | { readonly type: 'statesmith.critical.complete'; readonly result: unknown }
  | { readonly type: 'statesmith.critical.cancel' }
  | { readonly type: 'statesmith.critical.reset' };

export const criticalTaskMachine = setup({
  types: {
    context: {} as CriticalTaskContext,
    events: {} as CriticalTaskEvent,
    input: {} as { readonly name: string },
  },
  actions: {
    storeResult: assign(({ event }) => (event.type === 'statesmith.critical.complete' ? { result: event.result } : {})),
    markCancelled: assign({ isCancelled: true }),
    clear: assign({ isCancelled: false, result: undefined }),
  },
}).createMachine({
  id: 'statesmith.criticalTask',
  context: ({ input }) => ({ name: input.name, isCancelled: false, result: undefined }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        'statesmith.critical.complete': { target: 'done.completed', actions: 'storeResult' },
        'statesmith.critical.cancel': { target: 'done.cancelled', actions: 'markCancelled' },
      },
    },
    done: {
      initial: 'completed',
      states: { completed: {}, cancelled: {} },
      on: { 'statesmith.critical.reset': { target: 'idle', actions: 'clear' } },
    },
  },
});
