import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SharedEvent, SharedMutex, asyncNullContext, awaitEventWithStop, withSharedLock } from '../../src/index.ts';
import { rejection } from '../support/async.ts';
import { tsWorker } from '../support/workers.ts';
import { TimeoutError } from '../../src/index.ts';

const probe = new URL('./fixtures/probe.worker.ts', import.meta.url);

describe('withSharedLock', () => {
  it('runs fn holding the lock and releases it when fn returns or throws', async () => {
    const lock = SharedMutex.create();
    expect(await withSharedLock(lock, () => lock.locked)).to.equal(true);
    expect(lock.locked).to.equal(false);
    const boom = new Error('boom');
    expect(
      await rejection(
        withSharedLock(lock, async () => {
          throw boom;
        }),
      ),
    ).to.equal(boom);
    expect(lock.locked).to.equal(false);
  });

  it('waits for a worker to release the lock', async () => {
    const lock = SharedMutex.create();
    expect(lock.tryAcquire()).to.equal(true);
    const worker = tsWorker(probe, { op: 'releaseLater', buffer: lock.buffer, sleepMs: 50 }).start();
    expect(await withSharedLock(lock, () => 'ran', { timeoutMs: 10_000 })).to.equal('ran');
    expect(lock.locked).to.equal(false);
    await worker.join();
  });

  it('closes the async_lock leak: an aborted wait leaves the lock free once the holder releases', async () => {
    const lock = SharedMutex.create();
    expect(lock.tryAcquire()).to.equal(true);
    const controller = new AbortController();
    let ran = false;
    const waiting = withSharedLock(lock, () => (ran = true), { signal: controller.signal, pollIntervalMs: 60_000 });
    controller.abort(new Error('cancelled'));
    expect(await rejection(waiting)).to.have.property('message', 'cancelled');
    lock.release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(ran).to.equal(false);
    expect(lock.locked).to.equal(false);
  });

  it('rejects bad input with typed errors', async () => {
    const lock = SharedMutex.create();
    expect(await rejection(withSharedLock({} as SharedMutex, () => 1))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await rejection(withSharedLock(lock, 'fn' as never))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await rejection(withSharedLock(lock, () => 1, { pollIntervalMs: -1 }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
    expect(lock.locked).to.equal(false);
  });
});

describe('awaitEventWithStop', () => {
  it('checks stop first: false when both are set, false when only stop is, true when only wait is', async () => {
    const wait = SharedEvent.create();
    const stop = SharedEvent.create();
    wait.set();
    stop.set();
    expect(await awaitEventWithStop(wait, stop)).to.equal(false);
    wait.clear();
    expect(await awaitEventWithStop(wait, stop)).to.equal(false);
    stop.clear();
    wait.set();
    expect(await awaitEventWithStop(wait, stop)).to.equal(true);
  });

  it('notices a stop set in a worker at once, not after the poll interval', async () => {
    const wait = SharedEvent.create();
    const stop = SharedEvent.create();
    const worker = tsWorker(probe, { op: 'setLater', buffer: stop.buffer, sleepMs: 50 }).start();
    const started = performance.now();
    expect(await awaitEventWithStop(wait, stop, { pollIntervalMs: 60_000 })).to.equal(false);
    expect(performance.now() - started).to.be.below(30_000);
    await worker.join();
  });

  it('resolves true when the wait event is set in a worker', async () => {
    const wait = SharedEvent.create();
    const stop = SharedEvent.create();
    const worker = tsWorker(probe, { op: 'setLater', buffer: wait.buffer, sleepMs: 50 }).start();
    expect(await awaitEventWithStop(wait, stop, { pollIntervalMs: 60_000 })).to.equal(true);
    await worker.join();
  });

  it('waits on through a late notify of either event, and counts a set() cleared at once', async () => {
    const wait = SharedEvent.create();
    const stop = SharedEvent.create();
    const stale = awaitEventWithStop(wait, stop, { timeoutMs: 100, pollIntervalMs: 60_000 });
    expect(Atomics.notify(new Int32Array(wait.buffer), wait.index)).to.equal(1);
    expect(Atomics.notify(new Int32Array(stop.buffer), stop.index)).to.equal(1);
    expect(await rejection(stale)).to.be.instanceOf(TimeoutError);

    const waiting = awaitEventWithStop(wait, stop, { timeoutMs: 10_000 });
    wait.set();
    wait.clear();
    expect(await waiting).to.equal(true);
    const stopping = awaitEventWithStop(wait, stop, { timeoutMs: 10_000 });
    stop.set();
    stop.clear();
    wait.set();
    expect(await stopping).to.equal(false);
  });

  it('keeps waiting across poll intervals and rejects with signal.reason when aborted', async () => {
    const controller = new AbortController();
    const waiting = awaitEventWithStop(SharedEvent.create(), SharedEvent.create(), { pollIntervalMs: 5, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 30));
    controller.abort('enough');
    expect(await rejection(waiting)).to.equal('enough');
  });

  it('rejects bad input with typed errors', async () => {
    const event = SharedEvent.create();
    expect(await rejection(awaitEventWithStop(null as never, event))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await rejection(awaitEventWithStop(event, 'stop' as never))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await rejection(awaitEventWithStop(event, event, { pollIntervalMs: 0 }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
  });
});

describe('asyncNullContext', () => {
  it('is an AsyncDisposable that does nothing', async () => {
    const scope = asyncNullContext();
    expect(await scope[Symbol.asyncDispose]()).to.equal(undefined);
    let inside = false;
    {
      await using _scope = asyncNullContext();
      inside = true;
    }
    expect(inside).to.equal(true);
  });
});

describe('main-thread waits and process lifetime', () => {
  const script = fileURLToPath(new URL('./fixtures/lifetime.ts', import.meta.url));
  const run = (mode: string): string => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', script, mode], { encoding: 'utf8', timeout: 20_000 });
    return `${result.stdout}${result.stderr}`.trim();
  };

  it('keeps the process alive while a wait is pending', () => {
    expect(run('pending')).to.equal('wait ended false');
  });

  it('lets the process exit once an aborted wait is given up, without waiting for its poll interval', () => {
    const started = performance.now();
    expect(run('aborted')).to.equal('aborted');
    expect(performance.now() - started).to.be.below(15_000);
  });
});
