import { expect } from 'chai';
import { currentOwner, ForceResult, LockLostError, Locksmith, Mutex, serveLockForceRequests, TaskGroup, type LockHandle } from '../../src/index.ts';
import { gate, settle } from '../support/async.ts';

describe('a deadlock broken by a watchdog locksmith', () => {
  it('two tasks wait on each other; host() breaks the cycle, runs the cleanup under the lock, and both handles say why', async () => {
    const a = new Mutex({ name: 'a' });
    const b = new Mutex({ name: 'b' });
    const handles = new Map<string, LockHandle>();
    const bothHold = gate();
    let holding = 0;
    const job = (name: string, first: Mutex, second: Mutex) => async (): Promise<void> => {
      const stop = serveLockForceRequests(currentOwner(), () => 'release');
      try {
        const held = await first.acquire();
        handles.set(name, held);
        if (++holding === 2) bothHold.open();
        await bothHold.promise;
        (await second.acquire({ signal: held.signal })).release();
      } finally {
        stop();
      }
    };
    const group = new TaskGroup({ uniqueId: 'deadlock' });
    const one = group.createTask(job('one', a, b), { name: 'one', logException: false });
    const two = group.createTask(job('two', b, a), { name: 'two', logException: false });
    await bothHold.promise;
    await settle();
    expect([a.waiting, b.waiting, a.owner, b.owner]).to.deep.equal([1, 1, one, two]);

    const smith = new Locksmith({ name: 'watchdog' });
    await smith.recognize(a);
    await smith.recognize(b);
    const during: unknown[] = [];
    const info = 'one waits for b, two waits for a';
    const report = await smith.host(
      async () => {
        during.push(a.owner === one, String(a.owner));
        during.push(await smith.force(b, { info }));
        return 'cleaned';
      },
      a,
      { info },
    );
    expect(report).to.equal('cleaned');
    expect(during).to.deep.equal([false, 'task hosted by watchdog under a', ForceResult.SUCCESS]);
    for (const [name, lock] of [
      ['one', 'a'],
      ['two', 'b'],
    ] as const) {
      const reason = handles.get(name)?.signal.reason as LockLostError;
      expect(reason, name).to.be.instanceOf(LockLostError);
      expect([reason.lock, reason.by, reason.info]).to.deep.equal([lock, 'watchdog', info]);
    }
    await settle();
    expect(one.error).to.equal(handles.get('one')?.signal.reason);
    expect(two.error).to.equal(handles.get('two')?.signal.reason);
    expect([a.locked, b.locked, a.waiting, b.waiting]).to.deep.equal([false, false, 0, 0]);
    const stopped = (await group.stop().catch((error: unknown) => error)) as AggregateError;
    expect(stopped.errors.map((e: LockLostError) => e.lock)).to.have.members(['a', 'b']);
  });
});
