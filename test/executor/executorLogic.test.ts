/**
 * `executorLogic` inside a user's own machine: spawned as its child, in its system,
 * driven only by data commands with `replyTo`, heard through replies, events sent to the
 * parent, and `actor.on`.
 */
import { expect } from 'chai';
import { assign, createActor, sendTo, setup, type AnyActorRef } from 'xstate';
import { ask, executorLogic, type ExecutorReply, WakeupBus } from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';

describe('executorLogic in a user machine', () => {
  it('is spawned as a child, runs a named action by command, and replies to replyTo', async () => {
    const bus = new WakeupBus();
    const resized: number[] = [];
    const controller = setup({
      types: { context: {} as { replies: string[]; last: unknown }, events: {} as ExecutorReply | { type: 'resize'; id: number } },
      actors: { executor: executorLogic },
    }).createMachine({
      context: { replies: [], last: undefined },
      entry: assign({}),
      invoke: {
        id: 'executor',
        src: 'executor',
        input: {
          name: 'volumes',
          wakeup: bus,
          actions: {
            resize: async (_signal: AbortSignal, params: unknown) => {
              resized.push((params as { id: number }).id);
              return `resized ${(params as { id: number }).id}`;
            },
          },
        },
      },
      on: {
        resize: {
          actions: sendTo('executor', ({ event, self }) => ({
            type: 'statesmith.executor.run' as const,
            action: 'resize',
            params: { id: (event as { id: number }).id },
            replyTo: self as AnyActorRef,
          })),
        },
        '*': { actions: assign({ replies: ({ context, event }) => [...context.replies, event.type], last: ({ event }) => event }) },
      },
    });
    const app = createActor(controller).start();
    const child = app.getSnapshot().children['executor'] as AnyActorRef;
    expect(child, 'a child of the user machine').to.not.equal(undefined);
    expect(child.system, "in the user machine's system").to.equal(app.system);
    app.send({ type: 'resize', id: 7 });
    await waitUntil(() => app.getSnapshot().context.replies.includes('statesmith.executor.done'), 5_000, 'done');
    expect(resized).to.deep.equal([7]);
    // replyTo and the parent are the same actor here: it hears each reply twice.
    expect(new Set(app.getSnapshot().context.replies)).to.deep.equal(
      new Set(['statesmith.executor.scheduled', 'statesmith.executor.started', 'statesmith.executor.done']),
    );
    expect(app.getSnapshot().context.last).to.include({ type: 'statesmith.executor.done', action: 'resize', outcome: 'completed', result: 'resized 7' });
    expect((await bus.wait(0))?.reason).to.equal('resize completed');
    app.stop();
  });

  it('answers a second run while busy with refused, and a malformed one with rejected; the task goes on', async () => {
    let finish!: () => void;
    const executor = createActor(executorLogic, {
      input: { actions: { slow: () => new Promise<void>((resolve) => (finish = resolve)) } },
    }).start();
    const heard: ExecutorReply[] = [];
    executor.on('*', (event) => heard.push(event as ExecutorReply));
    executor.send({ type: 'statesmith.executor.run', action: 'slow' });
    await waitUntil(() => executor.getSnapshot().matches('running'), 1_000, 'running');
    executor.send({ type: 'statesmith.executor.run', action: 'slow' });
    executor.send({ type: 'statesmith.executor.schedule', action: 42 } as never);
    executor.send({ type: 'statesmith.executor.reset' });
    // A malformed schedule is rejected before the state is asked (it would be refused otherwise).
    expect(heard.map((r) => r.type).slice(2)).to.deep.equal(['statesmith.executor.refused', 'statesmith.rejected', 'statesmith.rejected']);
    expect(heard[3]).to.include({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(executor.getSnapshot().value).to.equal('running');
    finish();
    await waitUntil(() => executor.getSnapshot().matches('idle'), 1_000, 'idle');
    expect(heard.at(-1)).to.include({ type: 'statesmith.executor.done', outcome: 'completed' });
  });

  it("cancels by command: the task's signal aborts, and the canceller hears cancelled once it cleaned up", async () => {
    const executor = createActor(executorLogic, {
      input: {
        actions: {
          wait: (signal: AbortSignal) =>
            new Promise((_resolve, reject) => signal.addEventListener('abort', () => setTimeout(() => reject(signal.reason), 10), { once: true })),
        },
      },
    }).start();
    const heard: ExecutorReply[] = [];
    executor.on('*', (event) => heard.push(event as ExecutorReply));
    executor.send({ type: 'statesmith.executor.run', action: 'wait' });
    await waitUntil(() => executor.getSnapshot().matches('running'), 1_000, 'running');
    executor.send({ type: 'statesmith.executor.cancel' });
    expect(executor.getSnapshot().value).to.equal('cancelling');
    await waitUntil(() => executor.getSnapshot().matches('idle'), 1_000, 'idle');
    const types = heard.map((r) => r.type);
    expect(types.indexOf('statesmith.executor.done')).to.be.below(types.indexOf('statesmith.executor.cancelled'));
    expect(heard.find((r) => r.type === 'statesmith.executor.done')).to.include({ outcome: 'cancelled' });
    expect(executor.getSnapshot().context.lastError).to.match(/^CancelledError/);
  });

  it('hands a signal to every action that can see one: `function`, `(...args) =>` and `(signal) =>` alike', async () => {
    const seen: unknown[] = [];
    const executor = createActor(executorLogic, {
      input: {
        actions: {
          plain: function (signal: AbortSignal) {
            seen.push(signal);
          },
          rest: (...args: unknown[]) => void seen.push(args[0]),
          arrow: async (signal: AbortSignal) => void seen.push(signal),
        },
      },
    }).start();
    for (const action of ['plain', 'rest', 'arrow']) {
      const done = new Promise((resolve) => executor.on('statesmith.executor.done', resolve));
      executor.send({ type: 'statesmith.executor.run', action });
      await done;
    }
    expect(seen).to.have.length(3);
    for (const signal of seen) expect(signal).to.be.an.instanceOf(AbortSignal);
    executor.stop();
  });

  it('fails, never wedges, on an event whose type cannot be read; ask() refuses it first with a typed error', async () => {
    const executor = createActor(executorLogic, { input: { actions: { quick: () => 'q' } } }).start();
    const hostile = {
      get type(): string {
        throw new Error('boom');
      },
    };
    const refused = await ask(executor, hostile as never, { timeoutMs: 1_000 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).to.include({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(executor.getSnapshot().status).to.equal('active');
    const errors: unknown[] = [];
    executor.subscribe({ error: (error) => errors.push(error) });
    // XState reads event.type after the step, outside the logic: a step that went on would throw
    // from there and leave the mailbox stuck behind this event. The actor fails instead.
    expect(() => executor.send(hostile as never)).not.to.throw();
    expect(executor.getSnapshot().status).to.equal('error');
    expect(errors).to.have.length(1);
  });

  it('makes no signal for an action written `() =>` (it cannot see one), and a cancel still ends it cancelled', async () => {
    let reject: ((error: unknown) => void) | undefined;
    const executor = createActor(executorLogic, {
      input: { actions: { blind: () => new Promise((_resolve, no) => (reject = no)) } },
    }).start();
    const done = new Promise<ExecutorReply>((resolve) => executor.on('statesmith.executor.done', (reply) => resolve(reply as ExecutorReply)));
    executor.send({ type: 'statesmith.executor.run', action: 'blind' });
    await waitUntil(() => reject !== undefined, 1_000, 'the action to start');
    executor.send({ type: 'statesmith.executor.cancel' });
    // An AbortError after the cancel reached the task is a cancellation, as it is for an action that saw its signal.
    reject?.(Object.assign(new Error('aborted'), { name: 'AbortError' }));
    expect(await done).to.include({ outcome: 'cancelled' });
    executor.stop();
  });
});

describe('the executor tree', function () {
  this.timeout(20_000);

  it('owns its subprocess runner and critical task as children: a cancel stops the task and its process', async () => {
    const { AsyncExecutor } = await import('../../src/index.ts');
    const { isAlive } = await import('../../src/subprocess/processTree.ts');
    const executor = new AsyncExecutor({ wakeup: () => undefined, name: 'owner', subprocess: { terminateTimeoutMs: 2_000 } });
    const children = () => executor.actor.getSnapshot().children as Record<string, unknown>;
    expect(children()['subprocess']).to.equal(executor.subprocess?.actor);
    expect(children()['criticalTask']).to.equal(undefined);
    const critical = executor.criticalTask;
    expect(children()['criticalTask']).to.equal(critical.actor);
    expect(executor.criticalTask).to.equal(critical);
    const runner = executor.subprocess!;
    expect(executor.tryRunAsync('sleeper', () => runner.call(['sleep', '30']))).to.equal(null);
    await waitUntil(() => runner.pid !== null, 5_000, 'spawn');
    const pid = runner.pid as number;
    await executor.cancel();
    expect(isAlive(pid)).to.equal(false);
    expect(runner.isCancelled).to.equal(true);
    await waitUntil(() => !executor.busy, 5_000, 'slot free');
    // The next task re-arms it.
    expect(executor.schedule('again')).to.equal(null);
    expect(await executor.run(() => runner.call(['true']))).to.equal(0);
    expect(runner.isCancelled).to.equal(false);
  });

  it('refuses a subprocess option beside a cancellable, with a typed error', async () => {
    const { AsyncExecutor, CancellableSubprocess } = await import('../../src/index.ts');
    expect(() => new AsyncExecutor({ wakeup: () => undefined, cancellable: new CancellableSubprocess(), subprocess: {} }))
      .to.throw(TypeError)
      .with.property('code', 'ERR_INVALID_ARG_VALUE');
    expect(() => new AsyncExecutor({ wakeup: () => undefined, subprocess: { terminateTimeout: 5 } as never }))
      .to.throw(TypeError)
      .with.property('code', 'ERR_UNKNOWN_OPTION');
  });
});

describe("facades called from inside their actor's own step", () => {
  it('AsyncExecutor.schedule from a reply listener throws InvalidStateError and leaves no command behind', async () => {
    const { AsyncExecutor, InvalidStateError } = await import('../../src/index.ts');
    const executor = new AsyncExecutor({ wakeup: () => undefined, name: 'reentrant' });
    let thrown: unknown;
    executor.actor.on('statesmith.executor.scheduled', () => {
      try {
        executor.schedule('second');
      } catch (error) {
        thrown = error;
      }
    });
    expect(executor.schedule('first')).to.equal(null);
    expect(thrown).to.be.instanceOf(InvalidStateError);
    await new Promise((resolve) => setTimeout(resolve, 5));
    // Nothing was queued: the slot still holds the first action only.
    expect(executor.scheduledAction).to.equal('first');
    executor.resetScheduledAction();
  });
});

describe('executorLogic input', () => {
  it('refuses a bad input with a typed error: the actor starts in error with it', () => {
    for (const [input, code] of [
      [{ name: 5 }, 'ERR_INVALID_ARG_TYPE'],
      [{ actions: { go: 'not a function' } }, 'ERR_INVALID_ARG_TYPE'],
      [{ wakeup: 42 }, 'ERR_INVALID_ARG_TYPE'],
      [{ nmae: 'typo' }, 'ERR_UNKNOWN_OPTION'],
      // A getter that throws, on the input or on its actions: refused with a typed error, not a raw one.
      [
        {
          get actions(): never {
            throw new Error('getter boom');
          },
        },
        'ERR_INVALID_ARG_TYPE',
      ],
      [
        {
          actions: {
            get go(): never {
              throw new Error('getter boom');
            },
          },
        },
        'ERR_INVALID_ARG_TYPE',
      ],
    ] as const) {
      const actor = createActor(executorLogic, { input: input as never });
      const snapshot = actor.getSnapshot() as { status: string; error?: { code?: string } };
      expect(snapshot.status, Object.keys(input).join()).to.equal('error');
      expect(snapshot.error?.code, Object.keys(input).join()).to.equal(code);
    }
  });
});
