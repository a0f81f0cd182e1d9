/**
 * Every duration works up to Infinity or is refused: Node fires a timer of 2^31 ms or
 * more after 1 ms, so each facility is checked with such a duration, on real time but
 * only for a few tens of milliseconds: long enough to see whether it fired "at once".
 */
import { MessageChannel } from 'node:worker_threads';
import { expect } from 'chai';
import { CancellableSubprocess, createCoordinator, Locksmith, ManualClock, Mutex, runLoop, systemClock, TaskGroup, WakeupBus } from '../src/index.ts';
import { isSettled, rejection, waitUntil } from './support/async.ts';

const LONG = 2 ** 31;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('durations of 2^31 ms and more', () => {
  it('systemClock slices them instead of firing after 1 ms, and never fires Infinity', async () => {
    let fired = 0;
    const long = systemClock.setTimeout(() => fired++, LONG);
    const huge = systemClock.setTimeout(() => fired++, 2 ** 60);
    const never = systemClock.setTimeout(() => fired++, Infinity);
    await sleep(30);
    expect(fired).to.equal(0);
    expect((long as { hasRef(): boolean }).hasRef(), 'a pending long timer keeps the process alive, as a native one').to.equal(true);
    expect((never as { hasRef(): boolean }).hasRef(), 'an infinite one holds no timer').to.equal(false);
    (long as { unref(): unknown }).unref();
    expect((long as { hasRef(): boolean }).hasRef()).to.equal(false);
    for (const timer of [long, huge, never]) systemClock.clearTimeout(timer);
  });

  it('Mutex.acquire({ timeoutMs: 2 ** 31 }) waits for the lock', async () => {
    const mutex = new Mutex();
    const held = await mutex.acquire();
    const waiting = mutex.acquire({ timeoutMs: LONG });
    await sleep(20);
    expect(await isSettled(waiting)).to.equal(false);
    held.release();
    (await waiting).release();
  });

  it('WakeupBus.wait(2 ** 31) waits for a wake-up', async () => {
    const bus = new WakeupBus();
    const waiting = bus.wait(LONG);
    await sleep(20);
    expect(await isSettled(waiting)).to.equal(false);
    bus.wakeup('now');
    expect((await waiting)?.reason).to.equal('now');
  });

  it('a coordinator with heartbeatMs: 2 ** 31 does not beat in a loop; Infinity means no heartbeat, a TTL must be finite', async () => {
    const coordinator = createCoordinator({ url: 'memory://durations', heartbeatMs: LONG });
    await coordinator.start();
    await sleep(50);
    expect(coordinator.actor.getSnapshot().context.beats).to.equal(0);
    await coordinator.stop();
    expect(createCoordinator({ heartbeatMs: Infinity, maxReconnectBackoffMs: Infinity, pollIntervalMs: Infinity }).heartbeatMs).to.equal(Infinity);
    expect(() => createCoordinator({ lockTtlMs: Infinity }))
      .to.throw(RangeError)
      .with.property('code', 'ERR_OUT_OF_RANGE');
  });

  it('a locksmith with answerTimeoutMs: 2 ** 31 waits for the answer instead of compelling at once', async () => {
    const mutex = new Mutex({ name: 'silent' });
    const { port1: owner, port2 } = new MessageChannel(); // an owner that never answers
    const held = await mutex.acquire({ owner });
    const smith = new Locksmith({ name: 'patient' });
    await smith.recognize(mutex);
    const controller = new AbortController();
    const forcing = smith.force(mutex, { owner, answerTimeoutMs: LONG, signal: controller.signal });
    await sleep(30);
    expect(await isSettled(forcing)).to.equal(false);
    expect(mutex.locked).to.equal(true);
    controller.abort(new Error('enough'));
    expect(((await rejection(forcing)) as Error).message).to.equal('enough');
    held.release();
    owner.close();
    port2.close();
  });

  it('a subprocess with terminateTimeoutMs: 2 ** 31 (or Infinity) waits for SIGTERM to work instead of killing at once', async () => {
    for (const terminateTimeoutMs of [LONG, Infinity]) {
      const runner = new CancellableSubprocess({ terminateTimeoutMs });
      const lines: string[] = [];
      const call = runner.call(['sh', '-c', 'trap "" TERM; echo ready; sleep 30'], { onOutput: (line) => lines.push(line) });
      await waitUntil(() => lines.includes('ready'), 5_000, 'the trap');
      const cancelling = runner.cancel();
      await sleep(150);
      expect(await isSettled(call), 'still running after SIGTERM').to.equal(false);
      await runner.cancel({ kill: true });
      await cancelling;
      expect(await call).to.equal(-9);
    }
  });

  it('a restart back-off of 2 ** 31 ms does not restart at once', async () => {
    const group = new TaskGroup();
    let starts = 0;
    group.createTask(
      async () => {
        starts++;
        throw new Error('boom');
      },
      { restart: { backoff: { initialMs: LONG, jitter: 0 } } },
    );
    await sleep(30);
    expect(starts).to.equal(1);
    await group.stop();
  });

  it('runLoop with intervalMs: 2 ** 31 (or Infinity) runs one cycle, then waits for a wake-up', async () => {
    for (const intervalMs of [LONG, Infinity]) {
      const bus = new WakeupBus();
      const stop = new AbortController();
      let cycles = 0;
      const loop = runLoop(() => void cycles++, { bus, intervalMs, signal: stop.signal });
      await sleep(30);
      expect(cycles).to.equal(1);
      bus.wakeup('go');
      await waitUntil(() => cycles === 2, 1_000, 'the woken cycle');
      stop.abort(new Error('stop'));
      await rejection(loop);
    }
  });

  it('ManualClock keeps an Infinity timer pending, and refuses to advance by Infinity', async () => {
    const clock = new ManualClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), Infinity);
    await clock.advance(LONG * 4);
    expect(fired).to.equal(false);
    expect(await clock.next()).to.equal(false);
    expect(() => clock.stall(Infinity)).to.throw(RangeError);
    expect(await rejection(clock.advance(Infinity))).to.have.property('code', 'ERR_OUT_OF_RANGE');
  });
});
