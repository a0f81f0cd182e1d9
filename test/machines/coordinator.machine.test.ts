import { expect } from 'chai';
import { createActor } from 'xstate';
import { coordinatorMachine, kFromEngine, type CoordinatorEvent } from '../../machines/coordinator.machine.ts';
import { delaysAsEvents, describeModel, invocationsAsEvents } from '../support/model.ts';

/** A stand-in engine: the delays and back-off the model needs, nothing else. */
const engine = { memberId: 'model', heartbeatMs: 1_000, backoffDelay: (attempt: number) => 100 * 2 ** (attempt - 1) };

const model = invocationsAsEvents(delaysAsEvents(coordinatorMachine));

describeModel('coordinatorMachine', model, {
  input: { engine },
  events: () =>
    [
      { type: 'statesmith.coordinator.start' },
      { type: 'statesmith.coordinator.stop' },
      { type: 'statesmith.coordinator.lost', [kFromEngine]: true, error: { name: 'Error', message: 'gone' } },
      // Forged from outside: refused.
      { type: 'statesmith.coordinator.lost', forged: true } as never,
      { type: 'statesmith.test.after.slice' } as never,
      ...['connect', 'ping', 'reconnect', 'shutdown'].flatMap(
        (id) => [{ type: `xstate.done.actor.${id}` }, { type: `xstate.error.actor.${id}`, error: new Error('down') }] as never[],
      ),
    ] satisfies CoordinatorEvent[],
  serialize: (s) => JSON.stringify([s.value, Math.min(s.context.attempt, 3)]),
  invariants: {
    disconnected: (s) => expect(s.context.attempt).to.equal(0),
    connected: (s) => expect(s.context.attempt).to.equal(0),
    reconnecting: (s) => {
      expect(s.context.attempt).to.be.greaterThan(0);
      expect(s.context.backoffMs).to.equal(100 * 2 ** (s.context.attempt - 1));
    },
  },
});

describe('coordinatorMachine', () => {
  it('never fires an infinite heartbeat: the delay comes in slices', () => {
    const actor = createActor(delaysAsEvents(coordinatorMachine), { input: { engine: { ...engine, heartbeatMs: Infinity } } });
    expect(actor).to.not.equal(undefined);
  });
});
