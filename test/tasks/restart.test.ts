import { expect } from 'chai';
import { ManualClock, TaskGroup, TaskGroupError } from '../../src/index.ts';
import { rejection, settle } from '../support/async.ts';
import { logged } from '../support/logs.ts';

describe('TaskGroup restart policies', () => {
  /** A task body that fails `failures` times, then runs until cancelled; records start times. */
  function flaky(clock: ManualClock, failures: number, starts: number[]) {
    return (signal: AbortSignal): Promise<void> => {
      starts.push(clock.now());
      if (starts.length <= failures) return Promise.reject(new Error(`failure ${starts.length}`));
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    };
  }

  it('restarts a failing task after an exponential back-off, capped at maxMs', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0 });
    const starts: number[] = [];
    const task = group.createTask(flaky(clock, 4, starts), {
      restart: { maxRestarts: 10, withinMs: 60_000, backoff: { initialMs: 100, factor: 2, maxMs: 300, jitter: 0 } },
    });
    await settle();
    await clock.advance(10_000);
    // Failures at 0, 100, 300, 600; delays 100, 200, 300 (capped), 300.
    expect(starts).to.deep.equal([0, 100, 300, 600, 900]);
    expect(task.done).to.equal(false);
    expect(group.isRunning).to.equal(true);
    expect(logged('info', /failed \(.*\); restarting in/)).to.have.length(4);
    expect(logged('warn', /restarting in/), 'an expected restart is not a warning').to.have.length(0);
    await group.stop();
    expect(task.cancelled).to.equal(true);
  });

  it('stretches each delay by up to jitter at random', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0.5 });
    const starts: number[] = [];
    group.createTask(flaky(clock, 1, starts), { restart: { backoff: { initialMs: 1000, jitter: 0.2 } } });
    await settle();
    await clock.advance(1099);
    expect(starts).to.deep.equal([0]);
    await clock.advance(1);
    expect(starts).to.deep.equal([0, 1100]);
    await group.stop();
  });

  it('fails for good when it fails more than maxRestarts times within withinMs, and reports it', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, uniqueId: 'r' });
    const starts: number[] = [];
    const task = group.createTask(flaky(clock, 100, starts), {
      name: 'db',
      logException: false,
      restart: { maxRestarts: 2, withinMs: 10_000, backoff: { initialMs: 100, jitter: 0 } },
    });
    await settle();
    await clock.advance(1_000);
    expect(starts).to.deep.equal([0, 100, 300]);
    expect(task.done).to.equal(true);
    expect(task.error).to.have.property('message', 'failure 3');
    expect(logged('warn', /failed 3 times within 10000 ms; giving up/)).to.have.length(1);
    const yielded = [];
    for await (const t of group.asCompleted()) {
      yielded.push(t);
      break;
    }
    expect(yielded).to.deep.equal([task]);
    const error = await rejection(group.stop());
    expect(error).to.be.instanceOf(TaskGroupError);
    expect((error as TaskGroupError).errors.map((e) => (e as Error).message)).to.deep.equal(['failure 3']);
  });

  it('forgets failures older than withinMs (a sliding window), so rare failures restart forever', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock });
    const starts: number[] = [];
    let runs = 0;
    const task = group.createTask(
      (signal) => {
        starts.push(clock.now());
        runs++;
        // Each run lasts 5 s, then fails.
        return new Promise<void>((_, reject) => {
          const timer = clock.setTimeout(() => reject(new Error(`run ${runs}`)), 5_000);
          signal.addEventListener('abort', () => {
            clock.clearTimeout(timer);
            reject(signal.reason);
          });
        });
      },
      { restart: { maxRestarts: 1, withinMs: 4_000, backoff: { initialMs: 10, jitter: 0 } } },
    );
    await settle();
    await clock.advance(30_000);
    expect(task.done).to.equal(false);
    expect(starts.length).to.be.greaterThan(5);
    await group.stop();
    expect(task.cancelled).to.equal(true);
  });

  it('shows restarts in the task actor: running → scheduled → running', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock });
    const starts: number[] = [];
    const task = group.createTask(flaky(clock, 1, starts), { restart: { backoff: { initialMs: 100, jitter: 0 } } });
    const states: unknown[] = [];
    task.actor.subscribe((snapshot) => states.push(snapshot.value));
    await settle();
    await clock.advance(100);
    expect(states).to.deep.equal(['running', 'scheduled', 'running']);
    await group.stop();
    expect(states.slice(3)).to.deep.equal(['cancelling', { done: 'cancelled' }]);
  });

  it('a cancel during the back-off ends the task at once; its body does not run again', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock });
    const starts: number[] = [];
    const task = group.createTask(flaky(clock, 1, starts), { restart: { backoff: { initialMs: 1_000 } } });
    await settle();
    expect(clock.pendingTimers).to.equal(1);
    task.cancel('stop now');
    expect(task.done && task.cancelled).to.equal(true);
    expect(clock.pendingTimers).to.equal(0);
    await clock.advance(10_000);
    expect(starts).to.deep.equal([0]);
  });

  it('does not restart a cancelled task or one that completed', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock });
    const done = group.createTask(async () => 'ok', { restart: {} });
    await settle();
    expect(done.result()).to.equal('ok');
    expect(clock.pendingTimers).to.equal(0);
  });

  describe('bad input', () => {
    const cases: Array<[string, object, string]> = [
      ['maxRestarts -1', { maxRestarts: -1 }, 'ERR_OUT_OF_RANGE'],
      ['maxRestarts 1.5', { maxRestarts: 1.5 }, 'ERR_OUT_OF_RANGE'],
      ['withinMs 0', { withinMs: 0 }, 'ERR_OUT_OF_RANGE'],
      ['withinMs "1s"', { withinMs: '1s' }, 'ERR_INVALID_ARG_TYPE'],
      ['initialMs -5', { backoff: { initialMs: -5 } }, 'ERR_OUT_OF_RANGE'],
      ['maxMs below initialMs', { backoff: { initialMs: 500, maxMs: 100 } }, 'ERR_OUT_OF_RANGE'],
      ['factor 0.5', { backoff: { factor: 0.5 } }, 'ERR_OUT_OF_RANGE'],
      ['jitter 2', { backoff: { jitter: 2 } }, 'ERR_OUT_OF_RANGE'],
      ['backoff not an object', { backoff: 3 }, 'ERR_INVALID_ARG_TYPE'],
    ];
    for (const [what, restart, code] of cases) {
      it(`rejects ${what} with ${code}`, () => {
        const group = new TaskGroup();
        expect(() => group.createTask(async () => 1, { restart: restart as never }))
          .to.throw(/options\.restart/)
          .with.property('code', code);
        expect(group.tasks.size).to.equal(0);
      });
    }
  });
});
