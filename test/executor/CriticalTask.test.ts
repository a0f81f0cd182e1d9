import { expect } from 'chai';
import { CriticalTask } from '../../src/index.ts';

describe('CriticalTask', () => {
  it('cancel() returns true and marks the task cancelled when no result exists', async () => {
    const task = new CriticalTask();
    expect(await task.withLock(() => task.cancel())).to.equal(true);
    expect(task.isCancelled).to.equal(true);
    expect(task.actor.getSnapshot().matches({ done: 'cancelled' })).to.equal(true);
  });

  it('cancel() returns false and changes nothing once the step completed', async () => {
    const task = new CriticalTask<number>();
    await task.withLock(() => task.complete(1));
    expect(await task.withLock(() => task.cancel())).to.equal(false);
    expect(task.isCancelled).to.equal(false);
    expect(task.result).to.equal(1);
  });

  it('counts a completion with undefined as done (the Python None quirk is fixed)', async () => {
    const task = new CriticalTask<undefined>();
    await task.withLock(() => task.complete(undefined));
    expect(task.completed).to.equal(true);
    expect(await task.withLock(() => task.cancel())).to.equal(false);
  });

  it('refuses complete() after a cancel, so the interlock cannot be broken', async () => {
    const task = new CriticalTask();
    await task.withLock(() => task.cancel());
    const error = await task.withLock(() => task.complete('late')).catch((e: unknown) => e);
    expect(error).to.have.property('code', 'ERR_INVALID_STATE');
    expect(task.result).to.equal(undefined);
  });

  it('refuses a second complete() before reset()', async () => {
    const task = new CriticalTask();
    await task.withLock(() => task.complete(1));
    const error = await task.withLock(() => task.complete(2)).catch((e: unknown) => e);
    expect(error).to.have.property('code', 'ERR_INVALID_STATE');
  });

  it('reset() clears the flag and the result for the next task', async () => {
    const task = new CriticalTask<string>();
    await task.withLock(() => task.complete('postmaster'));
    await task.withLock(() => task.reset());
    expect(task.result).to.equal(undefined);
    expect(task.completed).to.equal(false);
    expect(task.actor.getSnapshot().value).to.equal('idle');
    expect(await task.withLock(() => task.cancel())).to.equal(true);
  });

  it('throws an InvalidStateError when cancel, complete or reset is called outside withLock()', () => {
    const task = new CriticalTask({ name: 'pm' });
    expect(() => task.cancel())
      .to.throw(/pm\.cancel\(\) must be called inside pm\.withLock\(\)/)
      .with.property('code', 'ERR_INVALID_STATE');
    expect(() => task.complete(1))
      .to.throw()
      .with.property('code', 'ERR_INVALID_STATE');
    expect(() => task.reset())
      .to.throw()
      .with.property('code', 'ERR_INVALID_STATE');
  });

  describe('the two-party interlock', () => {
    function worker(task: CriticalTask<string>, steps: string[]): Promise<void> {
      return task.withLock(async () => {
        if (task.isCancelled) return;
        await null; // the step takes time, holding the lock
        steps.push('spawned');
        task.complete('postmaster');
      });
    }

    it('main side first: cancel() is true and the worker skips the step', async () => {
      const task = new CriticalTask<string>();
      const steps: string[] = [];
      const cancelled = task.withLock(() => task.cancel());
      const work = worker(task, steps);
      expect(await cancelled).to.equal(true);
      await work;
      expect(steps).to.deep.equal([]);
    });

    it('worker first: cancel() is false and the result holds the artefact', async () => {
      const task = new CriticalTask<string>();
      const steps: string[] = [];
      const work = worker(task, steps);
      const cancelled = task.withLock(() => task.cancel());
      await work;
      expect(await cancelled).to.equal(false);
      expect(steps).to.deep.equal(['spawned']);
      expect(task.result).to.equal('postmaster');
    });
  });

  it('rejects a nested withLock() with a DeadlockError instead of hanging', async () => {
    const task = new CriticalTask();
    const error = await task.withLock(() => task.withLock(() => 1)).catch((e: unknown) => e);
    expect(error).to.have.property('code', 'ERR_DEADLOCK');
    expect(task.locked).to.equal(false);
  });
});
