import { expect } from 'chai';
import { LockLostError, ManualClock, Mutex, runAsOwner } from '../../src/index.ts';
import { isSettled, settle } from '../support/async.ts';

describe('Mutex', () => {
  it('grants a free lock at once and hands it over in FIFO order', async () => {
    const mutex = new Mutex();
    const first = await mutex.acquire({ owner: 'a' });
    expect(mutex.locked).to.equal(true);
    expect(mutex.owner).to.equal('a');
    const order: string[] = [];
    const b = mutex.acquire({ owner: 'b' }).then((h) => (order.push('b'), h));
    const c = mutex.acquire({ owner: 'c' }).then((h) => (order.push('c'), h));
    expect(mutex.waiting).to.equal(2);
    first.release();
    (await b).release();
    (await c).release();
    expect(order).to.deep.equal(['b', 'c']);
    expect(mutex.locked).to.equal(false);
  });

  it('release() is idempotent and `using` releases at the end of the block', async () => {
    const mutex = new Mutex();
    {
      using handle = await mutex.acquire();
      handle.release();
      handle.release();
      expect(mutex.locked).to.equal(false);
      const other = mutex.tryAcquire();
      expect(other).to.not.equal(null);
      other?.release();
    }
    {
      using _held = await mutex.acquire();
      expect(mutex.locked).to.equal(true);
    }
    expect(mutex.locked).to.equal(false);
  });

  it('a waiter that times out leaves the queue and never holds the lock', async () => {
    const clock = new ManualClock();
    const mutex = new Mutex({ clock, name: 'volumes' });
    const holder = await mutex.acquire();
    // Handled at once: it rejects while the clock moves.
    const late = mutex.acquire({ timeoutMs: 100 }).catch((e: unknown) => e);
    const next = mutex.acquire({ owner: 'next' });
    await clock.advance(100);
    const error = await late;
    expect(error).to.have.property('code', 'ERR_TIMEOUT');
    expect((error as Error).message).to.match(/100 ms waiting for volumes/);
    expect(mutex.waiting).to.equal(1);
    holder.release();
    expect((await next) && mutex.owner).to.equal('next');
    expect(clock.pendingTimers).to.equal(0);
  });

  it('an aborted waiter rejects with the reason and the lock goes to the next one', async () => {
    const mutex = new Mutex();
    const holder = await mutex.acquire();
    const controller = new AbortController();
    const aborted = mutex.acquire({ signal: controller.signal });
    const next = mutex.acquire({ owner: 'next' });
    const reason = new Error('no longer needed');
    controller.abort(reason);
    expect(await aborted.catch((e: unknown) => e)).to.equal(reason);
    holder.release();
    await next;
    expect(mutex.owner).to.equal('next');
  });

  it('does not grow its queue with waiters that timed out while the lock stays held', async () => {
    const clock = new ManualClock();
    const mutex = new Mutex({ clock });
    const holder = await mutex.acquire();
    const stays = mutex.acquire({ owner: 'stays' });
    for (let i = 0; i < 1_000; i++) {
      const w = mutex.acquire({ timeoutMs: 1 });
      w.catch(() => undefined);
      await clock.advance(1);
    }
    expect(mutex.waiting).to.equal(1);
    expect(mutex.queueLength).to.be.lessThan(200);
    holder.release();
    await stays;
    expect(mutex.owner).to.equal('stays');
  });

  it('timeoutMs 0 is a try: it rejects at once when the lock is held', async () => {
    const mutex = new Mutex();
    const holder = await mutex.acquire();
    expect(await mutex.acquire({ timeoutMs: 0 }).catch((e: unknown) => e)).to.have.property('code', 'ERR_TIMEOUT');
    holder.release();
    (await mutex.acquire({ timeoutMs: 0 })).release();
  });

  it('runExclusive releases however the function ends', async () => {
    const mutex = new Mutex();
    const error = await mutex
      .runExclusive(async () => {
        throw new Error('inside');
      })
      .catch((e: unknown) => e);
    expect(error).to.have.property('message', 'inside');
    expect(mutex.locked).to.equal(false);
  });

  it('lets a re-entrant holder back in from its own context, but not another context', async () => {
    const mutex = new Mutex({ reentrant: true });
    let outsider: Promise<unknown> | undefined;
    await mutex.runExclusive(async () => {
      expect(await mutex.runExclusive(() => 'nested')).to.equal('nested');
      const handle = mutex.tryAcquire();
      expect(handle).to.not.equal(null);
      handle?.release();
      expect(mutex.locked).to.equal(true);
      outsider = setImmediatePromise().then(() => mutex.runExclusive(() => 'outsider'));
    });
    expect(await outsider).to.equal('outsider');
  });

  it('refuses a nested acquire of a plain mutex with a DeadlockError', async () => {
    const mutex = new Mutex({ name: 'plain' });
    const error = await mutex.runExclusive(() => mutex.acquire()).catch((e: unknown) => e);
    expect(error).to.have.property('code', 'ERR_DEADLOCK');
  });

  it('keeps a waiter pending until the lock is free', async () => {
    const mutex = new Mutex();
    const holder = await mutex.acquire();
    const waiter = mutex.acquire();
    await settle();
    expect(await isSettled(waiter)).to.equal(false);
    holder.release();
    (await waiter).release();
  });

  it('owners default to the current owner (runAsOwner), and waiters lists them in line', async () => {
    const mutex = new Mutex();
    const holder = await runAsOwner('task A', () => mutex.acquire());
    expect(mutex.owner).to.equal('task A');
    const b = runAsOwner('task B', () => mutex.acquire());
    const c = mutex.acquire({ owner: 'task C' });
    expect(mutex.waiters).to.deep.equal(['task B', 'task C']);
    holder.release();
    (await b).release();
    (await c).release();
    expect(mutex.waiters).to.deep.equal([]);
  });

  it('purgeWaiters() rejects every waiter and leaves the holder in place', async () => {
    const mutex = new Mutex({ name: 'vol' });
    const holder = await mutex.acquire({ owner: 'h' });
    const waiting = [mutex.acquire(), mutex.acquire()];
    expect(mutex.purgeWaiters()).to.equal(2);
    for (const w of waiting) expect(await w.catch((e: unknown) => e)).to.have.property('code', 'ERR_CANCELLED');
    expect(mutex.owner).to.equal('h');
    expect(mutex.waiting).to.equal(0);
    holder.release();
    expect(mutex.locked).to.equal(false);
  });

  it('forceRelease() aborts the holder with a LockLostError and hands the lock to the next waiter', async () => {
    const mutex = new Mutex({ name: 'volume-7' });
    const holder = await mutex.acquire({ owner: 'stuck' });
    const next = mutex.acquire({ owner: 'next' });
    expect(mutex.forceRelease({ by: 'watchdog', info: 'stuck for 60 s' })).to.equal(true);
    expect(holder.signal.aborted).to.equal(true);
    const lost = holder.signal.reason as LockLostError;
    expect(lost).to.be.instanceOf(LockLostError);
    expect(lost).to.include({ code: 'ERR_LOCK_LOST', lock: 'volume-7', by: 'watchdog', info: 'stuck for 60 s' });
    const handle = await next;
    expect(mutex.owner).to.equal('next');
    holder.release(); // the old holder's late release must not free the new holder's lock
    expect(mutex.owner).to.equal('next');
    handle.release();
    expect(mutex.forceRelease()).to.equal(false);
  });

  it('forceRelease() frees a re-entrant hold however deep it is', async () => {
    const mutex = new Mutex({ reentrant: true });
    let signal: AbortSignal | undefined;
    const inside = mutex.runExclusive(async () => {
      const nested = await mutex.acquire();
      signal = nested.signal;
      mutex.forceRelease({ by: 'test' });
      expect(mutex.locked).to.equal(false);
    });
    await inside;
    expect(signal?.aborted).to.equal(true);
    expect(mutex.locked).to.equal(false);
  });

  it('rejects bad options with typed errors', async () => {
    const mutex = new Mutex();
    expect(await mutex.acquire({ timeoutMs: -1 }).catch((e: unknown) => e)).to.have.property('code', 'ERR_OUT_OF_RANGE');
    expect(await mutex.acquire({ signal: {} as never }).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await mutex.runExclusive(5 as never).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(mutex.locked).to.equal(false);
  });
});

function setImmediatePromise(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
