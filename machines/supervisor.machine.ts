/**
 * The lifecycle of a supervisor (`supervise(logic, options)` in src/tasks/): OTP's
 * restart of a crashed child, with Akka's back-off, for XState, where a crashed child
 * otherwise stays dead (xstate #5088).
 *
 * - `running`: the inner actor runs; every event sent to the supervisor goes to it.
 * - `backingOff`: the inner actor failed (or, `permanent`, finished); it starts again
 *   when the back-off ends (`until`). Events that come meanwhile are kept, up to
 *   `bufferSize`, for the next inner actor; the runtime refuses the rest.
 * - `failed`: the restart intensity (`maxRestarts` within `withinMs`) is exceeded. The
 *   runtime then fails the supervisor with the inner actor's error (escalation), or,
 *   with `escalate: false`, keeps it here, refusing events.
 * - `done` (final): the inner actor finished and is not restarted; its output is the output.
 *
 * The machine is pure and only assigns: the runtime computes each step with XState's
 * `transition()`, passing the clock time in the events, and does the effects itself
 * (starting the inner actor, the timer, the replies). Ordinary messages in `running` do
 * not pass through it at all: they go straight to the inner actor.
 */
import { assign, not, setup, type EventObject } from 'xstate';
import type { ErrorData } from './protocol.ts';
import { backoffDelay, type RestartSettings } from './restart.ts';

/** The supervisor's settings, checked, with their defaults. */
export interface SupervisorSettings extends RestartSettings {
  /** The supervisor's name, for rejections and logs. */
  readonly name: string;
  /** Where a restart starts from: the initial state, or the last snapshot before the failure. */
  readonly restartFrom: 'initial' | 'snapshot';
  /** How many events a back-off keeps. */
  readonly bufferSize: number;
  /** When the intensity is exceeded: fail the supervisor (OTP's escalation), or stay in `failed`. */
  readonly escalate: boolean;
}

/** The supervisor's context: its counters, its back-off and the events it keeps. */
export interface SupervisorContext {
  /** The supervisor's name. */
  readonly name: string;
  /** How many times the inner actor was restarted. */
  readonly restarts: number;
  /** The clock times of the restarts within `withinMs` (the intensity window). */
  readonly history: readonly number[];
  /** When the current back-off ends (clock time), or null outside `backingOff`. */
  readonly until: number | null;
  /** The current back-off, in ms. */
  readonly delayMs: number;
  /** When the current inner actor started (clock time), for `resetAfterMs`. */
  readonly startedAt: number;
  /** Events kept during a back-off, for the next inner actor. */
  readonly buffer: readonly EventObject[];
  /** Why the inner actor last failed, as data. */
  readonly lastError: ErrorData | null;
  /** The inner actor's output, once it finished for good. */
  readonly output: unknown;
  /** The settings the supervisor was made with. */
  readonly settings: SupervisorSettings;
}

/** The input of the lifecycle machine. */
export interface SupervisorInput {
  /** The supervisor's settings. */
  readonly settings: SupervisorSettings;
  /** The clock time the supervisor starts at. */
  readonly at: number;
}

/** What the runtime tells the lifecycle; `at` is the clock time, `random` in [0, 1) the jitter's draw. */
export type SupervisorEvent =
  | { readonly type: 'statesmith.supervisor.failed'; readonly at: number; readonly random: number; readonly error: ErrorData }
  | { readonly type: 'statesmith.supervisor.finished'; readonly at: number; readonly random: number; readonly output: unknown }
  | { readonly type: 'statesmith.supervisor.due'; readonly at: number }
  | { readonly type: 'statesmith.supervisor.keep'; readonly event: EventObject }
  | { readonly type: 'statesmith.supervisor.flushed' };

/** How many restarts still count at `at`: none after a run of `resetAfterMs`, else those within the window. */
function recent(context: SupervisorContext, at: number): number[] {
  if (at - context.startedAt >= context.settings.resetAfterMs) return [];
  return context.history.filter((when) => at - when < context.settings.withinMs);
}

/** The pure lifecycle of a supervisor (see the file's comment). */
export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
    input: {} as SupervisorInput,
    output: {} as unknown,
  },
  guards: {
    mayRestart: ({ context, event }) => {
      const at = (event as { at: number }).at;
      const finished = event.type === 'statesmith.supervisor.finished';
      if (context.settings.type === 'temporary' || (finished && context.settings.type === 'transient')) return false;
      return recent(context, at).length < context.settings.maxRestarts;
    },
    bufferFull: ({ context }) => context.buffer.length >= context.settings.bufferSize,
  },
  actions: {
    scheduleRestart: assign(({ context, event }) => {
      const { at, random } = event as { at: number; random: number };
      const history = [...recent(context, at), at];
      const delayMs = backoffDelay(context.settings, history.length, random);
      const error = (event as { error?: ErrorData }).error;
      return { restarts: context.restarts + 1, history, until: at + delayMs, delayMs, lastError: error ?? context.lastError };
    }),
    recordFailure: assign({ lastError: ({ event }) => (event as { error: ErrorData }).error }),
    recordOutput: assign({ output: ({ event }) => (event as { output: unknown }).output }),
    markStarted: assign({ startedAt: ({ event }) => (event as { at: number }).at, until: null }),
    keep: assign({ buffer: ({ context, event }) => [...context.buffer, (event as { event: EventObject }).event] }),
    clearBuffer: assign({ buffer: [] }),
  },
}).createMachine({
  id: 'statesmith.supervisor',
  context: ({ input }) => ({
    name: input.settings.name,
    restarts: 0,
    history: [],
    until: null,
    delayMs: 0,
    startedAt: input.at,
    buffer: [],
    lastError: null,
    output: undefined,
    settings: input.settings,
  }),
  initial: 'running',
  states: {
    running: {
      on: {
        'statesmith.supervisor.failed': [
          { guard: 'mayRestart', target: 'backingOff', actions: 'scheduleRestart' },
          { target: 'failed', actions: 'recordFailure' },
        ],
        'statesmith.supervisor.finished': [
          { guard: 'mayRestart', target: 'backingOff', actions: 'scheduleRestart' },
          { target: 'done', actions: 'recordOutput' },
        ],
        'statesmith.supervisor.flushed': { actions: 'clearBuffer' },
      },
    },
    backingOff: {
      on: {
        'statesmith.supervisor.due': { target: 'running', actions: 'markStarted' },
        'statesmith.supervisor.keep': { guard: not('bufferFull'), actions: 'keep' },
      },
    },
    failed: {},
    done: { type: 'final' },
  },
  output: ({ context }: { context: SupervisorContext }) => context.output,
});
