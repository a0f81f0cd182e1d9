/**
 * Every facility's actor under random data commands, as they could arrive from another
 * process: known verbs with random payloads, unknown verbs, and random extra fields.
 * The actor never throws, never reaches XState's `error` status, answers every unknown
 * verb with `statesmith.rejected` (`ERR_UNKNOWN_COMMAND`), and answers every command it
 * rejects synchronously with a typed `code`.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { createActor, type AnyActorLogic } from 'xstate';
import {
  ask,
  AsyncExecutor,
  createCoordinator,
  Locksmith,
  TaskGroup,
  WakeupBus,
  coordinatorLogic,
  criticalTaskLogic,
  executorLogic,
  locksmithLogic,
  Mutex,
  serviceLogic,
  subprocessLogic,
  taskGroupLogic,
} from '../src/index.ts';
import { settle } from './support/async.ts';

interface Facility {
  readonly name: string;
  readonly logic: AnyActorLogic;
  readonly input: () => unknown;
  readonly verbs: readonly string[];
}

const never = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));

const facilities: Facility[] = [
  { name: 'executor', logic: executorLogic, input: () => ({ actions: { wait: never } }), verbs: ['schedule', 'run', 'cancel', 'reset'] },
  { name: 'critical', logic: criticalTaskLogic, input: () => ({}), verbs: ['schedule', 'complete', 'cancel', 'reset'] },
  {
    name: 'taskGroup',
    logic: taskGroupLogic,
    input: () => ({ tasks: { wait: never } }),
    verbs: ['createTask', 'cancelTask', 'cancel', 'stop', 'wait', 'acknowledge'],
  },
  { name: 'service', logic: serviceLogic, input: () => ({ main: never }), verbs: ['start', 'cancel', 'stop'] },
  // No call that could start a real process: argv is never a valid one here.
  { name: 'subprocess', logic: subprocessLogic, input: () => ({}), verbs: ['cancel', 'terminate', 'resetCancelled'] },
  {
    name: 'locksmith',
    logic: locksmithLogic,
    input: () => ({ locks: { m: new Mutex() }, tasks: { t: async () => 1 } }),
    verbs: ['recognize', 'force', 'host'],
  },
  { name: 'coordinator', logic: coordinatorLogic, input: () => ({ options: { agentId: 'fuzz' } }), verbs: ['acquire', 'release'] },
];

/** Values a field may hold after crossing a process: JSON only. */
const jsonValue = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
);
const fieldName = fc.constantFrom(
  'action',
  'name',
  'task',
  'lock',
  'params',
  'reason',
  'kill',
  'call',
  'blocking',
  'timeoutMs',
  'argv',
  'result',
  'fn',
  'answerTimeoutMs',
  'restart',
  'extra',
);

describe('every actor under random data commands', function () {
  this.timeout(60_000);

  for (const facility of facilities) {
    it(`${facility.name}: never throws, never errors, answers unknown verbs and rejects with a code`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              verb: fc.oneof(fc.constantFrom(...facility.verbs), fc.constantFrom('bogus', 'delete', 'settled', 'gate', 'materialise')),
              payload: fc.dictionary(fieldName, jsonValue, { maxKeys: 3 }),
            }),
            { minLength: 1, maxLength: 12 },
          ),
          async (commands) => {
            const actor = createActor(facility.logic, { input: facility.input() } as never).start();
            try {
              for (const { verb, payload } of commands) {
                const type = `statesmith.${facility.name}.${verb}`;
                const replies: Array<{ type: string; code?: string }> = [];
                const subscription = actor.on('*', (reply: { type: string; code?: string }) => replies.push(reply));
                expect(() => actor.send({ ...payload, type } as never), type).to.not.throw();
                subscription.unsubscribe();
                expect(actor.getSnapshot().status, `${type} ${JSON.stringify(payload)}`).to.equal('active');
                for (const reply of replies) if (reply.type === 'statesmith.rejected') expect(reply.code, type).to.match(/^ERR_[A-Z_]+$/);
                if (!facility.verbs.includes(verb)) {
                  expect(
                    replies.some((r) => r.type === 'statesmith.rejected'),
                    `${type} is answered`,
                  ).to.equal(true);
                }
              }
              await settle(1);
              expect(actor.getSnapshot().status).to.equal('active');
            } finally {
              actor.stop();
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }
});

/** In-process values a careless or hostile caller may pass: getters and traps that throw, revoked proxies, nesting past the stack. */
function hostileValues(): unknown[] {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  const throwing = new Proxy(
    {},
    {
      get: () => {
        throw new Error('trap');
      },
      getPrototypeOf: () => {
        throw new Error('trap');
      },
      ownKeys: () => {
        throw new Error('trap');
      },
      has: () => {
        throw new Error('trap');
      },
    },
  );
  const getter = Object.defineProperty({}, 'locked', {
    get: () => {
      throw new Error('getter');
    },
    enumerable: true,
  });
  let deep: unknown = [];
  for (let i = 0; i < 20_000; i++) deep = [deep];
  return [proxy, throwing, getter, deep];
}

