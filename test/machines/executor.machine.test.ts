import { expect } from 'chai';
import { createActor } from 'xstate';
import { executorMachine, kFromTask, type ExecutorEvent } from '../../machines/executor.machine.ts';
import { describeModel, invocationsAsEvents } from '../support/model.ts';

/** The pure machine's task child does nothing: its answers are events the model sends by hand. */
const gate = (generation: number): ExecutorEvent => ({ type: 'statesmith.executor.gate', [kFromTask]: true, generation, release: () => undefined });
const cleaned = (generation: number): ExecutorEvent => ({ type: 'statesmith.executor.cleaned', [kFromTask]: true, generation, release: () => undefined });
const fn = (): string => 'ran';

describeModel('executorMachine', invocationsAsEvents(executorMachine), {
  input: { name: 'model' },
  events: (snapshot) => {
    const generation = snapshot.context.generation;
    const events: ExecutorEvent[] = [
      { type: 'statesmith.executor.schedule', action: 'restart' },
      { type: 'statesmith.executor.run', fn },
      { type: 'statesmith.executor.run', action: 'other', fn },
      { type: 'statesmith.executor.cancel' },
      { type: 'statesmith.executor.reset' },
      gate(generation),
      cleaned(generation),
    ];
    for (const outcome of ['completed', 'failed'] as const) {
      events.push({ type: 'statesmith.executor.settled', [kFromTask]: true, generation, outcome, returned: outcome === 'completed', result: 'ok' });
    }
    return events;
  },
  serialize: (s) =>
    JSON.stringify([s.value, s.context.action, s.context.job !== null, s.context.cancelRequested, s.context.cancelledBeforeStart, s.context.lastOutcome]),
  invariants: {
    idle: (s) => {
      expect(s.context.action).to.equal(null);
      expect(s.context.job).to.equal(null);
      expect(s.context.cancelRequested).to.equal(false);
    },
    scheduled: (s) => {
      expect(s.context.action).to.be.a('string');
      expect(s.context.started).to.equal(false);
      expect(s.context.cancelRequested).to.equal(false);
    },
    'scheduled.waiting': (s) => expect(s.context.job).to.equal(null),
    'scheduled.starting': (s) => expect(s.context.job).to.not.equal(null),
    running: (s) => {
      expect(s.context.started).to.equal(true);
      expect(s.context.cancelRequested).to.equal(false);
    },
    cancelling: (s) => {
      expect(s.context.started).to.equal(true);
      expect(s.context.cancelRequested).to.equal(true);
    },
    done: (s) => {
      expect(s.context.action, 'the slot stays taken until cleaned up').to.be.a('string');
      expect(s.context.outcome).to.be.oneOf(['completed', 'failed', 'cancelled']);
    },
  },
});

describe('executorMachine commands', () => {
  const start = () => createActor(executorMachine, { input: { name: 'g', actions: { named: () => 'named' } } }).start();

  it('answers a command the state does not accept with statesmith.rejected, and changes nothing', () => {
    const actor = start();
    actor.send({ type: 'statesmith.executor.run', fn });
    actor.send(gate(1));
    expect(actor.getSnapshot().value).to.equal('running');
    const heard: unknown[] = [];
    actor.on('*', (event) => heard.push(event));
    const before = actor.getSnapshot();
    actor.send({ type: 'statesmith.executor.reset' });
    expect(heard).to.deep.equal([
      {
        type: 'statesmith.rejected',
        command: { type: 'statesmith.executor.reset' },
        state: 'running',
        code: 'ERR_INVALID_STATE',
        reason: 'the task has started; cancel it instead',
      },
    ]);
    expect(actor.getSnapshot().value).to.equal(before.value);
    expect(actor.getSnapshot().context).to.deep.equal(before.context);
  });

  it('rejects malformed runs with typed codes, in any state', () => {
    const actor = start();
    const heard: Array<{ code?: string }> = [];
    actor.on('statesmith.rejected', (event) => heard.push(event));
    actor.send({ type: 'statesmith.executor.run', action: 'nope' });
    actor.send({ type: 'statesmith.executor.run', action: 42 } as never);
    actor.send({ type: 'statesmith.executor.run', fn: 'x' } as never);
    actor.send({ type: 'statesmith.executor.run' });
    expect(heard.map((r) => r.code)).to.deep.equal(['ERR_UNKNOWN_ACTION', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE']);
    expect(actor.getSnapshot().value).to.equal('idle');
    expect(actor.getSnapshot().status).to.equal('active');
  });

  it('gives back a lock handed over for a task that is no longer current', () => {
    const actor = start();
    let released = 0;
    actor.send({ type: 'statesmith.executor.run', fn });
    actor.send({ type: 'statesmith.executor.cancel' });
    actor.send({ type: 'statesmith.executor.gate', [kFromTask]: true, generation: 1, release: () => released++ });
    expect(actor.getSnapshot().value).to.equal('idle');
    expect(released).to.equal(1);
  });

  it('ignores a settled event that does not come from its task (no symbol), or of another generation', () => {
    const actor = start();
    actor.send({ type: 'statesmith.executor.run', fn });
    actor.send(gate(1));
    const generation = actor.getSnapshot().context.generation;
    actor.send({ type: 'statesmith.executor.settled', generation, outcome: 'completed', returned: true } as never);
    actor.send({ type: 'statesmith.executor.settled', [kFromTask]: true, generation: generation + 1, outcome: 'completed', returned: true });
    expect(actor.getSnapshot().value).to.equal('running');
  });

  it('makes the late runner of a task cancelled before it started skip it, until the next schedule', () => {
    const actor = start();
    actor.send({ type: 'statesmith.executor.schedule', action: 'restart' });
    actor.send({ type: 'statesmith.executor.cancel' });
    const heard: Array<{ type: string; outcome?: string | null }> = [];
    actor.on('*', (event) => heard.push(event));
    actor.send({ type: 'statesmith.executor.run', fn, scheduleAs: 'restart' });
    expect(actor.getSnapshot().value).to.equal('idle');
    expect(heard).to.deep.include({ type: 'statesmith.executor.done', action: 'restart', generation: 1, outcome: 'cancelled', woke: true });
    actor.send({ type: 'statesmith.executor.run', fn, scheduleAs: 'again' });
    expect(actor.getSnapshot().matches('scheduled')).to.equal(true);
  });
});
