import { expect } from 'chai';
import { kFromProcess, subprocessMachine, type SubprocessEvent } from '../../machines/subprocess.machine.ts';
import { delaysAsEvents, describeModel } from '../support/model.ts';

// A finite terminate timeout (one slice) and an infinite call time limit (slices for ever).
describeModel('subprocessMachine', delaysAsEvents(subprocessMachine), {
  input: { name: 'model', terminateTimeoutMs: 1_000 },
  events: (s) =>
    [
      { type: 'statesmith.subprocess.call', argv: ['sleep', '1'] },
      { type: 'statesmith.subprocess.call', argv: ['sleep', '1'], timeoutMs: 5 },
      { type: 'statesmith.subprocess.call', argv: [] as string[] },
      { type: 'statesmith.subprocess.spawned', [kFromProcess]: true, call: s.context.call, pid: 4242 },
      { type: 'statesmith.subprocess.ended', [kFromProcess]: true, call: s.context.call, exitCode: 0, signal: null },
      {
        type: 'statesmith.subprocess.ended',
        [kFromProcess]: true,
        call: s.context.call,
        exitCode: null,
        signal: null,
        error: { name: 'Error', message: 'ENOENT' },
      },
      // Forged from outside, or from an older call: ignored.
      { type: 'statesmith.subprocess.ended', call: s.context.call, exitCode: 0, signal: null, forged: true } as never,
      { type: 'statesmith.subprocess.ended', [kFromProcess]: true, call: s.context.call - 1, exitCode: 0, signal: null },
      { type: 'statesmith.subprocess.cancel' },
      { type: 'statesmith.subprocess.cancel', kill: true },
      { type: 'statesmith.subprocess.terminate', call: s.context.call },
      { type: 'statesmith.subprocess.resetCancelled' },
      { type: 'statesmith.test.after.callSlice' } as never,
      { type: 'statesmith.test.after.terminateSlice' } as never,
    ] satisfies SubprocessEvent[],
  serialize: (s) => JSON.stringify([s.value, s.context.cancelled, s.context.outcome, s.context.stopReason]),
  invariants: {
    idle: (s) => expect(s.context.argv).to.equal(null),
    scheduled: (s) => expect(s.context).to.include({ pid: null, outcome: null }),
    running: (s) => expect(s.context).to.include({ pid: 4242, outcome: null, stopReason: null }),
    cancelling: (s) => {
      expect(s.context.pid).to.equal(4242);
      expect(s.context.stopReason).to.not.equal(null);
    },
    done: (s) => expect(s.context.outcome).to.be.oneOf(['completed', 'failed', 'cancelled']),
  },
});
