import { expect } from 'chai';
import { serviceMachine, type ServiceEvent } from '../../machines/service.machine.ts';
import { describeModel } from '../support/model.ts';

describeModel('serviceMachine', serviceMachine, {
  input: { name: 'model' },
  events: () =>
    [
      { type: 'statesmith.service.start' },
      { type: 'statesmith.service.run' },
      { type: 'statesmith.service.cancel' },
      { type: 'statesmith.service.complete' },
      { type: 'statesmith.service.fail' },
      { type: 'statesmith.service.cancelled' },
    ] satisfies ServiceEvent[],
  serialize: (s) => JSON.stringify([s.value, Math.min(s.context.starts, 2)]),
  invariants: {
    idle: (s) => expect(s.context.starts).to.equal(0),
    scheduled: (s) => expect(s.context.starts).to.be.greaterThan(0),
    running: (s) => expect(s.context.starts).to.be.greaterThan(0),
  },
});
