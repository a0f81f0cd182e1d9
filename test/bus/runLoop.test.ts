import { expect } from 'chai';
import { AsyncExecutor, ManualClock, runLoop, WakeupBus } from '../../src/index.ts';
import { isSettled, settle } from '../support/async.ts';
import { logged } from '../support/logs.ts';

function harness(intervalMs = 10_000) {
  const clock = new ManualClock();
  const bus = new WakeupBus({ clock });
  const controller = new AbortController();
  const cycles: number[] = [];
  return { clock, bus, controller, cycles, intervalMs };
}

describe('runLoop()', () => {
  it('runs a cycle, then the next one interval later when nothing wakes it', async () => {
    const { clock, bus, controller, cycles } = harness();
    const loop = runLoop(() => void cycles.push(clock.now()), { bus, clock, intervalMs: 10_000, signal: controller.signal });
    loop.catch(() => undefined);
    await settle();
    expect(cycles).to.deep.equal([0]);
    await clock.advance(9_999);
    expect(cycles).to.deep.equal([0]);
    await clock.advance(1);
    expect(cycles).to.deep.equal([0, 10_000]);
    controller.abort(new Error('stop'));
    expect(await loop.catch((e: Error) => e.message)).to.equal('stop');
  });

  it('runs at once when woken, and the following cycle comes a full interval after that', async () => {
    const { clock, bus, controller, cycles } = harness();
    const woken: string[] = [];
    const loop = runLoop(() => void cycles.push(clock.now()), {
      bus,
      clock,
      intervalMs: 10_000,
      signal: controller.signal,
      onWakeup: (w) => woken.push(w.reason),
    });
    loop.catch(() => undefined);
    await clock.advance(3_000);
    bus.wakeup('restart completed');
    await settle();
    expect(cycles).to.deep.equal([0, 3_000]);
    expect(woken).to.deep.equal(['restart completed']);
    await clock.advance(9_999);
    expect(cycles).to.deep.equal([0, 3_000]);
    await clock.advance(1);
    expect(cycles).to.deep.equal([0, 3_000, 13_000]);
    controller.abort();
    await loop.catch(() => undefined);
  });

  it('does not lose a wake-up that arrives during a cycle', async () => {
    const { clock, bus, controller, cycles } = harness();
    const loop = runLoop(
      () => {
        cycles.push(clock.now());
        if (cycles.length === 1) bus.wakeup('during the cycle');
      },
      { bus, clock, intervalMs: 10_000, signal: controller.signal },
    );
    loop.catch(() => undefined);
    await settle();
    expect(cycles).to.deep.equal([0, 0]);
    controller.abort();
    await loop.catch(() => undefined);
  });

  it('after an overrun, runs the next cycle at once but yields to the event loop first', async () => {
    const { clock, bus, controller, cycles } = harness();
    const overruns: number[] = [];
    let immediateRan = false;
    const loop = runLoop(
      async () => {
        cycles.push(clock.now());
        if (cycles.length === 1) {
          setImmediate(() => (immediateRan = true));
          await clock.advance(15_000); // the cycle takes longer than the interval
        } else {
          expect(immediateRan, 'the loop yielded before the next cycle').to.equal(true);
          controller.abort(new Error('enough'));
        }
      },
      { bus, clock, intervalMs: 10_000, signal: controller.signal, onOverrun: (ms) => overruns.push(ms) },
    );
    expect(await loop.catch((e: Error) => e.message)).to.equal('enough');
    expect(cycles).to.deep.equal([0, 15_000]);
    expect(overruns).to.deep.equal([5_000]);
    expect(logged('warn', /Loop time exceeded/)).to.have.length(1);
  });

  it('logs a failing cycle and keeps going', async () => {
    const { clock, bus, controller, cycles } = harness();
    const loop = runLoop(
      () => {
        cycles.push(clock.now());
        if (cycles.length === 1) throw new Error('dcs unreachable');
      },
      { bus, clock, intervalMs: 1_000, signal: controller.signal },
    );
    loop.catch(() => undefined);
    await clock.advance(1_000);
    expect(cycles).to.deep.equal([0, 1_000]);
    expect(logged('error', /loop cycle 1 failed/)).to.have.length(1);
    controller.abort();
    await loop.catch(() => undefined);
  });

  it('holds the executor lock for the whole cycle when given an executor', async () => {
    const { clock, bus, controller } = harness();
    const executor = new AsyncExecutor({ wakeup: bus });
    const heldDuringCycle: boolean[] = [];
    const loop = runLoop(
      async () => {
        heldDuringCycle.push(executor.isLockHeldByCaller());
        await null;
        heldDuringCycle.push(executor.isLockHeldByCaller());
        controller.abort();
      },
      { bus, clock, intervalMs: 1_000, signal: controller.signal, executor },
    );
    await loop.catch(() => undefined);
    expect(heldDuringCycle).to.deep.equal([true, true]);
    expect(executor.locked).to.equal(false);
  });

  it('stops while sleeping: rejects with signal.reason and leaves no timer behind', async () => {
    const { clock, bus, controller } = harness();
    const loop = runLoop(() => undefined, { bus, clock, intervalMs: 60_000, signal: controller.signal });
    await settle();
    expect(await isSettled(loop)).to.equal(false);
    const reason = new Error('shutdown');
    controller.abort(reason);
    expect(await loop.catch((e: unknown) => e)).to.equal(reason);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('rejects bad input with typed errors', async () => {
    const bus = new WakeupBus();
    const signal = new AbortController().signal;
    expect(await runLoop('x' as never, { bus, intervalMs: 1, signal }).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await runLoop(() => 1, { bus, intervalMs: -5, signal }).catch((e: unknown) => e)).to.have.property('code', 'ERR_OUT_OF_RANGE');
    expect(await runLoop(() => 1, { bus: {} as never, intervalMs: 5, signal }).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(await runLoop(() => 1, { bus, intervalMs: 5 } as never).catch((e: unknown) => e)).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
  });
});
