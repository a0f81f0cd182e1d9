/**
 * statesmith logic inside a user's durable machine: an HA agent's own machine invokes an
 * executor (and a task group); `durable(agent)` saves each as its picture in place of the
 * snapshot XState would keep with its functions, and the restore revives it on the input
 * its invoke computes again from the restored context. What a statesmith child finds
 * interrupted is told to the agent (its parent) once; idempotent work runs again under its
 * key. Stopping a durable actor saves the state it was in, as a crash leaves it: these
 * tests stop one mid-task to stand for the kill (the crash tests kill real processes).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { assign, createActor, sendTo, setup, spawnChild, type AnyActorRef } from 'xstate';
import {
  durable,
  executorLogic,
  idempotent,
  openStore,
  taskGroupLogic,
  type DurableError,
  type DurableSnapshot,
  type ExecutorAction,
  type ExecutorRun,
  type SnapshotStore,
  type TaskGroupTask,
} from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';
import { sqliteUrl } from '../support/servers.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Told {
  readonly action: string;
  readonly outcome: string;
  readonly code: string | null;
}

interface AgentContext {
  readonly cluster: string;
  readonly told: Told[];
}

/** The registries an incarnation brings: what its executor and its task group run. */
interface Registries {
  readonly actions: Record<string, ExecutorAction>;
  readonly tasks: Record<string, TaskGroupTask>;
}

/**
 * The agent: in `working` it invokes an executor whose input comes from its context and the
 * registries of this incarnation (`deps`), and a task group; it records each executor
 * `done` it hears.
 */
function agentMachine(deps: () => Registries) {
  return setup({
    types: { context: {} as AgentContext, input: {} as { cluster: string }, events: {} as { type: string; [key: string]: unknown } },
    actors: { executor: executorLogic, group: taskGroupLogic },
  }).createMachine({
    id: 'agent',
    context: ({ input }) => ({ cluster: input.cluster, told: [] }),
    initial: 'working',
    states: {
      working: {
        invoke: [
          {
            id: 'executor',
            src: 'executor',
            input: ({ context }) => ({ name: `${context.cluster}-executor`, actions: deps().actions, wakeup: () => undefined }),
          },
          { id: 'group', src: 'group', input: ({ context }) => ({ uniqueId: `${context.cluster}-group`, tasks: deps().tasks }) },
        ],
        on: {
          run: {
            actions: sendTo('executor', ({ event }) => ({ type: 'statesmith.executor.run', action: event['action'] as string, params: event['params'] })),
          },
          // A delayed command to the child: the agent's own timer, kept across a restore.
          later: { actions: sendTo('executor', { type: 'statesmith.executor.run', action: 'resize', params: 'later' }, { delay: 300 }) },
          task: {
            actions: sendTo('group', ({ event }) => ({
              type: 'statesmith.taskGroup.createTask',
              name: event['name'] as string,
              task: event['task'] as string,
            })),
          },
          'statesmith.executor.done': {
            actions: assign({
              told: ({ context, event }) => [
                ...context.told,
                {
                  action: event['action'] as string,
                  outcome: event['outcome'] as string,
                  code: ((event['error'] as { code?: string } | undefined)?.code ?? null) as string | null,
                },
              ],
            }),
          },
        },
      },
    },
  });
}

