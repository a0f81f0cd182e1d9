/**
 * One cancellable subprocess runner (Patroni's `CancellableSubprocess`) as a statechart.
 *
 * `idle → scheduled (spawning) → running → done`, and on cancel
 * `running → cancelling.terminating (SIGTERM sent) → cancelling.killing (SIGKILL to the
 * process tree) → done`. `cancelled` is the sticky flag: once set, new calls are refused
 * until `resetCancelled`.
 */
import { assign, setup } from 'xstate';

export type SubprocessOutcome = 'completed' | 'failed' | 'cancelled';

export interface SubprocessContext {
  readonly name: string;
  readonly cancelled: boolean;
  readonly argv: readonly string[] | null;
  readonly pid: number | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly outcome: SubprocessOutcome | null;
}

export type SubprocessEvent =
  | { readonly type: 'statesmith.subprocess.call'; readonly argv: readonly string[] }
  | { readonly type: 'statesmith.subprocess.spawned'; readonly pid: number }
  | { readonly type: 'statesmith.subprocess.spawnFailed'; readonly error: string }
  | { readonly type: 'statesmith.subprocess.exited'; readonly exitCode: number | null; readonly signal: string | null }
  | { readonly type: 'statesmith.subprocess.cancel' }
  | { readonly type: 'statesmith.subprocess.terminate' }
  | { readonly type: 'statesmith.subprocess.escalate' }
  | { readonly type: 'statesmith.subprocess.resetCancelled' };

export const subprocessMachine = setup({
  types: {
    context: {} as SubprocessContext,
    events: {} as SubprocessEvent,
    input: {} as { readonly name: string },
  },
  actions: {
    rememberCall: assign(({ event }) =>
      event.type === 'statesmith.subprocess.call'
        ? { argv: event.argv, pid: null, exitCode: null, signal: null, outcome: null }
        : {},
    ),
    rememberPid: assign(({ event }) => (event.type === 'statesmith.subprocess.spawned' ? { pid: event.pid } : {})),
    recordSpawnFailure: assign({ outcome: 'failed' as const }),
    recordExit: assign(({ event }) =>
      event.type === 'statesmith.subprocess.exited'
        ? { exitCode: event.exitCode, signal: event.signal, outcome: 'completed' as const }
        : {},
    ),
    recordCancelledExit: assign(({ event }) =>
      event.type === 'statesmith.subprocess.exited'
        ? { exitCode: event.exitCode, signal: event.signal, outcome: 'cancelled' as const }
        : {},
    ),
    setCancelled: assign({ cancelled: true }),
    clearCancelled: assign({ cancelled: false }),
  },
}).createMachine({
  id: 'statesmith.subprocess',
  context: ({ input }) => ({
    name: input.name,
    cancelled: false,
    argv: null,
    pid: null,
    exitCode: null,
    signal: null,
    outcome: null,
  }),
  initial: 'idle',
  on: {
    'statesmith.subprocess.cancel': { actions: 'setCancelled' },
    'statesmith.subprocess.resetCancelled': { actions: 'clearCancelled' },
  },
  states: {
    idle: {
      on: { 'statesmith.subprocess.call': { target: 'scheduled', actions: 'rememberCall' } },
    },
    scheduled: {
      on: {
        'statesmith.subprocess.spawned': { target: 'running', actions: 'rememberPid' },
        'statesmith.subprocess.spawnFailed': { target: 'done', actions: 'recordSpawnFailure' },
      },
    },
    running: {
      on: {
        'statesmith.subprocess.exited': { target: 'done', actions: 'recordExit' },
        'statesmith.subprocess.terminate': { target: 'cancelling' },
      },
    },
    cancelling: {
      initial: 'terminating',
      states: {
        terminating: { on: { 'statesmith.subprocess.escalate': { target: 'killing' } } },
        killing: {},
      },
      on: { 'statesmith.subprocess.exited': { target: 'done', actions: 'recordCancelledExit' } },
    },
    done: {
      on: { 'statesmith.subprocess.call': { target: 'scheduled', actions: 'rememberCall' } },
    },
  },
});
