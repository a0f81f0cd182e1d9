/**
 * `supervise(logic)`: any XState logic restarted when it fails, on the actor system's
 * clock (ManualClock here, so no real sleeps).
 */
import { expect } from 'chai';
import { assign, createActor, fromCallback, fromPromise, sendParent, setup, type AnyActorRef } from 'xstate';
import { ManualClock, supervise, taskGroupLogic, type SupervisedSnapshot } from '../../src/index.ts';
import { heard, settle } from '../support/async.ts';

type CounterEvent = { type: 'inc' } | { type: 'crash' } | { type: 'finish' } | { type: 'get'; replyTo: AnyActorRef };

/** A user's machine: counts, answers `get`, throws in an action on `crash`, and ends on `finish`. */
const counter = setup({
  types: { context: {} as { n: number; start: number }, events: {} as CounterEvent, input: {} as { start?: number } | undefined },
  actions: {
    crash: () => {
      throw new Error('counter crashed');
    },
  },
}).createMachine({
  id: 'counter',
  context: ({ input }) => ({ n: input?.start ?? 0, start: input?.start ?? 0 }),
  initial: 'counting',
  states: {
    counting: {
      on: {
        inc: { actions: assign({ n: ({ context }) => context.n + 1 }) },
        crash: { actions: 'crash' },
        get: { actions: ({ context, event }) => (event as { replyTo: AnyActorRef }).replyTo.send({ type: 'count', n: context.n }) },
        finish: 'finished',
      },
    },
    finished: { type: 'final' },
  },
  output: ({ context }) => context.n,
});

const innerContext = (actor: AnyActorRef) => ((actor.getSnapshot() as SupervisedSnapshot).inner as { context?: { n: number } } | undefined)?.context;

