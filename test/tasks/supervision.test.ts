/**
 * Task groups as OTP supervisors: strategies × restart types × how a task exits, the
 * group's restart intensity and its escalation up a tree of services, back-off with
 * `resetAfterMs`, and shutdown budgets. All on ManualClock: no real sleeps.
 */
import { expect } from 'chai';
import {
  CancelledError,
  ManualClock,
  ServiceBase,
  TaskAbandonedError,
  TaskGroup,
  TaskGroupError,
  type RestartType,
  type SupervisionStrategy,
  type Task,
} from '../../src/index.ts';
import { gate, heard, rejection, settle } from '../support/async.ts';
import { logged } from '../support/logs.ts';

type Exit = 'success' | 'failure' | 'cancel';

/**
 * A task body that logs `start <name>` each run and `stop <name>` when its signal aborts.
 * Its first run ends as `first` says (a return or a throw); every other run lasts until
 * its signal aborts.
 */
function child(name: string, events: string[], first?: 'success' | 'failure') {
  let runs = 0;
  return (signal: AbortSignal): Promise<string> => {
    runs++;
    events.push(`start ${name}`);
    if (runs === 1 && first === 'success') return Promise.resolve(`${name} done`);
    if (runs === 1 && first === 'failure') return Promise.reject(new Error(`${name} broke`));
    return new Promise((_, reject) =>
      signal.addEventListener(
        'abort',
        () => {
          events.push(`stop ${name}`);
          reject(signal.reason);
        },
        { once: true },
      ),
    );
  };
}

const starts = (events: string[], name: string): number => events.filter((e) => e === `start ${name}`).length;

const policy = (type: RestartType) => ({ type, maxRestarts: 10, withinMs: 60_000, backoff: { initialMs: 100, jitter: 0 } });

describe('supervision: strategies, restart types and exits', () => {
  const strategies: SupervisionStrategy[] = ['one_for_one', 'one_for_all', 'rest_for_one'];
  const types: RestartType[] = ['permanent', 'transient', 'temporary'];
  const exits: Exit[] = ['success', 'failure', 'cancel'];

  for (const strategy of strategies) {
    for (const type of types) {
      for (const exit of exits) {
        const restarts = exit !== 'cancel' && (type === 'permanent' || (type === 'transient' && exit === 'failure'));
        const along = !restarts ? [] : strategy === 'one_for_all' ? ['a', 'c'] : strategy === 'rest_for_one' ? ['c'] : [];
        it(`${strategy}, a ${type} task that exits by ${exit}: ${restarts ? `restarts it${along.length ? ` with ${along.join(' and ')}` : ''}` : 'ends it'}`, async () => {
          const clock = new ManualClock();
          const group = new TaskGroup({ clock, random: () => 0, strategy, uniqueId: 'g' });
          const events: string[] = [];
          group.createTask(child('a', events), { name: 'a', restart: policy('permanent') });
          const b = group.createTask(child('b', events, exit === 'cancel' ? undefined : exit), { name: 'b', restart: policy(type), logException: false });
          group.createTask(child('c', events), { name: 'c', restart: policy('permanent') });
          await settle();
          if (exit === 'cancel') b.cancel('on purpose');
          await settle();
          await clock.advance(1_000);
          expect(starts(events, 'b'), 'runs of b').to.equal(restarts ? 2 : 1);
          expect(starts(events, 'a'), 'runs of a').to.equal(along.includes('a') ? 2 : 1);
          expect(starts(events, 'c'), 'runs of c').to.equal(along.includes('c') ? 2 : 1);
          expect(b.done).to.equal(!restarts);
          if (!restarts) {
            if (exit === 'success') expect(b.result()).to.equal('b done');
            if (exit === 'failure') expect(b.error).to.have.property('message', 'b broke');
            if (exit === 'cancel') expect(b.cancelled).to.equal(true);
          }
          const stopped = await group.stop().then(
            () => [],
            (error: TaskGroupError) => error.errors.map((e) => (e as Error).message),
          );
          expect(stopped).to.deep.equal(!restarts && exit === 'failure' ? ['b broke'] : []);
          expect(group.isRunning).to.equal(false);
        });
      }
    }
  }
});

