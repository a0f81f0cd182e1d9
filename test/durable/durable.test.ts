/**
 * durable(logic): a user's own machine, with a spawned child and armed `after` timers,
 * comes back where it was (the case statelyai/xstate#5331 leaves open), fenced by a
 * coordinator so that a replaced incarnation can never act or save again.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { assign, createActor, fromPromise, setup, type AnyActorRef, type EventObject } from 'xstate';
import {
  createCoordinator,
  DurableError,
  durable,
  serviceLogic,
  idempotent,
  openStore,
  type Coordinator,
  type DurableSnapshot,
  type SnapshotStore,
} from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';
import { sqliteUrl } from '../support/servers.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A pump with a counter, a spawned child that counts its own pings, and a cool-down `after` timer. */
const counter = setup({ types: { context: {} as { pings: number }, events: {} as { type: 'ping' } } }).createMachine({
  id: 'counter',
  context: { pings: 0 },
  on: { ping: { actions: assign({ pings: ({ context }) => context.pings + 1 }) } },
});
const pump = setup({
  types: {
    context: {} as { started: number; child?: AnyActorRef },
    events: {} as { type: 'start' } | { type: 'stop' } | { type: 'ping' },
  },
  actors: { counter },
  delays: { coolDown: 400 },
}).createMachine({
  id: 'pump',
  context: { started: 0 },
  initial: 'idle',
  states: {
    idle: { on: { start: { target: 'running', actions: assign({ started: ({ context }) => context.started + 1 }) } } },
    running: {
      entry: assign({ child: ({ spawn }) => spawn('counter', { id: 'counter' }) }),
      on: { ping: { actions: ({ context }) => context.child?.send({ type: 'ping' }) }, stop: 'coolingDown' },
    },
    coolingDown: { after: { coolDown: 'idle' } },
  },
});

const value = (actor: { getSnapshot(): unknown }): unknown => ((actor.getSnapshot() as DurableSnapshot).inner as { value?: unknown } | undefined)?.value;
const innerOf = (actor: { getSnapshot(): unknown }) =>
  (actor.getSnapshot() as DurableSnapshot).inner as unknown as { value: unknown; context: { started: number } };