describe('supervise', () => {
  it('restarts a machine that throws in an action from its initial state, with the same input, after the back-off', async () => {
    const clock = new ManualClock();
    const actor = createActor(supervise(counter, { backoff: { initialMs: 100, jitter: 0 } }), { input: { start: 5 }, clock }).start();
    actor.send({ type: 'inc' });
    expect(innerContext(actor)).to.deep.include({ n: 6 });
    actor.send({ type: 'crash' });
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).to.equal('backingOff');
    expect(snapshot.context.restarts).to.equal(1);
    expect(snapshot.context.until).to.equal(100);
    expect(snapshot.context.lastError).to.deep.equal({ name: 'Error', message: 'counter crashed' });
    await clock.advance(99);
    expect(actor.getSnapshot().value).to.equal('backingOff');
    await clock.advance(1);
    expect(actor.getSnapshot().value).to.equal('running');
    expect(innerContext(actor)).to.deep.include({ n: 5 });
    actor.stop();
  });

  it('keeps the events sent during a back-off and delivers them in order; past bufferSize it refuses them', async () => {
    const clock = new ManualClock();
    const actor = createActor(supervise(counter, { bufferSize: 2, backoff: { initialMs: 100, jitter: 0 } }), { clock }).start();
    const replies = heard(actor);
    actor.send({ type: 'crash' });
    actor.send({ type: 'inc' });
    actor.send({ type: 'inc' });
    const asker = createActor(setup({}).createMachine({})).start();
    actor.send({ type: 'get', replyTo: asker });
    expect(actor.getSnapshot().context.buffer).to.have.length(2);
    const refused = replies.find((r) => r.type === 'statesmith.rejected') as { code: string; reason: string; state: unknown } | undefined;
    expect(refused).to.deep.include({ code: 'ERR_BUFFER_FULL', state: 'backingOff' });
    expect(refused?.reason).to.equal('supervisor is backing off until 100 and already keeps 2 events');
    await clock.advance(100);
    expect(innerContext(actor)).to.deep.include({ n: 2 });
    expect(actor.getSnapshot().context.buffer).to.deep.equal([]);
    actor.stop();
    asker.stop();
  });

  it("restartFrom: 'snapshot' restores the last snapshot before the failing event", async () => {
    const clock = new ManualClock();
    const actor = createActor(supervise(counter, { restartFrom: 'snapshot', backoff: { initialMs: 10, jitter: 0 } }), { clock }).start();
    for (let i = 0; i < 3; i++) actor.send({ type: 'inc' });
    actor.send({ type: 'crash' });
    await clock.advance(10);
    expect(innerContext(actor)).to.deep.include({ n: 3 });
    actor.send({ type: 'inc' });
    expect(innerContext(actor)).to.deep.include({ n: 4 });
    actor.stop();
  });

  it('fails itself with the inner error once the intensity is exceeded, so a parent machine sees it (escalation)', async () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    const parent = setup({
      actors: { counter: supervise(counter, { maxRestarts: 2, withinMs: 10_000, backoff: { initialMs: 10, jitter: 0 } }) },
    }).createMachine({
      initial: 'watching',
      states: {
        watching: {
          invoke: { id: 'supervised', src: 'counter', onError: { target: 'escalated', actions: ({ event }) => errors.push(event.error) } },
          on: { crash: { actions: ({ self }) => (self.getSnapshot().children.supervised as AnyActorRef).send({ type: 'crash' }) } },
        },
        escalated: {},
      },
    });
    const actor = createActor(parent, { clock }).start();
    for (let i = 0; i < 3; i++) {
      actor.send({ type: 'crash' });
      await clock.advance(10);
    }
    expect(actor.getSnapshot().value).to.equal('escalated');
    expect(errors.map((e) => (e as Error).message)).to.deep.equal(['counter crashed']);
    actor.stop();
  });

  it('with escalate: false it stays failed and refuses every event', async () => {
    const clock = new ManualClock();
    const actor = createActor(supervise(counter, { maxRestarts: 0, escalate: false }), { clock }).start();
    const replies = heard(actor);
    actor.send({ type: 'crash' });
    expect(actor.getSnapshot().value).to.equal('failed');
    expect(actor.getSnapshot().status).to.equal('active');
    actor.send({ type: 'inc' });
    expect(replies.at(-1)).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_INVALID_STATE', command: { type: 'inc' } });
    actor.stop();
  });

  it('transient: a machine that finishes is done, with its output; permanent: it is started again', async () => {
    const clock = new ManualClock();
    const transient = createActor(supervise(counter), { clock }).start();
    transient.send({ type: 'inc' });
    transient.send({ type: 'finish' });
    expect(transient.getSnapshot().status).to.equal('done');
    expect(transient.getSnapshot().output).to.equal(1);
    const permanent = createActor(supervise(counter, { type: 'permanent', backoff: { initialMs: 10, jitter: 0 } }), { clock }).start();
    permanent.send({ type: 'inc' });
    permanent.send({ type: 'finish' });
    expect(permanent.getSnapshot().value).to.equal('backingOff');
    await clock.advance(10);
    expect(innerContext(permanent)).to.deep.include({ n: 0 });
    permanent.stop();
  });

  it('restarts a rejected promise logic, and a run that lasted resetAfterMs clears the history', async () => {
    const clock = new ManualClock();
    let runs = 0;
    const flaky = fromPromise(() => {
      runs++;
      // Runs 1 and 2 fail at once; run 3 fails after 5 s; run 4 fails at once; run 5 never ends.
      const after = [0, 0, 5_000, 0][runs - 1];
      return after === undefined
        ? new Promise<never>(() => undefined)
        : new Promise<never>((_, reject) => clock.setTimeout(() => reject(new Error(`run ${runs}`)), after));
    });
    const actor = createActor(supervise(flaky, { maxRestarts: 2, resetAfterMs: 1_000, backoff: { initialMs: 100, factor: 2, jitter: 0 } }), { clock }).start();
    const until: number[] = [];
    actor.subscribe((s) => {
      if (s.value === 'backingOff' && s.context.until !== until.at(-1)) until.push(s.context.until as number);
    });
    await clock.advance(20_000);
    expect(runs).to.equal(5);
    expect(actor.getSnapshot().value).to.equal('running');
    // Back-offs 100 and 200; the 5 s run resets: 100 and 200 again, within the budget of 2.
    expect(until).to.deep.equal([100, 300, 5_400, 5_600]);
    actor.stop();
  });

  it('cuts a back-off longer than a Node timer into slices', async () => {
    const clock = new ManualClock();
    const actor = createActor(supervise(counter, { backoff: { initialMs: 3e9, maxMs: 3e9, jitter: 0 } }), { clock }).start();
    actor.send({ type: 'crash' });
    await clock.advance(2 ** 31);
    expect(actor.getSnapshot().value).to.equal('backingOff');
    await clock.advance(3e9 - 2 ** 31);
    expect(actor.getSnapshot().value).to.equal('running');
    actor.stop();
  });

  it('runs statesmith logic transparently: what it sends its parent reaches the supervisor’s parent, once', async () => {
    const clock = new ManualClock();
    const seen: string[] = [];
    const parent = setup({ actors: { group: supervise(taskGroupLogic) } }).createMachine({
      invoke: { id: 'group', src: 'group', input: { uniqueId: 'supervised', tasks: { hello: async () => 'hi' } } },
      on: {
        '*': { actions: ({ event }) => seen.push(event.type) },
        create: {
          actions: ({ self }) => (self.getSnapshot().children.group as AnyActorRef).send({ type: 'statesmith.taskGroup.createTask', name: 'h', task: 'hello' }),
        },
      },
    });
    const actor = createActor(parent, { clock }).start();
    const group = actor.getSnapshot().children.group as AnyActorRef;
    const emitted = heard(group);
    actor.send({ type: 'create' });
    await settle();
    expect(seen).to.deep.equal(['statesmith.taskGroup.taskDone']);
    // Had the taskDone come back down, the group would have refused it as an unknown command.
    expect(emitted.map((e) => e.type)).to.deep.equal(['statesmith.taskGroup.taskDone']);
    actor.stop();
  });

  it('a user machine that sends to its parent reaches the supervisor’s parent', async () => {
    const child = setup({}).createMachine({ on: { poke: { actions: sendParent({ type: 'poked' }) } } });
    const seen: string[] = [];
    const parent = setup({ actors: { child: supervise(child) } }).createMachine({
      invoke: { id: 'child', src: 'child' },
      on: {
        poked: { actions: () => seen.push('poked') },
        poke: { actions: ({ self }) => (self.getSnapshot().children.child as AnyActorRef).send({ type: 'poke' }) },
      },
    });
    const actor = createActor(parent).start();
    actor.send({ type: 'poke' });
    expect(seen).to.deep.equal(['poked']);
    actor.stop();
  });

  it('stops the failed actor’s children and delayed events, and gives the new one its own', async () => {
    const clock = new ManualClock();
    const log: string[] = [];
    let runs = 0;
    const withChild = setup({
      actors: {
        watcher: fromCallback(() => {
          const run = ++runs;
          log.push(`watch ${run}`);
          return () => log.push(`unwatch ${run}`);
        }),
        failing: fromPromise(() => Promise.reject(new Error('child failed'))),
      },
    }).createMachine({
      invoke: { id: 'watcher', src: 'watcher' },
      initial: 'idle',
      states: {
        idle: { after: { 1_000: { actions: () => log.push('late timer') } }, on: { go: 'failing' } },
        // An invoked child that rejects with no onError: the machine fails.
        failing: { invoke: { src: 'failing' } },
      },
    });
    const actor = createActor(supervise(withChild, { backoff: { initialMs: 10, jitter: 0 } }), { clock }).start();
    expect(Object.keys(actor.getSnapshot().children)).to.deep.equal(['watcher']);
    actor.send({ type: 'go' });
    await settle();
    expect(actor.getSnapshot().value).to.equal('backingOff');
    expect(actor.getSnapshot().context.lastError).to.deep.equal({ name: 'Error', message: 'child failed' });
    expect(log).to.deep.equal(['watch 1', 'unwatch 1']);
    await clock.advance(10);
    expect(log).to.deep.equal(['watch 1', 'unwatch 1', 'watch 2']);
    await clock.advance(2_000);
    expect(log, 'only the new actor’s timer fires').to.deep.equal(['watch 1', 'unwatch 1', 'watch 2', 'late timer']);
    actor.stop();
    expect(log.at(-1)).to.equal('unwatch 2');
  });

  it('refuses bad logic and bad options with typed errors', () => {
    expect(() => supervise({} as never))
      .to.throw(/"logic" argument must be XState actor logic/)
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(() => supervise(counter, { restartFrom: 'latest' as never }))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(() => supervise(counter, { bufferSize: -1 }))
      .to.throw()
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(() => supervise(counter, { maxRestarts: 1.5 }))
      .to.throw()
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(() => supervise(counter, { type: 'sometimes' as never })).to.throw(/"options.type" argument must be one of/);
    expect(() => supervise(counter, { retries: 3 } as never))
      .to.throw()
      .with.property('code', 'ERR_UNKNOWN_OPTION');
  });
});
