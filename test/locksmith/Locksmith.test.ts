import { expect } from 'chai';
import { createActor } from 'xstate';
import { taskMachine } from '../../machines/task.machine.ts';
import {
  CriticalError,
  ForceResult,
  LockForceRequest,
  LockForcedWaiterError,
  LockLostError,
  Locksmith,
  ManualClock,
  Mutex,
  RecognitionResult,
  runAsOwner,
  serveLockForceRequests,
  succeeded,
  TaskGroup,
  TimeoutError,
  type LockLike,
} from '../../src/index.ts';
import { gate, isSettled, rejection, settle } from '../support/async.ts';
import { clearLogs, logged } from '../support/logs.ts';

/** A held Mutex and its handle, owned by `owner`. */
async function held(owner: unknown, name = 'volume-7'): Promise<{ mutex: Mutex; handle: Awaited<ReturnType<Mutex['acquire']>> }> {
  const mutex = new Mutex({ name });
  const handle = await mutex.acquire({ owner });
  return { mutex, handle };
}

async function recognized(smith: Locksmith, lock: object): Promise<void> {
  expect(await smith.recognize(lock)).to.equal(RecognitionResult.SUCCESS);
}

/** A lock of a foreign class: ownerless, released by anyone, as asyncio.Lock. */
class PlainLock implements LockLike {
  locked = false;
  releaseResult: unknown = undefined;
  releaseError: unknown = undefined;
  owner: unknown = undefined;
  async acquire(): Promise<boolean> {
    if (this.locked) throw new Error('PlainLock is held (the tests never contend for it)');
    this.locked = true;
    return true;
  }
  release(): unknown {
    if (this.releaseError !== undefined) throw this.releaseError;
    if (this.releaseResult === false) return false;
    this.locked = false;
    return this.releaseResult;
  }
}

const stops: Array<() => void> = [];
function serve(owner: unknown, handler: Parameters<typeof serveLockForceRequests>[1]): void {
  stops.push(serveLockForceRequests(owner, handler));
}

