/**
 * The single-slot executor (Patroni's `AsyncExecutor`) as a statechart.
 *
 * `idle → scheduled → running → cancelling → done → idle`. The slot (`action`) is set on
 * `schedule` and cleared when the machine returns to `idle`; `busy` is `action !== null`.
 * Each scheduled task gets a new `generation`, and `start`/`finish` only act for the
 * current one, so a stale task can never move the slot of a newer one.
 *
 * Pure: no timers, no I/O. The runtime (`src/executor/AsyncExecutor.ts`) sends the events.
 */
import { assign, setup } from 'xstate';

/** How a task ended. */
export type ExecutorOutcome = 'completed' | 'failed' | 'cancelled';

export interface ExecutorContext {
  readonly name: string;
  /** The slot: the scheduled action's name, or null when free. */
  readonly action: string | null;
  /** Increases with every `schedule`; identifies the task in the slot. */
  readonly generation: number;
  /** True once `cancel()` reached the current task. */
  readonly cancelRequested: boolean;
  /** The last finished task: its action, outcome and error message. */
  readonly lastAction: string | null;
  readonly lastOutcome: ExecutorOutcome | null;
  readonly lastError: string | null;
}

export type ExecutorEvent =
  | { readonly type: 'statesmith.executor.schedule'; readonly action: string }
  | { readonly type: 'statesmith.executor.start'; readonly generation: number }
  | { readonly type: 'statesmith.executor.cancel' }
  | { readonly type: 'statesmith.executor.finish'; readonly generation: number; readonly outcome: ExecutorOutcome; readonly error?: string }
  | { readonly type: 'statesmith.executor.reset' };

export const executorMachine = setup({
  types: {
    context: {} as ExecutorContext,
    events: {} as ExecutorEvent,
    input: {} as { readonly name: string },
  },
  guards: {
    isCurrentGeneration: ({ context, event }) =>
      'generation' in event && event.generation === context.generation,
  },
  actions: {
    takeSlot: assign(({ context, event }) => {
      if (event.type !== 'statesmith.executor.schedule') return {};
      return { action: event.action, generation: context.generation + 1, cancelRequested: false };
    }),
    markCancelRequested: assign({ cancelRequested: true }),
    recordOutcome: assign(({ context, event }) => {
      if (event.type !== 'statesmith.executor.finish') return {};
      return { lastAction: context.action, lastOutcome: event.outcome, lastError: event.error ?? null };
    }),
    recordUnscheduled: assign(({ context }) => ({
      lastAction: context.action,
      lastOutcome: 'cancelled' as const,
      lastError: null,
    })),
    clearSlot: assign({ action: null, cancelRequested: false }),
  },
}).createMachine({
  id: 'statesmith.executor',
  context: ({ input }) => ({
    name: input.name,
    action: null,
    generation: 0,
    cancelRequested: false,
    lastAction: null,
    lastOutcome: null,
    lastError: null,
  }),
  initial: 'idle',
  states: {
    idle: {
      on: { 'statesmith.executor.schedule': { target: 'scheduled', actions: 'takeSlot' } },
    },
    scheduled: {
      on: {
        'statesmith.executor.start': { guard: 'isCurrentGeneration', target: 'running' },
        'statesmith.executor.cancel': { target: 'cancelling', actions: 'markCancelRequested' },
        // resetScheduledAction() before the task started: the slot is simply given up.
        'statesmith.executor.reset': { target: 'idle', actions: ['recordUnscheduled', 'clearSlot'] },
      },
    },
    running: {
      on: {
        'statesmith.executor.cancel': { target: 'cancelling', actions: 'markCancelRequested' },
        'statesmith.executor.finish': { guard: 'isCurrentGeneration', target: 'done', actions: 'recordOutcome' },
      },
    },
    cancelling: {
      on: {
        'statesmith.executor.finish': { guard: 'isCurrentGeneration', target: 'done', actions: 'recordOutcome' },
      },
    },
    done: {
      on: { 'statesmith.executor.reset': { target: 'idle', actions: 'clearSlot' } },
    },
  },
});