describe('every actor under hostile in-process values and stray event types', function () {
  this.timeout(60_000);

  for (const facility of facilities) {
    it(`${facility.name}: a hostile value in any field never throws, never errors the actor`, () => {
      const actor = createActor(facility.logic, { input: facility.input() } as never).start();
      try {
        for (const verb of facility.verbs) {
          for (const field of ['action', 'lock', 'lockRef', 'name', 'params', 'reason', 'result', 'timeoutMs', 'extra']) {
            for (const value of hostileValues()) {
              const type = `statesmith.${facility.name}.${verb}`;
              expect(() => actor.send({ type, [field]: value } as never), `${type} ${field}`).to.not.throw();
              expect(actor.getSnapshot().status, `${type} with a hostile ${field}`).to.equal('active');
            }
          }
        }
      } finally {
        actor.stop();
      }
    });

    it(`${facility.name}: answers every stray type (a bare word, a misspelled facility, another facility's command)`, () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.stringMatching(/^[a-z]{1,8}$/),
            fc.constantFrom('statesmith.exectuor.run', 'statesmith.taskgroup.wait', 'Statesmith.executor.run', 'statesmith..run', 'statesmith.executor'),
            fc.constantFrom(...facilities.filter((f) => f.name !== facility.name).flatMap((f) => f.verbs.map((verb) => `statesmith.${f.name}.${verb}`))),
          ),
          (type) => {
            const actor = createActor(facility.logic, { input: facility.input() } as never).start();
            try {
              const replies: Array<{ type: string; code?: string }> = [];
              actor.on('*', (reply: { type: string; code?: string }) => replies.push(reply));
              actor.send({ type } as never);
              expect(
                replies.map((r) => r.code),
                type,
              ).to.deep.equal(['ERR_UNKNOWN_COMMAND']);
              expect(actor.getSnapshot().status).to.equal('active');
            } finally {
              actor.stop();
            }
          },
        ),
        { numRuns: 40 },
      );
    });
  }
});

describe('every facade method under hostile arguments', function () {
  this.timeout(60_000);

  /** Settles `run()` within `ms`: what it returned or threw, or that it hung. */
  async function outcome(run: () => unknown, ms = 2_000): Promise<{ threw?: unknown; hung?: true }> {
    let result: unknown;
    try {
      result = run();
    } catch (error) {
      return { threw: error };
    }
    if (result === null || result === undefined || typeof (result as { then?: unknown }).then !== 'function') return {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        (result as Promise<unknown>).then(
          () => ({}),
          (error: unknown) => ({ threw: error }),
        ),
        new Promise<{ hung: true }>((resolve) => (timer = setTimeout(() => resolve({ hung: true }), ms))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  it('settles every call within its bound, and a refusal has a typed code', async () => {
    const bus = new WakeupBus();
    const executor = new AsyncExecutor({ wakeup: bus, name: 'fuzzed' });
    const group = new TaskGroup({ uniqueId: 'fuzzed' });
    const smith = new Locksmith({ name: 'fuzzed' });
    const mutex = new Mutex({ name: 'fuzzed' });
    const coordinator = createCoordinator({ agentId: 'fuzzed' });
    await coordinator.start();
    const calls: Record<string, (h: unknown) => unknown> = {
      'Mutex.acquire(options)': (h) => mutex.acquire(h as never),
      'Mutex.runExclusive(fn, options)': (h) => mutex.runExclusive(async () => 1, h as never),
      'AsyncExecutor.run(fn, args)': (h) => executor.run(async () => 1, h as never),
      'AsyncExecutor.cancel(options)': (h) => executor.cancel(h as never),
      'TaskGroup.createTask(fn, options)': (h) => group.createTask(async () => 1, h as never).wait(),
      'TaskGroup.wait(options)': (h) => group.wait(h as never),
      'Locksmith.recognize(lock)': (h) => smith.recognize(h as never),
      'Locksmith.force(lock)': (h) => smith.force(h as never),
      'Locksmith.force(mutex, options)': (h) => smith.force(mutex, h as never),
      'Locksmith.host(fn, lock)': (h) => smith.host(async () => 1, h as never),
      'WakeupBus.wakeup(reason)': (h) => bus.wakeup(h as never),
      'WakeupBus.wait(ms, options)': (h) => bus.wait(1, h as never),
      'Coordinator.getLock(name)': (h) => coordinator.getLock(h as never),
      'DistributedLock.acquire(options)': (h) =>
        coordinator
          .getLock('fuzzed')
          .acquire(h as never)
          .then((handle) => handle?.release()),
      'Coordinator.joinGroup(group, options)': (h) => coordinator.joinGroup('g', h as never).then((m) => m.leave()),
      'createCoordinator(options)': (h) => createCoordinator(h as never),
      'ask(actor, command)': (h) => ask(executor.actor, h as never, { timeoutMs: 500 }),
    };
    const problems: string[] = [];
    for (const [name, call] of Object.entries(calls)) {
      for (const [i, value] of hostileValues().entries()) {
        const result = await outcome(() => call(value));
        if (result.hung) problems.push(`${name} with hostile value ${i} hung`);
        else if (result.threw !== undefined) {
          let code: unknown;
          try {
            code = (result.threw as { code?: unknown }).code;
          } catch {
            code = undefined;
          }
          if (typeof code !== 'string') problems.push(`${name} with hostile value ${i} threw without a code: ${String((result.threw as Error)?.message)}`);
        }
      }
    }
    await group.stop().catch(() => undefined);
    await coordinator.stop();
    bus.complete();
    expect(problems).to.deep.equal([]);
  });
});
