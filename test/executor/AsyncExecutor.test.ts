import { expect } from 'chai';
import { AsyncExecutor, CancellableSubprocess, CancelledError, WakeupBus, type Wakeup } from '../../src/index.ts';
import { gate, isSettled, settle } from '../support/async.ts';
import { logged } from '../support/logs.ts';

function setup(name = 'ha') {
  const bus = new WakeupBus();
  const wakeups: Wakeup[] = [];
  bus.wakeups$.subscribe((w) => wakeups.push(w));
  const executor = new AsyncExecutor({ wakeup: bus, name });
  return { bus, wakeups, executor };
}

describe('AsyncExecutor', () => {
  describe('constructor', () => {
    it('rejects a wakeup that is neither a bus nor a function with a typed error', () => {
      expect(() => new AsyncExecutor({ wakeup: 42 as never }))
        .to.throw(TypeError, /options\.wakeup.*WakeupBus or a function.*number 42/)
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
    });

    it('starts idle with a free slot', () => {
      const { executor } = setup();
      expect(executor.busy).to.equal(false);
      expect(executor.scheduledAction).to.equal(null);
      expect(executor.actor.getSnapshot().value).to.equal('idle');
    });
  });

  describe('schedule()', () => {
    it('takes a free slot and returns null', () => {
      const { executor } = setup();
      expect(executor.schedule('restart')).to.equal(null);
      expect(executor.busy).to.equal(true);
      expect(executor.scheduledAction).to.equal('restart');
      expect(executor.actor.getSnapshot().value).to.deep.equal({ scheduled: 'waiting' }); // no runner yet
      expect(executor.actor.getSnapshot().matches('scheduled')).to.equal(true);
    });

    it('returns the occupant and changes nothing when the slot is taken', () => {
      const { executor } = setup();
      executor.schedule('restart');
      const generation = executor.actor.getSnapshot().context.generation;
      expect(executor.schedule('promote')).to.equal('restart');
      expect(executor.scheduledAction).to.equal('restart');
      expect(executor.actor.getSnapshot().context.generation).to.equal(generation);
    });

    it('rejects an empty or non-string action with a typed error', () => {
      const { executor } = setup();
      expect(() => executor.schedule(''))
        .to.throw(TypeError)
        .with.property('code', 'ERR_INVALID_ARG_VALUE');
      expect(() => executor.schedule(7 as never)).to.throw(/must be a non-empty string; received number 7/);
      expect(executor.busy).to.equal(false);
    });
  });

  describe('resetScheduledAction()', () => {
    it('gives up a scheduled action that has not started, and its queued task never runs', async () => {
      const { executor } = setup();
      let ran = false;
      await executor.withLock(async () => {
        executor.schedule('bootstrap');
        executor.runAsync(async () => {
          ran = true;
          return true;
        });
        executor.resetScheduledAction();
        expect(executor.busy).to.equal(false);
      });
      await settle();
      expect(ran).to.equal(false);
      expect(executor.actor.getSnapshot().context.lastOutcome).to.equal('cancelled');
    });

    it('refuses to clear the slot of a started task with an InvalidStateError', async () => {
      const { executor } = setup();
      const g = gate<boolean>();
      const done = executor.run(() => g.promise);
      await settle();
      expect(() => executor.resetScheduledAction())
        .to.throw(/has already started; use cancel/)
        .with.property('code', 'ERR_INVALID_STATE');
      g.open(true);
      await done;
    });
  });

  describe('run()', () => {
    it('resolves the result, frees the slot and walks scheduled → running → done → idle', async () => {
      const { executor } = setup();
      const states: string[] = [];
      // The lifecycle is the top-level state; `scheduled` has `waiting` and `starting` (the runner came) inside.
      executor.actor.subscribe((s) => states.push(typeof s.value === 'string' ? s.value : `${Object.keys(s.value)[0]}.${Object.values(s.value)[0]}`));
      executor.schedule('restart');
      expect(await executor.run(async (a: number, b: number) => a + b, [2, 3])).to.equal(5);
      expect(executor.busy).to.equal(false);
      expect(states).to.deep.equal(['scheduled.waiting', 'scheduled.starting', 'running', 'done', 'idle']);
      expect(executor.actor.getSnapshot().context).to.include({ lastAction: 'restart', lastOutcome: 'completed' });
    });

    it('takes a free slot under the function name', async () => {
      const { executor } = setup();
      let seen: string | null = null;
      await executor.run(async function checkpoint() {
        seen = executor.scheduledAction;
      });
      expect(seen).to.equal('checkpoint');
    });

    it('catches an error, logs it with the action name and resolves undefined', async () => {
      const { executor } = setup();
      executor.schedule('promote');
      const result = await executor.run(async () => {
        throw new Error('pg_ctl failed');
      });
      expect(result).to.equal(undefined);
      const lines = logged('error', /Exception during execution of long running task promote/);
      expect(lines).to.have.length(1);
      expect((lines[0]?.fields?.['error'] as Error).message).to.equal('pg_ctl failed');
      expect(executor.actor.getSnapshot().context).to.include({ lastOutcome: 'failed', lastError: 'Error: pg_ctl failed' });
      expect(executor.busy).to.equal(false);
    });

    it('runs a synchronous function and catches its synchronous throw', async () => {
      const { executor } = setup();
      expect(await executor.run(() => 'sync')).to.equal('sync');
      expect(
        await executor.run(() => {
          throw new Error('boom');
        }),
      ).to.equal(undefined);
    });

    it('rejects a non-function and non-array args with typed errors, leaving the slot free', async () => {
      const { executor } = setup();
      const error = await executor.run('nope' as never).catch((e: unknown) => e);
      expect(error).to.be.instanceOf(TypeError).with.property('code', 'ERR_INVALID_ARG_TYPE');
      const badArgs = await executor.run(async () => 1, 'x' as never).catch((e: unknown) => e);
      expect(badArgs).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(executor.busy).to.equal(false);
    });

    it('refuses a second runner for a task that already has one with a BusyError', async () => {
      const { executor } = setup();
      const g = gate<boolean>();
      const first = executor.run(() => g.promise);
      const second = await executor.run(async () => true).catch((e: unknown) => e);
      expect(second).to.have.property('code', 'ERR_BUSY');
      g.open(true);
      expect(await first).to.equal(true);
    });
  });

  describe('the wake-up rule', () => {
    const cases: Array<[string, () => unknown, boolean]> = [
      ['true', () => true, true],
      ['false', () => false, true],
      ['0', () => 0, true],
      ['null', () => null, true],
      ['an object', () => ({ ok: 1 }), true],
      ['undefined', () => undefined, false],
      ['a throw', () => Promise.reject(new Error('x')), true],
    ];
    for (const [what, fn, wakes] of cases) {
      it(`${wakes ? 'wakes' : 'does not wake'} the loop when the task returns ${what}`, async () => {
        const { executor, wakeups, bus } = setup();
        await executor.run(fn);
        expect(wakeups.length).to.equal(wakes ? 1 : 0);
        expect(bus.pending).to.equal(wakes);
      });
    }

    it('wakes the loop when a task is cancelled before it started', async () => {
      const { executor, wakeups } = setup();
      let ran = false;
      await executor.withLock(async () => {
        executor.tryRunAsync('restart', async () => {
          ran = true;
        });
        await executor.cancel();
      });
      await settle();
      expect(ran).to.equal(false);
      expect(wakeups.map((w) => w.reason)).to.deep.equal(['restart cancelled']);
    });

    it('calls a plain wake-up function, and logs (not throws) when it throws', async () => {
      let calls = 0;
      const executor = new AsyncExecutor({
        wakeup: () => {
          calls++;
          throw new Error('listener broke');
        },
      });
      expect(await executor.run(async () => true)).to.equal(true);
      expect(calls).to.equal(1);
      expect(logged('error', /wake-up function threw/)).to.have.length(1);
    });

    it('cleans up in order: slot freed, critical task reset and lock released before the wake-up', async () => {
      const observed: Array<Record<string, unknown>> = [];
      const executor: AsyncExecutor = new AsyncExecutor({
        name: 'order',
        wakeup: () =>
          observed.push({
            busy: executor.busy,
            criticalCompleted: executor.criticalTask.completed,
            locked: executor.locked,
          }),
      });
      await executor.run(async () => {
        await executor.criticalTask.withLock(() => executor.criticalTask.complete('postmaster'));
        return true;
      });
      expect(observed).to.deep.equal([{ busy: false, criticalCompleted: false, locked: false }]);
    });
  });

  describe('tryRunAsync() and runAsync()', () => {
    it('schedules and starts in one step, and reports the exact message when busy', async () => {
      const { executor, bus } = setup();
      const g = gate<boolean>();
      expect(executor.tryRunAsync('restart', () => g.promise)).to.equal(null);
      expect(executor.tryRunAsync('promote', async () => true)).to.equal('Failed to run promote, restart is already in progress');
      g.open(true);
      const wakeup = await bus.wait(1_000);
      expect(wakeup?.detail).to.deep.equal({ executor: 'ha', action: 'restart', outcome: 'completed' });
      expect(executor.busy).to.equal(false);
    });

    it('does not take the slot when the function is bad', () => {
      const { executor } = setup();
      expect(() => executor.tryRunAsync('restart', null as never)).to.throw(TypeError);
      expect(() => executor.tryRunAsync('', async () => 1)).to.throw(TypeError);
      expect(executor.busy).to.equal(false);
    });

    it('throws synchronously from runAsync for bad input', () => {
      const { executor } = setup();
      expect(() => executor.runAsync(undefined as never))
        .to.throw(TypeError)
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
    });
  });

  describe('the executor lock', () => {
    it('starts a task scheduled during a cycle only after the cycle releases the lock', async () => {
      const { executor } = setup();
      const events: string[] = [];
      const cycleMayEnd = gate();
      const cycle = executor.withLock(async () => {
        events.push('cycle start');
        executor.tryRunAsync('restart', async () => {
          events.push('task start');
          return true;
        });
        await cycleMayEnd.promise;
        events.push('cycle end');
      });
      await settle();
      expect(events).to.deep.equal(['cycle start']);
      cycleMayEnd.open();
      await cycle;
      await settle();
      expect(events).to.deep.equal(['cycle start', 'cycle end', 'task start']);
    });

    it('never lets the slot go free in the middle of a cycle', async () => {
      const { executor } = setup();
      const task = gate<boolean>();
      executor.tryRunAsync('restart', () => task.promise);
      await settle();
      expect(executor.actor.getSnapshot().value).to.equal('running');
      const cycle = executor.withLock(async () => {
        task.open(true); // the task ends while the cycle runs...
        await settle();
        return executor.busy; // ...but its cleanup waits for the cycle
      });
      expect(await cycle).to.equal(true);
      await settle();
      expect(executor.busy).to.equal(false);
    });

    it('is re-entrant for its holder, and run() inside a cycle runs inline', async () => {
      const { executor } = setup();
      const result = await executor.withLock(() =>
        executor.withLock(async () => {
          executor.schedule('restart');
          return executor.run(async () => 'inline');
        }),
      );
      expect(result).to.equal('inline');
      expect(executor.locked).to.equal(false);
    });

    it('rejects cancel() from inside a cycle while a task runs with a DeadlockError, and cancels nothing', async () => {
      const { executor } = setup();
      const task = gate<boolean>();
      const run = executor.run(() => task.promise);
      await settle();
      const error = await executor.withLock(() => executor.cancel()).catch((e: unknown) => e);
      expect(error).to.have.property('code', 'ERR_DEADLOCK');
      expect(executor.actor.getSnapshot().value).to.equal('running');
      task.open(true);
      expect(await run).to.equal(true);
    });
  });

  describe('cancel()', () => {
    it('returns at once when the slot is free', async () => {
      const { executor } = setup();
      expect(await isSettled(executor.cancel())).to.equal(true);
    });

    it('returns promptly for a scheduled task that never started, freeing the slot', async () => {
      const { executor } = setup();
      executor.schedule('restart');
      await executor.cancel();
      expect(executor.busy).to.equal(false);
      expect(executor.actor.getSnapshot().context.lastOutcome).to.equal('cancelled');
      expect(logged('info', /Cancelling long running task restart/)).to.have.length(1);
    });

    it('waits for a running task to clean up before it resolves', async () => {
      const { executor } = setup();
      const task = gate<boolean>();
      const run = executor.run(() => task.promise);
      await settle();
      const cancel = executor.cancel();
      expect(await isSettled(cancel)).to.equal(false);
      expect(executor.actor.getSnapshot().value).to.equal('cancelling');
      task.open(false);
      await cancel;
      expect(executor.busy).to.equal(false);
      expect(await run).to.equal(false);
      expect(executor.actor.getSnapshot().context.lastOutcome).to.equal('cancelled');
    });

    it('rejects with signal.reason when its wait is aborted, and the cancel still stands', async () => {
      const { executor } = setup();
      const task = gate<boolean>();
      const run = executor.run(() => task.promise);
      await settle();
      const controller = new AbortController();
      const cancel = executor.cancel({ signal: controller.signal });
      await settle();
      controller.abort(new Error('gave up waiting'));
      const error = await cancel.catch((e: unknown) => e);
      expect(error).to.have.property('message', 'gave up waiting');
      expect(executor.actor.getSnapshot().context.cancelRequested).to.equal(true);
      task.open(true);
      await run;
    });

    it('stops the running subprocess of the task', async function () {
      this.timeout(10_000);
      const subprocess = new CancellableSubprocess({ name: 'pg', terminateTimeoutMs: 2_000 });
      const bus = new WakeupBus();
      const executor = new AsyncExecutor({ wakeup: bus, cancellable: subprocess });
      executor.tryRunAsync('restart', () => subprocess.call(['sleep', '30']));
      while (subprocess.pid === null) await new Promise((r) => setTimeout(r, 5));
      await executor.cancel();
      expect(executor.busy).to.equal(false);
      expect(subprocess.isCancelled).to.equal(true);
      const wakeup = await bus.wait(1_000); // the wake-up follows the cleanup that cancel() waited for
      expect(wakeup?.reason).to.equal('restart cancelled');
    });
  });

  describe('races closed on purpose', () => {
    it('never loses a cancel that lands as the task starts (the subprocess flag is not wiped)', async () => {
      const subprocess = new CancellableSubprocess({ name: 'flag' });
      const executor = new AsyncExecutor({ wakeup: () => undefined, cancellable: subprocess });
      subprocess.actor.send({ type: 'statesmith.subprocess.cancel' }); // a stale flag from an earlier cancel
      const observed: boolean[] = [];
      let refused: unknown;
      const taskQueued = gate();
      const cycle = executor.withLock(async () => {
        executor.tryRunAsync('restart', async () => {
          observed.push(subprocess.isCancelled); // reset as the task started
          await settle();
          observed.push(subprocess.isCancelled); // the cancel below landed meanwhile
          refused = await subprocess.call(['true']).catch((e: unknown) => e);
          return true;
        });
        taskQueued.open();
        await settle();
      });
      await taskQueued.promise;
      const cancel = executor.cancel(); // from outside the cycle, queued right behind the task's start
      await cycle;
      await cancel;
      expect(observed).to.deep.equal([false, true]);
      expect(refused).to.be.instanceOf(CancelledError);
    });

    it('never revives a task cancelled before it started when another action is scheduled meanwhile', async () => {
      const { executor, wakeups } = setup();
      const ran: string[] = [];
      const slotsSeen: Array<string | null> = [];
      await executor.withLock(async () => {
        executor.tryRunAsync('restart', async () => {
          ran.push('restart');
          return true;
        });
        await executor.cancel(); // Patroni's reinit --force: cancel, then schedule anew
        expect(
          executor.tryRunAsync('reinitialize', async () => {
            ran.push('reinitialize');
            slotsSeen.push(executor.scheduledAction);
            return true;
          }),
        ).to.equal(null);
      });
      await settle(5);
      expect(ran).to.deep.equal(['reinitialize']);
      expect(slotsSeen).to.deep.equal(['reinitialize']);
      expect(executor.busy).to.equal(false);
      expect(wakeups.map((w) => w.reason)).to.deep.equal(['restart cancelled', 'reinitialize completed']);
    });
  });
});
