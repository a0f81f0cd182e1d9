/**
 * Inputs the fault campaign found accepted without the promised typed error, or breaking
 * a contract, one by one: each now gets a typed error with a code, or works.
 */
import { expect } from 'chai';
import {
  AsyncExecutor,
  CancellableSubprocess,
  createCoordinator,
  CriticalTask,
  Locksmith,
  Mutex,
  ServiceBase,
  setLogger,
  TaskGroup,
  WakeupBus,
} from '../src/index.ts';
import { capturingLogger } from './support/logs.ts';

/** Expects `fn` to throw a TypeError with `code` whose message names `argument`. */
function refuses(fn: () => unknown, code: string, argument: string): void {
  expect(fn).to.throw(TypeError).with.property('code', code);
  try {
    fn();
  } catch (error) {
    expect((error as Error).message).to.contain(`"${argument}"`);
  }
}

describe('inputs', () => {
  describe('WakeupBus.wakeup() never throws', () => {
    it('for a reason with no prototype, or whose toString throws', async () => {
      const bus = new WakeupBus();
      const seen: string[] = [];
      bus.wakeups$.subscribe((w) => seen.push(w.reason));
      const hostile = {
        toString() {
          throw new Error('no');
        },
      };
      expect(() => bus.wakeup(Object.create(null) as never)).to.not.throw();
      expect(() => bus.wakeup(hostile as never)).to.not.throw();
      expect(seen).to.deep.equal(['[object Object]', '[object Object]']);
      expect((await bus.wait(0))?.count).to.equal(2);
    });
  });

  it('an executor refuses a cancellable that is not a CancellableSubprocess, and a name that is not a non-empty string', () => {
    const wakeup = (): void => undefined;
    refuses(() => new AsyncExecutor({ wakeup, cancellable: {} as never }), 'ERR_INVALID_ARG_TYPE', 'options.cancellable');
    refuses(() => new AsyncExecutor({ wakeup, name: 42 as never }), 'ERR_INVALID_ARG_TYPE', 'options.name');
    refuses(() => new AsyncExecutor({ wakeup, name: '' }), 'ERR_INVALID_ARG_VALUE', 'options.name');
    expect(new AsyncExecutor({ wakeup, cancellable: new CancellableSubprocess() }).busy).to.equal(false);
    refuses(() => new CriticalTask({ name: [] as never }), 'ERR_INVALID_ARG_TYPE', 'options.name');
  });

  it('a subprocess refuses a name that is not a string, and an env that is not an object of strings', async () => {
    refuses(() => new CancellableSubprocess({ name: 7 as never }), 'ERR_INVALID_ARG_TYPE', 'options.name');
    const runner = new CancellableSubprocess();
    for (const [env, argument] of [
      ['x', 'options.env'],
      [null, 'options.env'],
      [['A=1'], 'options.env'],
      [{ PATH: 3 }, 'options.env.PATH'],
    ] as const) {
      const error = await runner.call(['true'], { env: env as never }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(env)).to.include({ code: 'ERR_INVALID_ARG_TYPE' });
      expect((error as Error).message).to.contain(`"${argument}"`);
    }
    expect(await runner.call(['sh', '-c', 'test "$GREETING" = hi'], { env: { PATH: process.env['PATH'], GREETING: 'hi' } })).to.equal(0);
  });

  it('a Mutex refuses a bad name, reentrant or clock, and tryAcquire() refuses a non-object', () => {
    refuses(() => new Mutex({ name: 1 as never }), 'ERR_INVALID_ARG_TYPE', 'options.name');
    refuses(() => new Mutex({ reentrant: 'yes' as never }), 'ERR_INVALID_ARG_TYPE', 'options.reentrant');
    refuses(() => new Mutex({ clock: {} as never }), 'ERR_INVALID_ARG_TYPE', 'options.clock');
    const mutex = new Mutex();
    refuses(() => mutex.tryAcquire('x' as never), 'ERR_INVALID_ARG_TYPE', 'options');
    refuses(() => mutex.tryAcquire({ ownr: 1 } as never), 'ERR_UNKNOWN_OPTION', 'options');
    expect(mutex.locked).to.equal(false);
  });

  it('every facility that takes a clock or randomness refuses one of the wrong shape', () => {
    const clock = { now: () => 0 } as never;
    refuses(() => new WakeupBus({ clock }), 'ERR_INVALID_ARG_TYPE', 'options.clock');
    refuses(() => new TaskGroup({ clock }), 'ERR_INVALID_ARG_TYPE', 'options.clock');
    refuses(() => new TaskGroup({ random: 0.5 as never }), 'ERR_INVALID_ARG_TYPE', 'options.random');
    refuses(() => new Locksmith({ clock }), 'ERR_INVALID_ARG_TYPE', 'options.clock');
    refuses(() => createCoordinator({ clock }), 'ERR_INVALID_ARG_TYPE', 'options.clock');
    refuses(() => createCoordinator({ random: 'x' as never }), 'ERR_INVALID_ARG_TYPE', 'options.random');
    class Idle extends ServiceBase {
      protected async main(): Promise<void> {}
    }
    refuses(() => new Idle({ clock }), 'ERR_INVALID_ARG_TYPE', 'options.clock');
  });

  it('setLogger() refuses what is not a logger, and keeps the one in force', () => {
    refuses(() => setLogger(42 as never), 'ERR_INVALID_ARG_TYPE', 'logger');
    refuses(() => setLogger({ info() {} } as never), 'ERR_INVALID_ARG_TYPE', 'logger');
    setLogger(capturingLogger);
  });
});