describe('durable(logic)', function () {
  this.timeout(20_000);
  let store: SnapshotStore;
  let id: string;
  const coordinators: Coordinator[] = [];

  before(async () => {
    store = await openStore(sqliteUrl('durable.db'));
  });
  after(async () => store.close());
  beforeEach(() => (id = `pump-${randomBytes(4).toString('hex')}`));
  afterEach(async () => {
    await Promise.all(coordinators.splice(0).map((c) => c.stop()));
  });

  function start(options: Partial<Parameters<typeof durable>[1]> = {}) {
    const actor = createActor(durable(pump, { store, id, version: 1, ...options }));
    actor.subscribe({ error: () => undefined });
    return actor.start();
  }

  it('starts fresh with no snapshot, then comes back with its state, context and spawned child', async () => {
    const first = start();
    await waitUntil(() => (first.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    expect(first.getSnapshot().context).to.include({ restored: false, restoredFrom: null });
    first.send({ type: 'start' });
    first.send({ type: 'ping' });
    first.send({ type: 'ping' });
    await sleep(30); // one turn: saved
    first.stop();
    await sleep(30);

    const second = start();
    await waitUntil(() => (second.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    const snapshot = second.getSnapshot() as DurableSnapshot;
    expect(snapshot.context.restored).to.equal(true);
    expect(value(second)).to.equal('running');
    expect(innerOf(second).context.started).to.equal(1);
    const child = snapshot.children['counter'];
    expect((child?.getSnapshot() as { context: { pings: number } }).context.pings, 'the spawned child came back with its own context').to.equal(2);
    second.send({ type: 'ping' });
    expect((child?.getSnapshot() as { context: { pings: number } }).context.pings, 'and runs').to.equal(3);
    second.stop();
  });

  it('an armed after timer keeps its wall-clock deadline across the restart, and fires at it, not before', async () => {
    const first = start();
    await waitUntil(() => (first.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    first.send({ type: 'start' });
    first.send({ type: 'stop' });
    const armedAt = Date.now();
    await sleep(50);
    first.stop();
    await sleep(100);

    const second = start();
    await waitUntil(() => (second.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    expect(value(second)).to.equal('coolingDown');
    expect(second.getSnapshot().context.timersRestored).to.equal(1);
    // Re-armed for what was left of the 400 ms, not 400 ms from now.
    const scheduled = Object.values(
      (second.system as unknown as { getSnapshot(): { _scheduledEvents: Record<string, { delay: number }> } }).getSnapshot()._scheduledEvents,
    );
    expect(scheduled).to.have.length(1);
    expect(scheduled[0]!.delay).to.be.within(0, 400 - (Date.now() - armedAt) + 20);
    await waitUntil(() => value(second) === 'idle', 2_000, 'the cool-down to end');
    expect(Date.now() - armedAt, 'never before its deadline').to.be.at.least(395);
    second.stop();
  });

  it('a deadline that passed while it was down fires at once on restore', async () => {
    const first = start();
    await waitUntil(() => (first.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    first.send({ type: 'start' });
    first.send({ type: 'stop' });
    await sleep(30);
    first.stop();
    await sleep(450); // past the 400 ms deadline, while "down"
    const second = start();
    await waitUntil(() => (second.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    const restoredAt = Date.now();
    await waitUntil(() => value(second) === 'idle', 1_000, 'the overdue cool-down to fire');
    expect(Date.now() - restoredAt).to.be.below(200);
    second.stop();
  });

  it('answers commands with ERR_RECOVERING while it restores, and takes them once running', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: SnapshotStore = {
      ...store,
      load: async (key) => (await gate, store.load(key)),
      save: (key, record) => store.save(key, record),
      delete: (key) => store.delete(key),
      list: () => store.list(),
      close: async () => undefined,
    };
    const replies: EventObject[] = [];
    const asker = createActor(setup({}).createMachine({ on: { '*': { actions: ({ event }) => replies.push(event) } } })).start();
    const actor = createActor(durable(pump, { store: slow, id, version: 1 })).start();
    actor.send({ type: 'start', replyTo: asker } as never);
    await sleep(0);
    expect(replies).to.have.length(1);
    expect(replies[0]).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_RECOVERING', state: 'recovering' });
    release();
    await waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    actor.send({ type: 'start' });
    expect(value(actor)).to.equal('running');
    actor.stop();
    asker.stop();
  });

  it('a snapshot of another version goes through migrate, or is refused with ERR_SNAPSHOT_VERSION naming both', async () => {
    await store.save(id, { snapshot: { inner: pump.getPersistedSnapshot(createActor(pump).getSnapshot()), timers: [] }, version: 1 });
    const refused = start({ version: 2 });
    await waitUntil(() => refused.getSnapshot().status === 'error', 5_000);
    const error = refused.getSnapshot().error as DurableError;
    expect(error.code).to.equal('ERR_SNAPSHOT_VERSION');
    expect(error.message).to.match(/saved by version 1, and this machine is version 2 with no migrate/);

    const seen: Array<string | number> = [];
    const migrated = start({
      version: 2,
      migrate: (snapshot, from) => {
        seen.push(from);
        return { ...(snapshot as object), context: { ...(snapshot as { context: object }).context, started: 41 } };
      },
    });
    await waitUntil(() => (migrated.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    expect(seen).to.deep.equal([1]);
    expect(innerOf(migrated).context.started).to.equal(41);
    expect(migrated.getSnapshot().context).to.include({ restoredVersion: 1, version: 2 });
    migrated.stop();
  });

  it('with a coordinator: runs under its fence, and an incarnation replaced by a newer one ends ERR_FENCED and never saves again', async () => {
    const url = `${sqliteUrl('durable-fence.db')}?namespace=${id}`;
    const oldCoordinator = createCoordinator({ url, agentId: 'old', lockTtlMs: 600, heartbeatMs: 100 });
    const newCoordinator = createCoordinator({ url, agentId: 'new', lockTtlMs: 600, heartbeatMs: 100 });
    coordinators.push(oldCoordinator, newCoordinator);
    await oldCoordinator.start();
    await newCoordinator.start();

    const old = start({ coordinator: oldCoordinator });
    await waitUntil(() => (old.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    const oldFence = BigInt(old.getSnapshot().context.fence as string);
    old.send({ type: 'start' });
    await sleep(30);

    // The new incarnation waits for the fence, recovering.
    const next = start({ coordinator: newCoordinator });
    await sleep(100);
    expect((next.getSnapshot() as DurableSnapshot).value).to.equal('recovering');

    // An operator breaks the old one's lock (as a lease running out behind a frozen process would end it).
    expect(await newCoordinator.breakLock(`durable/${id}`)).to.equal(true);
    await waitUntil(() => old.getSnapshot().status === 'error', 5_000, 'the old incarnation to see its fence gone');
    expect((old.getSnapshot().error as DurableError).code).to.equal('ERR_FENCED');
    expect((old.getSnapshot() as DurableSnapshot).value).to.equal('fenced');

    await waitUntil(() => (next.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the new incarnation to take over');
    const newFence = BigInt(next.getSnapshot().context.fence as string);
    expect(newFence > oldFence).to.equal(true);
    expect(innerOf(next).context.started, 'it resumed where the old one was').to.equal(1);
    next.send({ type: 'stop' });
    await sleep(30);
    const stored = await store.load(id);
    expect(stored?.fence).to.equal(newFence);
    // The old incarnation's store writes are refused from now on.
    expect(await store.save(id, { snapshot: stored?.snapshot, version: 1, fence: oldFence })).to.equal(false);
    next.stop();
  });

  it('a promise that was running at the crash ends ERR_INTERRUPTED for its invoker, once, and is not run again; an idempotent one runs again', async () => {
    let promotes = 0;
    let roles = 0;
    const agent = setup({
      types: { context: {} as { outcome: string | null } },
      actors: {
        // Not idempotent: promoting twice is not promoting once.
        promote: fromPromise(async () => {
          promotes++;
          return new Promise<string>(() => undefined);
        }),
        // Idempotent: setting a role twice is setting it once. The first run hangs; the re-run finishes.
        setRole: fromPromise(
          idempotent(async () => {
            roles++;
            return roles === 1 ? new Promise<string>(() => undefined) : 'replica';
          }),
        ),
      },
    }).createMachine({
      context: { outcome: null },
      type: 'parallel',
      states: {
        promotion: {
          initial: 'promoting',
          states: {
            promoting: {
              invoke: {
                id: 'promote',
                src: 'promote',
                onDone: 'promoted',
                onError: { target: 'interrupted', actions: assign({ outcome: ({ event }) => (event.error as DurableError).code }) },
              },
            },
            promoted: {},
            interrupted: {},
          },
        },
        role: {
          initial: 'setting',
          states: { setting: { invoke: { id: 'setRole', src: 'setRole', onDone: 'set' } }, set: {} },
        },
      },
    });
    const run = () => {
      const actor = createActor(durable(agent, { store, id, version: 1 }));
      const reports: unknown[] = [];
      actor.on('statesmith.durable.interrupted', (event) => reports.push(event));
      actor.subscribe({ error: () => undefined });
      return { actor: actor.start(), reports };
    };
    const first = run();
    await waitUntil(() => (first.actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    await sleep(30);
    expect([promotes, roles]).to.deep.equal([1, 1]);
    first.actor.stop(); // as if killed mid-promote
    await sleep(30);

    const second = run();
    await waitUntil(() => ((second.actor.getSnapshot() as DurableSnapshot).inner as { value?: { role?: string } } | undefined)?.value?.role === 'set', 5_000);
    const inner = (second.actor.getSnapshot() as DurableSnapshot).inner as unknown as { value: { promotion: string }; context: { outcome: string } };
    expect(inner.value.promotion).to.equal('interrupted');
    expect(inner.context.outcome).to.equal('ERR_INTERRUPTED');
    expect(second.reports).to.have.length(1);
    expect(second.reports[0]).to.deep.include({ type: 'statesmith.durable.interrupted', id, child: 'promote', src: 'promote' });
    expect(promotes, 'the interrupted promote was not run again').to.equal(1);
    expect(roles, 'the idempotent one ran again').to.equal(2);
    await sleep(30);
    second.actor.stop();
    await sleep(30);

    const third = run();
    await waitUntil(() => (third.actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    await sleep(30);
    expect(third.reports, 'reported once, never again after a later restart').to.deep.equal([]);
    expect(((third.actor.getSnapshot() as DurableSnapshot).inner as unknown as { value: { promotion: string } }).value.promotion).to.equal('interrupted');
    expect([promotes, roles]).to.deep.equal([1, 2]);
    third.actor.stop();
  });

  it('a promise invoked by a child machine is held back the same way: the child machine hears ERR_INTERRUPTED', async () => {
    let promotes = 0;
    const worker = setup({
      actors: {
        promote: fromPromise(async () => {
          promotes++;
          return new Promise<string>(() => undefined);
        }),
      },
    }).createMachine({
      id: 'worker',
      initial: 'promoting',
      states: { promoting: { invoke: { id: 'promote', src: 'promote', onDone: 'promoted', onError: 'interrupted' } }, promoted: {}, interrupted: {} },
    });
    const agent = setup({ actors: { worker } }).createMachine({ invoke: { id: 'worker', src: 'worker' } });
    const run = () => {
      const actor = createActor(durable(agent, { store, id, version: 1 }));
      const reports: Array<{ child?: string }> = [];
      actor.on('statesmith.durable.interrupted', (event) => reports.push(event as { child?: string }));
      return { actor: actor.start(), reports };
    };
    const first = run();
    await waitUntil(() => (first.actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    await sleep(30);
    first.actor.stop();
    await sleep(30);
    const second = run();
    await waitUntil(() => (second.actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    const child = (second.actor.getSnapshot() as DurableSnapshot).children['worker'];
    await waitUntil(() => (child?.getSnapshot() as { value?: unknown }).value === 'interrupted', 5_000, 'the child machine to hear it');
    expect(second.reports.map((r) => r.child)).to.deep.equal(['worker/promote']);
    expect(promotes, 'not run again').to.equal(1);
    second.actor.stop();
  });

  it("onInterrupted: 'retry' runs an unmarked promise again; 'escalate' fails the durable actor with ERR_INTERRUPTED for its parent", async () => {
    let calls = 0;
    const worker = setup({
      actors: {
        work: fromPromise(async () => {
          calls++;
          return calls === 1 ? new Promise<string>(() => undefined) : 'done';
        }),
      },
    }).createMachine({ initial: 'working', states: { working: { invoke: { src: 'work', id: 'work', onDone: 'finished' } }, finished: {} } });
    const run = (onInterrupted: 'retry' | 'escalate') => {
      const actor = createActor(durable(worker, { store, id, version: 1, onInterrupted }));
      actor.subscribe({ error: () => undefined });
      return actor.start();
    };
    const first = run('retry');
    await waitUntil(() => (first.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    await sleep(30);
    first.stop();
    await sleep(30);

    const escalated = run('escalate');
    await waitUntil(() => escalated.getSnapshot().status === 'error', 5_000);
    const error = escalated.getSnapshot().error as DurableError;
    expect(error.code).to.equal('ERR_INTERRUPTED');
    expect(error.message).to.match(/"work" \(work\) was running when its process ended \(onInterrupted: 'escalate'\)/);
    expect(calls, 'escalate runs nothing').to.equal(1);

    const retried = run('retry');
    await waitUntil(() => ((retried.getSnapshot() as DurableSnapshot).inner as { value?: unknown } | undefined)?.value === 'finished', 5_000);
    expect(calls, 'retry ran it again').to.equal(2);
    retried.stop();
  });

  it('a store given as a URL is opened once for every durable actor that names it, and closed when the last one stops: no file handle is left', async () => {
    const url = sqliteUrl(`own-store-${id}.db`);
    const path = decodeURIComponent(new URL(url).pathname);
    const openHandles = (): number =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(path);
        } catch {
          return false;
        }
      }).length;
    const actor = createActor(durable(pump, { store: url, id, version: 1 })).start();
    await waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000);
    actor.send({ type: 'start' });
    await sleep(30);
    const one = openHandles();
    expect(one, 'the actor holds its store open while it runs').to.be.greaterThan(0);
    const others = Array.from({ length: 20 }, (_, i) => createActor(durable(pump, { store: url, id: `${id}-${i}`, version: 1 })).start());
    await waitUntil(() => others.every((other) => (other.getSnapshot() as DurableSnapshot).value === 'running'), 5_000);
    expect(openHandles(), 'twenty more actors on the same URL share its connection').to.equal(one);
    for (const other of others) other.stop();
    await sleep(30);
    expect(openHandles(), 'still open for the first actor').to.equal(one);
    actor.stop();
    await waitUntil(() => openHandles() === 0, 5_000, 'the store to be closed');
    const reopened = await openStore(url);
    expect(((await reopened.load(id))?.snapshot as { inner: { value: string } }).inner.value).to.equal('running');
    await reopened.close();
  });

  it('fails with ERR_SNAPSHOT_JSON, naming the place, when its snapshot would not come back as it is (a function, a Date), and saves nothing', async () => {
    const withDate = setup({ types: { context: {} as { since: Date } } }).createMachine({ context: () => ({ since: new Date(0) }) });
    const dated = createActor(durable(withDate, { store, id, version: 1 }));
    dated.subscribe({ error: () => undefined });
    dated.start();
    await waitUntil(() => dated.getSnapshot().status === 'error', 5_000);
    const error = dated.getSnapshot().error as DurableError;
    expect(error.code).to.equal('ERR_SNAPSHOT_JSON');
    expect(error.message).to.include('snapshot.inner.context.since is a Date');
    expect(await store.load(id), 'nothing saved').to.equal(null);

    // A statesmith actor invoked inside a durable machine's tree (its context keeps functions) is saved as its picture instead
    // (test/durable/nested.test.ts restores one).
    const holder = setup({ actors: { service: serviceLogic } }).createMachine({
      invoke: { id: 'service', src: 'service', input: { name: 'durable-service', uniqueId: `${id}-service`, main: async () => undefined } },
    });
    const service = createActor(durable(holder, { store, id: `${id}-service`, version: 1 }));
    service.subscribe({ error: () => undefined });
    service.start();
    await waitUntil(async () => (await store.load(`${id}-service`)) !== null, 5_000);
    const saved = (await store.load(`${id}-service`))?.snapshot as { inner: { children: Record<string, { snapshot: Record<string, unknown> }> } };
    expect(saved.inner.children['service']?.snapshot).to.have.property('$statesmith.picture', 1);
    expect(service.getSnapshot().status).to.equal('active');
    service.stop();
  });

  it('refuses bad options with typed errors', () => {
    const attempt = (options: unknown): string | undefined => {
      try {
        durable(pump, options as never);
      } catch (error) {
        return (error as { code?: string }).code;
      }
      return undefined;
    };
    expect(attempt({ store, id: '', version: 1 })).to.equal('ERR_INVALID_ARG_VALUE');
    expect(attempt({ store, id: 'x', version: true })).to.equal('ERR_INVALID_ARG_TYPE');
    expect(attempt({ store: 42, id: 'x', version: 1 })).to.equal('ERR_INVALID_ARG_TYPE');
    expect(attempt({ store, id: 'x', version: 1, onCrash: 'retry' })).to.equal('ERR_UNKNOWN_OPTION');
    expect(attempt({ store, id: 'x', version: 1, onInterrupted: 'ignore' })).to.equal('ERR_INVALID_ARG_VALUE');
    expect(
      attempt({
        get store() {
          throw new Error('getter boom');
        },
        id: 'x',
        version: 1,
      }),
      'a getter that throws',
    ).to.equal('ERR_INVALID_ARG_TYPE');
    expect(attempt({ store: { load: 1, save: 2 }, id: 'x', version: 1 }), 'not a store').to.equal('ERR_INVALID_ARG_TYPE');
    expect(() => durable({} as never, { store, id: 'x', version: 1 })).to.throw(/XState actor logic/);
  });
});
