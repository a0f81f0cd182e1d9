import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { TaskGroup, cancelAndAwait } from '../../src/index.ts';
import { gate, isSettled, rejection, settle } from '../support/async.ts';

describe('cancelAndAwait', () => {
  it('cancels a running task, waits for it, and hides its cancellation', async () => {
    const group = new TaskGroup();
    const task = group.createTask((signal) => sleep(60_000, undefined, { signal }));
    await settle();
    await cancelAndAwait(task);
    expect(task.cancelled).to.equal(true);
  });

  it('waits for a slow cleanup to finish before returning', async () => {
    const group = new TaskGroup();
    const cleanup = gate();
    const task = group.createTask(async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      await cleanup.promise;
      throw signal.reason;
    });
    await settle();
    const cancelling = cancelAndAwait(task);
    expect(await isSettled(cancelling)).to.equal(false);
    cleanup.open();
    await cancelling;
    expect(task.cancelled).to.equal(true);
  });

  it('returns normally when the task catches the cancellation and returns, which then counts as success', async () => {
    const group = new TaskGroup();
    const task = group.createTask(async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      return 'saved';
    });
    await settle();
    await cancelAndAwait(task);
    expect(task.result()).to.equal('saved');
  });

  it('throws the error of a task that fails while being cancelled', async () => {
    const group = new TaskGroup();
    const task = group.createTask(
      async (signal) => {
        await new Promise((resolve) => signal.addEventListener('abort', resolve));
        throw new RangeError('cleanup failed');
      },
      { logException: false },
    );
    await settle();
    expect(await rejection(cancelAndAwait(task))).to.be.instanceOf(RangeError);
  });

  it('throws the error of a task that had already failed (Python returned silently and lost it)', async () => {
    const group = new TaskGroup();
    const task = group.createTask(
      async () => {
        throw new Error('failed earlier');
      },
      { logException: false },
    );
    await settle();
    expect(task.done).to.equal(true);
    expect(await rejection(cancelAndAwait(task))).to.have.property('message', 'failed earlier');
  });

  it('returns at once for a task that had already completed or been cancelled', async () => {
    const group = new TaskGroup();
    const completed = group.createTask(async () => 1);
    const cancelled = group.createTask(async () => 2);
    cancelled.cancel();
    await settle();
    await cancelAndAwait(completed);
    await cancelAndAwait(cancelled);
    expect(completed.result()).to.equal(1);
  });

  it("rejects with the caller's own abort reason instead of swallowing it, and leaves the cleanup running", async () => {
    const group = new TaskGroup();
    const cleanup = gate();
    let cleanedUp = false;
    const task = group.createTask(async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      await cleanup.promise;
      cleanedUp = true;
      throw signal.reason;
    });
    await settle();
    const caller = new AbortController();
    const cancelling = cancelAndAwait(task, { signal: caller.signal });
    await settle();
    caller.abort(new Error('caller gave up'));
    expect(await rejection(cancelling)).to.have.property('message', 'caller gave up');
    expect(task.done).to.equal(false);
    cleanup.open();
    await task.wait().catch(() => undefined);
    expect(cleanedUp).to.equal(true);
    expect(task.cancelled).to.equal(true);
  });

  it('rejects bad input with typed errors', async () => {
    expect(await rejection(cancelAndAwait({} as never))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    const task = new TaskGroup().createTask(async () => 1);
    expect(await rejection(cancelAndAwait(task, { signal: 'x' as never }))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
  });
});
