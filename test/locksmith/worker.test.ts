import { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import { ForceResult, Locksmith, SharedMutex } from '../../src/index.ts';
import { clearLogs, logged } from '../support/logs.ts';
import { nextMessage, tsWorker } from '../support/workers.ts';

const fixture = new URL('./fixtures/owner.worker.ts', import.meta.url);
const boot = new URL('../../examples/support/tsx-worker.mjs', import.meta.url);

/** A worker holding a fresh SharedMutex; resolves once it says it holds it. */
async function workerHolding(mode: 'answer' | 'refuse' | 'wedged' | 'wedged-late-release' | 'release-then-wedge') {
  const lock = SharedMutex.create();
  const wake = new SharedArrayBuffer(4);
  const thread = tsWorker(fixture, { buffer: lock.buffer, index: lock.index, mode, wake }).start();
  expect(await nextMessage(thread)).to.deep.equal({ type: 'holding' });
  expect(lock.locked).to.equal(true);
  return { lock, thread, wake };
}

describe('Locksmith and a SharedMutex held in a worker', function () {
  this.timeout(20_000);

  it('sends the force request over the worker port; the answer frees the shared cell (SUCCESS)', async () => {
    const { lock, thread } = await workerHolding('answer');
    const smith = new Locksmith({ name: 'main' });
    await smith.recognize(lock);
    const asked = nextMessage<{ requester: string; info: unknown; same: boolean }>(thread);
    const result = await smith.force(lock, { owner: thread, info: 'rebalancing', answerTimeoutMs: 10_000 });
    expect(result).to.equal(ForceResult.SUCCESS);
    expect(await asked).to.deep.include({ requester: 'main', info: 'rebalancing', same: true });
    expect(lock.locked).to.equal(false);
    await thread.join(10_000);
  });

  it('a refusing worker keeps the lock (FAILURE)', async () => {
    const { lock, thread } = await workerHolding('refuse');
    const smith = new Locksmith();
    await smith.recognize(lock);
    expect(await smith.force(lock, { owner: thread.worker, answerTimeoutMs: 10_000 })).to.equal(ForceResult.FAILURE);
    expect(lock.locked).to.equal(true);
    lock.release();
    await thread.join(10_000);
  });

  it('a wedged worker that cannot answer is compelled by resetting the cell (RELEASED); the host then runs its task', async () => {
    const { lock, thread, wake } = await workerHolding('wedged');
    const smith = new Locksmith({ name: 'watchdog' });
    await smith.recognize(lock);
    let heldInside = false;
    const value = await smith.host(
      async () => {
        heldInside = lock.locked;
        return 'recovered';
      },
      lock,
      { owner: thread, forceTimeoutMs: 5_000, answerTimeoutMs: 200, acquireTimeoutMs: 5_000 },
    );
    expect(value).to.equal('recovered');
    expect(heldInside).to.equal(true);
    expect(lock.locked).to.equal(false);
    Atomics.store(new Int32Array(wake), 0, 1);
    Atomics.notify(new Int32Array(wake), 0);
    await thread.join(10_000);
  });

  it('a worker that exits holding the lock has it released by its WorkerThread, with a warning', async () => {
    const { lock, thread } = await workerHolding('answer');
    clearLogs();
    await thread.terminate();
    await thread.join(10_000).catch(() => undefined);
    expect(lock.locked).to.equal(false);
    expect(logged('warn', /exited holding SharedMutex/)).to.have.length(1);
    expect(await new Locksmith().force(lock, { owner: thread })).to.equal(ForceResult.UNFORCEABLE);
  });

  it('a plain Worker that already exited is OWNER_COMPLETED, and its leaked lock is freed', async () => {
    const lock = SharedMutex.create();
    const worker = new Worker(boot, {
      workerData: { buffer: lock.buffer, index: lock.index, mode: 'answer', wake: new SharedArrayBuffer(4), entry: fixture.href },
    });
    await new Promise((resolve) => worker.once('message', resolve));
    expect(lock.locked).to.equal(true);
    const smith = new Locksmith();
    await smith.recognize(lock);
    await worker.terminate();
    expect(lock.locked, 'nothing released it yet').to.equal(true);
    expect(await smith.force(lock, { owner: worker })).to.equal(ForceResult.OWNER_COMPLETED);
    expect(lock.locked).to.equal(false);
  });

  describe('mutual exclusion after a force (tokens in the cell)', () => {
    it("a compelled worker's late release() does not free the next holder's hold", async () => {
      const { lock, thread, wake } = await workerHolding('wedged-late-release');
      const smith = new Locksmith({ name: 'watchdog' });
      await smith.recognize(lock);
      expect(await smith.force(lock, { owner: thread, answerTimeoutMs: 200 })).to.equal(ForceResult.RELEASED);
      const mine = await lock.acquire({ timeoutMs: 1_000 });
      const late = nextMessage<{ lockedAfter: boolean }>(thread);
      Atomics.store(new Int32Array(wake), 0, 1);
      Atomics.notify(new Int32Array(wake), 0);
      expect((await late).lockedAfter, 'still locked after the late release').to.equal(true);
      const third = SharedMutex.from(lock.buffer, lock.index);
      expect(third.tryAcquire(), "a third party's tryAcquire").to.equal(false);
      mine.release();
      expect(third.tryAcquire()).to.equal(true);
      third.release();
      await thread.join(10_000);
    });

    it('a compel that comes after the owner let go and another thread acquired leaves that hold alone', async () => {
      const { lock, thread, wake } = await workerHolding('release-then-wedge');
      const smith = new Locksmith({ name: 'watchdog' });
      await smith.recognize(lock);
      let mine: { release(): void } | undefined;
      thread.worker!.on('message', (message: { type: string }) => {
        if (message.type === 'released-self') mine = lock.tryAcquire() ? { release: () => lock.release() } : undefined;
      });
      expect(await smith.force(lock, { owner: thread, answerTimeoutMs: 300 })).to.equal(ForceResult.RELEASED);
      expect(mine, 'the main thread took the lock the worker let go').to.not.equal(undefined);
      expect(lock.locked, 'the compel left the main thread its hold').to.equal(true);
      mine!.release();
      Atomics.store(new Int32Array(wake), 0, 1);
      Atomics.notify(new Int32Array(wake), 0);
      await thread.join(10_000);
    });
  });
});