describe('Locksmith', () => {
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
    Locksmith.handlers.clear();
  });

  describe('recognize()', () => {
    it('checks it is a lock, remembers it, and reports a second recognition', async () => {
      const smith = new Locksmith();
      const mutex = new Mutex();
      expect(await smith.recognize({ acquire() {} })).to.equal(RecognitionResult.FAILED_PRELIM);
      expect(smith.isRecognized(mutex)).to.equal(false);
      expect(await smith.recognize(mutex)).to.equal(RecognitionResult.SUCCESS);
      expect(await smith.recognize(mutex)).to.equal(RecognitionResult.ALREADY_RECOGNIZED);
      expect(smith.isRecognized(mutex)).to.equal(true);
      expect(await new Locksmith().recognize(mutex), 'recognition is per locksmith').to.equal(RecognitionResult.SUCCESS);
    });

    it('asks a lock with acknowledgeLocksmith and, unlike the original (H2), recognizes it when it consents', async () => {
      const smith = new Locksmith({ name: 'smith' });
      const asked: unknown[] = [];
      const consenting = Object.assign(new PlainLock(), { acknowledgeLocksmith: async (s: unknown) => (asked.push(s), true) });
      const refusing = Object.assign(new PlainLock(), { acknowledgeLocksmith: () => false });
      const throwing = Object.assign(new PlainLock(), {
        acknowledgeLocksmith: () => {
          throw new Error('no');
        },
      });
      expect(await smith.recognize(consenting)).to.equal(RecognitionResult.SUCCESS);
      expect(asked).to.deep.equal([smith]);
      expect(smith.isRecognized(consenting)).to.equal(true);
      expect(await smith.recognize(refusing)).to.equal(RecognitionResult.FAILED_ACK);
      expect(await smith.recognize(throwing)).to.equal(RecognitionResult.FAILED_ACK);
      expect(smith.isRecognized(refusing) || smith.isRecognized(throwing)).to.equal(false);
    });

    it('turns a critical error from acknowledgeLocksmith into a CriticalError', async () => {
      const lock = Object.assign(new PlainLock(), {
        acknowledgeLocksmith: () => {
          throw new CriticalError('shutting down');
        },
      });
      const error = (await rejection(new Locksmith().recognize(lock))) as CriticalError;
      expect(error.code).to.equal('ERR_CRITICAL');
      expect((error.cause as Error).message).to.equal('shutting down');
    });
  });

  describe('every ForceResult has its path', () => {
    it('UNFORCEABLE: not recognized, not held, or not a lock; nothing is touched', async () => {
      const smith = new Locksmith();
      const { mutex, handle } = await held('owner');
      const waiter = mutex.acquire({ owner: 'w' });
      expect(await smith.force(mutex)).to.equal(ForceResult.UNFORCEABLE);
      await recognized(smith, mutex);
      handle.release();
      (await waiter).release();
      expect(await smith.force(mutex), 'recognized but free').to.equal(ForceResult.UNFORCEABLE);
      expect(await smith.force({ not: 'a lock' })).to.equal(ForceResult.UNFORCEABLE);
      expect(handle.signal.aborted).to.equal(false);
    });

    it('RELEASED: a lock held with no owner is released by the locksmith at once', async () => {
      const smith = new Locksmith({ name: 'smith' });
      const mutex = new Mutex({ name: 'm' });
      const handle = await mutex.acquire({ owner: undefined });
      await recognized(smith, mutex);
      expect(await smith.force(mutex, { info: 'test' })).to.equal(ForceResult.RELEASED);
      expect(mutex.locked).to.equal(false);
      expect((handle.signal.reason as LockLostError).by).to.equal('smith');

      const plain = new PlainLock();
      await plain.acquire();
      await recognized(smith, plain);
      expect(await smith.force(plain)).to.equal(ForceResult.RELEASED);
      expect(plain.locked).to.equal(false);
    });

    it("RELEASED_WITH_FALSE: the lock's release() returned exactly false", async () => {
      const smith = new Locksmith();
      const plain = new PlainLock();
      await plain.acquire();
      plain.releaseResult = false;
      await recognized(smith, plain);
      expect(await smith.force(plain)).to.equal(ForceResult.RELEASED_WITH_FALSE);
      plain.releaseResult = 0;
      expect(await smith.force(plain), '0 is not false').to.equal(ForceResult.RELEASED);
    });

    it('NO_CURRENT_TASK: release refused, the lock names no owner, and no actor or task is current', async () => {
      const smith = new Locksmith();
      const plain = new PlainLock();
      await plain.acquire();
      plain.releaseError = new Error('not yours');
      await recognized(smith, plain);
      expect(await smith.force(plain)).to.equal(ForceResult.NO_CURRENT_TASK);
      expect(plain.locked).to.equal(true);
    });

    it('OWNER_COMPLETED: the owner task had finished without releasing; the leaked lock is freed', async () => {
      const smith = new Locksmith();
      const mutex = new Mutex({ name: 'leaky' });
      await using group = new TaskGroup({ uniqueId: 'jobs' });
      const task = group.createTask(async () => {
        await mutex.acquire(); // never released: the handle leaks
      });
      await task.wait();
      expect(mutex.owner).to.equal(task);
      await recognized(smith, mutex);
      const result = await smith.force(mutex);
      expect(result).to.equal(ForceResult.OWNER_COMPLETED);
      expect(succeeded(result)).to.equal(false);
      expect(mutex.locked).to.equal(false);
    });

    it('OWNER_COMPLETED: also for a stopped actor', async () => {
      const smith = new Locksmith();
      const actor = createActor(taskMachine, { input: { name: 'a' } }).start();
      actor.stop();
      const { mutex } = await held(actor);
      await recognized(smith, mutex);
      expect(await smith.force(mutex)).to.equal(ForceResult.OWNER_COMPLETED);
    });

    it('ALREADY_BEING_FORCED: a second force of the same lock, by this or another locksmith, while one is in flight', async () => {
      const clock = new ManualClock();
      const smith = new Locksmith({ name: 'first', clock });
      const other = new Locksmith({ name: 'second', clock });
      const { mutex } = await held('silent owner');
      serve('silent owner', () => new Promise(() => undefined)); // never answers
      await recognized(smith, mutex);
      await recognized(other, mutex);
      const first = smith.force(mutex, { answerTimeoutMs: 100 });
      await settle();
      expect(smith.forces.map((f) => f.state)).to.deep.equal(['awaitingAnswer']);
      expect(smith.actor.getSnapshot().value).to.equal('forcing');
      clearLogs();
      expect(await smith.force(mutex)).to.equal(ForceResult.ALREADY_BEING_FORCED);
      expect(await other.force(mutex)).to.equal(ForceResult.ALREADY_BEING_FORCED);
      expect(logged('info', /already being forced by first/)).to.have.length(1);
      await clock.advance(100);
      expect(await first).to.equal(ForceResult.RELEASED);
      expect(smith.actor.getSnapshot().value).to.equal('idle');
    });

    it('ALREADY_BEING_FORCED: the owner throws back a request of another locksmith it is handling', async () => {
      const smith = new Locksmith({ name: 'late' });
      const { mutex, handle } = await held('busy owner');
      const earlier = new LockForceRequest({ requestId: 'x#1', requester: 'early', lock: mutex, lockName: 'volume-7', info: undefined });
      serve('busy owner', () => {
        throw earlier;
      });
      await recognized(smith, mutex);
      expect(await smith.force(mutex)).to.equal(ForceResult.ALREADY_BEING_FORCED);
      expect(handle.signal.aborted).to.equal(false);
    });

    it('SUCCESS: the owner answers; its handle aborts with a LockLostError naming the locksmith and the info', async () => {
      const smith = new Locksmith({ name: 'watchdog' });
      const { mutex, handle } = await held('job');
      const requests: LockForceRequest[] = [];
      serve('job', (request) => (requests.push(request), { answer: 'done with it' }));
      await recognized(smith, mutex);
      clearLogs();
      const result = await smith.force(mutex, { info: { stuckForMs: 60_000 } });
      expect(result).to.equal(ForceResult.SUCCESS);
      expect(succeeded(result)).to.equal(true);
      expect(mutex.locked).to.equal(false);
      const [request] = requests;
      expect(request?.requester).to.equal('watchdog');
      expect(request?.lock).to.equal(mutex);
      expect(request?.info).to.deep.equal({ stuckForMs: 60_000 });
      expect(request?.message).to.equal('request from watchdog to release volume-7');
      const lost = handle.signal.reason as LockLostError;
      expect(lost.code).to.equal('ERR_LOCK_LOST');
      expect(lost.by).to.equal('watchdog');
      expect(lost.info).to.deep.equal({ stuckForMs: 60_000 });
      expect(logged('info', /answered watchdog/)[0]?.fields?.['answer']).to.equal('done with it');
      handle.release(); // a late release by the old holder is harmless (H6)
      expect(mutex.locked).to.equal(false);
    });

    it("SUCCESS: 'release' is an answer without a message", async () => {
      const smith = new Locksmith();
      const { mutex } = await held('job');
      serve('job', () => 'release');
      await recognized(smith, mutex);
      expect(await smith.force(mutex)).to.equal(ForceResult.SUCCESS);
      expect(mutex.locked).to.equal(false);
    });

    it('FAILURE: the owner refuses and keeps the lock', async () => {
      const smith = new Locksmith();
      const { mutex, handle } = await held('stubborn');
      serve('stubborn', () => 'refuse');
      await recognized(smith, mutex);
      const result = await smith.force(mutex, { purgeWaiters: false });
      expect(result).to.equal(ForceResult.FAILURE);
      expect(succeeded(result)).to.equal(false);
      expect(mutex.owner).to.equal('stubborn');
      expect(handle.signal.aborted).to.equal(false);
    });

    it("FAILURE: a subclass may absorb the owner's critical error; by default the force rejects with a CriticalError", async () => {
      const { mutex } = await held('doomed');
      const fatal = new CriticalError('data directory gone');
      serve('doomed', () => {
        throw fatal;
      });
      const smith = new Locksmith();
      await recognized(smith, mutex);
      const error = (await rejection(smith.force(mutex))) as CriticalError;
      expect(error).to.be.instanceOf(CriticalError);
      expect(error.cause).to.equal(fatal);
      expect(mutex.owner, 'a critical error leaves the lock alone').to.equal('doomed');

      class Lenient extends Locksmith {
        protected override taskRaisedCritical(): ForceResult {
          return ForceResult.FAILURE;
        }
      }
      const lenient = new Lenient();
      await recognized(lenient, mutex);
      expect(await lenient.force(mutex)).to.equal(ForceResult.FAILURE);
    });

    it('RELEASED: an owner that does not answer within answerTimeoutMs is compelled', async () => {
      const clock = new ManualClock();
      const smith = new Locksmith({ name: 'watchdog', clock });
      const { mutex, handle } = await held('wedged');
      let asked = 0;
      serve('wedged', () => (asked++, new Promise(() => undefined)));
      await recognized(smith, mutex);
      const force = smith.force(mutex, { info: 'wedged for 60 s', answerTimeoutMs: 500 });
      await clock.advance(499);
      expect(await isSettled(force)).to.equal(false);
      expect(mutex.locked).to.equal(true);
      await clock.advance(1);
      expect(await force).to.equal(ForceResult.RELEASED);
      expect(asked).to.equal(1);
      expect(mutex.locked).to.equal(false);
      expect((handle.signal.reason as LockLostError).message).to.equal('volume-7 was taken away by watchdog: wedged for 60 s');
      expect(clock.pendingTimers).to.equal(0);
    });

    it('RELEASED: an owner that serves no requests, raises, or throws the request back is compelled', async () => {
      const smith = new Locksmith();
      for (const [owner, handler] of [
        ['deaf', undefined],
        [
          'raises',
          () => {
            throw new Error('cannot');
          },
        ],
        [
          'propagates',
          (request: LockForceRequest) => {
            throw request;
          },
        ],
        ['garbage', () => 'maybe' as never],
      ] as const) {
        if (handler) serve(owner, handler);
        const { mutex, handle } = await held(owner);
        await recognized(smith, mutex);
        clearLogs();
        expect(await smith.force(mutex), owner).to.equal(ForceResult.RELEASED);
        expect(handle.signal.aborted, owner).to.equal(true);
        if (owner === 'raises' || owner === 'garbage') expect(logged('error', /raised while answering/), owner).to.have.length(1);
        if (owner === 'propagates') expect(logged('warn', /threw .* force request back/)).to.have.length(1);
      }
    });

    it('never compels a lock that passed to someone else while the owner was being asked', async () => {
      const smith = new Locksmith();
      const { mutex, handle } = await held('slow');
      const answer = gate<'refuse'>();
      serve('slow', () => answer.promise);
      const next = mutex.acquire({ owner: 'next' });
      await recognized(smith, mutex);
      const force = smith.force(mutex, { purgeWaiters: false });
      await settle();
      handle.release(); // the owner lets go on its own; 'next' takes the lock
      const nextHandle = await next;
      answer.open('refuse');
      expect(await force).to.equal(ForceResult.FAILURE);
      expect(nextHandle.signal.aborted).to.equal(false);
      expect(mutex.owner).to.equal('next');
    });
  });

  describe('waiters, handlers, and signals', () => {
    it('a waiter granted the lock by the release keeps it; the purge only drops those still waiting', async () => {
      const smith = new Locksmith();
      const { mutex } = await held(undefined);
      const first = mutex.acquire({ owner: 'first' });
      const second = mutex.acquire({ owner: 'second' });
      await recognized(smith, mutex);
      expect(await smith.force(mutex, { info: 'why' })).to.equal(ForceResult.RELEASED);
      expect(mutex.owner).to.equal('first');
      (await first).release();
      expect(((await rejection(second)) as LockForcedWaiterError).code).to.equal('ERR_LOCK_FORCED');
    });

    it('a waiter that had not been granted the lock when the purge ran is rejected with LockForcedWaiterError', async () => {
      const smith = new Locksmith();
      const { mutex } = await held('refuser');
      serve('refuser', () => 'refuse');
      const waiter = mutex.acquire({ owner: 'w' });
      await recognized(smith, mutex);
      expect(await smith.force(mutex, { info: 'why' })).to.equal(ForceResult.FAILURE);
      const error = (await rejection(waiter)) as LockForcedWaiterError;
      expect(error.code).to.equal('ERR_LOCK_FORCED');
      expect(error.info).to.equal('why');
      expect(mutex.waiting).to.equal(0);
    });

    it('runs the handler registered for the lock class after the owner let go; shadow: false refuses a second handler', async () => {
      class AuditedMutex extends Mutex {}
      const seen: object[] = [];
      const handler = (lock: object) => void seen.push(lock);
      Locksmith.registerHandler(handler)(AuditedMutex);
      expect(() => Locksmith.registerHandler(() => undefined, { shadow: false })(AuditedMutex)).to.throw(TypeError, /shadow is false/);
      expect(Locksmith.registerHandler(handler, { shadow: false })(AuditedMutex), 'the same handler again is fine').to.equal(AuditedMutex);
      const smith = new Locksmith();
      const mutex = new AuditedMutex({ name: 'audited' });
      await mutex.acquire({ owner: 'job' });
      serve('job', () => 'release');
      await recognized(smith, mutex);
      expect(await smith.force(mutex)).to.equal(ForceResult.SUCCESS);
      expect(seen).to.deep.equal([mutex]);
      expect(() => Locksmith.registerHandler(handler)(42 as never)).to.throw(TypeError, /a class/);
    });

    it('rejects with the signal reason when aborted while waiting for the answer, and frees nothing', async () => {
      const smith = new Locksmith();
      const { mutex, handle } = await held('slow');
      serve('slow', () => new Promise(() => undefined));
      await recognized(smith, mutex);
      const controller = new AbortController();
      const force = smith.force(mutex, { signal: controller.signal, answerTimeoutMs: Infinity });
      await settle();
      const run = smith.forces[0];
      controller.abort(new Error('operator gave up'));
      expect(((await rejection(force)) as Error).message).to.equal('operator gave up');
      expect(run?.state).to.equal('aborted');
      expect(handle.signal.aborted).to.equal(false);
      expect(smith.forces).to.have.length(0);
    });

    it('shows each force in its actor, ending in the state named after the result', async () => {
      const smith = new Locksmith();
      const { mutex } = await held('job');
      const answer = gate<'release'>();
      serve('job', () => answer.promise);
      await recognized(smith, mutex);
      const force = smith.force(mutex);
      await settle();
      const [run] = smith.forces;
      const actor = run!.actor;
      expect(actor.getSnapshot().value).to.equal('awaitingAnswer');
      answer.open('release');
      await force;
      expect(actor.getSnapshot().value).to.equal('success');
      expect(actor.getSnapshot().status).to.equal('done');
      expect(actor.getSnapshot().output).to.equal(ForceResult.SUCCESS.value);
    });
  });

  describe('succeeded()', () => {
    it('is exact: OWNER_COMPLETED and ALREADY_BEING_FORCED are not successes, unlike the original (H1)', () => {
      expect(Object.values(ForceResult).filter(succeeded)).to.deep.equal([ForceResult.SUCCESS, ForceResult.RELEASED]);
      expect(Object.values(RecognitionResult).filter(succeeded)).to.deep.equal([RecognitionResult.ALREADY_RECOGNIZED, RecognitionResult.SUCCESS]);
      expect(+ForceResult.OWNER_COMPLETED).to.equal(+RecognitionResult.ALREADY_RECOGNIZED);
      expect(succeeded(3 as never), 'a bare number is not a result').to.equal(false);
      expect(Object.values(ForceResult).map(Number)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
    });
  });

  describe('bad input', () => {
    it('gets typed errors naming the argument', async () => {
      const smith = new Locksmith();
      const mutex = new Mutex();
      const cases: Array<[Promise<unknown>, string, RegExp]> = [
        [smith.force(null as never), 'ERR_INVALID_ARG_TYPE', /"lock".*received null/],
        [smith.recognize(42 as never), 'ERR_INVALID_ARG_TYPE', /"lock".*received number 42/],
        [smith.force(mutex, { answerTimeoutMs: -1 }), 'ERR_OUT_OF_RANGE', /answerTimeoutMs/],
        [smith.force(mutex, { signal: 'no' as never }), 'ERR_INVALID_ARG_TYPE', /AbortSignal/],
        [smith.force(mutex, { purgeWaiters: 'yes' as never }), 'ERR_INVALID_ARG_TYPE', /boolean/],
        [smith.host(async () => 1, {}), 'ERR_INVALID_ARG_TYPE', /"lock" argument must be a lock/],
        [smith.host('task' as never, mutex), 'ERR_INVALID_ARG_TYPE', /"task"/],
        [smith.host(async () => 1, mutex, { forceTimeoutMs: -5 }), 'ERR_OUT_OF_RANGE', /forceTimeoutMs.*received number -5/],
        [smith.host(async () => 1, mutex, { taskTimeoutMs: Number.NaN }), 'ERR_INVALID_ARG_TYPE', /taskTimeoutMs/],
      ];
      for (const [promise, code, message] of cases) {
        const error = (await rejection(promise)) as { code: string; message: string };
        expect(error.code, error.message).to.equal(code);
        expect(error.message).to.match(message);
      }
      expect(() => new Locksmith({ name: '' })).to.throw(TypeError, /non-empty string/);
      expect(() => serveLockForceRequests('x', 'no' as never)).to.throw(TypeError, /"handler"/);
      expect(() => serveLockForceRequests(undefined, () => 'release')).to.throw(TypeError, /"owner"/);
      const stop = serveLockForceRequests('twice', () => 'release');
      expect(() => serveLockForceRequests('twice', () => 'release')).to.throw(TypeError, /not already serving/);
      stop();
      expect(mutex.locked).to.equal(false);
    });
  });

  describe('host()', () => {
    it('forces, takes the lock ahead of other waiters, runs the task holding it, and releases it', async () => {
      const smith = new Locksmith({ name: 'watchdog' });
      const { mutex, handle } = await held('job');
      serve('job', () => 'release');
      const queued = mutex.acquire({ owner: 'queued' });
      await recognized(smith, mutex);
      const seen: unknown[] = [];
      const value = await smith.host(async (signal) => {
        seen.push(String(mutex.owner), signal.aborted, mutex.waiters);
        return 'cleaned';
      }, mutex);
      expect(value).to.equal('cleaned');
      expect(seen).to.deep.equal(['task hosted by watchdog under volume-7', false, ['queued']]);
      expect(handle.signal.aborted).to.equal(true);
      const next = await queued;
      expect(mutex.owner, 'the waiter kept its place and got the lock after the task').to.equal('queued');
      next.release();
    });

    it('never runs the task without the lock: an unforceable lock times out the acquire instead (bounded, unlike the original)', async () => {
      const clock = new ManualClock();
      const smith = new Locksmith({ clock });
      const { mutex, handle } = await held('job');
      let ran = false;
      const hosting = rejection(smith.host(async () => void (ran = true), mutex, { acquireTimeoutMs: 100 }));
      await settle();
      await clock.advance(100);
      const error = (await hosting) as TimeoutError;
      expect(error.code).to.equal('ERR_TIMEOUT');
      expect(error.message).to.equal('locksmith.host: failed to acquire volume-7 within 100 ms (force result: UNFORCEABLE)');
      expect(ran).to.equal(false);
      expect(mutex.waiting, 'the acquire was withdrawn').to.equal(0);
      handle.release();
      expect(mutex.locked, 'nobody holds the lock after its owner lets go').to.equal(false);
    });

    it('a force that times out leaves no pending acquire behind (H4)', async () => {
      const clock = new ManualClock();
      const smith = new Locksmith({ clock });
      const { mutex, handle } = await held('slow');
      serve('slow', () => new Promise(() => undefined));
      await recognized(smith, mutex);
      let ran = false;
      const hosting = rejection(smith.host(async () => void (ran = true), mutex, { forceTimeoutMs: 100, answerTimeoutMs: 1_000 }));
      await settle();
      expect(mutex.waiting).to.equal(1);
      await clock.advance(100);
      const error = (await hosting) as TimeoutError;
      expect(error.message).to.equal('locksmith.host: forcing volume-7 took longer than 100 ms');
      expect(mutex.waiting).to.equal(0);
      handle.release();
      await settle();
      expect(mutex.locked, 'the lock is not held forever by a leaked acquire').to.equal(false);
      expect(ran).to.equal(false);
      expect(clock.pendingTimers).to.equal(0);
    });

    it("if the owner lets go while the force is under way, the force does not release the host's own hold (H5)", async () => {
      const smith = new Locksmith();
      const { mutex, handle } = await held('job');
      const info = gate<string>();
      class SlowInfo extends Locksmith {
        protected override getInfo(): Promise<string> {
          return info.promise;
        }
      }
      const slow = new SlowInfo({ name: 'slow' });
      await recognized(slow, mutex);
      const inside: boolean[] = [];
      const hosting = slow.host(async () => {
        inside.push(mutex.locked && String(mutex.owner).startsWith('task hosted by slow'));
        await settle();
        inside.push(mutex.locked && String(mutex.owner).startsWith('task hosted by slow'));
      }, mutex);
      await settle();
      handle.release(); // the host's queued acquire takes the lock now
      info.open('late info');
      await hosting;
      expect(inside).to.deep.equal([true, true]);
      expect(mutex.locked).to.equal(false);
      void smith;
    });

    it('aborts the task signal at taskTimeoutMs and releases the lock only once the task has settled', async () => {
      const clock = new ManualClock();
      const smith = new Locksmith({ clock });
      const mutex = new Mutex({ name: 'free' });
      const stopped = gate();
      const hosting = rejection(
        smith.host(
          (signal) =>
            new Promise((_, reject) => {
              signal.addEventListener('abort', () => stopped.promise.then(() => reject(signal.reason)));
            }),
          mutex,
          { taskTimeoutMs: 1_000 },
        ),
      );
      await settle();
      await clock.advance(1_000);
      expect(mutex.locked, 'still held while the task winds down').to.equal(true);
      stopped.open();
      const error = (await hosting) as TimeoutError;
      expect(error.message).to.equal('locksmith.host: the task under free ran longer than 1000 ms');
      expect(mutex.locked).to.equal(false);
    });

    it("releases the lock when the task fails and passes the task's error on", async () => {
      const smith = new Locksmith();
      const mutex = new Mutex();
      const error = await rejection(smith.host(async () => Promise.reject(new Error('cleanup failed')), mutex));
      expect((error as Error).message).to.equal('cleanup failed');
      expect(mutex.locked).to.equal(false);
    });

    it('an aborted host withdraws everything and rejects with the reason', async () => {
      const smith = new Locksmith();
      const { mutex, handle } = await held('job');
      serve('job', () => new Promise(() => undefined));
      await recognized(smith, mutex);
      const controller = new AbortController();
      const hosting = smith.host(async () => 'never', mutex, { signal: controller.signal, forceTimeoutMs: Infinity });
      await settle();
      controller.abort(new Error('stop'));
      expect(((await rejection(hosting)) as Error).message).to.equal('stop');
      expect(mutex.waiting).to.equal(0);
      expect(mutex.owner).to.equal('job');
      expect(handle.signal.aborted).to.equal(false);
    });

    it("the hosted task's signal aborts if its lock is forced from it in turn", async () => {
      const smith = new Locksmith({ name: 'first' });
      const other = new Locksmith({ name: 'second' });
      const mutex = new Mutex({ name: 'm' });
      await recognized(other, mutex);
      const reasons: unknown[] = [];
      await smith.host(async (signal) => {
        expect(await other.force(mutex)).to.equal(ForceResult.RELEASED); // the hosted task serves no requests
        reasons.push(signal.reason);
      }, mutex);
      expect((reasons[0] as LockLostError).by).to.equal('second');
    });
  });

  it('a force request owner is also found through runAsOwner when the lock names none', async () => {
    const smith = new Locksmith();
    const plain = new PlainLock();
    await plain.acquire();
    plain.releaseError = new Error('owner only');
    serve('me', () => 'refuse');
    await recognized(smith, plain);
    expect(await runAsOwner('me', () => smith.force(plain))).to.equal(ForceResult.FAILURE);
  });
});
