import { expect } from 'chai';
import { coordinatorMachine, type CoordinatorEvent } from '../../machines/coordinator.machine.ts';
import { describeModel } from '../support/model.ts';

describeModel('coordinatorMachine', coordinatorMachine, {
  input: { memberId: 'model' },
  events: (s) =>
    [
      { type: 'statesmith.coordinator.start' },
      { type: 'statesmith.coordinator.connected' },
      { type: 'statesmith.coordinator.connectFailed' },
      { type: 'statesmith.coordinator.beat' },
      { type: 'statesmith.coordinator.lost' },
      { type: 'statesmith.coordinator.retry', attempt: s.context.attempt + 1, backoffMs: 100 * 2 ** s.context.attempt },
      { type: 'statesmith.coordinator.stop' },
    ] satisfies CoordinatorEvent[],
  serialize: (s) => JSON.stringify([s.value, Math.min(s.context.attempt, 2), Math.min(s.context.beats, 1)]),
  invariants: {
    connected: (s) => expect([s.context.attempt, s.context.backoffMs]).to.deep.equal([0, 0]),
    disconnected: (s) => expect(s.context.beats).to.equal(0),
    reconnecting: (s) => expect(s.context.backoffMs).to.equal(s.context.attempt === 0 ? 0 : 100 * 2 ** (s.context.attempt - 1)),
  },
});
