import { expect } from 'chai';
import { ForceResult, Locksmith, SharedMutex } from '../../src/index.ts';
import { nextMessage, tsWorker } from '../support/workers.ts';

const fixture = new URL('./fixtures/owner.worker.ts', import.meta.url);

/** A worker holding a fresh SharedMutex; resolves once it says it holds it. */
async function workerHolding(mode: 'answer' | 'refuse' | 'wedged') {
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

  it('a worker that already exited is OWNER_COMPLETED, and its leaked lock is freed', async () => {
    const { lock, thread } = await workerHolding('answer');
    const smith = new Locksmith();
    await smith.recognize(lock);
    await thread.terminate();
    await thread.join(10_000).catch(() => undefined);
    expect(await smith.force(lock, { owner: thread })).to.equal(ForceResult.OWNER_COMPLETED);
    expect(lock.locked).to.equal(false);
  });
});
