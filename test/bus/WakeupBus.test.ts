import { expect } from 'chai';
import { ManualClock, WakeupBus, type Wakeup } from '../../src/index.ts';
import { isSettled } from '../support/async.ts';

describe('WakeupBus', () => {
  it('delivers each wake-up to wakeups$ subscribers (hot)', () => {
    const bus = new WakeupBus();
    bus.wakeup('before anyone listened');
    const seen: string[] = [];
    bus.wakeups$.subscribe((w) => seen.push(w.reason));
    bus.wakeup('a', { n: 1 });
    bus.wakeup();
    expect(seen).to.deep.equal(['a', 'wakeup']);
  });

  it('latches a wake-up that came before the wait: the wait returns at once and consumes it', async () => {
    const clock = new ManualClock(500);
    const bus = new WakeupBus({ clock });
    bus.wakeup('finished', { action: 'restart' });
    expect(bus.pending).to.equal(true);
    const wakeup = await bus.wait(10_000);
    expect(wakeup).to.deep.equal({ reason: 'finished', detail: { action: 'restart' }, at: 500, count: 1 });
    expect(bus.pending).to.equal(false);
    expect(await bus.wait(0)).to.equal(undefined);
  });

  it('folds several latched wake-ups into one, keeping the first reason and counting them', async () => {
    const bus = new WakeupBus();
    bus.wakeup('first');
    bus.wakeup('second');
    bus.wakeup('third');
    expect(await bus.wait(0)).to.include({ reason: 'first', count: 3 });
  });

  it('wakes every pending waiter and does not latch what they consumed', async () => {
    const clock = new ManualClock();
    const bus = new WakeupBus({ clock });
    const a = bus.wait(1_000);
    const b = bus.wait(1_000);
    bus.wakeup('go');
    expect((await a)?.reason).to.equal('go');
    expect((await b)?.reason).to.equal('go');
    expect(bus.pending).to.equal(false);
  });

  it('resolves undefined when the timeout passes, on the injected clock', async () => {
    const clock = new ManualClock();
    const bus = new WakeupBus({ clock });
    const wait = bus.wait(100);
    await clock.advance(99);
    expect(await isSettled(wait)).to.equal(false);
    await clock.advance(1);
    expect(await wait).to.equal(undefined);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('rejects with signal.reason on abort and removes its timer', async () => {
    const clock = new ManualClock();
    const bus = new WakeupBus({ clock });
    const controller = new AbortController();
    const wait = bus.wait(1_000, { signal: controller.signal });
    const reason = new Error('stop');
    controller.abort(reason);
    expect(await wait.catch((e: unknown) => e)).to.equal(reason);
    expect(clock.pendingTimers).to.equal(0);
    bus.wakeup('after the abort');
    expect(bus.pending).to.equal(true);
  });

  it('rejects at once for an already aborted signal, without consuming a latched wake-up', async () => {
    const bus = new WakeupBus();
    bus.wakeup('kept');
    const reason = new Error('already');
    expect(await bus.wait(10, { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e)).to.equal(reason);
    expect(bus.pending).to.equal(true);
  });

  it('waits forever with Infinity until woken', async () => {
    const clock = new ManualClock();
    const bus = new WakeupBus({ clock });
    const wait = bus.wait(Infinity);
    expect(clock.pendingTimers).to.equal(0);
    bus.wakeup('x');
    expect((await wait)?.reason).to.equal('x');
  });

  it('never throws from wakeup(): odd reasons are converted, a completed bus ignores it', () => {
    const bus = new WakeupBus();
    const seen: Wakeup[] = [];
    bus.wakeups$.subscribe((w) => seen.push(w));
    bus.wakeup(42 as never, 'not an object' as never);
    expect(seen[0]).to.include({ reason: '42', detail: undefined });
    bus.complete();
    expect(() => bus.wakeup('late')).not.to.throw();
    expect(seen).to.have.length(1);
  });

  it('complete() ends the stream and resolves pending and later waits with undefined', async () => {
    const bus = new WakeupBus();
    let completed = false;
    bus.wakeups$.subscribe({ complete: () => (completed = true) });
    const pending = bus.wait(Infinity);
    bus.complete();
    expect(await pending).to.equal(undefined);
    expect(await bus.wait(Infinity)).to.equal(undefined);
    expect(completed).to.equal(true);
    expect(bus.completed).to.equal(true);
  });

  it('rejects a negative, NaN or non-number timeout with a typed error', async () => {
    const bus = new WakeupBus();
    expect(await bus.wait(-1).catch((e: unknown) => e))
      .to.be.instanceOf(RangeError)
      .with.property('code', 'ERR_OUT_OF_RANGE');
    expect(await bus.wait(Number.NaN).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await bus.wait('5' as never).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await bus.wait(5, { signal: 'x' as never }).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
  });
});
