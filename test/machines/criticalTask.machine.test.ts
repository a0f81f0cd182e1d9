import { expect } from 'chai';
import { createActor } from 'xstate';
import { criticalTaskMachine, type CriticalTaskEvent, type CriticalTaskReply } from '../../machines/criticalTask.machine.ts';
import { describeModel } from '../support/model.ts';

describeModel('criticalTaskMachine', criticalTaskMachine, {
  input: { name: 'model' },
  events: () => [
    { type: 'statesmith.critical.schedule' },
    { type: 'statesmith.critical.complete', result: 'postmaster' },
    { type: 'statesmith.critical.cancel' },
    { type: 'statesmith.critical.reset' },
  ] satisfies CriticalTaskEvent[],
  serialize: (s) => JSON.stringify([s.value, s.context.isCancelled, s.context.result ?? null]),
  invariants: {
    idle: (s) => expect(s.context).to.include({ isCancelled: false, result: undefined }),
    scheduled: (s) => expect(s.context).to.include({ isCancelled: false, result: undefined }),
    'done.completed': (s) => expect(s.context).to.include({ isCancelled: false, result: 'postmaster' }),
    'done.cancelled': (s) => expect(s.context).to.include({ isCancelled: true, result: undefined }),
  },
});

describe('criticalTaskMachine answers', () => {
  it('answers every command: a cancel after the step says false, a complete after a cancel is rejected', () => {
    const actor = createActor(criticalTaskMachine, { input: {} }).start();
    const heard: CriticalTaskReply[] = [];
    actor.on('*', (reply) => heard.push(reply as CriticalTaskReply));
    actor.send({ type: 'statesmith.critical.schedule' });
    actor.send({ type: 'statesmith.critical.complete', result: 1 });
    actor.send({ type: 'statesmith.critical.cancel' });
    actor.send({ type: 'statesmith.critical.schedule' });
    actor.send({ type: 'statesmith.critical.reset' });
    actor.send({ type: 'statesmith.critical.cancel' });
    actor.send({ type: 'statesmith.critical.complete', result: 2 });
    expect(heard.map((r) => (r.type === 'statesmith.rejected' ? `rejected ${r.code}` : r.type === 'statesmith.critical.cancelResult' ? `cancel ${r.cancelled}` : r.type))).to.deep.equal([
      'statesmith.critical.scheduled',
      'statesmith.critical.completed',
      'cancel false',
      'rejected ERR_INVALID_STATE',
      'statesmith.critical.wasReset',
      'cancel true',
      'rejected ERR_INVALID_STATE',
    ]);
    expect(actor.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
  });
});