describe('statesmith logic inside a durable machine', function () {
  this.timeout(20_000);
  let store: SnapshotStore;
  let id: string;
  const actors: AnyActorRef[] = [];

  before(async () => {
    store = await openStore(sqliteUrl('durable-nested.db'));
  });
  after(async () => store.close());
  beforeEach(() => (id = `agent-${randomBytes(4).toString('hex')}`));
  afterEach(() => {
    for (const actor of actors.splice(0)) actor.stop();
  });

  /** Actions that record their calls and wait until released (or their signal aborts). */
  function registries() {
    const calls: Array<{ action: string; run: ExecutorRun }> = [];
    const holding =
      (action: string): ExecutorAction =>
      async (signal, _params, run) => {
        calls.push({ action, run });
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        return `${action} done`;
      };
    const taskRuns: Array<{ key: string; attempt: number }> = [];
    const registry: Registries = {
      actions: { promote: holding('promote'), apply: idempotent(holding('apply')), resize: async (_s, p) => `resized ${String(p)}` },
      tasks: {
        watch: idempotent(async (signal, _params, run) => {
          taskRuns.push({ key: run.idempotencyKey, attempt: run.attempt });
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        }),
      },
    };
    return { calls, taskRuns, registry };
  }

  function incarnation(registry: Registries, options: { onInterrupted?: 'abandon' | 'retry' | 'escalate' } = {}) {
    const actor = createActor(
      durable(
        agentMachine(() => registry),
        { store, id, version: 1, ...options },
      ),
      { input: { cluster: 'pg-main' } },
    );
    const interrupted: Array<{ child: string; src: string; error: { code: string } }> = [];
    // The executor as it was in the restore's own step: before any command could reach the agent.
    let firstExecutor: unknown;
    actor.subscribe({
      next: (snapshot) => {
        const state = snapshot as DurableSnapshot;
        if (firstExecutor === undefined && state.value === 'running')
          firstExecutor = (
            (state.inner as unknown as { children: Record<string, AnyActorRef> }).children['executor']?.getSnapshot() as { context: { action: unknown } }
          ).context.action;
      },
      error: () => undefined,
    });
    actor.on('statesmith.durable.interrupted', (event) => interrupted.push(event as never));
    actors.push(actor);
    actor.start();
    return {
      actor,
      interrupted,
      firstExecutor: () => firstExecutor,
      agent: () =>
        (actor.getSnapshot() as DurableSnapshot).inner as unknown as { value: unknown; context: AgentContext; children: Record<string, AnyActorRef> },
      executor: () =>
        ((actor.getSnapshot() as DurableSnapshot).inner as unknown as { children: Record<string, AnyActorRef> }).children['executor']?.getSnapshot() as {
          value: unknown;
          context: { lineage: string; generation: number; lastOutcome: string | null };
        },
      running: () => waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the durable agent to run'),
      failure: () => (actor.getSnapshot() as { error?: DurableError }).error,
    };
  }

  /** Waits until the store holds the agent's executor in `state` (its picture, in the agent's saved children). */
  async function savedExecutorIn(state: string): Promise<void> {
    await waitUntil(
      async () => {
        const saved = (await store.load(id))?.snapshot as
          { inner?: { children?: Record<string, { snapshot?: { picture?: { state?: string } } }> } } | undefined;
        return saved?.inner?.children?.['executor']?.snapshot?.picture?.state === state;
      },
      5_000,
      `the store to hold the executor ${state}`,
    );
  }

  it('saves an invoked executor as its picture, and revives it on the input its invoke computes again: lineage and last task kept', async () => {
    const { registry } = registries();
    const first = incarnation(registry);
    await first.running();
    first.actor.send({ type: 'run', action: 'resize', params: 7 });
    await waitUntil(() => first.agent().context.told.length === 1, 5_000, 'resized');
    const lineage = first.executor().context.lineage;
    await savedExecutorIn('idle');
    const saved = JSON.stringify((await store.load(id))?.snapshot);
    expect(saved, 'no function, no registry in the saved agent').to.not.include('resized ${');
    first.actor.stop();

    const second = incarnation(registries().registry);
    await second.running();
    expect(second.executor().value).to.equal('idle');
    expect(second.executor().context).to.include({ lineage, generation: 1, lastOutcome: 'completed' });
    expect(second.agent().context.told).to.deep.equal([{ action: 'resize', outcome: 'completed', code: null }]);
    // The revived executor runs this incarnation's functions, and answers its parent.
    second.actor.send({ type: 'run', action: 'resize', params: 8 });
    await waitUntil(() => second.agent().context.told.length === 2, 5_000, 'resized again');
    expect(second.executor().context.generation).to.equal(2);
  });

  it('tells the agent once that a promote running at the crash ended interrupted, and never runs it again', async () => {
    const first = registries();
    const one = incarnation(first.registry);
    await one.running();
    one.actor.send({ type: 'run', action: 'promote' });
    await waitUntil(() => first.calls.length === 1, 5_000, 'promote started');
    // Write-ahead through the agent: the promote started only once the store held its executor running.
    const atStart = (await store.load(id))?.snapshot as { inner: { children: Record<string, { snapshot: { picture: { state: string } } }> } };
    expect(atStart.inner.children['executor']?.snapshot.picture.state).to.equal('running');
    one.actor.stop();

    const second = registries();
    const two = incarnation(second.registry);
    await two.running();
    await waitUntil(() => two.agent().context.told.length === 1, 5_000, 'told');
    expect(two.agent().context.told).to.deep.equal([{ action: 'promote', outcome: 'interrupted', code: 'ERR_INTERRUPTED' }]);
    expect(two.interrupted.map((e) => [e.child, e.src, e.error.code])).to.deep.equal([['executor', 'executor', 'ERR_INTERRUPTED']]);
    expect(second.calls, 'promote is not run again').to.deep.equal([]);
    expect(two.executor().value).to.equal('idle');
    await savedExecutorIn('idle');
    two.actor.stop();

    const three = incarnation(registries().registry);
    await three.running();
    await sleep(50);
    expect(three.interrupted, 'told once').to.deep.equal([]);
    expect(three.agent().context.told).to.have.length(1);
  });

  it('runs an idempotent() action again in the restore’s own step with the same key and the next attempt; a task group’s task too', async () => {
    const first = registries();
    const one = incarnation(first.registry);
    await one.running();
    one.actor.send({ type: 'run', action: 'apply' });
    one.actor.send({ type: 'task', name: 'watcher', task: 'watch' });
    await waitUntil(() => first.calls.length === 1 && first.taskRuns.length === 1, 5_000, 'apply and watch started');
    await savedExecutorIn('running');
    await waitUntil(async () => JSON.stringify((await store.load(id))?.snapshot).includes('"watcher"'), 5_000, 'the store to hold the task');
    one.actor.stop();
    const [applied] = first.calls;

    const second = registries();
    const two = incarnation(second.registry);
    await two.running();
    await waitUntil(() => second.calls.length === 1 && second.taskRuns.length === 1, 5_000, 'apply and watch run again');
    expect(two.firstExecutor(), 'the slot is taken by the re-run in the very step that restored the agent').to.equal('apply');
    expect(second.calls[0]?.run).to.deep.equal({ idempotencyKey: applied?.run.idempotencyKey, attempt: 2 });
    expect(second.taskRuns[0]).to.deep.equal({ key: first.taskRuns[0]?.key, attempt: 2 });
    expect(two.interrupted).to.deep.equal([]);
    expect(two.agent().context.told).to.deep.equal([]);
  });

  it('keeps a delayed command the agent sent its executor: the restored timer reaches the revived child', async () => {
    const one = incarnation(registries().registry);
    await one.running();
    one.actor.send({ type: 'later' });
    await waitUntil(
      async () => ((await store.load(id))?.snapshot as { timers?: unknown[] } | undefined)?.timers?.length === 1,
      5_000,
      'the store to hold the timer',
    );
    one.actor.stop();

    const two = incarnation(registries().registry);
    await two.running();
    expect((two.actor.getSnapshot() as DurableSnapshot).context.timersRestored).to.equal(1);
    await waitUntil(() => two.agent().context.told.length === 1, 5_000, 'the delayed resize to run');
    expect(two.agent().context.told).to.deep.equal([{ action: 'resize', outcome: 'completed', code: null }]);
  });

  it("onInterrupted: 'escalate' fails the durable agent with ERR_INTERRUPTED naming the child", async () => {
    const first = registries();
    const one = incarnation(first.registry);
    await one.running();
    one.actor.send({ type: 'run', action: 'promote' });
    await savedExecutorIn('running');
    one.actor.stop();

    const two = incarnation(registries().registry, { onInterrupted: 'escalate' });
    await waitUntil(() => two.actor.getSnapshot().status === 'error', 5_000, 'the agent to fail');
    expect(two.failure()?.code).to.equal('ERR_INTERRUPTED');
    expect(two.failure()?.message).to.match(/executor: executor action "promote"/);
  });

  it('fails the restore with ERR_SNAPSHOT_VERSION naming the child when its invoke cannot compute its input from the restored context', async () => {
    const one = incarnation(registries().registry);
    await one.running();
    await savedExecutorIn('idle');
    one.actor.stop();

    const two = incarnation({
      get actions(): Record<string, ExecutorAction> {
        throw new Error('the registry is not loaded yet');
      },
      tasks: {},
    });
    await waitUntil(() => two.actor.getSnapshot().status === 'error', 5_000, 'the restore to fail');
    expect(two.failure()?.code).to.equal('ERR_SNAPSHOT_VERSION');
    expect(two.failure()?.message).to.match(/the input of "executor" could not be computed again from the restored context: the registry is not loaded yet/);
  });

  it('keeps an executor two levels down: a worker machine the agent invokes invokes it, its input from the worker’s restored context', async () => {
    const actions = { resize: async (_s: AbortSignal, p: unknown) => `resized ${String(p)}` };
    const worker = setup({
      types: { context: {} as { pool: string }, input: {} as { pool: string } },
      actors: { executor: executorLogic },
    }).createMachine({
      context: ({ input }) => ({ pool: input.pool }),
      invoke: { id: 'executor', src: 'executor', input: ({ context }) => ({ name: `${context.pool}-executor`, actions, wakeup: () => undefined }) },
      on: { run: { actions: sendTo('executor', { type: 'statesmith.executor.run', action: 'resize', params: 7 }) } },
    });
    const agent = setup({ actors: { worker } }).createMachine({
      invoke: { id: 'worker', src: 'worker', input: { pool: 'volumes' } },
      on: { run: { actions: sendTo('worker', { type: 'run' }) } },
    });
    const executorOf = (actor: AnyActorRef) =>
      (actor.getSnapshot() as DurableSnapshot).children['worker']?.getSnapshot().children['executor']?.getSnapshot() as
        { value: unknown; context: { name: string; generation: number; lineage: string; lastOutcome: string | null } } | undefined;
    const first = createActor(durable(agent, { store, id, version: 1 }));
    actors.push(first);
    first.start();
    await waitUntil(() => (first.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'running');
    first.send({ type: 'run' });
    await waitUntil(() => executorOf(first)?.context.lastOutcome === 'completed', 5_000, 'resized');
    const lineage = executorOf(first)?.context.lineage;
    await waitUntil(
      async () => JSON.stringify((await store.load(id))?.snapshot).includes('"lastOutcome":"completed"'),
      5_000,
      'the store to hold the executor done',
    );
    first.stop();

    const second = createActor(durable(agent, { store, id, version: 1 }));
    actors.push(second);
    second.start();
    await waitUntil(() => (second.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'running again');
    expect(executorOf(second)?.context).to.include({ name: 'volumes-executor', generation: 1, lineage, lastOutcome: 'completed' });
  });

  it('saves a step anywhere in its tree: a command sent straight to a child machine is saved without a step of the agent', async () => {
    const counter = setup({ types: { context: {} as { n: number } } }).createMachine({
      context: { n: 0 },
      on: { inc: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
    });
    const agent = setup({ actors: { counter } }).createMachine({ invoke: { id: 'counter', src: 'counter' } });
    const actor = createActor(durable(agent, { store, id, version: 1 }));
    actors.push(actor);
    actor.start();
    await waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'running');
    const child = (actor.getSnapshot() as DurableSnapshot).children['counter'] as AnyActorRef;
    child.send({ type: 'inc' });
    child.send({ type: 'inc' });
    await waitUntil(
      async () =>
        ((await store.load(id))?.snapshot as { inner?: { children?: Record<string, { snapshot?: { context?: { n?: number } } }> } } | undefined)?.inner
          ?.children?.['counter']?.snapshot?.context?.n === 2,
      5_000,
      'the store to hold the child’s own steps',
    );
  });

  it('refuses a spawned executor at the first save, saying to invoke it: its input could not be given back', async () => {
    const machine = setup({ actors: { executor: executorLogic } }).createMachine({
      id: 'spawner',
      entry: spawnChild('executor', { id: 'spawned', input: { name: 'spawned', actions: {}, wakeup: () => undefined } }),
    });
    const actor = createActor(durable(machine, { store, id, version: 1 }));
    actors.push(actor);
    actor.subscribe({ error: () => undefined });
    actor.start();
    await waitUntil(() => actor.getSnapshot().status === 'error', 5_000, 'the first save to fail');
    const error = (actor.getSnapshot() as { error?: DurableError }).error;
    expect(error?.code).to.equal('ERR_SNAPSHOT_JSON');
    expect(error?.message).to.match(/"spawned" is statesmith logic that was spawned.*invoke it/);
    expect(await store.load(id)).to.equal(null);
  });
});
