/**
 * A service (frequenz's `ServiceBase`) on the shared lifecycle, following its `main`:
 * `idle → scheduled → running → cancelling → done`, with `done.completed`, `done.failed`
 * or `done.cancelled`. A finished service may be started again (`done → scheduled`).
 * Its subtasks are task actors of their own.
 */
import { assign, setup } from 'xstate';

export interface ServiceContext {
  readonly name: string;
  /** How many times `main` has been started. */
  readonly starts: number;
}

export type ServiceEvent =
  | { readonly type: 'statesmith.service.start' }
  | { readonly type: 'statesmith.service.run' }
  | { readonly type: 'statesmith.service.cancel'; readonly reason?: string }
  | { readonly type: 'statesmith.service.complete' }
  | { readonly type: 'statesmith.service.fail' }
  | { readonly type: 'statesmith.service.cancelled' };

const settled = {
  'statesmith.service.complete': 'done.completed',
  'statesmith.service.fail': 'done.failed',
  'statesmith.service.cancelled': 'done.cancelled',
} as const;

export const serviceMachine = setup({
  types: {
    context: {} as ServiceContext,
    events: {} as ServiceEvent,
    input: {} as { readonly name: string },
  },
  actions: {
    countStart: assign({ starts: ({ context }) => context.starts + 1 }),
  },
}).createMachine({
  id: 'statesmith.service',
  context: ({ input }) => ({ name: input.name, starts: 0 }),
  initial: 'idle',
  states: {
    idle: { on: { 'statesmith.service.start': { target: 'scheduled', actions: 'countStart' } } },
    scheduled: {
      on: { 'statesmith.service.run': 'running', 'statesmith.service.cancel': 'done.cancelled' },
    },
    running: { on: { ...settled, 'statesmith.service.cancel': 'cancelling' } },
    cancelling: { on: settled },
    done: {
      initial: 'completed',
      states: { completed: {}, failed: {}, cancelled: {} },
      on: { 'statesmith.service.start': { target: 'scheduled', actions: 'countStart' } },
    },
  },
});
