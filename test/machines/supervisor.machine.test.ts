import { expect } from 'chai';
import { supervisorMachine, type SupervisorEvent, type SupervisorSettings } from '../../machines/supervisor.machine.ts';
import { describeModel } from '../support/model.ts';

const settings: SupervisorSettings = {
  name: 'model',
  type: 'transient',
  maxRestarts: 1,
  withinMs: 60_000,
  initialMs: 100,
  maxMs: 100,
  factor: 2,
  jitter: 0.5,
  resetAfterMs: 1_000,
  restartFrom: 'initial',
  bufferSize: 1,
  escalate: true,
};

const boom = { name: 'Error', message: 'boom' };

describeModel('supervisorMachine', supervisorMachine, {
  input: { settings, at: 0 },
  events: (s) =>
    [
      // Failures soon after the start count towards the intensity; one after resetAfterMs does not.
      { type: 'statesmith.supervisor.failed', at: s.context.startedAt + 10, random: 0.5, error: boom },
      { type: 'statesmith.supervisor.failed', at: s.context.startedAt + 2_000, random: 0, error: boom },
      { type: 'statesmith.supervisor.finished', at: s.context.startedAt + 10, random: 0, output: 42 },
      { type: 'statesmith.supervisor.due', at: s.context.until ?? 0 },
      { type: 'statesmith.supervisor.keep', event: { type: 'ping' } },
      { type: 'statesmith.supervisor.flushed' },
    ] satisfies SupervisorEvent[],
  serialize: (s) => JSON.stringify([s.value, Math.min(s.context.restarts, 3), s.context.history.length, s.context.buffer.length]),
  invariants: {
    running: (s) => expect(s.context.until).to.equal(null),
    backingOff: (s) => {
      expect(s.context.restarts).to.be.greaterThan(0);
      // The back-off is initialMs stretched by up to jitter, and capped at maxMs.
      expect(s.context.delayMs).to.be.within(settings.initialMs, settings.maxMs);
      expect(s.context.until).to.equal((s.context.history.at(-1) as number) + s.context.delayMs);
      expect(s.context.history.length).to.be.at.most(settings.maxRestarts);
      expect(s.context.buffer.length).to.be.at.most(settings.bufferSize);
    },
    failed: (s) => {
      expect(s.context.lastError).to.deep.equal(boom);
      expect(s.context.history.length).to.equal(settings.maxRestarts);
    },
    done: (s) => {
      expect(s.status).to.equal('done');
      expect(s.output).to.equal(42);
    },
  },
});
