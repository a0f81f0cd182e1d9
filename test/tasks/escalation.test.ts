/**
 * Which restart budget counts in a task group (OTP has only the supervisor's): the group's
 * intensity when it has one, and a task's own `maxRestarts`/`withinMs` only where the task
 * sets them. Whichever is exceeded first decides, and the log and the error name it. And
 * `supervise(logic)` restarts a first start that fails like any other run.
 */
import { expect } from 'chai';
import { createActor, fromPromise, setup } from 'xstate';
import { ManualClock, ServiceBase, TaskGroup, TaskGroupError, supervise } from '../../src/index.ts';
import { isSettled, rejection, settle } from '../support/async.ts';
import { logged } from '../support/logs.ts';

/** A permanent task that always fails, counting its runs. */
function alwaysFails(runs: { n: number }) {
  return async (): Promise<never> => {
    runs.n++;
    throw new Error(`failure ${runs.n}`);
  };
}

/** A permanent task that runs until its signal aborts. */
async function wellBehaved(signal: AbortSignal): Promise<void> {
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
}

const fast = { initialMs: 10, jitter: 0 } as const;

describe('TaskGroup: which restart budget counts', () => {
  it("one_for_all with a well-behaved sibling: the group's intensity fails the group, and wait() rejects naming the task and the budget", async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, uniqueId: 'g', strategy: 'one_for_all', maxRestarts: 3, withinMs: 5000 });
    const runs = { n: 0 };
    const failed: unknown[] = [];
    group.actor.on('statesmith.taskGroup.failed', (event) => failed.push(event));
    group.createTask(alwaysFails(runs), { name: 'bad', logException: false, restart: { type: 'permanent', backoff: fast } });
    group.createTask(wellBehaved, { name: 'good', restart: { type: 'permanent', backoff: fast } });
    const waited = group.wait();
    waited.catch(() => undefined);
    for (let i = 0; i < 20 && !(await isSettled(waited)); i++) await clock.advance(100);
    const error = (await rejection(waited)) as TaskGroupError;
    expect(runs.n, 'the first run and 3 restarts').to.equal(4);
    expect(error).to.be.instanceOf(TaskGroupError);
    expect(error.task).to.equal('TaskGroup:g:bad');
    expect(error.budget).to.deep.equal({ of: 'group', maxRestarts: 3, withinMs: 5000 });
    expect(error.message).to.match(/TaskGroup:g:bad exceeded the group's restart intensity \(more than 3 restarts within 5000 ms\)/);
    expect(failed).to.have.length(1);
    expect(failed[0]).to.include({ type: 'statesmith.taskGroup.failed', task: 'bad' });
    // The log counts the group's budget, not the task's default one.
    expect(logged('info', /group restart 3 of 3 within 5000 ms/)).to.have.length(1);
    expect(logged('info', /task restart/)).to.have.length(0);
    expect(logged('warn', /giving up/)).to.have.length(0);
  });

  it("without a sibling, wait() rejects with the group's failure, not a stop nobody called", async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, uniqueId: 'solo', maxRestarts: 2, withinMs: 5000 });
    const runs = { n: 0 };
    group.createTask(alwaysFails(runs), { name: 'bad', logException: false, restart: { type: 'permanent', backoff: fast } });
    const waited = group.wait();
    waited.catch(() => undefined);
    for (let i = 0; i < 20 && !(await isSettled(waited)); i++) await clock.advance(100);
    const error = (await rejection(waited)) as TaskGroupError;
    expect(runs.n).to.equal(3);
    expect(error.task).to.equal('TaskGroup:solo:bad');
    expect(error.message).to.not.match(/Error while stopping/);
    expect(error.budget).to.deep.include({ maxRestarts: 2 });
  });

  it("a task's own budget still counts where the task sets it, and is named when it is exceeded first", async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, uniqueId: 'own', maxRestarts: 10, withinMs: 5000 });
    const runs = { n: 0 };
    const task = group.createTask(alwaysFails(runs), {
      name: 'bad',
      logException: false,
      restart: { type: 'permanent', maxRestarts: 1, withinMs: 60_000, backoff: fast },
    });
    for (let i = 0; i < 10 && !task.done; i++) await clock.advance(100);
    expect(task.done).to.equal(true);
    expect(runs.n).to.equal(2);
    expect(logged('info', /\(group restart 1 of 10 within 5000 ms, task restart 1 of 1 within 60000 ms\)/)).to.have.length(1);
    expect(logged('warn', /failed 2 times within 60000 ms; giving up \(the task's own budget: maxRestarts 1\)/)).to.have.length(1);
    await settle();
    // The group did not fail: its intensity was not exceeded.
    expect(group.isRunning).to.equal(false);
    const error = (await rejection(group.wait())) as TaskGroupError;
    expect(error.budget).to.equal(undefined);
    expect(error.errors.map((e) => (e as Error).message)).to.deep.equal(['failure 2']);
  });

  it("a group with no intensity leaves each task's default budget in force", async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock, uniqueId: 'free' });
    const runs = { n: 0 };
    const task = group.createTask(alwaysFails(runs), { name: 'bad', logException: false, restart: { type: 'permanent', backoff: fast } });
    for (let i = 0; i < 20 && !task.done; i++) await clock.advance(100);
    expect(runs.n, 'the default budget: 3 restarts').to.equal(4);
    expect(logged('info', /task restart 3 of 3 within 60000 ms/)).to.have.length(1);
    await rejection(group.wait());
  });

  it('a service whose group fails rejects wait() with that failure, whole', async () => {
    const clock = new ManualClock();
    const runs = { n: 0 };
    class Flaky extends ServiceBase {
      protected override async main(signal: AbortSignal): Promise<void> {
        this.createTask(alwaysFails(runs), { name: 'bad', logException: false, restart: { type: 'permanent', backoff: fast } });
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      }
    }
    const service = new Flaky({ clock, uniqueId: 'flaky', maxRestarts: 1, withinMs: 5000 }).start();
    const waited = service.wait();
    waited.catch(() => undefined);
    for (let i = 0; i < 20 && !(await isSettled(waited)); i++) await clock.advance(100);
    const error = (await rejection(waited)) as TaskGroupError;
    const failures = error.errors.filter((e) => e instanceof TaskGroupError && e.budget !== undefined);
    expect(failures, String(error.errors)).to.have.length(1);
    await service.stop().catch(() => undefined);
  });
});

