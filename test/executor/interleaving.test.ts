/**
 * The actor is the only truth: random interleavings of facade calls and direct sends to
 * the executor's actor (including malformed ones) must never desynchronise it. After
 * every step: at most one task runs, `busy` holds exactly when the actor is not idle, a
 * task cancelled before it started never runs; at the end every started task has ended in
 * `done`, no promise is pending and no timer is left behind.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { AsyncExecutor } from '../../src/index.ts';
import { isSettled, settle } from '../support/async.ts';

type Op =
  | { kind: 'schedule'; action: 'a' | 'b' }
  | { kind: 'run' | 'runAsync' }
  | { kind: 'cancel' | 'reset' }
  | { kind: 'complete'; how: 'value' | 'undefined' | 'throw' }
  | { kind: 'send'; event: Record<string, unknown> };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('schedule' as const), action: fc.constantFrom('a' as const, 'b' as const) }),
  fc.record({ kind: fc.constantFrom('run' as const, 'runAsync' as const) }),
  fc.record({ kind: fc.constantFrom('cancel' as const, 'reset' as const) }),
  fc.record({ kind: fc.constant('complete' as const), how: fc.constantFrom('value' as const, 'undefined' as const, 'throw' as const) }),
  fc.record({
    kind: fc.constant('send' as const),
    event: fc.constantFrom<Record<string, unknown>>(
      { type: 'statesmith.executor.schedule', action: 'direct' },
      { type: 'statesmith.executor.cancel' },
      { type: 'statesmith.executor.reset' },
      { type: 'statesmith.executor.run', action: 'unknown-action' },
      { type: 'statesmith.executor.run', action: 42 },
      { type: 'statesmith.executor.settled', generation: 1, outcome: 'completed', returned: true },
      { type: 'xstate.done.actor.cleanup' },
      { type: 'something.else' },
    ),
  }),
);

interface Job {
  readonly id: number;
  started: boolean;
  finished: boolean;
  /** A cancel reached its task before it started: it must never start. */
  mustNotStart: boolean;
  finish?: (how: 'value' | 'undefined' | 'throw') => void;
}

const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

