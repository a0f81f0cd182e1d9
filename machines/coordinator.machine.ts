/**
 * A coordinator's connection to its backend (OpenStack coordination's heartbeat and
 * reconnect loop):
 *
 * `disconnected → connecting → connected → reconnecting → stopped`
 *
 * - `connecting`: the first connection. If it fails, `start()` fails and the coordinator
 *   is `disconnected` again (tooz: `started` stays false).
 * - `connected`: a heartbeat goes every `heartbeatMs`. A failed heartbeat, or the
 *   backend reporting its connection lost, moves to `reconnecting`.
 * - `reconnecting`: attempts with exponential back-off and jitter; `attempt` and
 *   `backoffMs` say where it is. Success goes back to `connected`.
 * - `stopped`: final until started again (`start` from `stopped` connects anew).
 *
 * The facade runs the timers and the I/O and reports here; the machine holds the truth.
 */
import { assign, setup } from 'xstate';

export interface CoordinatorContext {
  readonly memberId: string;
  /** Reconnect attempts since the connection was lost (0 while connected). */
  readonly attempt: number;
  /** The delay before the next reconnect attempt. */
  readonly backoffMs: number;
  /** Heartbeats answered since the last connection. */
  readonly beats: number;
}

export type CoordinatorEvent =
  | { readonly type: 'statesmith.coordinator.start' }
  | { readonly type: 'statesmith.coordinator.connected' }
  | { readonly type: 'statesmith.coordinator.connectFailed' }
  | { readonly type: 'statesmith.coordinator.beat' }
  | { readonly type: 'statesmith.coordinator.lost' }
  | { readonly type: 'statesmith.coordinator.retry'; readonly attempt: number; readonly backoffMs: number }
  | { readonly type: 'statesmith.coordinator.stop' };

export const coordinatorMachine = setup({
  types: {
    context: {} as CoordinatorContext,
    events: {} as CoordinatorEvent,
    input: {} as { readonly memberId: string },
  },
  actions: {
    reset: assign({ attempt: 0, backoffMs: 0, beats: 0 }),
    beat: assign({ beats: ({ context }) => context.beats + 1 }),
    retry: assign(({ event }) =>
      event.type === 'statesmith.coordinator.retry' ? { attempt: event.attempt, backoffMs: event.backoffMs } : {},
    ),
  },
}).createMachine({
  id: 'statesmith.coordinator',
  context: ({ input }) => ({ memberId: input.memberId, attempt: 0, backoffMs: 0, beats: 0 }),
  initial: 'disconnected',
  states: {
    disconnected: {
      on: { 'statesmith.coordinator.start': { target: 'connecting', actions: 'reset' }, 'statesmith.coordinator.stop': 'stopped' },
    },
    connecting: {
      on: {
        'statesmith.coordinator.connected': { target: 'connected', actions: 'reset' },
        'statesmith.coordinator.connectFailed': 'disconnected',
        'statesmith.coordinator.stop': 'stopped',
      },
    },
    connected: {
      on: {
        'statesmith.coordinator.beat': { actions: 'beat' },
        'statesmith.coordinator.lost': 'reconnecting',
        'statesmith.coordinator.stop': 'stopped',
      },
    },
    reconnecting: {
      on: {
        'statesmith.coordinator.retry': { actions: 'retry' },
        'statesmith.coordinator.connected': { target: 'connected', actions: 'reset' },
        'statesmith.coordinator.stop': 'stopped',
      },
    },
    stopped: {
      on: { 'statesmith.coordinator.start': { target: 'connecting', actions: 'reset' } },
    },
  },
});
