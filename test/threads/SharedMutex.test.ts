import { expect } from 'chai';
import { SharedEvent, SharedMutex } from '../../src/index.ts';
import { isSettled, rejection } from '../support/async.ts';
import { nextMessage, tsWorker } from '../support/workers.ts';

const probe = new URL('./fixtures/probe.worker.ts', import.meta.url);

describe('SharedMutex', () => {
  it('keeps four workers and the main thread from losing updates to a plain counter', async function () {
    this.timeout(30_000);
    const lock = SharedMutex.create();
    const counter = new Int32Array(new SharedArrayBuffer(4));
    const go = SharedEvent.create();
    const iterations = 2_000;
    const workers = Array.from({ length: 4 }, (_, n) =>
      tsWorker(
        probe,
        { op: 'count', buffer: lock.buffer, index: lock.index, counter: counter.buffer, iterations, go: go.buffer },
        { name: `counter-${n}` },
      ).start(),
    );
    await Promise.all(workers.map((worker) => nextMessage(worker)));
    go.set();
    // The main thread takes its turns through the non-blocking acquire.
    for (let i = 0; i < iterations; i++) {
      const handle = await lock.acquire({ pollIntervalMs: 50 });
      const value = counter[0] as number;
      await null;
      counter[0] = value + 1;
      handle.release();
    }
    await Promise.all(workers.map((worker) => worker.join(20_000)));
    expect(workers.map((worker) => worker.isAlive)).to.deep.equal([false, false, false, false]);
    expect(counter[0]).to.equal(5 * iterations);
    expect(lock.locked).to.equal(false);
  });

  it('wakes a main-thread acquire when a worker releases, without waiting for the poll interval', async () => {
    const lock = SharedMutex.create();
    expect(lock.tryAcquire()).to.equal(true);
    const worker = tsWorker(probe, { op: 'releaseLater', buffer: lock.buffer, index: 0, sleepMs: 50 }).start();
    const started = performance.now();
    const handle = await lock.acquire({ pollIntervalMs: 60_000, timeoutMs: 10_000 });
    expect(performance.now() - started).to.be.below(5_000);
    handle.release();
    await worker.join();
  });

  it('lets a blocked worker take the lock once the main thread releases it, and times out acquireSync', async () => {
    const lock = SharedMutex.create();
    const done = SharedEvent.create();
    const main = await lock.acquire();
    const timedOut = tsWorker(probe, { op: 'acquireSync', buffer: lock.buffer, timeoutMs: 20, done: done.buffer }).start();
    expect(await nextMessage(timedOut)).to.equal(false);
    await timedOut.join();

    const blocked = tsWorker(probe, { op: 'acquireSync', buffer: lock.buffer, timeoutMs: 10_000, done: done.buffer }).start();
    const answer = nextMessage(blocked);
    expect(await isSettled(answer)).to.equal(false);
    main.release();
    expect(await answer).to.equal(true);
    expect(lock.tryAcquire()).to.equal(false);
    const released = nextMessage(blocked);
    done.set();
    expect(await released).to.equal('released');
    await blocked.join();
    expect(lock.locked).to.equal(false);
  });

  it('frees the lock of a worker that died holding it, waking a worker asleep in acquireSync() without a timeout', async () => {
    const lock = SharedMutex.create();
    const done = SharedEvent.create();
    const dying = tsWorker(probe, { op: 'holdAndDie', buffer: lock.buffer, done: done.buffer }).start();
    expect(await nextMessage(dying)).to.equal('holding');
    expect(lock.holderThread).to.equal(dying.worker!.threadId);
    const waiter = tsWorker(probe, { op: 'acquireSync', buffer: lock.buffer, done: done.buffer }).start();
    const answer = nextMessage(waiter);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await isSettled(answer)).to.equal(false);
    const released = nextMessage(waiter, 10_000).then(() => nextMessage(waiter));
    done.set();
    expect(((await rejection(dying.join())) as Error).message).to.equal('died holding the lock');
    expect(await answer).to.equal(true);
    expect(await released).to.equal('released');
    await waiter.join();
    expect(lock.locked).to.equal(false);
  });

  it('makes the release of a hold that was taken away a no-op, so the next holder keeps the lock', () => {
    const first = SharedMutex.create();
    const other = SharedMutex.from(first.buffer, first.index);
    expect(first.tryAcquire()).to.equal(true);
    other.release(); // an object that holds nothing frees whoever holds the lock, as threading.Lock
    expect(other.tryAcquire()).to.equal(true);
    first.release(); // its hold is gone: nothing to release
    expect(first.locked).to.equal(true);
    other.release();
    expect(first.locked).to.equal(false);
    expect(() => first.release())
      .to.throw()
      .with.property('code', 'ERR_INVALID_STATE');
  });

  it('rejects an aborted acquire with the reason, and the abandoned wait never takes the lock later', async () => {
    const lock = SharedMutex.create();
    expect(lock.tryAcquire()).to.equal(true);
    const controller = new AbortController();
    const waiting = lock.acquire({ signal: controller.signal, pollIntervalMs: 60_000 });
    const reason = new Error('shutting down');
    controller.abort(reason);
    expect(await rejection(waiting)).to.equal(reason);
    // Python's async_lock leaked here: the pool thread took the lock after the cancel.
    lock.release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(lock.locked).to.equal(false);
    expect(lock.tryAcquire()).to.equal(true);
    lock.release();
  });

  it('rejects at once when the signal is already aborted, even for a free lock', async () => {
    const lock = SharedMutex.create();
    expect(await rejection(lock.acquire({ signal: AbortSignal.abort('no') }))).to.equal('no');
    expect(lock.locked).to.equal(false);
  });

  it('times out an acquire with a TimeoutError and leaves the lock to its holder', async () => {
    const lock = SharedMutex.create();
    expect(lock.tryAcquire()).to.equal(true);
    const error = await rejection(lock.acquire({ timeoutMs: 30, pollIntervalMs: 10 }));
    expect(error).to.have.property('code', 'ERR_TIMEOUT');
    expect(lock.locked).to.equal(true);
    lock.release();
    expect(lock.locked).to.equal(false);
  });

  it('gives a handle whose release is idempotent and which `using` releases', async () => {
    const lock = SharedMutex.create();
    {
      using handle = await lock.acquire();
      expect(lock.locked).to.equal(true);
      expect(handle.signal.aborted).to.equal(false);
      handle.release();
      handle.release();
      expect(lock.locked).to.equal(false);
      expect(lock.tryAcquire()).to.equal(true);
      lock.release();
    }
    {
      using _handle = await lock.acquire();
    }
    expect(lock.locked).to.equal(false);
  });

  it('throws an InvalidStateError when releasing a lock that is not held', () => {
    const lock = SharedMutex.create();
    expect(() => lock.release())
      .to.throw()
      .with.property('code', 'ERR_INVALID_STATE');
    expect(lock.locked).to.equal(false);
  });

  it('refuses the blocking acquireSync() on the main thread', () => {
    const lock = SharedMutex.create();
    expect(() => lock.acquireSync(0))
      .to.throw(/freeze the main event loop/)
      .with.property('code', 'ERR_INVALID_STATE');
    expect(lock.locked).to.equal(false);
  });

  it('shares one buffer between several locks by index', () => {
    const buffer = new SharedArrayBuffer(12);
    const [a, b, c] = [0, 1, 2].map((i) => SharedMutex.from(buffer, i)) as [SharedMutex, SharedMutex, SharedMutex];
    expect(a.tryAcquire()).to.equal(true);
    expect(b.locked).to.equal(false);
    expect(c.tryAcquire()).to.equal(true);
    expect(SharedMutex.from(buffer, 2).locked).to.equal(true);
    expect([a.index, b.index, c.index]).to.deep.equal([0, 1, 2]);
    expect(a.buffer).to.equal(buffer);
  });

  describe('bad input', () => {
    it('rejects a buffer that is not a SharedArrayBuffer or too small, and an index out of range', () => {
      expect(() => SharedMutex.from(new ArrayBuffer(4) as unknown as SharedArrayBuffer))
        .to.throw(/SharedArrayBuffer/)
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => SharedMutex.from(new SharedArrayBuffer(2)))
        .to.throw(/at least 4 bytes; received number 2/)
        .with.property('code', 'ERR_OUT_OF_RANGE');
      expect(() => SharedMutex.from(new SharedArrayBuffer(8), 2))
        .to.throw(/from 0 to 1 .*received number 2/)
        .with.property('code', 'ERR_OUT_OF_RANGE');
      expect(() => SharedMutex.from(new SharedArrayBuffer(8), -1))
        .to.throw()
        .with.property('code', 'ERR_OUT_OF_RANGE');
      expect(() => SharedMutex.from(new SharedArrayBuffer(8), 0.5))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
    });

    it('rejects a cell that holds something other than a lock', () => {
      const cells = new Int32Array(new SharedArrayBuffer(4));
      cells[0] = -7;
      expect(() => SharedMutex.from(cells.buffer as SharedArrayBuffer))
        .to.throw(/received number -7/)
        .with.property('code', 'ERR_INVALID_ARG_VALUE');
    });

    it('rejects negative timeouts, a zero poll interval and a non-signal with typed errors', async () => {
      const lock = SharedMutex.create();
      expect(await rejection(lock.acquire({ timeoutMs: -1 }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
      expect(await rejection(lock.acquire({ pollIntervalMs: 0 }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
      expect(await rejection(lock.acquire({ signal: 'x' as unknown as AbortSignal }))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => lock.acquireSync(-5))
        .to.throw()
        .with.property('code', 'ERR_OUT_OF_RANGE');
      expect(lock.locked).to.equal(false);
    });
  });
});
