import { expect } from 'chai';
import { subprocessMachine, type SubprocessEvent } from '../../machines/subprocess.machine.ts';
import { describeModel } from '../support/model.ts';

describeModel('subprocessMachine', subprocessMachine, {
  input: { name: 'model' },
  events: () =>
    [
      { type: 'statesmith.subprocess.call', argv: ['sleep', '1'] },
      { type: 'statesmith.subprocess.spawned', pid: 4242 },
      { type: 'statesmith.subprocess.spawnFailed', error: 'ENOENT' },
      { type: 'statesmith.subprocess.exited', exitCode: 0, signal: null },
      { type: 'statesmith.subprocess.cancel' },
      { type: 'statesmith.subprocess.terminate' },
      { type: 'statesmith.subprocess.escalate' },
      { type: 'statesmith.subprocess.resetCancelled' },
    ] satisfies SubprocessEvent[],
  serialize: (s) => JSON.stringify([s.value, s.context.cancelled, s.context.outcome]),
  invariants: {
    idle: (s) => expect(s.context.argv).to.equal(null),
    scheduled: (s) => expect(s.context).to.include({ pid: null, outcome: null }),
    running: (s) => expect(s.context).to.include({ pid: 4242, outcome: null }),
    cancelling: (s) => expect(s.context.pid).to.equal(4242),
    done: (s) => expect(s.context.outcome).to.be.oneOf(['completed', 'failed', 'cancelled']),
  },
});