describe('supervision: restarting siblings', () => {
  it('rest_for_one stops the later siblings newest first, then starts them again in creation order', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'rest_for_one' });
    const events: string[] = [];
    for (const name of ['a', 'b', 'c', 'd']) {
      group.createTask(child(name, events, name === 'b' ? 'failure' : undefined), { name, restart: policy('permanent'), logException: false });
    }
    await settle();
    expect(events, 'the later siblings stop, newest first').to.deep.equal(['start a', 'start b', 'start c', 'start d', 'stop d', 'stop c']);
    events.length = 0;
    await clock.advance(99);
    expect(events).to.have.length(0);
    await clock.advance(1);
    expect(events, 'all start again after b’s back-off, in creation order').to.deep.equal(['start b', 'start c', 'start d']);
    expect(logged('info', /Task TaskGroup:.*:b failed \(b broke\); restarting in 100 ms with 2 siblings \(rest_for_one\)/)).to.have.length(1);
    await group.stop();
  });

  it('one_for_all stops every sibling newest first, and shows each restart on the task actors', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'one_for_all' });
    const events: string[] = [];
    const tasks: Task<string>[] = [];
    for (const name of ['a', 'b', 'c', 'd']) {
      tasks.push(group.createTask(child(name, events, name === 'c' ? 'failure' : undefined), { name, restart: policy('transient'), logException: false }));
    }
    const [a, b, c, d] = tasks as [Task<string>, Task<string>, Task<string>, Task<string>];
    const seen = new Map<Task<string>, string[]>();
    for (const task of tasks) {
      const values: string[] = [];
      task.actor.subscribe((snapshot) => values.push(JSON.stringify(snapshot.value)));
      seen.set(task, values);
    }
    await settle();
    await settle();
    expect(events.filter((e) => e.startsWith('stop'))).to.deep.equal(['stop d', 'stop b', 'stop a']);
    expect(a.actor.getSnapshot().value).to.equal('scheduled');
    await clock.advance(100);
    expect(events.slice(-4)).to.deep.equal(['start a', 'start b', 'start c', 'start d']);
    expect(seen.get(c)).to.include.ordered.members(['"running"', '"scheduled"', '"running"']);
    expect(seen.get(d)).to.include.ordered.members(['"running"', '"cancelling"', '"scheduled"', '"running"']);
    for (const task of [a, b, c, d]) expect(task.done).to.equal(false);
    await group.stop();
  });

  it('stops a temporary sibling and does not start it again', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'one_for_all' });
    const events: string[] = [];
    const oneOff = group.createTask(child('t', events), { name: 't' });
    group.createTask(child('b', events, 'failure'), { name: 'b', restart: policy('transient'), logException: false });
    await settle();
    await clock.advance(1_000);
    expect(starts(events, 't')).to.equal(1);
    expect(starts(events, 'b')).to.equal(2);
    expect(oneOff.cancelled).to.equal(true);
    expect(oneOff.actor.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
    await group.stop();
  });

  it('a sibling waiting for its own restart is taken along without being started twice', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'rest_for_one' });
    const events: string[] = [];
    // a (the later one) fails first and waits 1,000 ms; b fails 100 ms later and restarts itself and a after 10 ms.
    group.createTask(
      (signal) => (clock.now() < 100 ? new Promise((_, reject) => clock.setTimeout(() => reject(new Error('b broke')), 100)) : child('b', events)(signal)),
      { name: 'b', logException: false, restart: { backoff: { initialMs: 10, jitter: 0 } } },
    );
    group.createTask(child('a', events, 'failure'), { name: 'a', logException: false, restart: { backoff: { initialMs: 1_000, jitter: 0 } } });
    await settle();
    await clock.advance(100);
    await settle();
    await clock.advance(10);
    expect(starts(events, 'a'), 'a started again with the round, not left to its own timer').to.equal(2);
    await clock.advance(2_000);
    expect(starts(events, 'a'), 'its own timer was cleared').to.equal(2);
    await group.stop();
  });

  it('a sibling cancelled on purpose while the round stops it is not started again', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'one_for_all', shutdownMs: Infinity });
    const events: string[] = [];
    const slow = gate();
    const a = group.createTask(
      async (signal) => {
        events.push('start a');
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        await slow.promise; // takes its time to stop
        throw signal.reason;
      },
      { name: 'a', restart: policy('permanent') },
    );
    group.createTask(child('b', events, 'failure'), { name: 'b', restart: policy('transient'), logException: false });
    await settle();
    await settle();
    a.cancel('operator said so');
    slow.open();
    await settle();
    await clock.advance(1_000);
    expect(starts(events, 'a')).to.equal(1);
    expect(starts(events, 'b')).to.equal(2);
    expect(a.cancelled).to.equal(true);
    await group.stop();
  });

  it('a stop during a restart calls it off: every task ends cancelled and nothing starts again', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'one_for_all' });
    const events: string[] = [];
    const a = group.createTask(child('a', events), { name: 'a', restart: policy('permanent') });
    const b = group.createTask(child('b', events, 'failure'), { name: 'b', restart: policy('transient'), logException: false });
    await settle();
    await settle();
    expect(b.actor.getSnapshot().value, 'b waits for the round').to.equal('scheduled');
    await group.stop();
    await clock.advance(1_000);
    expect(starts(events, 'a') + starts(events, 'b')).to.equal(2);
    expect(a.cancelled && b.cancelled).to.equal(true);
  });
});

