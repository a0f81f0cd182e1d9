import { expect } from 'chai';
import { createActor } from 'xstate';
import { criticalTaskMachine, type CriticalTaskEvent, type CriticalTaskReply } from '../../machines/criticalTask.machine.ts';
import { describeModel } from '../support/model.ts';

describeModel('criticalTaskMachine', criticalTaskMachine, {
  input: { name: 'model' },
  events: () =>
    [
      { type: 'statesmith.critical.schedule' },
      { type: 'statesmith.critical.start' },
      { type: 'statesmith.critical.end' },
      { type: 'statesmith.critical.complete', result: 'postmaster' },
      { type: 'statesmith.critical.cancel' },
      { type: 'statesmith.critical.reset' },
    ] satisfies CriticalTaskEvent[],
  serialize: (s) => JSON.stringify([s.value, s.context.isCancelled, s.context.result ?? null]),
  invariants: {
    idle: (s) => expect(s.context).to.include({ isCancelled: false, result: undefined }),
    scheduled: (s) => expect(s.context).to.include({ isCancelled: false, result: undefined }),
    running: (s) => expect(s.context).to.include({ isCancelled: false, result: undefined }),
    cancelling: (s) => expect(s.context).to.include({ isCancelled: true, result: undefined }),
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
    expect(
      heard.map((r) =>
        r.type === 'statesmith.rejected' ? `rejected ${r.code}` : r.type === 'statesmith.critical.cancelResult' ? `cancel ${r.cancelled}` : r.type,
      ),
    ).to.deep.equal([
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

describe('criticalTaskMachine on the shared lifecycle', () => {
  it('walks idle → scheduled → running → cancelling → done.cancelled when a cancel meets its running task', () => {
    const actor = createActor(criticalTaskMachine, { input: {} }).start();
    const values: unknown[] = [actor.getSnapshot().value];
    actor.subscribe((s) => values.push(s.value));
    const heard: CriticalTaskReply[] = [];
    actor.on('*', (reply) => heard.push(reply as CriticalTaskReply));
    for (const type of ['schedule', 'start', 'cancel', 'complete', 'end'] as const) actor.send({ type: `statesmith.critical.${type}` } as CriticalTaskEvent);
    expect(values).to.deep.equal(['idle', 'scheduled', 'running', 'cancelling', 'cancelling', { done: 'cancelled' }]);
    expect(heard.map((r) => (r.type === 'statesmith.rejected' ? `rejected ${r.code}` : r.type))).to.deep.equal([
      'statesmith.critical.scheduled',
      'statesmith.critical.started',
      'statesmith.critical.cancelResult',
      'rejected ERR_INVALID_STATE',
      'statesmith.critical.ended',
    ]);
  });

  it('a step taken while running completes it, and a later cancel answers false', () => {
    const actor = createActor(criticalTaskMachine, { input: {} }).start();
    actor.send({ type: 'statesmith.critical.start' });
    actor.send({ type: 'statesmith.critical.complete', result: 7 });
    const answers: boolean[] = [];
    actor.on('statesmith.critical.cancelResult', (r) => answers.push(r.cancelled));
    actor.send({ type: 'statesmith.critical.cancel' });
    actor.send({ type: 'statesmith.critical.end' });
    expect(answers).to.deep.equal([false]);
    expect(actor.getSnapshot().value).to.deep.equal({ done: 'completed' });
  });
});
