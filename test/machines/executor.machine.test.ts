import { expect } from 'chai';
import { createActor } from 'xstate';
import { executorMachine, type ExecutorEvent } from '../../machines/executor.machine.ts';
import { describeModel } from '../support/model.ts';

describeModel('executorMachine', executorMachine, {
  input: { name: 'model' },
  events: (snapshot) => {
    const generation = snapshot.context.generation;
    const events: ExecutorEvent[] = [
      { type: 'statesmith.executor.schedule', action: 'restart' },
      { type: 'statesmith.executor.start', generation },
      { type: 'statesmith.executor.cancel' },
      { type: 'statesmith.executor.reset' },
    ];
    for (const outcome of ['completed', 'failed', 'cancelled'] as const) {
      events.push({ type: 'statesmith.executor.finish', generation, outcome });
    }
    return events;
  },
  serialize: (s) =>
    JSON.stringify([s.value, s.context.action, s.context.cancelRequested, s.context.lastOutcome]),
  invariants: {
    idle: (s) => {
      expect(s.context.action).to.equal(null);
      expect(s.context.cancelRequested).to.equal(false);
    },
    scheduled: (s) => {
      expect(s.context.action).to.equal('restart');
      expect(s.context.cancelRequested).to.equal(false);
    },
    running: (s) => expect(s.context.action).to.equal('restart'),
    cancelling: (s) => {
      expect(s.context.action).to.equal('restart');
      expect(s.context.cancelRequested).to.equal(true);
    },
    done: (s) => {
      expect(s.context.action, 'the slot stays taken until reset').to.equal('restart');
      expect(s.context.lastOutcome).to.be.oneOf(['completed', 'failed', 'cancelled']);
    },
  },
});

describe('executorMachine guards', () => {
  it('ignores start and finish events of a stale generation', () => {
    const actor = createActor(executorMachine, { input: { name: 'g' } }).start();
    actor.send({ type: 'statesmith.executor.schedule', action: 'a' });
    actor.send({ type: 'statesmith.executor.reset' });
    actor.send({ type: 'statesmith.executor.schedule', action: 'b' });
    const stale = actor.getSnapshot().context.generation - 1;
    actor.send({ type: 'statesmith.executor.start', generation: stale });
    expect(actor.getSnapshot().value).to.equal('scheduled');
    actor.send({ type: 'statesmith.executor.start', generation: stale + 1 });
    actor.send({ type: 'statesmith.executor.finish', generation: stale, outcome: 'completed' });
    expect(actor.getSnapshot().value).to.equal('running');
  });

  it('refuses a schedule while the slot is taken', () => {
    const actor = createActor(executorMachine, { input: { name: 'g' } }).start();
    actor.send({ type: 'statesmith.executor.schedule', action: 'a' });
    actor.send({ type: 'statesmith.executor.schedule', action: 'b' });
    expect(actor.getSnapshot().context).to.include({ action: 'a', generation: 1 });
  });
});