describe('supervision: intensity and escalation', () => {
  it('fails the group when a restart exceeds maxRestarts within withinMs: the task names it, the rest are stopped', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, uniqueId: 'db', maxRestarts: 2, withinMs: 10_000 });
    const replies = heard(group.actor);
    const events: string[] = [];
    const other = group.createTask(child('other', events), { name: 'other' });
    let runs = 0;
    const flaky = group.createTask(
      () => {
        runs++;
        return Promise.reject(new Error(`failure ${runs}`));
      },
      { name: 'replica', logException: false, restart: { maxRestarts: 100, backoff: { initialMs: 100, jitter: 0 } } },
    );
    await settle();
    await clock.advance(1_000);
    expect(runs).to.equal(3);
    expect(flaky.error).to.be.instanceOf(TaskGroupError);
    const escalation = flaky.error as TaskGroupError;
    expect(escalation.message).to.equal(
      "TaskGroup:db failed: TaskGroup:db:replica exceeded the group's restart intensity (more than 2 restarts within 10000 ms)",
    );
    expect(escalation.errors.map((e) => (e as Error).message)).to.deep.equal(['failure 3']);
    expect(other.cancelled, 'the siblings are stopped').to.equal(true);
    const failed = replies.find((r) => r.type === 'statesmith.taskGroup.failed');
    expect(failed).to.deep.include({ task: 'replica' });
    expect(logged('error', /exceeded the group's restart intensity/)).to.have.length(1);
    const error = (await rejection(group.stop())) as TaskGroupError;
    expect(error.errors).to.deep.equal([escalation]);
    expect(group.actor.getSnapshot().value).to.equal('idle');
  });

  it('counts one restart of several siblings once', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'one_for_all', maxRestarts: 1, withinMs: 10_000 });
    const events: string[] = [];
    group.createTask(child('a', events), { name: 'a', restart: policy('permanent') });
    const b = group.createTask(child('b', events, 'failure'), { name: 'b', restart: policy('transient'), logException: false });
    group.createTask(child('c', events), { name: 'c', restart: policy('permanent') });
    await settle();
    await clock.advance(1_000);
    expect(starts(events, 'a')).to.equal(2);
    expect(b.done, 'three tasks restarted, one restart counted').to.equal(false);
    await group.stop();
  });

  it('forgets restarts older than the window', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, maxRestarts: 1, withinMs: 1_000 });
    let runs = 0;
    const task = group.createTask(
      (signal) => {
        runs++;
        // Each run fails 2 s after it starts: restarts are 2 s apart, outside a 1 s window.
        return new Promise((_, reject) => {
          const timer = clock.setTimeout(() => reject(new Error('flake')), 2_000);
          signal.addEventListener('abort', () => (clock.clearTimeout(timer), reject(signal.reason)), { once: true });
        });
      },
      { logException: false, restart: { maxRestarts: 100, backoff: { initialMs: 10, jitter: 0 } } },
    );
    await settle();
    await clock.advance(20_000);
    expect(runs).to.be.greaterThan(5);
    expect(task.done).to.equal(false);
    await group.stop();
  });

  it('escalates through a service: its group fails, so its main fails, and a supervising group restarts the service', async () => {
    const clock = new ManualClock();
    let subtaskRuns = 0;
    let mainStarts = 0;
    class Replicator extends ServiceBase {
      protected async main(signal: AbortSignal): Promise<void> {
        mainStarts++;
        this.createTask(
          () => {
            subtaskRuns++;
            return Promise.reject(new Error('stream broke'));
          },
          { name: 'stream', logException: false, restart: { maxRestarts: 100, backoff: { initialMs: 10, jitter: 0 } } },
        );
        await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      }
    }
    const service = new Replicator({ uniqueId: 'rep', clock, maxRestarts: 1, withinMs: 10_000 });
    const agent = new TaskGroup({ clock, random: () => 0, uniqueId: 'agent' });
    const supervised = agent.createTask((signal) => service.run({ signal }), {
      name: 'replicator',
      logException: false,
      restart: { type: 'permanent', maxRestarts: 1, withinMs: 60_000, backoff: { initialMs: 500, jitter: 0 } },
    });
    await settle();
    await clock.advance(100);
    expect(subtaskRuns, 'two runs: the second restart exceeds the service group’s intensity').to.equal(2);
    expect(service.actor.getSnapshot().value).to.deep.equal({ done: 'failed' });
    expect(supervised.actor.getSnapshot().value, 'the agent restarts the service after its back-off').to.equal('scheduled');
    await clock.advance(500);
    expect(mainStarts).to.equal(2);
    await clock.advance(100);
    expect(subtaskRuns).to.equal(4);
    // The agent's own budget (1 restart) is spent now: the service failure ends the task for good.
    await settle();
    expect(supervised.done).to.equal(true);
    const failure = supervised.error as TaskGroupError;
    expect(failure.message).to.equal('Error while stopping Replicator:rep');
    expect((failure.errors[0] as Error).message).to.match(/TaskGroup:rep failed: TaskGroup:rep:stream exceeded/);
    await rejection(agent.stop());
  });
});

