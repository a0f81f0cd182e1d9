/**
 * durable(executorLogic): statesmith's own executor, saved by name and restored on the new
 * incarnation's input. A task that was running when its process ended is run again with
 * the same idempotency key when it is marked idempotent(), and otherwise ends `interrupted`,
 * reported once. Stopping a durable actor saves the state it was in, as a crash leaves it:
 * these tests stop one mid-task to stand for the kill (the crash tests kill real processes).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { createActor, type AnyActorRef } from 'xstate';
import {
  durable,
  executorLogic,
  idempotent,
  openStore,
  type DurableError,
  type DurableSnapshot,
  type ExecutorAction,
  type ExecutorRun,
  type SnapshotStore,
} from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';
import { logged } from '../support/logs.ts';
import { sqliteUrl } from '../support/servers.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Done {
  readonly type: string;
  readonly action: string;
  readonly generation: number;
  readonly outcome: string;
  readonly result?: unknown;
  readonly error?: { readonly name: string; readonly code?: string; readonly message: string };
  readonly woke: boolean;
}

interface ExecutorView {
  readonly value: unknown;
  readonly context: {
    readonly action: string | null;
    readonly generation: number;
    readonly lineage: string;
    readonly lastAction: string | null;
    readonly lastOutcome: string | null;
    readonly lastError: string | null;
  };
}

describe('durable(executorLogic)', function () {
  this.timeout(20_000);
  let store: SnapshotStore;
  let id: string;
  const actors: AnyActorRef[] = [];

  before(async () => {
    store = await openStore(sqliteUrl('durable-executor.db'));
  });
  after(async () => store.close());
  beforeEach(() => (id = `executor-${randomBytes(4).toString('hex')}`));
  afterEach(() => {
    for (const actor of actors.splice(0)) actor.stop();
  });

  /** Where each action's calls go, and the promise that holds the ones that wait. */
  function harness() {
    const calls: Array<{ action: string; params: unknown; run: ExecutorRun }> = [];
    let release: () => void = () => undefined;
    let held = new Promise<void>((resolve) => (release = resolve));
    const holding =
      (action: string): ExecutorAction =>
      async (signal, params, run) => {
        calls.push({ action, params, run });
        await Promise.race([held, new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))]);
        return `${action} done`;
      };
    return {
      calls,
      release: () => {
        release();
        held = new Promise<void>((resolve) => (release = resolve));
      },
      actions: {
        promote: holding('promote'),
        apply: idempotent(holding('apply')),
        resize: async (_s: AbortSignal, p: unknown) => `resized ${String(p)}`,
        // Ignores its signal: a cancel leaves the executor cancelling.
        stubborn: idempotent(async (_s: AbortSignal, params: unknown, run: ExecutorRun) => {
          calls.push({ action: 'stubborn', params, run });
          await new Promise(() => undefined);
        }),
      },
    };
  }

  /** One incarnation: the durable executor with `actions`, and what it emitted and woke. */
  function incarnation(actions: Record<string, ExecutorAction>, options: { onInterrupted?: 'abandon' | 'retry' | 'escalate' } = {}) {
    let wakes = 0;
    const actor = createActor(durable(executorLogic, { store, id, version: 1, ...options }), {
      input: { name: 'durable-executor', actions, wakeup: () => void wakes++ },
    });
    const done: Done[] = [];
    const interrupted: Array<{ error: { code: string; message: string } }> = [];
    let firstRunning: ExecutorView | undefined;
    actor.on('statesmith.executor.done', (event) => done.push(event as unknown as Done));
    actor.on('statesmith.durable.interrupted', (event) => interrupted.push(event as never));
    actor.subscribe({
      next: (snapshot) => {
        const state = snapshot as DurableSnapshot;
        if (firstRunning === undefined && state.value === 'running') firstRunning = state.inner as unknown as ExecutorView;
      },
      error: () => undefined,
    });
    actors.push(actor);
    actor.start();
    return {
      actor,
      done,
      interrupted,
      wakes: () => wakes,
      /** The executor as it was in the restore's own step: before any command could reach it. */
      firstRunning: () => firstRunning,
      inner: () => (actor.getSnapshot() as DurableSnapshot).inner as unknown as ExecutorView,
      running: () => waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the durable executor to run'),
    };
  }

  /** Waits until the store holds the executor in `state` (the crash tests' "killed after that save"). */
  async function savedIn(state: string): Promise<void> {
    await waitUntil(
      async () => ((await store.load(id))?.snapshot as { inner?: { state?: string } } | undefined)?.inner?.state === state,
      5_000,
      `the store to hold the executor ${state}`,
    );
  }

  it('comes back idle with its last task and its lineage; the next task’s key goes on from the saved generation', async () => {
    const { actions } = harness();
    const first = incarnation(actions);
    await first.running();
    first.actor.send({ type: 'statesmith.executor.run', action: 'resize', params: 7 });
    await waitUntil(() => first.done.length === 1, 5_000);
    expect(first.done[0]).to.include({ action: 'resize', outcome: 'completed', result: 'resized 7' });
    const lineage = first.inner().context.lineage;
    await savedIn('idle');
    first.actor.stop();

    const calls: ExecutorRun[] = [];
    const second = incarnation({ ...actions, resize: async (_s, p, run) => (calls.push(run), `resized ${String(p)}`) });
    await second.running();
    expect(second.inner().value).to.equal('idle');
    expect(second.inner().context).to.include({ lastAction: 'resize', lastOutcome: 'completed', generation: 1, lineage });
    expect(second.done, 'nothing to report').to.deep.equal([]);
    second.actor.send({ type: 'statesmith.executor.run', action: 'resize', params: 8 });
    await waitUntil(() => second.done.length === 1, 5_000);
    expect(calls).to.deep.equal([{ idempotencyKey: `${lineage}:2`, attempt: 1 }]);
  });

  it('a task running when its process ended, not marked idempotent, ends interrupted: its done is told once with ERR_INTERRUPTED, the loop is woken, and it never runs again', async () => {
    const { actions, calls } = harness();
    const first = incarnation(actions);
    await first.running();
    first.actor.send({ type: 'statesmith.executor.run', action: 'promote', params: { to: 'primary' } });
    await savedIn('running');
    first.actor.stop();
    expect(calls.map((c) => c.action)).to.deep.equal(['promote']);

    const second = incarnation(actions);
    await second.running();
    await waitUntil(() => second.done.length === 1, 5_000);
    const [done] = second.done;
    expect(done).to.include({ action: 'promote', generation: 1, outcome: 'interrupted', woke: true });
    expect(done?.error?.code).to.equal('ERR_INTERRUPTED');
    expect(done?.error?.message).to.include('not marked idempotent()');
    expect(second.interrupted.map((e) => e.error.code)).to.deep.equal(['ERR_INTERRUPTED']);
    expect(second.wakes(), 'the HA loop is woken, as for any finished task').to.equal(1);
    expect(second.inner().value).to.equal('idle');
    expect(second.inner().context).to.include({ action: null, lastAction: 'promote', lastOutcome: 'interrupted' });
    expect(logged('warn', /promote.*was running when its process ended/)).to.have.length(1);
    expect(
      calls.map((c) => c.action),
      'promote was not run again',
    ).to.deep.equal(['promote']);
    await savedIn('idle');
    second.actor.stop();

    // Reported once: the next incarnation finds it idle, with nothing to tell.
    const third = incarnation(actions);
    await third.running();
    await sleep(50);
    expect(third.done).to.deep.equal([]);
    expect(third.inner().context.lastOutcome).to.equal('interrupted');
  });

  it('an idempotent() action that was running runs again in the restore’s own step, before any command: the same key and params, the next attempt', async () => {
    const h = harness();
    const first = incarnation(h.actions);
    await first.running();
    first.actor.send({ type: 'statesmith.executor.run', action: 'apply', params: { volume: 'v1' } });
    await savedIn('running');
    first.actor.stop();

    const second = incarnation(h.actions);
    await second.running();
    const restored = second.firstRunning();
    expect(restored?.context.action, 'the slot is taken by the re-run in the very step that restored it').to.equal('apply');
    // A command now finds the slot taken.
    const refused = new Promise((resolve) => second.actor.on('statesmith.executor.refused', resolve));
    second.actor.send({ type: 'statesmith.executor.schedule', action: 'resize' });
    expect(await refused).to.include({ occupant: 'apply' });
    await waitUntil(() => h.calls.length === 2, 5_000);
    expect(h.calls[1]?.params).to.deep.equal({ volume: 'v1' });
    expect(h.calls[1]?.run).to.deep.equal({ idempotencyKey: h.calls[0]?.run.idempotencyKey, attempt: 2 });
    expect(second.interrupted, 'a re-run is not reported interrupted').to.deep.equal([]);
    h.release();
    await waitUntil(() => second.done.length === 1, 5_000);
    expect(second.done[0]).to.include({ action: 'apply', generation: 1, outcome: 'completed', result: 'apply done' });
    expect(second.inner().value).to.equal('idle');
  });

  it("a runner's own function, a cancel in progress, params that are not JSON and an action this incarnation lacks each end interrupted, never run again, each saying why", async () => {
    const cases: Array<{ send: Record<string, unknown>; cancel?: boolean; lacking?: boolean; why: RegExp }> = [
      { send: { scheduleAs: 'inline', fn: () => new Promise(() => undefined) }, why: /runner's own function/ },
      { send: { action: 'stubborn', params: {} }, cancel: true, why: /being cancelled/ },
      { send: { action: 'apply', params: { at: new Date(0) } }, why: /params were not plain JSON/ },
      { send: { action: 'apply', params: 1 }, lacking: true, why: /no action named "apply"/ },
    ];
    for (const { send, cancel, lacking, why } of cases) {
      id = `executor-${randomBytes(4).toString('hex')}`;
      const h = harness();
      const first = incarnation(h.actions);
      await first.running();
      first.actor.send({ type: 'statesmith.executor.run', ...send });
      await savedIn('running');
      if (cancel) {
        first.actor.send({ type: 'statesmith.executor.cancel' });
        await savedIn('cancelling');
      }
      first.actor.stop();
      const calls = h.calls.length;
      const { apply: _apply, ...withoutApply } = h.actions;
      const second = incarnation(lacking ? withoutApply : h.actions);
      await second.running();
      await waitUntil(() => second.done.length === 1, 5_000);
      expect(second.done[0]?.outcome).to.equal('interrupted');
      expect(second.done[0]?.error?.message).to.match(why);
      expect(h.calls.length, 'not run again').to.equal(calls);
      second.actor.stop();
    }
  });

  it("onInterrupted: 'retry' runs an unmarked named action again; 'escalate' fails the durable actor with ERR_INTERRUPTED", async () => {
    const h = harness();
    const first = incarnation(h.actions);
    await first.running();
    first.actor.send({ type: 'statesmith.executor.run', action: 'promote' });
    await savedIn('running');
    first.actor.stop();

    const escalated = incarnation(h.actions, { onInterrupted: 'escalate' });
    await waitUntil(() => escalated.actor.getSnapshot().status === 'error', 5_000);
    const error = escalated.actor.getSnapshot().error as DurableError;
    expect(error.code).to.equal('ERR_INTERRUPTED');
    expect(error.message).to.include('executor action "promote"');
    expect(h.calls).to.have.length(1);

    const retried = incarnation(h.actions, { onInterrupted: 'retry' });
    await retried.running();
    await waitUntil(() => h.calls.length === 2, 5_000);
    expect(h.calls[1]?.run.attempt).to.equal(2);
    expect(h.calls[1]?.run.idempotencyKey).to.equal(h.calls[0]?.run.idempotencyKey);
  });

  it('a task scheduled and not yet taken by a runner stays scheduled: a runner of the new incarnation runs it', async () => {
    const h = harness();
    const first = incarnation(h.actions);
    await first.running();
    first.actor.send({ type: 'statesmith.executor.schedule', action: 'resize' });
    await savedIn('waiting');
    first.actor.stop();

    const second = incarnation(h.actions);
    await second.running();
    expect(second.inner().value).to.deep.equal({ scheduled: 'waiting' });
    expect(second.done).to.deep.equal([]);
    second.actor.send({ type: 'statesmith.executor.run', action: 'resize', params: 3 });
    await waitUntil(() => second.done.length === 1, 5_000);
    expect(second.done[0]).to.include({ action: 'resize', outcome: 'completed', result: 'resized 3' });
  });

  it('a task whose function had ended, and whose cleanup had not, is told done as it ended', async () => {
    const h = harness();
    // A cleanup that cannot take the executor lock: the task stays in done.
    const stuck = { acquire: () => new Promise<never>(() => undefined) };
    let gate = 0;
    const lock = {
      acquire: () => (gate++ === 0 ? Promise.resolve({ release: () => undefined }) : stuck.acquire()),
    };
    const actor = createActor(durable(executorLogic, { store, id, version: 1 }), {
      input: { name: 'durable-executor', actions: h.actions, lock, wakeup: () => undefined },
    });
    actors.push(actor);
    actor.start();
    await waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    actor.send({ type: 'statesmith.executor.run', action: 'resize', params: 5 });
    await savedIn('done');
    actor.stop();

    const second = incarnation(h.actions);
    await second.running();
    await waitUntil(() => second.done.length === 1, 5_000);
    expect(second.done[0]).to.include({ action: 'resize', outcome: 'completed', result: 'resized 5', woke: true });
    expect(second.interrupted).to.deep.equal([]);
    expect(second.inner().context).to.include({ action: null, lastAction: 'resize', lastOutcome: 'completed' });
  });

  it('starts a task’s function only once the store holds the task started; a save that fails means it never starts', async () => {
    // A store whose saves of a running executor wait for the test, or fail.
    let hold: Promise<void> | undefined;
    let failing = false;
    const saves: string[] = [];
    const slow: SnapshotStore = {
      load: (key) => store.load(key),
      save: async (key, record) => {
        const state = (record.snapshot as { inner?: { state?: string } }).inner?.state ?? '?';
        saves.push(state);
        if (state === 'running') {
          await hold;
          if (failing) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
        }
        return store.save(key, record);
      },
      delete: (key) => store.delete(key),
      list: () => store.list(),
      close: async () => undefined,
    };
    let letGo!: () => void;
    hold = new Promise((resolve) => (letGo = resolve));
    const started: string[] = [];
    const actor = createActor(durable(executorLogic, { store: slow, id, version: 1 }), {
      input: { name: 'durable-executor', actions: { promote: async () => void started.push('promote') }, wakeup: () => undefined },
    });
    actors.push(actor);
    const done: Done[] = [];
    actor.on('statesmith.executor.done', (event) => done.push(event as unknown as Done));
    actor.start();
    await waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    actor.send({ type: 'statesmith.executor.run', action: 'promote' });
    await waitUntil(() => saves.includes('running'), 5_000);
    await sleep(30);
    expect(started, 'not before the store has it').to.deep.equal([]);
    letGo();
    await waitUntil(() => done.length === 1, 5_000);
    expect(started).to.deep.equal(['promote']);
    expect(done[0]?.outcome).to.equal('completed');

    failing = true;
    hold = undefined;
    actor.send({ type: 'statesmith.executor.run', action: 'promote' });
    await waitUntil(() => done.length === 2, 5_000);
    expect(done[1]?.outcome).to.equal('failed');
    expect(done[1]?.error).to.include({ code: 'ENOSPC', message: 'disk full' });
    expect(started, 'the second never started').to.deep.equal(['promote']);
  });
});
