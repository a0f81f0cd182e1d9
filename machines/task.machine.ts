/**
 * A task of a `TaskGroup` (frequenz's persistent task) on the shared lifecycle:
 * `idle → scheduled → running → cancelling → done`, with `done.completed`,
 * `done.failed` or `done.cancelled` telling how it ended.
 *
 * A task its group restarts goes back to `scheduled` (the `statesmith.task.restart`
 * event carries the attempt and the back-off), so restarts show in the actor's history:
 * from `running` when its own exit restarts it, from `cancelling` when a restart of its
 * siblings (`one_for_all`, `rest_for_one`) stopped it. A task cancelled before its body
 * ran goes straight to `done.cancelled`: the body never runs. A task its group fails
 * while it waits in `scheduled` (the group's restart intensity was exceeded) goes to
 * `done.failed`.
 *
 * The transitions depend only on the state and the event type (no guards, no actions),
 * so the runtime can step a task through this table without an actor and create the
 * actor when someone asks for it.
 */
import { setup } from 'xstate';

/** The task actor's context. */
export interface TaskContext {
  /** The task's name in its group. */
  readonly name: string;
}

/** The events that step a task through its lifecycle; the task group sends them. */
export type TaskEvent =
  | { readonly type: 'statesmith.task.schedule' }
  | { readonly type: 'statesmith.task.start' }
  | { readonly type: 'statesmith.task.cancel'; readonly reason?: string }
  | { readonly type: 'statesmith.task.complete' }
  | {
      readonly type: 'statesmith.task.fail';
      readonly error?: { readonly name: string; readonly message: string; readonly code?: string; readonly stack?: string };
    }
  | { readonly type: 'statesmith.task.cancelled' }
  | { readonly type: 'statesmith.task.restart'; readonly attempt?: number; readonly delayMs?: number };

/** How the body of a task ended, as the event that reports it. */
const settled = {
  'statesmith.task.complete': 'done.completed',
  'statesmith.task.fail': 'done.failed',
  'statesmith.task.cancelled': 'done.cancelled',
} as const;

/** A task's lifecycle; its transitions depend only on the state and the event type, so a task steps its table until someone reads its actor. */
export const taskMachine = setup({
  types: {
    context: {} as TaskContext,
    events: {} as TaskEvent,
    input: {} as { readonly name: string },
  },
}).createMachine({
  id: 'statesmith.task',
  context: ({ input }) => ({ name: input.name }),
  initial: 'idle',
  states: {
    idle: {
      on: { 'statesmith.task.schedule': 'scheduled', 'statesmith.task.cancel': 'done.cancelled' },
    },
    scheduled: {
      // A task waiting for its (re)start may be cancelled, or failed by its group (intensity exceeded).
      on: { 'statesmith.task.start': 'running', 'statesmith.task.cancel': 'done.cancelled', 'statesmith.task.fail': 'done.failed' },
    },
    running: {
      on: { ...settled, 'statesmith.task.cancel': 'cancelling', 'statesmith.task.restart': 'scheduled' },
    },
    cancelling: {
      // A body may catch the abort and return (completed) or throw something else (failed).
      // A restart of its siblings cancelled it: its supervisor schedules it again.
      on: { ...settled, 'statesmith.task.restart': 'scheduled' },
    },
    done: {
      initial: 'completed',
      states: { completed: {}, failed: {}, cancelled: {} },
    },
  },
});
