import { expect } from 'chai';
import { createActor } from 'xstate';
import { forceMachine, forceOutputs, type ForceEvent } from '../../machines/locksmith.machine.ts';
import { locksmithLogic } from '../../src/locksmith/locksmithLogic.ts';
import { ForceResult } from '../../src/index.ts';
import { LazyActor } from '../../src/runtime/LazyActor.ts';
import { describeModel } from '../support/model.ts';

const types: ForceEvent['type'][] = [
  'statesmith.force.start',
  'statesmith.force.unforceable',
  'statesmith.force.busy',
  'statesmith.force.recognized',
  'statesmith.force.released',
  'statesmith.force.releasedWithFalse',
  'statesmith.force.releaseRefused',
  'statesmith.force.noOwner',
  'statesmith.force.ownerCompleted',
  'statesmith.force.sent',
  'statesmith.force.unserved',
  'statesmith.force.answered',
  'statesmith.force.ownerRefused',
  'statesmith.force.ownerFailed',
  'statesmith.force.answerTimeout',
  'statesmith.force.abort',
  'statesmith.force.fail',
];
const events = types.map((type) => ({ type }) as ForceEvent);
const finals = new Set([...Object.keys(forceOutputs), 'aborted', 'failed']);

describeModel('forceMachine', forceMachine, {
  input: { name: 'model' },
  events: () => events,
  serialize: (s) => JSON.stringify(s.value),
  invariants: {
    ...Object.fromEntries(
      Object.entries(forceOutputs).map(([state, value]) => [
        state,
        (s: { status: string; output: unknown }) => {
          expect(s.status).to.equal('done');
          expect(s.output).to.equal(value);
        },
      ]),
    ),
    aborted: (s) => expect([s.status, s.output]).to.deep.equal(['done', undefined]),
    failed: (s) => expect([s.status, s.output]).to.deep.equal(['done', undefined]),
  },
});

describe('forceMachine', () => {
  it('numbers its final states as ForceResult does', () => {
    for (const [state, value] of Object.entries(forceOutputs)) {
      const member = Object.values(ForceResult).find((m) => m.value === value);
      expect(member?.name.replace(/_/g, '').toLowerCase(), state).to.equal(state.toLowerCase());
    }
  });

  it('stepped without an actor, agrees with a real actor on every sequence of up to four events', () => {
    let sequences: ForceEvent[][] = [[]];
    let checked = 0;
    for (let depth = 0; depth < 4; depth++) {
      const next: ForceEvent[][] = [];
      for (const sequence of sequences) {
        const actor = createActor(forceMachine, { input: { name: 'x' } }).start();
        const lazy = new LazyActor(forceMachine, 'force', 'x', () => ({ name: 'x' }), 'idle');
        for (const event of sequence) {
          actor.send(event);
          lazy.send(event);
        }
        expect(lazy.state, sequence.map((e) => e.type).join(' → ')).to.equal(String(actor.getSnapshot().value));
        checked++;
        actor.stop();
        // A final state ignores everything: no need to extend those sequences.
        if (!finals.has(lazy.state)) for (const event of events) next.push([...sequence, event]);
      }
      sequences = next;
    }
    expect(checked).to.be.greaterThan(500);
  });
});

describe('locksmithMachine', () => {
  it("refuses the locksmith's own events from outside, and a command that names no lock, changing nothing", () => {
    const actor = createActor(locksmithLogic, { input: { name: 'pure' } }).start();
    const replies: Array<{ type: string; code?: string }> = [];
    actor.on('*', (reply) => replies.push(reply as { type: string; code?: string }));
    actor.send({ type: 'statesmith.locksmith.opSettled', id: 1, ok: true, value: 1 } as never);
    actor.send({ type: 'statesmith.locksmith.force', lock: 'nowhere' });
    actor.send({ type: 'statesmith.locksmith.force' } as never);
    expect(replies.map((r) => r.code)).to.deep.equal(['ERR_INVALID_ARG_VALUE', 'ERR_UNKNOWN_LOCK', 'ERR_INVALID_ARG_TYPE']);
    expect(actor.getSnapshot().value).to.equal('idle');
    actor.stop();
  });
});