describe('supervision: back-off', () => {
  it('keeps each jittered delay within [delay, delay × (1 + jitter)]', async () => {
    for (const random of [0, 0.5, 0.999999]) {
      const clock = new ManualClock();
      const group = new TaskGroup({ clock, random: () => random });
      const startsAt: number[] = [];
      group.createTask(
        () => {
          startsAt.push(clock.now());
          return startsAt.length < 4 ? Promise.reject(new Error('x')) : new Promise(() => undefined);
        },
        { logException: false, restart: { maxRestarts: 10, backoff: { initialMs: 100, factor: 2, jitter: 0.5 } } },
      );
      await settle();
      await clock.advance(10_000);
      const delays = startsAt.slice(1).map((at, i) => at - (startsAt[i] as number));
      delays.forEach((delay, i) => {
        const base = 100 * 2 ** i;
        expect(delay).to.be.within(base, base * 1.5);
      });
      group.cancel();
    }
  });

  it('resetAfterMs: a run that lasted that long starts the back-off and the count from scratch', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0 });
    const startsAt: number[] = [];
    const lasts = [0, 0, 5_000, 0];
    const task = group.createTask(
      () => {
        const ms = lasts[startsAt.length] ?? Infinity;
        startsAt.push(clock.now());
        return new Promise((_, reject) => (ms === Infinity ? undefined : clock.setTimeout(() => reject(new Error('x')), ms)));
      },
      { logException: false, restart: { maxRestarts: 2, withinMs: 60_000, resetAfterMs: 1_000, backoff: { initialMs: 100, factor: 2, jitter: 0 } } },
    );
    await settle();
    await clock.advance(20_000);
    // Delays 100, 200; then a 5 s run resets the history: 100 and 200 again, and the
    // fourth failure is within the budget of 2 (without the reset, it would give up at 5,300).
    expect(startsAt).to.deep.equal([0, 100, 300, 5_400, 5_600]);
    expect(task.done).to.equal(false);
    group.cancel();
  });

  it('refuses a bad restart type, strategy or budget with typed errors', () => {
    expect(() => new TaskGroup({ strategy: 'one_for_some' as never }))
      .to.throw(/"options.strategy" argument must be one of 'one_for_one', 'one_for_all', 'rest_for_one'/)
      .with.property('code', 'ERR_INVALID_ARG_VALUE');
    expect(() => new TaskGroup({ maxRestarts: -1 }))
      .to.throw()
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(() => new TaskGroup({ maxRestarts: 1.5 }))
      .to.throw()
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(() => new TaskGroup({ withinMs: 0 }))
      .to.throw()
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(() => new TaskGroup({ shutdownMs: -5 }))
      .to.throw()
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(() => new TaskGroup({ shutdownMs: '5s' as never }))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    const group = new TaskGroup();
    expect(() => group.createTask(() => 1, { restart: { type: 'sometimes' as never } })).to.throw(
      /"options.restart.type" argument must be one of 'permanent', 'transient', 'temporary'/,
    );
    expect(() => group.createTask(() => 1, { restart: { resetAfterMs: 0 } }))
      .to.throw()
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(() => new TaskGroup({ maxRestarts: Infinity, shutdownMs: Infinity })).not.to.throw();
  });
});

