/**
 * Every wait takes `timeoutMs` and `signal`. These are the waits that did not: each now
 * ends on a timeout with a TimeoutError and on an abort with the signal's reason, and
 * what it waited for goes on (the README's table says how every wait ends).
 */
import { expect } from 'chai';
import {
  AsyncExecutor,
  awaitEventWithStop,
  CancellableSubprocess,
  cancelAndAwait,
  createCoordinator,
  Locksmith,
  Mutex,
  ManualClock,
  ServiceBase,
  SharedEvent,
  TaskGroup,
  TimeoutError,
} from '../src/index.ts';
import { kBackendFactory } from '../src/coordination/options.ts';
import { isAlive } from '../src/subprocess/processTree.ts';
import { isSettled, rejection, settle } from './support/async.ts';

/** A task function that ignores its signal until `release` is called. */
function stubborn(): { fn: () => Promise<string>; release(): void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  return { fn: () => gate.then(() => 'done'), release: () => release() };
}

describe('waits end on timeoutMs and signal', () => {
  it('Task.wait() and TaskGroup.wait(), on the group clock; the tasks run on', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock });
    const work = stubborn();
    const task = group.createTask(work.fn);
    // rejection() listens at once: the waits reject while the clock moves, and are looked at after.
    const taskWait = rejection(task.wait({ timeoutMs: 100 }));
    const groupWaiting = group.wait({ timeoutMs: 200 });
    const groupWait = rejection(groupWaiting);
    await clock.advance(100);
    expect(await taskWait).to.be.instanceOf(TimeoutError);
    expect(await isSettled(groupWaiting)).to.equal(false);
    await clock.advance(100);
    expect(await groupWait).to.be.instanceOf(TimeoutError);
    expect(task.done).to.equal(false);
    const controller = new AbortController();
    const aborted = task.wait({ signal: controller.signal });
    controller.abort(new Error('shutting down'));
    expect(((await rejection(aborted)) as Error).message).to.equal('shutting down');
    work.release();
    expect(await task.wait({ timeoutMs: 100 })).to.equal('done');
    await group.wait({ timeoutMs: 100 });
    expect(clock.pendingTimers, 'no timer left behind').to.equal(0);
    expect(await rejection(task.wait({ timeout: 1 } as never))).to.have.property('code', 'ERR_UNKNOWN_OPTION');
  });

  it('Coordinator.start() and stop(): bounded by timeoutMs and signal, on the coordinator clock; the start goes on', async () => {
    const clock = new ManualClock();
    // A backend whose connection never answers: the start can only be bounded by the wait.
    const hanging = {
      kind: 'memory',
      capabilities: { distributed: false, sessionBased: false, fencing: true },
      connect: () => new Promise<void>(() => undefined),
      close: async () => undefined,
      ping: async () => undefined,
      tryAcquire: async () => null,
      renew: async () => false,
      release: async () => false,
      onReleased: () => undefined,
      onLost: () => undefined,
    };
    const c = createCoordinator({ clock, agentId: 'slow', [kBackendFactory]: () => hanging } as never);
    const timedOut = rejection(c.start({ timeoutMs: 500 }));
    await clock.advance(500);
    expect(await timedOut).to.be.instanceOf(TimeoutError);
    expect(c.state).to.equal('connecting');
    const controller = new AbortController();
    const aborted = rejection(c.start({ signal: controller.signal }));
    controller.abort(new Error('operator gave up'));
    expect(((await aborted) as Error).message).to.equal('operator gave up');
    expect(await rejection(c.start({ timeout: 1 } as never))).to.have.property('code', 'ERR_UNKNOWN_OPTION');
    expect(await rejection(c.stop({ timeout: 1 } as never))).to.have.property('code', 'ERR_UNKNOWN_OPTION');
    c.actor.stop();
    await c.stop({ timeoutMs: 10 });
  });

  it("Locksmith.recognize() of a lock whose consent never comes, and a grant's isStillOwner() on a server that never answers", async () => {
    const clock = new ManualClock();
    const smith = new Locksmith({ clock });
    const mutex = new Mutex({ name: 'slow-consent' });
    // A lock that is asked for its consent and never answers.
    Object.assign(mutex, { acknowledgeLocksmith: () => new Promise<boolean>(() => undefined) });
    const recognizing = rejection(smith.recognize(mutex, { timeoutMs: 200 }));
    await clock.advance(200);
    expect(await recognizing).to.be.instanceOf(TimeoutError);
    const controller = new AbortController();
    const aborted = rejection(smith.recognize(mutex, { signal: controller.signal }));
    controller.abort(new Error('operator gave up'));
    expect(((await aborted) as Error).message).to.equal('operator gave up');
    expect(await rejection(smith.recognize(mutex, { timeout: 1 } as never))).to.have.property('code', 'ERR_UNKNOWN_OPTION');

    const silent = {
      kind: 'memory',
      capabilities: { distributed: false, sessionBased: false, fencing: true },
      connect: async () => undefined,
      close: async () => undefined,
      ping: async () => undefined,
      tryAcquire: async () => 1n,
      renew: async () => true,
      release: async () => true,
      isHolder: () => new Promise<boolean>(() => undefined),
      onReleased: () => undefined,
      onLost: () => undefined,
    };
    const c = createCoordinator({ clock, agentId: 'asked', heartbeatMs: Infinity, [kBackendFactory]: () => silent } as never);
    await c.start();
    const held = await c.getLock('v').acquire();
    const asking = rejection(held?.isStillOwner({ timeoutMs: 100 }) ?? Promise.resolve());
    await clock.advance(100);
    expect(await asking).to.be.instanceOf(TimeoutError);
    expect(held?.held, 'a question that got no answer loses nothing').to.equal(true);
    expect(await rejection(held?.isStillOwner({ timeout: 1 } as never) ?? Promise.resolve())).to.have.property('code', 'ERR_UNKNOWN_OPTION');
    await held?.release();
    await c.stop();
  });

  it('cancelAndAwait() of a task that ignores its cancellation', async () => {
    const clock = new ManualClock();
    const group = new TaskGroup({ clock });
    const work = stubborn();
    const task = group.createTask(work.fn);
    await settle(); // started: a task cancelled before it starts ends at once
    const waiting = rejection(cancelAndAwait(task, { timeoutMs: 50 }));
    await clock.advance(50);
    expect(await waiting).to.be.instanceOf(TimeoutError);
    work.release();
    await group.stop().catch(() => undefined);
  });

  it('ServiceBase.wait()', async () => {
    const clock = new ManualClock();
    const work = stubborn();
    class Stuck extends ServiceBase {
      protected async main(): Promise<void> {
        await work.fn();
      }
    }
    const service = new Stuck({ clock }).start();
    const waiting = rejection(service.wait({ timeoutMs: 1_000 }));
    await clock.advance(1_000);
    expect(await waiting).to.be.instanceOf(TimeoutError);
    expect(service.isRunning).to.equal(true);
    work.release();
    await service.wait({ timeoutMs: 1_000 });
  });

  it('AsyncExecutor.cancel() of a task that takes long to clean up (the cancel stands)', async () => {
    const executor = new AsyncExecutor({ wakeup: () => undefined });
    let finish!: () => void;
    const running = executor.run(
      () =>
        new Promise<void>((resolve) => {
          finish = resolve;
        }),
    );
    await settle();
    expect(await rejection(executor.cancel({ timeoutMs: 30 }))).to.be.instanceOf(TimeoutError);
    expect(executor.actor.getSnapshot().value).to.equal('cancelling');
    finish();
    await running;
    await executor.cancel({ timeoutMs: 1_000 });
    expect(executor.busy).to.equal(false);
  });

  it('awaitEventWithStop() when neither event is set', async () => {
    const [response, stop] = [SharedEvent.create(), SharedEvent.create()];
    expect(await rejection(awaitEventWithStop(response, stop, { timeoutMs: 30 }))).to.be.instanceOf(TimeoutError);
    response.set();
    expect(await awaitEventWithStop(response, stop, { timeoutMs: 30 })).to.equal(true);
  });

  it('CancellableSubprocess.call() terminates a process that runs too long, and rejects with TimeoutError', async () => {
    const runner = new CancellableSubprocess({ terminateTimeoutMs: 1_000 });
    let pid = 0;
    const started = Date.now();
    const call = runner.call(['sh', '-c', 'echo pid=$$; sleep 30'], {
      timeoutMs: 150,
      onOutput: (line) => (pid = Number(line.slice(4))),
    });
    const error = await rejection(call);
    expect(error).to.be.instanceOf(TimeoutError);
    expect((error as Error).message).to.match(/ran longer than 150 ms/);
    expect(Date.now() - started).to.be.below(5_000);
    expect(isAlive(pid)).to.equal(false);
    expect(runner.isCancelled, 'a time-out is not a sticky cancel').to.equal(false);
    expect(await runner.call(['true'], { timeoutMs: 5_000 })).to.equal(0);
  });
});
