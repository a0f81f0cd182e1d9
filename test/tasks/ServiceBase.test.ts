import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { CancelledError, HaLoop, ManualClock, ServiceBase, TaskGroupError, WakeupBus, type Task } from '../../src/index.ts';
import { gate, rejection, settle } from '../support/async.ts';
import { logged } from '../support/logs.ts';

/** A service whose main and subtasks are driven by the test. */
class Probe extends ServiceBase {
  mainRuns = 0;
  mainGate = gate();
  subtasks: Task<unknown>[] = [];
  spawn: Array<(signal: AbortSignal) => Promise<unknown>> = [];

  protected async main(signal: AbortSignal): Promise<void> {
    this.mainRuns++;
    for (const fn of this.spawn) this.subtasks.push(this.createTask(fn, { name: `sub${this.subtasks.length}` }));
    await new Promise<void>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      this.mainGate.promise.then(resolve, reject);
    });
  }
}

const forever = (signal: AbortSignal): Promise<unknown> => sleep(60_000, undefined, { signal });

describe('ServiceBase', () => {
  it('start() returns this, is running synchronously, and is a no-op while running', async () => {
    const service = new Probe({ uniqueId: 'p' });
    expect(service.isRunning).to.equal(false);
    expect(service.actor.getSnapshot().value).to.equal('idle');
    expect(service.start()).to.equal(service);
    expect(service.isRunning).to.equal(true);
    expect(service.start()).to.equal(service);
    await settle();
    expect(service.mainRuns).to.equal(1);
    expect(service.actor.getSnapshot().value).to.equal('running');
    expect(String(service)).to.equal('Probe:p');
    expect(inspect(service)).to.equal('Probe<p main running>');
    await service.stop();
    expect(service.isRunning).to.equal(false);
    expect(service.actor.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
  });

  it('restarts a finished service on start()', async () => {
    const service = new Probe();
    service.start();
    await settle();
    service.mainGate.open();
    await service.wait();
    expect(service.isRunning).to.equal(false);
    expect(service.actor.getSnapshot().value).to.deep.equal({ done: 'completed' });
    service.mainGate = gate();
    service.start();
    await settle();
    expect(service.mainRuns).to.equal(2);
    expect(service.actor.getSnapshot().context.starts).to.equal(2);
    await service.stop();
  });

  it('runs subtasks in its task group, named with one prefix; isRunning follows main only', async () => {
    const service = new Probe({ uniqueId: 'svc' });
    service.spawn = [forever];
    service.start();
    await settle();
    expect(service.subtasks[0]?.name).to.equal('TaskGroup:svc:sub0');
    expect(service.taskGroup.uniqueId).to.equal('svc');
    service.mainGate.open();
    await settle();
    expect(service.isRunning).to.equal(false);
    expect(service.taskGroup.isRunning).to.equal(true);
    expect(inspect(service)).to.equal('Probe<svc main not running, 1 extra tasks>');
    await service.stop();
    expect(service.subtasks[0]?.cancelled).to.equal(true);
  });

  it('wait() reports cancellations, stop() hides them', async () => {
    const service = new Probe({ uniqueId: 'w' });
    service.spawn = [forever];
    service.start();
    await settle();
    service.cancel('going down');
    const error = await rejection(service.wait());
    expect(error).to.be.instanceOf(TaskGroupError).with.property('message', 'Error while stopping Probe:w');
    const errors = (error as TaskGroupError).errors;
    expect(errors).to.have.length(2);
    expect(errors.every((e) => e instanceof CancelledError && e.message === 'going down')).to.equal(true);
    await service.stop();
  });

  it("surfaces main's failure and the subtasks' failures as one flat TaskGroupError, main's first, and logs main's", async () => {
    const service = new Probe({ uniqueId: 'f' });
    const subError = new Error('sub failed');
    service.spawn = [
      async () => {
        throw subError;
      },
    ];
    service.start();
    await settle();
    const mainError = new Error('main failed');
    service.mainGate.fail(mainError);
    await settle();
    expect(service.isRunning).to.equal(false);
    const error = await rejection(service.stop());
    expect(error).to.be.instanceOf(TaskGroupError).with.property('message', 'Error while stopping Probe:f');
    expect((error as TaskGroupError).errors).to.deep.equal([mainError, subError]);
    expect(logged('error', /^Task Probe:f raised an unhandled exception$/)).to.have.length(1);
    // main's failure is the service's state: reported again until the next start()
    expect(((await rejection(service.stop())) as TaskGroupError).errors).to.deep.equal([mainError]);
    service.mainGate = gate();
    service.spawn = [];
    service.start();
    await settle();
    await service.stop();
  });

  it('stop() twice is quiet, and `await using` stops it when the block ends', async () => {
    let seen: Probe | undefined;
    {
      await using service = new Probe().start();
      seen = service;
      await settle();
      expect(service.isRunning).to.equal(true);
    }
    expect(seen.isRunning).to.equal(false);
    await seen.stop();
    await seen.stop();
  });

  it('cancels a service stopped before main ran: main never runs', async () => {
    const service = new Probe();
    service.start();
    await service.stop();
    expect(service.mainRuns).to.equal(0);
    expect(service.actor.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
  });

  it('rejects bad input with typed errors', () => {
    expect(() => new Probe({ uniqueId: 1 as never }))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(() => new Probe('x' as never))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(() => new Probe().cancel(5 as never))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
  });
});

describe('HaLoop', () => {
  it('runs the HA loop as a service: cycles on wake-ups and on the interval, stops cleanly', async () => {
    const clock = new ManualClock();
    const bus = new WakeupBus({ clock });
    const cycles: number[] = [];
    const loop = new HaLoop({ bus, clock, intervalMs: 1_000, uniqueId: 'ha', cycle: ({ cycle }) => void cycles.push(cycle) });
    expect(loop.start()).to.equal(loop);
    await settle();
    expect(cycles).to.deep.equal([1]);
    bus.wakeup('member changed');
    await settle();
    expect(cycles).to.deep.equal([1, 2]);
    await clock.advance(1_000);
    expect(cycles).to.deep.equal([1, 2, 3]);
    expect(String(loop)).to.equal('HaLoop:ha');
    await loop.stop();
    expect(loop.isRunning).to.equal(false);
    expect(loop.actor.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
    expect(clock.pendingTimers).to.equal(0);
  });

  it('rejects a missing cycle with a typed error', () => {
    expect(() => new HaLoop({ bus: new WakeupBus(), intervalMs: 10 } as never))
      .to.throw(/options\.cycle/)
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(() => new HaLoop(null as never))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
  });
});