describe('supervision: shutdown budgets', () => {
  it('stop abandons a task that ignores its signal past shutdownMs, after stopping the newer ones first', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, uniqueId: 's', shutdownMs: 2_000 });
    const events: string[] = [];
    let release: () => void = () => undefined;
    const stubborn = group.createTask(
      () => {
        events.push('start stubborn');
        return new Promise<void>((resolve) => (release = resolve));
      },
      { name: 'stubborn' },
    );
    group.createTask(child('polite', events), { name: 'polite' });
    await settle();
    const stopping = group.stop();
    let settled = false;
    void stopping.catch(() => undefined).finally(() => (settled = true));
    await settle();
    expect(events).to.deep.equal(['start stubborn', 'start polite', 'stop polite']);
    await clock.advance(1_999);
    expect(settled).to.equal(false);
    await clock.advance(1);
    const error = (await rejection(stopping)) as TaskGroupError;
    expect(error.errors).to.have.length(1);
    expect(error.errors[0]).to.be.instanceOf(TaskAbandonedError);
    expect(error.errors[0]).to.have.property('message', 'TaskGroup:s:stubborn ignored its cancel for 2000 ms and was abandoned');
    expect(logged('error', /stubborn ignored its cancel for 2000 ms and was abandoned; it may still be running/)).to.have.length(1);
    expect(group.isRunning).to.equal(false);
    expect(stubborn.done, 'the abandoned body still runs').to.equal(false);
    release();
    await settle();
    expect(stubborn.done).to.equal(true);
    await group.stop(); // reported once
  });

  it('abandons a sibling that ignores a restart’s stop, and restarts the rest', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, random: () => 0, strategy: 'one_for_all', shutdownMs: 1_000 });
    const events: string[] = [];
    group.createTask(() => new Promise(() => undefined), { name: 'deaf', restart: policy('permanent') });
    group.createTask(child('b', events, 'failure'), { name: 'b', restart: policy('transient'), logException: false });
    await settle();
    await clock.advance(999);
    expect(starts(events, 'b')).to.equal(1);
    await clock.advance(1 + 100);
    expect(starts(events, 'b')).to.equal(2);
    expect([...group.tasks].map((t) => t.name)).to.deep.equal([`TaskGroup:${group.uniqueId}:b`]);
    const error = (await rejection(group.stop())) as TaskGroupError;
    expect(error.errors.map((e) => (e as Error).name)).to.deep.equal(['TaskAbandonedError']);
  });

  it('with shutdownMs Infinity, stop waits for ever, as frequenz does', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, shutdownMs: Infinity });
    const done = gate();
    group.createTask(() => done.promise);
    await settle();
    let stopped = false;
    void group.stop().then(() => (stopped = true));
    await clock.advance(1e12);
    expect(stopped).to.equal(false);
    expect(clock.pendingTimers).to.equal(0);
    done.open();
    await settle();
    expect(stopped).to.equal(true);
  });

  it('a task cancelled by its stop reports the stop’s reason', async () => {
    const group = new TaskGroup();
    const task = group.createTask((signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))));
    await settle();
    await group.stop('shutting down');
    expect(task.cancelled).to.equal(true);
    expect(() => task.result()).to.throw(CancelledError, 'shutting down');
  });
});
