/**
 * No caller hangs on a broken actor, and no hostile value crashes one: a user's object whose
 * getters throw, a revoked proxy, an actor stopped under a pending call. Each call settles
 * within its bound with a typed error, and the actor stays usable.
 */
import { expect } from 'chai';
import {
  ActorStoppedError,
  AsyncExecutor,
  createCoordinator,
  Locksmith,
  Mutex,
  RecognitionResult,
  ServiceBase,
  TaskGroup,
  WakeupBus,
} from '../../src/index.ts';

/** Settles `promise` within `ms`, or says it hung. */
async function within<T>(promise: Promise<T>, ms = 2_000): Promise<{ value?: T; error?: unknown; hung?: true }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<{ hung: true }>((resolve) => (timer = setTimeout(() => resolve({ hung: true }), ms)));
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function revokedProxy(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

const trapping = (): object =>
  new Proxy(
    {},
    {
      get: () => {
        throw new Error('trap');
      },
      getPrototypeOf: () => {
        throw new Error('trap');
      },
      has: () => {
        throw new Error('trap');
      },
    },
  );

describe('hostile input and broken actors', function () {
  this.timeout(10_000);

  it('Locksmith.recognize: a lock whose getter throws gets a typed error, and the locksmith stays usable', async () => {
    const smith = new Locksmith({ name: 'smith' });
    const hostile = {
      acquire: async () => undefined,
      release: () => undefined,
      get locked(): boolean {
        throw new Error('getter boom');
      },
    };
    const first = await within(smith.recognize(hostile));
    expect(first.hung, 'recognize settles').to.equal(undefined);
    expect(first.error).to.have.property('code', 'ERR_INVALID_ARG_VALUE');
    expect((first.error as Error).cause).to.have.property('message', 'getter boom');
    const later = await within(smith.recognize(new Mutex()));
    expect(later.value, 'a later call is served').to.equal(RecognitionResult.SUCCESS);
    expect(smith.actor.getSnapshot().status).to.equal('active');
  });

  it('Locksmith.force: a lock whose locked getter starts throwing after recognition gets a typed error', async () => {
    const smith = new Locksmith({ name: 'smith' });
    let broken = false;
    const flaky = {
      acquire: async () => undefined,
      release: () => undefined,
      get locked(): boolean {
        if (broken) throw new Error('late boom');
        return true;
      },
    };
    expect((await within(smith.recognize(flaky))).value).to.equal(RecognitionResult.SUCCESS);
    broken = true;
    const forced = await within(smith.force(flaky, { answerTimeoutMs: 50 }));
    expect(forced.hung, 'force settles').to.equal(undefined);
    expect(forced.error).to.have.property('code', 'ERR_INVALID_ARG_VALUE');
    expect((await within(smith.recognize(new Mutex()))).value).to.equal(RecognitionResult.SUCCESS);
  });

  for (const [what, make] of [
    ['a revoked proxy', revokedProxy],
    ['a proxy whose traps throw', trapping],
  ] as const) {
    it(`a task that rejects with ${what} fails, without crashing the process`, async () => {
      const group = new TaskGroup({ uniqueId: 'hostile' });
      const value = make();
      const task = group.createTask(async () => Promise.reject(value), { name: 't' });
      const waited = await within(task.wait());
      expect(waited.error).to.equal(value);
      expect(task.cancelled).to.equal(false);
      await within(group.stop());
    });

    it(`bus.wakeup(${what}) never throws`, () => {
      const bus = new WakeupBus();
      expect(() => bus.wakeup(make() as never)).to.not.throw();
      expect(() => bus.wakeup('x', make())).to.not.throw();
      bus.complete();
    });
  }

  it('AsyncExecutor.run() rejects at once when its actor is stopped under it, naming the actor and its state', async () => {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'stopped-under' });
    const run = executor.run(() => new Promise(() => undefined));
    await new Promise((resolve) => setTimeout(resolve, 10));
    executor.actor.stop();
    const settled = await within(run);
    expect(settled.error).to.be.instanceOf(ActorStoppedError);
    expect(settled.error).to.have.property('actor', 'stopped-under');
    expect((settled.error as Error).message).to.match(/"running"/);
  });
});

describe('facade calls on an actor that stops under them', function () {
  this.timeout(10_000);

  it("TaskGroup.wait() rejects at once with ActorStoppedError when the group's actor is stopped", async () => {
    const group = new TaskGroup({ uniqueId: 'stopped-group' });
    group.createTask((signal) => new Promise((resolve) => signal.addEventListener('abort', resolve)), { name: 'nap' });
    const waited = group.wait();
    group.actor.stop();
    const settled = await within(waited);
    expect(settled.error).to.be.instanceOf(ActorStoppedError);
    expect(await within(group.wait()))
      .to.have.property('error')
      .that.is.instanceOf(ActorStoppedError);
  });

  it('Coordinator calls reject at once with ActorStoppedError when its actor is stopped under a pending call', async () => {
    const coordinator = createCoordinator({ agentId: 'stopped-under' });
    await coordinator.start();
    const held = await coordinator.getLock('x').acquire();
    const other = createCoordinator({ agentId: 'other' });
    await other.start();
    const pending = other.getLock('x').acquire({ timeoutMs: 5_000 });
    const members = other.getMembers('g');
    other.actor.stop();
    const settled = await within(pending);
    expect(settled.hung).to.equal(undefined);
    expect(settled.error).to.be.instanceOf(ActorStoppedError);
    expect((await within(members)).error).to.be.instanceOf(ActorStoppedError);
    await held?.release();
    await coordinator.stop();
  });
});

describe('a service whose actor is stopped under it', () => {
  it('stop() rejects at once with ActorStoppedError instead of waiting for a reply that cannot come', async () => {
    class Napper extends ServiceBase {
      protected override async main(signal: AbortSignal): Promise<void> {
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      }
    }
    const service = new Napper({ uniqueId: 'stopped-service' }).start();
    service.actor.stop();
    const settled = await within(service.stop());
    expect(settled.hung).to.equal(undefined);
    expect(settled.error).to.have.property('code', 'ERR_ACTOR_STOPPED');
  });
});
