import { expect } from 'chai';
import { assign } from 'xstate';
import { kFromMain, serviceMachine, type ServiceEvent } from '../../machines/service.machine.ts';
import { taskGroupLogic } from '../../src/tasks/taskGroupLogic.ts';
import { describeModel } from '../support/model.ts';

/** The pure machine with a stand-in `main` (a token per start) and a real group child. */
const machine = serviceMachine.provide({
  actors: { taskGroup: taskGroupLogic },
  actions: {
    spawnGroup: assign(({ spawn }) => {
      spawn('taskGroup', { id: 'taskGroup', input: { uniqueId: 'model' } as never });
      return {};
    }),
    createMain: assign({ main: ({ context }) => `main #${context.starts}` }),
  },
});

describeModel('serviceMachine', machine, {
  input: { name: 'Model', uniqueId: 'model', main: async () => undefined },
  // A durable service whose main a crash cut short (test/durable/service.test.ts).
  restoredOnly: ['statesmith.service.done.interrupted'],
  events: (s) =>
    [
      { type: 'statesmith.service.start' },
      { type: 'statesmith.service.cancel' },
      { type: 'statesmith.service.stop' },
      { type: 'statesmith.service.running', [kFromMain]: true, main: s.context.main },
      { type: 'statesmith.service.settled', [kFromMain]: true, main: s.context.main, outcome: 'completed' },
      { type: 'statesmith.service.settled', [kFromMain]: true, main: s.context.main, outcome: 'failed', error: { name: 'Error', message: 'boom' } },
      { type: 'statesmith.service.settled', [kFromMain]: true, main: s.context.main, outcome: 'cancelled' },
      // Forged: from outside, an end of main changes nothing.
      { type: 'statesmith.service.settled', main: s.context.main, outcome: 'completed', forged: true } as never,
    ] satisfies ServiceEvent[],
  // Whether a stop is still waiting depends on the group child's answer, which the graph's pure steps do not run.
  serialize: (s) => JSON.stringify([s.value, Math.min(s.context.starts, 2)]),
  invariants: {
    idle: (s) => expect(s.context.starts).to.equal(0),
    scheduled: (s) => expect(s.context.starts).to.be.greaterThan(0),
    running: (s) => expect(s.context.starts).to.be.greaterThan(0),
    done: (s) => expect(s.context.outcome).to.not.equal(null),
  },
});