describe('supervise(logic): a failing first start', () => {
  it('restarts an entry action that throws on the first start under back-off, and escalates past maxRestarts', async () => {
    let runs = 0;
    const machine = setup({
      actions: {
        boom: () => {
          runs++;
          throw new Error('entry boom');
        },
      },
    }).createMachine({ entry: 'boom' });
    const actor = createActor(supervise(machine, { maxRestarts: 2, backoff: { initialMs: 1, jitter: 0 } }));
    const errors: unknown[] = [];
    actor.subscribe({ error: (error) => errors.push(error) });
    actor.start();
    expect(actor.getSnapshot().status).to.equal('active');
    expect(actor.getSnapshot().value).to.equal('backingOff');
    expect(actor.getSnapshot().context.restarts).to.equal(1);
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(runs).to.equal(3);
    expect(errors).to.have.length(1);
    expect((errors[0] as Error).message).to.equal('entry boom');
  });

  it('restarts an invoked promise that rejects at once, counted like any other failure', async () => {
    let runs = 0;
    const machine = setup({
      actors: {
        work: fromPromise(async () => {
          runs++;
          throw new Error('rejected at once');
        }),
      },
    }).createMachine({ invoke: { src: 'work' } });
    const actor = createActor(supervise(machine, { maxRestarts: 1, backoff: { initialMs: 1, jitter: 0 } }));
    const errors: unknown[] = [];
    actor.subscribe({ error: (error) => errors.push(error) });
    actor.start();
    for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(runs).to.equal(2);
    expect((errors[0] as Error).message).to.equal('rejected at once');
  });

  it('refuses the start-failure report when it comes from outside', () => {
    const machine = setup({}).createMachine({});
    const actor = createActor(supervise(machine)).start();
    const replies: { type: string; code?: string }[] = [];
    actor.on('*', (event) => replies.push(event as never));
    actor.send({ type: 'statesmith.supervisor.startFailed', generation: 0 } as never);
    expect(actor.getSnapshot().value).to.equal('running');
    expect(replies.map((r) => r.code)).to.deep.equal(['ERR_INVALID_ARG_VALUE']);
    actor.stop();
  });
});
