/**
 * durable(serviceLogic): a service saved with its state and its task group child (by the
 * group's own adapter), restored on the new incarnation's input. A `main` that was running
 * when its process ended starts again when it is marked idempotent(), and otherwise the
 * service ends `done.interrupted`, told once. Stopping a durable actor saves the state it was
 * in, as a crash leaves it: these tests stop one mid-work to stand for the kill.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { createActor, type AnyActorRef } from 'xstate';
import { durable, idempotent, openStore, serviceLogic, type DurableSnapshot, type ServiceMain, type SnapshotStore, type TaskRun } from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';
import { sqliteUrl } from '../support/servers.ts';

interface Done {
  readonly type: string;
  readonly outcome: string;
  readonly error?: { readonly code?: string; readonly message: string };
}

const untilAborted = (signal: AbortSignal): Promise<void> => new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));

describe('durable(serviceLogic)', function () {
  this.timeout(20_000);
  let store: SnapshotStore;
  let id: string;
  const actors: AnyActorRef[] = [];

  before(async () => {
    store = await openStore(sqliteUrl('durable-service.db'));
  });
  after(async () => store.close());
  beforeEach(() => (id = `service-${randomBytes(4).toString('hex')}`));
  afterEach(() => {
    for (const actor of actors.splice(0)) actor.stop();
  });

  function incarnation(main: ServiceMain, tasks: Record<string, (signal: AbortSignal, params: unknown, run: TaskRun) => unknown> = {}) {
    const actor = createActor(durable(serviceLogic, { store, id, version: 1 }), { input: { name: 'Pump', uniqueId: 'pump-1', main, tasks } });
    const done: Done[] = [];
    const taskDone: Array<{ name: string; outcome: string; error?: { message: string } }> = [];
    let firstRunning: unknown;
    actor.on('statesmith.service.done', (event) => done.push(event as unknown as Done));
    actor.on('statesmith.taskGroup.taskDone' as never, (event: never) => taskDone.push(event));
    actor.subscribe({
      next: (snapshot) => {
        const state = snapshot as DurableSnapshot;
        if (firstRunning === undefined && state.value === 'running') firstRunning = (state.inner as { value?: unknown } | undefined)?.value ?? null;
      },
      error: () => undefined,
    });
    actors.push(actor);
    actor.start();
    const inner = () => (actor.getSnapshot() as DurableSnapshot).inner as unknown as { value: unknown; context: { starts: number; outcome: string | null } };
    return {
      actor,
      done,
      taskDone,
      inner,
      firstRunning: () => firstRunning,
      group: () => (actor.getSnapshot() as DurableSnapshot).children.taskGroup as AnyActorRef,
      running: () => waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the durable service to run'),
      stop: () => {
        actor.stop();
        actors.splice(actors.indexOf(actor), 1);
      },
    };
  }

  async function savedIn(state: string): Promise<void> {
    await waitUntil(
      async () => ((await store.load(id))?.snapshot as { inner?: { state?: string } } | undefined)?.inner?.state === state,
      5_000,
      `the store to hold the service ${state}`,
    );
  }

  it('an idempotent main running at the crash starts again in the restore’s own step; its group’s named task re-runs under its key, an in-process one is told interrupted', async () => {
    const mains: number[] = [];
    const runs: TaskRun[] = [];
    const tasks = {
      sync: idempotent(async (signal: AbortSignal, _params: unknown, run: TaskRun) => {
        runs.push(run);
        await untilAborted(signal);
      }),
    };
    const main: ServiceMain = idempotent(async (signal, tools) => {
      mains.push(mains.length + 1);
      if (mains.length === 1) tools.createTask(untilAborted, { name: 'inline' });
      await untilAborted(signal);
    });
    const one = incarnation(main, tasks);
    await one.running();
    one.actor.send({ type: 'statesmith.service.start' });
    await waitUntil(() => mains.length === 1, 5_000, 'main to start');
    one.group().send({ type: 'statesmith.taskGroup.createTask', name: 'sync-1', task: 'sync', params: 1 });
    await waitUntil(() => runs.length === 1, 5_000, 'the named task to start');
    await waitUntil(
      async () => {
        const inner = (await store.load(id))?.snapshot as { inner?: { state?: string; group?: { running?: unknown[] } } } | undefined;
        return inner?.inner?.state === 'running' && inner.inner.group?.running?.length === 2;
      },
      5_000,
      'the store to hold main and both tasks running',
    );
    one.stop();

    const two = incarnation(main, tasks);
    await two.running();
    // main was started again in the restore's own step, before any command could come.
    expect(two.firstRunning()).to.equal('scheduled');
    await waitUntil(() => mains.length === 2 && runs.length === 2, 5_000, 'main and the named task to run again');
    expect(two.inner().context.starts).to.equal(2);
    expect(runs[1]).to.deep.equal({ idempotencyKey: runs[0]?.idempotencyKey, attempt: 2 });
    await waitUntil(() => two.taskDone.length === 1, 5_000, 'the in-process task to be told interrupted');
    expect(two.taskDone[0]).to.include({ name: 'inline', outcome: 'interrupted' });
    expect(two.done).to.deep.equal([]);
  });

  it('a main not marked idempotent ends the service done.interrupted, told once; a start runs it again', async () => {
    let starts = 0;
    const main: ServiceMain = async (signal) => {
      starts++;
      await untilAborted(signal);
    };
    const one = incarnation(main);
    await one.running();
    one.actor.send({ type: 'statesmith.service.start' });
    await savedIn('running');
    one.stop();

    const two = incarnation(main);
    await two.running();
    await waitUntil(() => two.done.length === 1, 5_000, 'the interrupted main to be told');
    expect(starts).to.equal(1);
    expect(two.done[0]).to.include({ type: 'statesmith.service.done', outcome: 'interrupted' });
    expect(two.done[0]?.error?.code).to.equal('ERR_INTERRUPTED');
    expect(two.done[0]?.error?.message).to.match(/not marked idempotent\(\)/);
    expect(two.inner().value).to.deep.equal({ done: 'interrupted' });
    two.actor.send({ type: 'statesmith.service.start' });
    await waitUntil(() => starts === 2, 5_000, 'a start to run main again');
    await savedIn('running');
    two.stop();

    // Told once: the next incarnation (main running again, unmarked) tells only that new cut.
    const three = incarnation(main);
    await three.running();
    await waitUntil(() => three.done.length === 1, 5_000, 'the second cut to be told');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(three.done).to.have.length(1);
    expect(three.inner().context.starts).to.equal(2);
  });

  it('write-ahead: main starts only once the store holds the service started; a failed save fails it unstarted', async () => {
    let starts = 0;
    let failing = false;
    const counting: SnapshotStore = {
      load: (key) => store.load(key),
      save: async (key, record) => {
        if (failing) throw new Error('disk full');
        return store.save(key, record);
      },
      delete: (key) => store.delete(key),
      list: () => store.list(),
      close: async () => undefined,
    };
    const actor = createActor(durable(serviceLogic, { store: counting, id, version: 1 }), {
      input: {
        name: 'Pump',
        uniqueId: 'pump-2',
        main: async (signal: AbortSignal) => {
          starts++;
          await untilAborted(signal);
        },
      },
    });
    const done: Done[] = [];
    actor.on('statesmith.service.done', (event) => done.push(event as unknown as Done));
    actors.push(actor);
    actor.start();
    await waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the service to run');
    failing = true;
    actor.send({ type: 'statesmith.service.start' });
    await waitUntil(() => done.length === 1, 5_000, 'main to fail unstarted');
    expect(starts).to.equal(0);
    expect(done[0]).to.include({ outcome: 'failed' });
    expect(done[0]?.error?.message).to.match(/disk full/);
  });
});
