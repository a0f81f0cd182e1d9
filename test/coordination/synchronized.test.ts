import { expect } from 'chai';
import {
  createCoordinator,
  getDefaultCoordinator,
  Lock,
  LockAcquireFailed,
  LockNameError,
  setDefaultCoordinator,
  synchronized,
  type Coordinator,
} from '../../src/index.ts';
import { gate, rejection, settle } from '../support/async.ts';

describe('Lock templates', () => {
  it('renders attribute and item access once, at construction', () => {
    const lock = new Lock('{volume.id}-{snap[name]}-{{literal}}-{items[1]}', { volume: { id: 'v7' }, snap: { name: 'nightly' }, items: ['a', 'b'] });
    expect(lock.name).to.equal('v7-nightly-{literal}-b');
  });

  it('a missing field is a TypeError naming it', () => {
    const cases: Array<[string, object, RegExp]> = [
      ['foo-{volume.id}', {}, /needs \{volume.id\}, but there is no "volume" in the lock data/],
      ['foo-{volume.id}', { volume: {} }, /needs \{volume.id\}, but volume has no attribute "id"/],
      ['{snap[name]}', { snap: { other: 1 } }, /needs \{snap\[name\]\}, but snap has no item "name"/],
      ['{a.b.c}', { a: { b: null } }, /needs \{a.b.c\}, but a.b is null/],
    ];
    for (const [template, data, message] of cases) {
      let error: LockNameError | undefined;
      try {
        new Lock(template, data);
      } catch (caught) {
        error = caught as LockNameError;
      }
      expect(error).to.be.instanceOf(TypeError);
      expect(error?.code).to.equal('ERR_LOCK_NAME_FIELD');
      expect(error?.message).to.match(message);
    }
    expect(() => new Lock(42 as never)).to.throw(TypeError, /"nameTemplate" argument must be a string/);
    expect(() => new Lock('{unclosed', {})).to.throw(TypeError, /closed by/);
    expect(() => new Lock('a', 'data' as never)).to.throw(TypeError, /"lockData"/);
  });

  it('uses the coordinator it is given (with its prefix), or the default one', async () => {
    const c = createCoordinator({ prefix: 'cinder-' });
    await c.start();
    const lock = new Lock('volume-{id}', { id: 3 }, { coordinator: c });
    expect(lock.name).to.equal('cinder-volume-3');
    expect(lock.coordinator).to.equal(c);
    await c.stop();
    expect(new Lock('x').coordinator).to.equal(getDefaultCoordinator());
  });
});

describe('synchronized', () => {
  let coordinator: Coordinator;
  beforeEach(async () => {
    coordinator = createCoordinator({ prefix: 'test-' });
    await coordinator.start();
  });
  afterEach(async () => {
    setDefaultCoordinator(null);
    await coordinator.stop();
  });

  it('works as a standard method decorator: {f_name} is the method name, positional fields read the arguments', async () => {
    const seen: string[] = [];
    const c = coordinator;
    class Volumes {
      @synchronized('{f_name}-{0.id}', { coordinator: c })
      async delete(volume: { id: string }): Promise<string> {
        seen.push(c.getLock(`delete-${volume.id}`).name);
        const probe = await c.getLock(`delete-${volume.id}`).acquire({ blocking: false });
        return probe === null ? 'locked' : 'unlocked';
      }
    }
    expect(await new Volumes().delete({ id: 'v1' })).to.equal('locked');
    expect(seen).to.deep.equal(['test-delete-v1']);
    expect(Volumes.prototype.delete.name).to.equal('delete');
  });

  it('serialises two calls on the same name and lets other names run at once', async () => {
    const order: string[] = [];
    const first = gate();
    const work = synchronized('{0}', { coordinator })(async (name: string, wait?: Promise<void>) => {
      order.push(`start ${name}`);
      await wait;
      order.push(`end ${name}`);
    });
    const a = work('a', first.promise);
    const b = work('a');
    const c = work('c');
    await c;
    await settle();
    expect(order).to.deep.equal(['start a', 'start c', 'end c']);
    first.open();
    await Promise.all([a, b]);
    expect(order).to.deep.equal(['start a', 'start c', 'end c', 'end a', 'start a', 'end a']);
  });

  it('takes several names sorted and de-duplicated, and releases them all', async () => {
    const taken: string[] = [];
    const names = (...args: string[]) => args;
    const both = synchronized(names, { coordinator })(async (...args: string[]) => {
      for (const n of ['x', 'y', 'z']) if ((await coordinator.getLock(n).acquire({ blocking: false })) === null) taken.push(n);
      return args.length;
    });
    expect(await both('z', 'x', 'z')).to.equal(3);
    expect(taken).to.deep.equal(['x', 'z']);
    const again = await coordinator.getLock('x').acquire({ blocking: false });
    expect(again).to.not.equal(null);
    await again?.release();
  });

  it('rejects with LockAcquireFailed and never runs the function when the lock is not acquired (upstream runs it unlocked)', async () => {
    let ran = 0;
    const held = await coordinator.getLock('busy').acquire();
    const nonBlocking = synchronized('busy', { coordinator, blocking: false })(async () => void ran++);
    const bounded = synchronized('busy', { coordinator, blocking: 30 })(async () => void ran++);
    const busy = (await rejection(nonBlocking())) as LockAcquireFailed;
    expect([busy.code, busy.reason, busy.lock]).to.deep.equal(['ERR_LOCK_ACQUIRE_FAILED', 'busy', 'test-busy']);
    const timeout = (await rejection(bounded())) as LockAcquireFailed;
    expect(timeout.reason).to.equal('timeout');
    expect(ran).to.equal(0);
    await held?.release();
    await nonBlocking();
    expect(ran).to.equal(1);
  });

  it('a backend failure is LockAcquireFailed with reason "error" and the cause', async () => {
    const stopped = createCoordinator();
    const fn = synchronized('x', { coordinator: stopped })(async () => 1);
    const error = (await rejection(fn())) as LockAcquireFailed;
    expect(error.reason).to.equal('error');
    expect((error.cause as { code: string }).code).to.equal('ERR_COORDINATION_STATE');
  });

  it('uses the default coordinator when given none', async () => {
    setDefaultCoordinator(coordinator);
    const fn = synchronized('default-{0}')(async (n: number) => (await coordinator.getLock(`default-${n}`).acquire({ blocking: false })) === null);
    expect(await fn(1)).to.equal(true);
  });

  it('checks its arguments', () => {
    expect(() => synchronized(42 as never)).to.throw(TypeError, /template string/);
    expect(() => synchronized([])).to.throw(TypeError, /template string/);
    expect(() => synchronized('x', { blocking: -1 })).to.throw(TypeError, /blocking/);
    expect(() => synchronized('x', { coordinator: {} as never })).to.throw(TypeError, /Coordinator/);
    expect(() => synchronized('x')(42 as never)).to.throw(TypeError, /"target"/);
    expect(() => setDefaultCoordinator({} as never)).to.throw(TypeError, /Coordinator or null/);
  });
});