describe('AsyncExecutor: facade calls and direct sends interleaved', function () {
  this.timeout(60_000);

  it('never desynchronises the actor', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 24 }), async (ops) => {
        const timersBefore = timers();
        let wakeups = 0;
        const executor = new AsyncExecutor({ wakeup: () => wakeups++ });
        const jobs: Job[] = [];
        const violations: string[] = [];
        /** What late runners of a task cancelled before it started got: at once, undefined. */
        const lateResults: Array<Promise<unknown>> = [];
        const promises: Array<Promise<unknown>> = [];
        /** Keeps a promise to check at the end, handled now (a run rejects with BusyError, a cancel may): no late-handling warning. */
        const keep = (promise: Promise<unknown>): void => {
          promise.catch(() => undefined);
          promises.push(promise);
        };
        const job = (): { job: Job; fn: () => Promise<unknown> } => {
          const record: Job = { id: jobs.length, started: false, finished: false, mustNotStart: false };
          jobs.push(record);
          // Checked outside the task: a throw in here would only make the task fail.
          const fn = () =>
            new Promise<unknown>((resolve, reject) => {
              if (record.mustNotStart) violations.push(`job ${record.id} was cancelled before it started, yet it runs`);
              if (jobs.some((j) => j.started && !j.finished)) violations.push(`job ${record.id} starts while another runs`);
              record.started = true;
              record.finish = (how) => {
                record.finished = true;
                if (how === 'throw') reject(new Error('boom'));
                else resolve(how === 'value' ? true : undefined);
              };
            });
          return { job: record, fn };
        };
        const unstartedClaimed = (): Job[] => jobs.filter((j) => !j.started && !j.finished && !j.mustNotStart);
        // Patroni's sticky flag, as the test sees it: a cancel met a scheduled task no runner had
        // come for yet; the next runner (before any schedule) must skip it.
        let lateRunnerSkips = false;

        for (const step of ops) {
          const before = executor.actor.getSnapshot();
          switch (step.kind) {
            case 'schedule':
              if (executor.schedule(step.action) === null) lateRunnerSkips = false;
              break;
            case 'run':
            case 'runAsync': {
              const { job: record, fn } = job();
              const late = lateRunnerSkips && before.matches('idle');
              if (late) record.mustNotStart = true;
              try {
                if (step.kind === 'run') {
                  const result = executor.run(fn);
                  keep(result);
                  if (late) lateResults.push(result);
                } else executor.runAsync(fn);
                if (late) lateRunnerSkips = false;
              } catch (error) {
                expect((error as { code?: string }).code).to.equal('ERR_BUSY');
              }
              break;
            }
            case 'cancel':
            case 'reset':
            case 'send': {
              const event = step.kind === 'send' ? step.event : { type: `statesmith.executor.${step.kind}` };
              if (step.kind === 'cancel') keep(executor.cancel());
              else if (step.kind === 'reset') {
                try {
                  executor.resetScheduledAction();
                } catch (error) {
                  expect((error as { code?: string }).code).to.equal('ERR_INVALID_STATE');
                }
              } else executor.actor.send(event as never);
              // A cancel or reset that met an unstarted task ends it: its runner, waiting or late, never runs it.
              if ((event['type'] === 'statesmith.executor.cancel' || event['type'] === 'statesmith.executor.reset') && before.matches('scheduled')) {
                for (const j of unstartedClaimed()) j.mustNotStart = true;
                if (event['type'] === 'statesmith.executor.cancel' && before.matches({ scheduled: 'waiting' })) lateRunnerSkips = true;
              }
              if (event['type'] === 'statesmith.executor.schedule' && before.matches('idle')) lateRunnerSkips = false;
              break;
            }
            case 'complete': {
              const running = jobs.find((j) => j.started && !j.finished);
              running?.finish?.(step.how);
              break;
            }
          }
          await settle();
          const snapshot = executor.actor.getSnapshot();
          expect(violations).to.deep.equal([]);
          for (const late of lateResults.splice(0)) {
            expect(await isSettled(late), 'a late runner is answered at once').to.equal(true);
            expect(await late, 'a late runner gets undefined').to.equal(undefined);
          }
          expect(snapshot.status, 'the actor is alive').to.equal('active');
          expect(executor.busy, 'busy exactly when not idle').to.equal(!snapshot.matches('idle'));
          expect(jobs.filter((j) => j.started && !j.finished).length).to.be.at.most(1);
        }

        // Let everything end: finish what runs, cancel what waits.
        for (let round = 0; round < 10 && executor.busy; round++) {
          for (const j of jobs) if (j.started && !j.finished) j.finish?.('value');
          await settle();
          if (executor.actor.getSnapshot().matches('scheduled')) {
            for (const j of unstartedClaimed()) j.mustNotStart = true;
            keep(executor.cancel());
          }
          await settle();
        }
        expect(violations).to.deep.equal([]);
        expect(executor.busy, 'idle at the end').to.equal(false);
        expect(executor.actor.getSnapshot().value).to.equal('idle');
        for (const j of jobs) if (j.started) expect(j.finished, `job ${j.id} started and ended`).to.equal(true);
        for (const promise of promises) expect(await isSettled(promise), 'no promise left pending').to.equal(true);
        // At most the long-lived task child stays (it comes with the first task; nothing is spawned per task), and the executor lock is free.
        expect(
          Object.keys(executor.actor.getSnapshot().children).filter((id) => id !== 'task'),
          'no child left behind',
        ).to.deep.equal([]);
        expect(executor.locked, 'no lock left held').to.equal(false);
        expect(timers(), 'no timer left behind').to.be.at.most(timersBefore);
        executor.actor.stop();
      }),
      { numRuns: 150 },
    );
  });
});
