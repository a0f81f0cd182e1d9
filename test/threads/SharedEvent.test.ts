import { expect } from 'chai';
import { SharedEvent } from '../../src/index.ts';
import { rejection } from '../support/async.ts';
import { nextMessage, tsWorker } from '../support/workers.ts';
import { notifyWhenAsleep } from './fixtures/lateNotify.ts';

const probe = new URL('./fixtures/probe.worker.ts', import.meta.url);

describe('SharedEvent', () => {
  it('is woken by a set() in a worker while the main event loop keeps turning', async () => {
    const event = SharedEvent.create();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    try {
      const worker = tsWorker(probe, { op: 'setLater', buffer: event.buffer, index: event.index, sleepMs: 150 }).start();
      const started = performance.now();
      expect(await event.wait({ timeoutMs: 10_000, pollIntervalMs: 60_000 })).to.equal(true);
      expect(performance.now() - started).to.be.below(9_000);
      expect(ticks).to.be.above(5);
      await worker.join();
    } finally {
      clearInterval(ticker);
    }
  });

  it('resolves true when a set() woke the wait, even if the flag was cleared before it looked (as Python)', async () => {
    const event = SharedEvent.create();
    const waiting = event.wait({ timeoutMs: 10_000 });
    // set() then clear() before the wait's continuation can run: only the wake-up tells.
    event.set();
    event.clear();
    expect(await waiting).to.equal(true);
    expect(event.isSet).to.equal(false);
  });

  it('is not fooled by a late notify: a wake-up that finds the flag unchanged waits on', async () => {
    // A set() whose notify comes late: the setter stored the flag and was preempted; the
    // waiter saw the flag, cleared it and waited again; now the notify arrives.
    const event = SharedEvent.create();
    event.set();
    event.clear();
    const waiting = event.wait({ timeoutMs: 100, pollIntervalMs: 60_000 });
    expect(Atomics.notify(new Int32Array(event.buffer), event.index)).to.equal(1);
    expect(await waiting).to.equal(false);
    expect(event.isSet).to.equal(false);
  });

  it('keeps a worker in waitSync() asleep through a late notify, and wakes it for a set() even if cleared at once', async () => {
    const event = SharedEvent.create();
    const worker = tsWorker(probe, { op: 'waitSync', buffer: event.buffer, timeoutMs: 20_000 }).start();
    let answered = false;
    const answer = nextMessage(worker, 20_000).then((value) => {
      answered = true;
      return value;
    });
    const cells = new Int32Array(event.buffer);
    // The first notify is the late one; finding the worker asleep again proves it waited on.
    await notifyWhenAsleep(cells, event.index);
    await notifyWhenAsleep(cells, event.index);
    expect(answered).to.equal(false);
    // The worker has read the cell (it was asleep on it), so this set() counts even though
    // the flag is clear again before it looks, as Python's Event.wait.
    event.set();
    event.clear();
    expect(await answer).to.equal(true);
    await worker.join();
  });

  it('answers a worker blocked in waitSync() when the main thread sets it, and times waitSync out', async () => {
    const event = SharedEvent.create();
    const timedOut = tsWorker(probe, { op: 'waitSync', buffer: event.buffer, timeoutMs: 20 }).start();
    expect(await nextMessage(timedOut)).to.equal(false);
    await timedOut.join();

    const blocked = tsWorker(probe, { op: 'waitSync', buffer: event.buffer, timeoutMs: 10_000 }).start();
    const answer = nextMessage(blocked);
    await new Promise((resolve) => setTimeout(resolve, 50));
    event.set();
    expect(await answer).to.equal(true);
    await blocked.join();
  });

  it('returns true at once when already set, and set/clear toggle isSet', async () => {
    const event = SharedEvent.create();
    expect(event.isSet).to.equal(false);
    event.set();
    event.set();
    expect(event.isSet).to.equal(true);
    expect(await event.wait({ timeoutMs: 0 })).to.equal(true);
    event.clear();
    expect(event.isSet).to.equal(false);
  });

  it('treats timeoutMs 0 as "look once", not as Python\'s "wait forever"', async () => {
    const event = SharedEvent.create();
    const started = performance.now();
    expect(await event.wait({ timeoutMs: 0 })).to.equal(false);
    expect(performance.now() - started).to.be.below(1_000);
  });

  it('resolves false after timeoutMs, polling in between', async () => {
    const event = SharedEvent.create();
    expect(await event.wait({ timeoutMs: 40, pollIntervalMs: 10 })).to.equal(false);
  });

  it('rejects with signal.reason when aborted while waiting, and at once when already aborted', async () => {
    const event = SharedEvent.create();
    const controller = new AbortController();
    const waiting = event.wait({ signal: controller.signal });
    const reason = new Error('stop waiting');
    controller.abort(reason);
    expect(await rejection(waiting)).to.equal(reason);
    expect(await rejection(event.wait({ signal: AbortSignal.abort('already') }))).to.equal('already');
    event.set();
    expect(await rejection(event.wait({ signal: AbortSignal.abort('still') }))).to.equal('still');
  });

  it('refuses the blocking waitSync() on the main thread', () => {
    expect(() => SharedEvent.create().waitSync(0))
      .to.throw(/freeze the main event loop/)
      .with.property('code', 'ERR_INVALID_STATE');
  });

  describe('bad input', () => {
    it('rejects bad buffers, indexes and cells with typed errors', () => {
      expect(() => SharedEvent.from({} as SharedArrayBuffer))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => SharedEvent.from(new SharedArrayBuffer(0)))
        .to.throw()
        .with.property('code', 'ERR_OUT_OF_RANGE');
      expect(() => SharedEvent.from(new SharedArrayBuffer(4), 1))
        .to.throw()
        .with.property('code', 'ERR_OUT_OF_RANGE');
    });

    it("accepts any cell value: it counts the flag's changes, even clear and odd set, wrapping at 32 bits", () => {
      const cells = new Int32Array(new SharedArrayBuffer(4));
      const event = SharedEvent.from(cells.buffer as SharedArrayBuffer);
      cells[0] = 2;
      expect(event.isSet).to.equal(false);
      cells[0] = -1;
      expect(event.isSet).to.equal(true);
      cells[0] = 2 ** 31 - 1;
      expect(event.isSet).to.equal(true);
      event.clear();
      expect(cells[0]).to.equal(-(2 ** 31));
      expect(event.isSet).to.equal(false);
      event.clear();
      expect(cells[0]).to.equal(-(2 ** 31));
      event.set();
      event.set();
      expect(cells[0]).to.equal(-(2 ** 31) + 1);
      expect(event.isSet).to.equal(true);
    });

    it('rejects negative timeouts and poll intervals with typed errors', async () => {
      const event = SharedEvent.create();
      expect(await rejection(event.wait({ timeoutMs: -1 }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
      expect(await rejection(event.wait({ pollIntervalMs: -1 }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
      expect(await rejection(event.wait({ timeoutMs: Number.NaN }))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(await rejection(event.wait('soon' as never))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
      expect(() => event.waitSync(-1))
        .to.throw()
        .with.property('code', 'ERR_OUT_OF_RANGE');
    });
  });
});
