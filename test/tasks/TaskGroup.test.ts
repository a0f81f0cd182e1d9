import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { CancelledError, ManualClock, TaskGroup, TaskGroupError, type Task } from '../../src/index.ts';
import { gate, isSettled, rejection, settle } from '../support/async.ts';
import { logged } from '../support/logs.ts';

/** A task body that waits for its gate or its signal. */
function gated<T>(g: { promise: Promise<T> }) {
  return (signal: AbortSignal): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      g.promise.then(resolve, reject);
    });
}

describe('TaskGroup', () => {
  it('names tasks TaskGroup:<id>:<name>, generating the id and the name when not given', () => {
    const group = new TaskGroup({ uniqueId: 'volumes' });
    expect(group.createTask(async () => 1, { name: 'scrub' }).name).to.equal('TaskGroup:volumes:scrub');
    expect(group.createTask(async () => 1).name).to.match(/^TaskGroup:volumes:[0-9a-f]+$/);
    const a = new TaskGroup();
    const b = new TaskGroup();
    expect(a.uniqueId).to.match(/^[0-9a-f]+$/);
    expect(a.uniqueId).to.not.equal(b.uniqueId);
    expect(String(a)).to.equal(`TaskGroup:${a.uniqueId}`);
  });

  it('starts a body on a microtask: a task cancelled at once never runs, a throwing one is not done at once', async () => {
    const group = new TaskGroup();
    let ran = false;
    const never = group.createTask(async () => {
      ran = true;
    });
    expect(never.cancel('too late')).to.equal(true);
    expect(never.done && never.cancelled).to.equal(true);
    const throwing = group.createTask(
      () => {
        throw new Error('boom');
      },
      { logException: false },
    );
    expect(throwing.done).to.equal(false);
    await settle();
    expect(ran).to.equal(false);
    expect(throwing.done).to.equal(true);
    expect(throwing.error).to.have.property('message', 'boom');
    expect(() => never.result()).to.throw(CancelledError, 'too late');
    expect(never.cancel()).to.equal(false);
  });

  it('tracks tasks (running plus waiting for acknowledgement) and isRunning (running only)', async () => {
    const group = new TaskGroup();
    const g = gate<string>();
    const quick = group.createTask(async () => 'quick');
    const slow = group.createTask(gated(g));
    expect(group.isRunning).to.equal(true);
    await settle();
    expect(quick.done).to.equal(true);
    expect([...group.tasks]).to.have.members([quick, slow]);
    g.open('slow');
    await slow.wait();
    expect(group.isRunning).to.equal(false);
    expect(group.tasks.size).to.equal(2);
    expect(inspect(group)).to.equal(`TaskGroup<${group.uniqueId} waitingAck=2>`);
    for await (const _ of group.asCompleted()) void _;
    expect(group.tasks.size).to.equal(0);
  });

  it('cancel(reason) aborts every running task with a CancelledError carrying the reason', async () => {
    const group = new TaskGroup();
    const tasks = [group.createTask(gated(gate())), group.createTask(gated(gate()))];
    await settle();
    group.cancel('maintenance');
    for (const task of tasks) {
      expect(task.signal.reason).to.be.instanceOf(CancelledError).with.property('message', 'maintenance');
      expect(await rejection(task.wait())).to.equal(task.signal.reason);
      expect(task.cancelled).to.equal(true);
    }
  });

  it('classifies outcomes: an AbortError after abort is a cancellation, a value returned after abort a success', async () => {
    const group = new TaskGroup();
    const timer = group.createTask((signal) => sleep(60_000, undefined, { signal }));
    const stubborn = group.createTask(async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      return 'cleaned up';
    });
    const converted = group.createTask(
      async (signal) => {
        await new Promise((resolve) => signal.addEventListener('abort', resolve));
        throw new Error('cleanup failed');
      },
      { logException: false },
    );
    await settle();
    group.cancel();
    await Promise.allSettled([timer.wait(), stubborn.wait(), converted.wait()]);
    expect(timer.cancelled).to.equal(true);
    expect(stubborn.cancelled).to.equal(false);
    expect(stubborn.result()).to.equal('cleaned up');
    expect(converted.cancelled).to.equal(false);
    expect(converted.error).to.have.property('message', 'cleanup failed');
    expect(timer.actor.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
    expect(stubborn.actor.getSnapshot().value).to.deep.equal({ done: 'completed' });
    expect(converted.actor.getSnapshot().value).to.deep.equal({ done: 'failed' });
  });

  describe('asCompleted()', () => {
    it('yields finished tasks in the order they finished, including tasks created while iterating', async () => {
      const group = new TaskGroup();
      const gates = [gate(), gate(), gate()];
      const tasks = gates.map((g, i) => group.createTask(gated(g), { name: `t${i}` }));
      const seen: string[] = [];
      const consumer = (async () => {
        for await (const task of group.asCompleted()) {
          seen.push(task.name.split(':').pop() as string);
          if (seen.length === 1) group.createTask(async () => 'late', { name: 'late' });
        }
      })();
      gates[2]?.open();
      await settle();
      gates[0]?.open();
      await settle();
      gates[1]?.open();
      await consumer;
      expect(seen).to.deep.equal(['t2', 'late', 't0', 't1']);
      expect(tasks.every((task) => task.done)).to.equal(true);
    });

    it('acknowledges a task only when iteration resumes: after break or a throw it is yielded again', async () => {
      const group = new TaskGroup();
      const task = group.createTask(async () => 'x');
      await settle();
      for await (const t of group.asCompleted()) {
        expect(t).to.equal(task);
        break;
      }
      expect(group.tasks.has(task)).to.equal(true);
      const thrown = await rejection(
        (async () => {
          for await (const _ of group.asCompleted()) throw new Error('consumer failed');
        })(),
      );
      expect(thrown).to.have.property('message', 'consumer failed');
      expect(group.tasks.has(task)).to.equal(true);
      const again: Task<unknown>[] = [];
      for await (const t of group.asCompleted()) again.push(t);
      expect(again).to.deep.equal([task]);
      expect(group.tasks.size).to.equal(0);
    });

    it('applies timeoutMs to each wait, not to the whole iteration, and ends quietly', async () => {
      const clock = new ManualClock();
      const group = new TaskGroup({ clock });
      const delays = [100, 200, 300, 5_000];
      for (const ms of delays) group.createTask(() => new Promise<void>((resolve) => clock.setTimeout(resolve, ms)), { name: `${ms}` });
      const seen: string[] = [];
      let ended = false;
      const consumer = (async () => {
        for await (const task of group.asCompleted({ timeoutMs: 150 })) seen.push(task.name.split(':').pop() as string);
        ended = true;
      })();
      await clock.advance(300);
      expect(seen).to.deep.equal(['100', '200', '300']);
      expect(ended).to.equal(false);
      await clock.advance(149);
      expect(ended).to.equal(false);
      await clock.advance(1);
      await consumer;
      expect(ended).to.equal(true);
      expect(group.isRunning).to.equal(true);
      expect(clock.pendingTimers).to.equal(1); // only the 5 s task's own timer is left
      group.cancel();
    });

    it('yields tasks already waiting for acknowledgement at once, whatever the timeout', async () => {
      const clock = new ManualClock();
      const group = new TaskGroup({ clock });
      group.createTask(async () => 1);
      await settle();
      const iterator = group.asCompleted({ timeoutMs: 0 });
      expect((await iterator.next()).done).to.equal(false);
      expect((await iterator.next()).done).to.equal(true);
    });
  });

  describe('wait()', () => {
    it('collects every failure and cancellation, in finishing order, into one TaskGroupError; each is reported once', async () => {
      const group = new TaskGroup({ uniqueId: 'g' });
      const [g1, g2, g3] = [gate(), gate(), gate()];
      const first = new Error('first');
      const second = new Error('second');
      group.createTask(gated(g1), { logException: false });
      const cancelled = group.createTask(gated(g2));
      group.createTask(gated(g3), { logException: false });
      group.createTask(async () => 'fine');
      await settle();
      g3.fail(first);
      await settle();
      cancelled.cancel('not needed');
      await settle();
      g1.fail(second);
      const error = await rejection(group.wait());
      expect(error).to.be.instanceOf(TaskGroupError).and.instanceOf(AggregateError);
      expect(error).to.have.property('message', 'Error while stopping TaskGroup:g');
      expect(error).to.have.property('code', 'ERR_TASK_GROUP');
      const errors = (error as TaskGroupError).errors;
      expect(errors).to.have.length(3);
      expect(errors[0]).to.equal(first);
      expect(errors[1]).to.be.instanceOf(CancelledError).with.property('message', 'not needed');
      expect(errors[2]).to.equal(second);
      await group.wait();
    });

    it('waits for running tasks and cancels nothing', async () => {
      const group = new TaskGroup();
      const g = gate();
      const task = group.createTask(gated(g));
      const waiting = group.wait();
      expect(await isSettled(waiting)).to.equal(false);
      expect(task.signal.aborted).to.equal(false);
      g.open();
      await waiting;
    });
  });

  describe('stop()', () => {
    it('cancels, waits, drops the cancellations and raises the other failures once; a second stop is quiet', async () => {
      const group = new TaskGroup({ uniqueId: 's' });
      const boom = new Error('cleanup exploded');
      group.createTask((signal) => sleep(60_000, undefined, { signal }));
      group.createTask(
        async (signal) => {
          await new Promise((resolve) => signal.addEventListener('abort', resolve));
          throw boom;
        },
        { logException: false },
      );
      await settle();
      const error = await rejection(group.stop('shutdown'));
      expect(error).to.be.instanceOf(TaskGroupError).with.property('message', 'Error while stopping TaskGroup:s');
      expect((error as TaskGroupError).errors).to.deep.equal([boom]);
      await group.stop();
      await new TaskGroup().stop();
    });

    it('`await using` stops the group when the block ends, and a body error survives a quiet stop', async () => {
      let task: Task<unknown> | undefined;
      const error = await rejection(
        (async () => {
          await using group = new TaskGroup();
          task = group.createTask((signal) => sleep(60_000, undefined, { signal }));
          throw new Error('body failed');
        })(),
      );
      expect(error).to.have.property('message', 'body failed');
      expect(task?.cancelled).to.equal(true);
    });

    it('`await using` with errors in both the block and the stop raises a SuppressedError-like pair', async () => {
      const error = await rejection(
        (async () => {
          await using group = new TaskGroup();
          group.createTask(
            async (signal) => {
              await new Promise((resolve) => signal.addEventListener('abort', resolve));
              throw new Error('stop failed');
            },
            { logException: false },
          );
          await settle();
          throw new Error('body failed');
        })(),
      );
      expect(error).to.have.property('error').that.is.instanceOf(TaskGroupError);
      expect(error).to.have.nested.property('suppressed.message', 'body failed');
    });
  });

  it('logs a failure when it happens (logException), which does not count as acknowledgement', async () => {
    const group = new TaskGroup({ uniqueId: 'log' });
    const quiet = group.createTask(
      async () => {
        throw new Error('quiet');
      },
      { name: 'quiet', logException: false },
    );
    const loud = group.createTask(
      async () => {
        throw new Error('loud');
      },
      { name: 'loud' },
    );
    await Promise.allSettled([quiet.wait(), loud.wait()]);
    expect(logged('error', /^Task TaskGroup:log:loud raised an unhandled exception$/)).to.have.length(1);
    expect(logged('error', /quiet/)).to.have.length(0);
    expect(((await rejection(group.wait())) as TaskGroupError).errors).to.have.length(2);
  });

  it('never lets an unacknowledged failure become an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const group = new TaskGroup();
      group.createTask(
        async () => {
          throw new Error('nobody looks');
        },
        { logException: false },
      );
      group.createTask(() => Promise.reject(new Error('nobody looks either')), { logException: false });
      await sleep(20);
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  describe('bad input', () => {
    it('rejects a non-function task, bad names and bad options with typed errors', () => {
      const group = new TaskGroup();
      expect(() => group.createTask('work' as never))
        .to.throw(/"fn" argument must be a function/)
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => group.createTask(async () => 1, { name: 5 as never }))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => group.createTask(async () => 1, { logException: 'yes' as never }))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => group.createTask(async () => 1, [] as never))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => new TaskGroup({ uniqueId: 7 as never }))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => group.cancel(3 as never))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(group.tasks.size).to.equal(0);
    });

    it('rejects a negative or NaN asCompleted timeout at the call', () => {
      const group = new TaskGroup();
      expect(() => group.asCompleted({ timeoutMs: -1 }))
        .to.throw(/received number -1/)
        .with.property('code', 'ERR_OUT_OF_RANGE');
      expect(() => group.asCompleted({ timeoutMs: Number.NaN }))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
    });

    it('throws InvalidStateError from result() while a task runs', async () => {
      const group = new TaskGroup();
      const g = gate();
      const task = group.createTask(gated(g));
      expect(() => task.result())
        .to.throw(/has not finished yet/)
        .with.property('code', 'ERR_INVALID_STATE');
      g.open();
      await task.wait();
    });
  });
});
