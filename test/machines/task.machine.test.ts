import { expect } from 'chai';
import { createActor } from 'xstate';
import { taskMachine, type TaskEvent } from '../../machines/task.machine.ts';
import { LazyActor } from '../../src/runtime/LazyActor.ts';
import { describeModel } from '../support/model.ts';

const events: TaskEvent[] = [
  { type: 'statesmith.task.schedule' },
  { type: 'statesmith.task.start' },
  { type: 'statesmith.task.cancel' },
  { type: 'statesmith.task.complete' },
  { type: 'statesmith.task.fail' },
  { type: 'statesmith.task.cancelled' },
  { type: 'statesmith.task.restart', attempt: 1, delayMs: 100 },
];

describeModel('taskMachine', taskMachine, {
  input: { name: 'model' },
  events: () => events,
  serialize: (s) => JSON.stringify(s.value),
  invariants: {
    done: (s) => expect(s.status).to.equal('active'),
  },
});

describe('taskMachine stepped without an actor (LazyActor)', () => {
  it('agrees with a real actor on every sequence of up to four events', () => {
    const sequences: TaskEvent[][] = [[]];
    for (let depth = 0; depth < 4; depth++) {
      for (const sequence of [...sequences]) {
        if (sequence.length === depth) for (const event of events) sequences.push([...sequence, event]);
      }
    }
    for (const sequence of sequences) {
      const actor = createActor(taskMachine, { input: { name: 'x' } }).start();
      const lazy = new LazyActor(taskMachine, 'task', 'x', (name) => ({ name }), 'idle');
      for (const event of sequence) {
        actor.send(event);
        lazy.send(event);
      }
      const expected = JSON.stringify(actor.getSnapshot().value);
      expect(JSON.stringify(lazy.actor.getSnapshot().value), sequence.map((e) => e.type).join(' → ')).to.equal(expected);
      lazy.actor.stop();
      actor.stop();
    }
    expect(sequences.length).to.be.greaterThan(2000);
  });

  it('hands over to the real actor on first read; later events go to the actor', () => {
    const lazy = new LazyActor(taskMachine, 'task', 'y', (name) => ({ name }), 'idle');
    lazy.send({ type: 'statesmith.task.schedule' });
    const actor = lazy.actor;
    expect(actor.getSnapshot().value).to.equal('scheduled');
    expect(actor.getSnapshot().context.name).to.equal('y');
    lazy.send({ type: 'statesmith.task.start' });
    expect(actor.getSnapshot().value).to.equal('running');
    expect(lazy.state).to.equal('running');
    expect(lazy.matches('running')).to.equal(true);
    actor.stop();
  });
});
