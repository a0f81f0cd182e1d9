/**
 * durable(taskGroupLogic): a task group saved by its tasks' registry names and restored on
 * the new incarnation's input. A task that was running when its process ended runs again
 * with the same idempotency key when it is marked idempotent(), and otherwise ends
 * `interrupted`, told once and acknowledged like any finished task. Stopping a durable actor
 * saves the state it was in, as a crash leaves it: these tests stop one mid-task to stand for
 * the kill.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { createActor, type AnyActorRef } from 'xstate';
import { durable, idempotent, openStore, taskGroupLogic, type DurableSnapshot, type SnapshotStore, type TaskGroupTask, type TaskRun } from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';
import { sqliteUrl } from '../support/servers.ts';

interface TaskDone {
  readonly type: string;
  readonly name: string;
  readonly task: string | null;
  readonly outcome: string;
  readonly result?: unknown;
  readonly error?: { readonly name: string; readonly code?: string; readonly message: string };
}

interface SavedGroupView {
  readonly running: ReadonlyArray<{ readonly name: string; readonly attempt: number; readonly restartsAgoMs: readonly number[] }>;
  readonly ended: ReadonlyArray<{ readonly name: string; readonly outcome: string }>;
  readonly restartsAgoMs: readonly number[];
}

describe('durable(taskGroupLogic)', function () {
  this.timeout(20_000);
  let store: SnapshotStore;
  let id: string;
  const actors: AnyActorRef[] = [];

  before(async () => {
    store = await openStore(sqliteUrl('durable-task-group.db'));
  });
  after(async () => store.close());
  beforeEach(() => (id = `group-${randomBytes(4).toString('hex')}`));
  afterEach(() => {
    for (const actor of actors.splice(0)) actor.stop();
  });

  /** The registry: `sync` and `scrub` hold until released (or aborted), `sync` is idempotent; every call is recorded. */
  function registry() {
    const calls: Array<{ task: string; params: unknown; run: TaskRun }> = [];
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holding =
      (task: string): TaskGroupTask =>
      async (signal, params, run) => {
        calls.push({ task, params, run });
        await Promise.race([held, new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))]);
        signal.throwIfAborted();
        return `${task} ${JSON.stringify(params)} done`;
      };
    const tasks: Record<string, TaskGroupTask> = {
      sync: idempotent(holding('sync')),
      scrub: holding('scrub'),
      // Ignores its signal: a stop leaves the group stopping until its shutdown budget runs out.
      stubborn: idempotent(async (_signal, params, run) => {
        calls.push({ task: 'stubborn', params, run });
        await new Promise(() => undefined);
      }),
    };
    return { calls, release: () => release(), tasks };
  }

  function incarnation(tasks: Record<string, TaskGroupTask>, options: { onInterrupted?: 'abandon' | 'retry' | 'escalate' } = {}, input: object = {}) {
    const actor = createActor(durable(taskGroupLogic, { store, id, version: 1, ...options }), { input: { uniqueId: 'volumes', tasks, ...input } });
    const done: TaskDone[] = [];
    const interrupted: Array<{ error: { code: string; message: string } }> = [];
    actor.on('statesmith.taskGroup.taskDone', (event) => done.push(event as unknown as TaskDone));
    actor.on('statesmith.durable.interrupted', (event) => interrupted.push(event as never));
    let firstRunning: unknown;
    actor.subscribe({
      next: (snapshot) => {
        const state = snapshot as DurableSnapshot;
        if (firstRunning === undefined && state.value === 'running') firstRunning = (state.inner as { value?: unknown } | undefined)?.value ?? null;
      },
      error: () => undefined,
    });
    actors.push(actor);
    actor.start();
    return {
      actor,
      done,
      interrupted,
      /** The group's state in the durable actor's first running snapshot: the restore's own step. */
      firstRunning: () => firstRunning,
      running: () => waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the durable group to run'),
      stop: () => {
        actor.stop();
        actors.splice(actors.indexOf(actor), 1);
      },
    };
  }

  async function saved(check: (group: SavedGroupView) => boolean, what: string): Promise<SavedGroupView> {
    let last: SavedGroupView | undefined;
    await waitUntil(
      async () => {
        last = (await store.load(id))?.snapshot as { inner?: SavedGroupView } | undefined as never;
        last = (last as unknown as { inner?: SavedGroupView } | undefined)?.inner;
        return last !== undefined && check(last);
      },
      5_000,
      what,
    );
    return last as SavedGroupView;
  }

  it('re-runs an idempotent named task with the same key and the next attempt, in the restore’s own step; an unmarked one ends interrupted, told once', async () => {
    const first = registry();
    const one = incarnation(first.tasks);
    await one.running();
    one.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'sync-7', task: 'sync', params: { volume: 7 } });
    one.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'scrub-7', task: 'scrub', params: { volume: 7 } });
    await waitUntil(() => first.calls.length === 2, 5_000, 'both tasks to start');
    await saved((group) => group.running.length === 2, 'the store to hold both tasks running');
    const key = first.calls.find((call) => call.task === 'sync')?.run.idempotencyKey;
    expect(key).to.be.a('string');
    expect(first.calls.map((call) => call.run.attempt)).to.deep.equal([1, 1]);
    one.stop(); // stands for the kill

    const second = registry();
    const two = incarnation(second.tasks);
    await two.running();
    // The re-run was made in the restore's own step: the group ran it before any command could come.
    expect(two.firstRunning()).to.equal('running');
    await waitUntil(() => second.calls.length === 1 && two.done.length === 1, 5_000, 'the re-run and the interrupted report');
    // The idempotent one runs again under the same key, as the next attempt; the other never runs again.
    expect(second.calls).to.deep.equal([{ task: 'sync', params: { volume: 7 }, run: { idempotencyKey: key, attempt: 2 } }]);
    expect(two.done).to.have.length(1);
    expect(two.done[0]).to.include({ name: 'scrub-7', task: 'scrub', outcome: 'interrupted' });
    expect(two.done[0]?.error?.code).to.equal('ERR_INTERRUPTED');
    expect(two.done[0]?.error?.message).to.match(/not marked idempotent\(\)/);
    expect(two.interrupted.map((event) => event.error.code)).to.deep.equal(['ERR_INTERRUPTED']);
    // The interrupted task waits for acknowledgement like any finished one.
    const acknowledged = new Promise((resolve) => two.actor.on('statesmith.taskGroup.acknowledged', resolve));
    two.actor.send({ type: 'statesmith.taskGroup.acknowledge', name: 'scrub-7' });
    await acknowledged;
    second.release();
    await waitUntil(() => two.done.length === 2, 5_000, 'the re-run to finish');
    expect(two.done[1]).to.include({ name: 'sync-7', outcome: 'completed', result: 'sync {"volume":7} done' });
    await saved((group) => group.running.length === 0, 'the store to hold the group with nothing running');
    two.stop();

    // A third incarnation: nothing runs again, nothing is told again.
    const third = registry();
    const three = incarnation(third.tasks);
    await three.running();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(third.calls).to.deep.equal([]);
    expect(three.done).to.deep.equal([]);
    expect(three.interrupted).to.deep.equal([]);
  });

  it('a new task’s key goes on from the saved numbering: no key is ever handed out twice', async () => {
    const first = registry();
    const one = incarnation(first.tasks);
    await one.running();
    one.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'sync-1', task: 'sync', params: 1 });
    await waitUntil(() => first.calls.length === 1, 5_000, 'the task to start');
    first.release();
    await waitUntil(() => one.done.length === 1, 5_000, 'the task to finish');
    await saved((group) => group.running.length === 0 && group.ended.length === 1, 'the store to hold it finished');
    one.stop();

    const second = registry();
    const two = incarnation(second.tasks);
    await two.running();
    two.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'sync-2', task: 'sync', params: 2 });
    await waitUntil(() => second.calls.length === 1, 5_000, 'the next task to start');
    const [before] = first.calls.map((call) => call.run.idempotencyKey.split(':'));
    const [after] = second.calls.map((call) => call.run.idempotencyKey.split(':'));
    expect(after?.[0]).to.equal(before?.[0]); // the same lineage
    expect(Number(after?.[1])).to.equal(Number(before?.[1]) + 1);
    // The finished, unacknowledged task came back too: a wait answers with it.
    second.release();
    const finished = new Promise<{ errors: unknown[] }>((resolve) => two.actor.on('statesmith.taskGroup.finished', resolve as never));
    two.actor.send({ type: 'statesmith.taskGroup.wait' });
    expect((await finished).errors).to.deep.equal([]);
  });

  it('keeps a task’s restart budget and the group’s intensity across the restart', async () => {
    let failures = 0;
    const tasks: Record<string, TaskGroupTask> = {
      flaky: idempotent(async (signal) => {
        failures++;
        if (failures <= 2) throw new Error(`failure ${failures}`);
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      }),
    };
    const one = incarnation(tasks);
    await one.running();
    one.actor.send({
      type: 'statesmith.taskGroup.createTask',
      name: 'flaky-1',
      task: 'flaky',
      restart: { type: 'transient', maxRestarts: 3, withinMs: 600_000, backoff: { initialMs: 1, maxMs: 1, jitter: 0 } },
    });
    const group = await saved((view) => view.running.length === 1 && view.running[0]?.restartsAgoMs.length === 2, 'two restarts saved');
    expect(group.running[0]?.attempt).to.equal(3);
    expect(group.restartsAgoMs).to.have.length(2);
    one.stop();

    failures = 0;
    let calls = 0;
    const again: Record<string, TaskGroupTask> = {
      flaky: idempotent(async (_signal, _params, run) => {
        calls++;
        throw new Error(`failure at attempt ${run.attempt}`);
      }),
    };
    const two = incarnation(again);
    await two.running();
    // Two restarts were spent before the crash: the re-run fails, is restarted once (the third), and the next failure ends it.
    await waitUntil(() => two.done.length === 1, 5_000, 'the task to end when its budget is spent');
    expect(calls).to.equal(2);
    expect(two.done[0]).to.include({ name: 'flaky-1', outcome: 'failed' });
  });

  it('keeps the group’s restart intensity across the restart: restarts before the crash count towards it', async () => {
    const intensity = { maxRestarts: 2, withinMs: 600_000 };
    let failures = 0;
    const tasks: Record<string, TaskGroupTask> = {
      flaky: idempotent(async (signal) => {
        failures++;
        if (failures <= 2) throw new Error(`failure ${failures}`);
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      }),
    };
    const restart = { type: 'transient', backoff: { initialMs: 1, maxMs: 1, jitter: 0 } };
    const one = incarnation(tasks, {}, intensity);
    await one.running();
    one.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'flaky-1', task: 'flaky', restart });
    await saved((view) => view.restartsAgoMs.length === 2 && view.running.length === 1, 'the group’s two restarts saved');
    one.stop();

    // Fails once more, then runs: only the restarts saved before the crash make that one too many.
    let again = 0;
    const failing: Record<string, TaskGroupTask> = {
      flaky: idempotent(async (signal) => {
        if (++again === 1) throw new Error('failing once more');
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      }),
    };
    const two = incarnation(failing, {}, intensity);
    const failed = new Promise<{ task: string }>((resolve) => two.actor.on('statesmith.taskGroup.failed', resolve as never));
    await two.running();
    // The re-run's failure is the third restart within the window: more than 2, so the group fails.
    expect((await failed).task).to.equal('flaky-1');
  });

  it('a task of a stopping group, or an in-process function, is never run again: it ends interrupted, saying why', async () => {
    const first = registry();
    const one = incarnation(first.tasks);
    await one.running();
    one.actor.send({
      type: 'statesmith.taskGroup.createTask',
      name: 'inline',
      fn: async (signal: AbortSignal) => new Promise((resolve) => signal.addEventListener('abort', resolve)),
    });
    one.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'sync-9', task: 'sync', params: 9 });
    await saved((group) => group.running.length === 2, 'both tasks saved running');
    one.stop();

    const second = registry();
    const two = incarnation(second.tasks);
    await two.running();
    await waitUntil(() => two.done.length === 1, 5_000, 'the inline task to be told interrupted');
    expect(two.done[0]).to.include({ name: 'inline', task: null, outcome: 'interrupted' });
    expect(two.done[0]?.error?.message).to.match(/in-process function/);
    // The idempotent one runs again.
    await waitUntil(() => second.calls.length === 1, 5_000, 'the re-run');
    expect(second.calls[0]?.run.attempt).to.equal(2);
    // A task that ignores its cancel keeps the group stopping: the "crash" comes then.
    two.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'stubborn-1', task: 'stubborn' });
    await waitUntil(() => second.calls.length === 2, 5_000, 'the stubborn task to start');
    two.actor.send({ type: 'statesmith.taskGroup.stop' });
    await waitUntil(
      async () => ((await store.load(id))?.snapshot as { inner?: { state?: string } } | undefined)?.inner?.state === 'stopping',
      5_000,
      'the store to hold the group stopping',
    );
    two.stop();

    const third = registry();
    const three = incarnation(third.tasks);
    await three.running();
    await waitUntil(() => three.done.length === 2, 5_000, 'both tasks of the stopping group to be told interrupted');
    // Idempotent, but their group was stopping them: neither runs again.
    expect(third.calls).to.deep.equal([]);
    expect(three.done.map((done) => [done.name, done.outcome]).sort()).to.deep.equal([
      ['stubborn-1', 'interrupted'],
      ['sync-9', 'interrupted'],
    ]);
    for (const done of three.done) expect(done.error?.message).to.match(/its group was stopping/);
  });

  it('write-ahead: a task’s body starts only once the store holds it; a save that fails fails the task unstarted', async () => {
    const first = registry();
    let saves = 0;
    let failNext = false;
    const counting: SnapshotStore = {
      load: (key) => store.load(key),
      save: async (key, record) => {
        saves++;
        if (failNext) throw new Error('disk full');
        return store.save(key, record);
      },
      delete: (key) => store.delete(key),
      list: () => store.list(),
      close: async () => undefined,
    };
    const actor = createActor(durable(taskGroupLogic, { store: counting, id, version: 1 }), { input: { uniqueId: 'volumes', tasks: first.tasks } });
    const done: TaskDone[] = [];
    actor.on('statesmith.taskGroup.taskDone', (event) => done.push(event as unknown as TaskDone));
    actors.push(actor);
    actor.start();
    await waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the group to run');
    const before = saves;
    actor.send({ type: 'statesmith.taskGroup.createTask', name: 'sync-1', task: 'sync', params: 1 });
    await waitUntil(() => first.calls.length === 1, 5_000, 'the task to start');
    expect(saves).to.be.greaterThan(before);
    failNext = true;
    actor.send({ type: 'statesmith.taskGroup.createTask', name: 'sync-2', task: 'sync', params: 2 });
    await waitUntil(() => done.length === 1, 5_000, 'the second task to fail');
    expect(first.calls).to.have.length(1);
    expect(done[0]).to.include({ name: 'sync-2', outcome: 'failed' });
    expect(done[0]?.error?.message).to.match(/disk full/);
  });
});
