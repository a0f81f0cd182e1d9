import { expect } from 'chai';
import { criticalTaskMachine, type CriticalTaskEvent } from '../../machines/criticalTask.machine.ts';
import { describeModel } from '../support/model.ts';

describeModel('criticalTaskMachine', criticalTaskMachine, {
  input: { name: 'model' },
  events: () => [
    { type: 'statesmith.critical.complete', result: 'postmaster' },
    { type: 'statesmith.critical.cancel' },
    { type: 'statesmith.critical.reset' },
  ] satisfies CriticalTaskEvent[],
  serialize: (s) => JSON.stringify([s.value, s.context.isCancelled, s.context.result ?? null]),
  invariants: {
    idle: (s) => expect(s.context).to.include({ isCancelled: false, result: undefined }),
    'done.completed': (s) => expect(s.context).to.include({ isCancelled: false, result: 'postmaster' }),
    'done.cancelled': (s) => expect(s.context).to.include({ isCancelled: true, result: undefined }),
  },
});
