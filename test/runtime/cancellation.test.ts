/**
 * Cancellation is one rule (ARCHITECTURE.md): once a unit of work's own signal has aborted,
 * a rejection with the signal's reason, an `AbortError` or a `CancelledError` ends it
 * `cancelled`, in every facility, log and metric. Each of Node's abortable APIs is given
 * the signal in each facility: none of them may read as a failure.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createActor } from 'xstate';
import {
  AsyncExecutor,
  CancelledError,
  createCoordinator,
  executorLogic,
  Locksmith,
  Mutex,
  ServiceBase,
  synchronized,
  TaskGroup,
  WakeupBus,
} from '../../src/index.ts';
import { isCancellation } from '../../src/runtime/cancellation.ts';
import { enableTelemetry } from '../../src/telemetry/index.ts';
import { rejection, settle, waitUntil } from '../support/async.ts';
import { logLines } from '../support/logs.ts';

/** A local HTTP server that accepts requests and never answers them. */
let server: Server;
let url: string;
before(async () => {
  server = createServer(() => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Each of Node's abortable waits, given the signal: each rejects with an AbortError when it aborts. */
const abortables: Record<string, (signal: AbortSignal) => Promise<unknown>> = {
  'node:timers/promises setTimeout': (signal) => sleep(60_000, undefined, { signal }),
  'events.once': (signal) => once(new EventEmitter(), 'never', { signal }),
  'fetch against a local server': (signal) => fetch(url, { signal }),
  'stream.pipeline': (signal) => pipeline(new Readable({ read() {} }), new Writable({ write: (_chunk, _encoding, callback) => callback() }), { signal }),
  'child_process.execFile': (signal) => promisify(execFile)('sleep', ['30'], { signal }),
};

/** Log lines at warn or error: a cancel must write none. */
const loud = (): string[] => logLines.filter((line) => line.level === 'warn' || line.level === 'error').map((line) => `${line.level} ${line.message}`);

describe('cancellation is one rule', function () {
  this.timeout(10_000);

  describe('isCancellation', () => {
    it("counts the signal's reason, an AbortError and a CancelledError after the abort, and nothing else", () => {
      const controller = new AbortController();
      const abortError = Object.assign(new Error('aborted'), { name: 'AbortError' });
      expect(isCancellation(abortError, controller.signal), 'an AbortError before the abort is a failure').to.equal(false);
      expect(isCancellation(new CancelledError(), controller.signal)).to.equal(true);
      controller.abort('stop');
      expect(isCancellation('stop', controller.signal)).to.equal(true);
      expect(isCancellation(abortError, controller.signal)).to.equal(true);
      expect(isCancellation(new Error('disk full'), controller.signal), 'anything else after the abort is still a failure').to.equal(false);
      expect(isCancellation('other', controller.signal)).to.equal(false);
    });

    it('never throws on a hostile value: a revoked proxy or throwing traps are failures', () => {
      const controller = new AbortController();
      controller.abort();
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      const trapping = new Proxy(
        {},
        {
          getPrototypeOf: () => {
            throw new Error('trap');
          },
          get: () => {
            throw new Error('trap');
          },
        },
      );
      expect(isCancellation(proxy, controller.signal)).to.equal(false);
      expect(isCancellation(trapping, controller.signal)).to.equal(false);
    });
  });

  for (const [api, wait] of Object.entries(abortables)) {
    describe(api, () => {
      it('AsyncExecutor: a cancelled action ends cancelled, logged below warning', async () => {
        const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'ex' });
        const done: { outcome: string }[] = [];
        executor.actor.on('statesmith.executor.done', (event) => done.push(event));
        // The facade's run(fn, args) is Patroni's (no signal); an in-process command may pass fn(signal).
        executor.actor.send({ type: 'statesmith.executor.run', fn: (signal: AbortSignal) => wait(signal) });
        await waitUntil(() => executor.actor.getSnapshot().matches('running'), 2_000, 'the action to run');
        await executor.cancel();
        expect(done.map((d) => d.outcome)).to.deep.equal(['cancelled']);
        expect(loud()).to.deep.equal([]);
      });

      it('executorLogic: the done reply says cancelled', async () => {
        const actor = createActor(executorLogic, { input: { name: 'logic', actions: { wait: (signal: AbortSignal) => wait(signal) } } }).start();
        const done = new Promise<{ outcome: string }>((resolve) => actor.on('statesmith.executor.done', resolve));
        actor.send({ type: 'statesmith.executor.run', action: 'wait' });
        await waitUntil(() => actor.getSnapshot().matches('running'), 2_000, 'the action to run');
        actor.send({ type: 'statesmith.executor.cancel' });
        expect((await done).outcome).to.equal('cancelled');
        actor.stop();
      });

      it('TaskGroup: a cancelled task is cancelled, not failed', async () => {
        const group = new TaskGroup({ uniqueId: 'c' });
        const task = group.createTask((signal) => wait(signal), { name: 'w' });
        await settle();
        task.cancel('operator');
        await task.wait().catch(() => undefined);
        expect(task.cancelled).to.equal(true);
        expect(task.error, 'a cancelled task has no error').to.equal(undefined);
        expect(await rejection(task.wait())).to.be.instanceOf(CancelledError);
        await group.stop();
        expect(loud()).to.deep.equal([]);
      });

      it('ServiceBase: stopping a service whose main and subtask wait on it reports no failure', async () => {
        class Waiter extends ServiceBase {
          protected override async main(signal: AbortSignal): Promise<void> {
            this.createTask((taskSignal) => wait(taskSignal), { name: 'sub' });
            await wait(signal);
          }
        }
        const service = new Waiter({ uniqueId: 'w' }).start();
        await settle();
        await service.stop();
        expect(service.isRunning).to.equal(false);
        expect(loud()).to.deep.equal([]);
      });

      it("Locksmith.host: the caller's abort ends the hosted task cancelled, rejecting with the signal's reason", async () => {
        const smith = new Locksmith({ name: 'smith' });
        const mutex = new Mutex({ name: 'm' });
        await smith.recognize(mutex);
        const hosted: { outcome: string }[] = [];
        smith.actor.on('statesmith.locksmith.hosted', (event) => hosted.push(event));
        const controller = new AbortController();
        let started = false;
        const run = smith.host(
          (signal) => {
            started = true;
            return wait(signal);
          },
          mutex,
          { signal: controller.signal },
        );
        await waitUntil(() => started, 2_000, 'the hosted task to start');
        const reason = new Error('operator gave up');
        controller.abort(reason);
        expect(await rejection(run)).to.equal(reason);
        expect(hosted.map((h) => h.outcome)).to.deep.equal(['cancelled']);
        expect(mutex.locked).to.equal(false);
      });

      it('synchronized: the AbortError of the guarded work passes through, and the lock is released', async () => {
        const coordinator = createCoordinator({ agentId: 'sync' });
        await coordinator.start();
        try {
          const controller = new AbortController();
          const guarded = synchronized('vol-{0}', { coordinator })(async (_id: number, signal: AbortSignal) => wait(signal));
          const call = guarded(7, controller.signal);
          await waitUntil(
            async () =>
              await coordinator
                .getLock('vol-7')
                .acquire({ blocking: false })
                .then((h) => (h === null ? true : (void h.release(), false))),
            2_000,
            'the lock to be held',
          );
          controller.abort();
          const error = (await rejection(call)) as Error;
          expect(error.name).to.equal('AbortError');
          const again = await coordinator.getLock('vol-7').acquire({ blocking: false });
          expect(again, 'released').to.not.equal(null);
          await again?.release();
        } finally {
          await coordinator.stop();
        }
      });
    });
  }

  it("synchronized: the caller's abort during the lock wait rejects with its reason, not LockAcquireFailed", async () => {
    const coordinator = createCoordinator({ agentId: 'wait' });
    await coordinator.start();
    try {
      const held = await coordinator.getLock('busy').acquire();
      const controller = new AbortController();
      const call = synchronized('busy', { coordinator, signal: controller.signal })(async () => 'ran')();
      await settle();
      controller.abort(new CancelledError('shutting down'));
      const error = (await rejection(call)) as Error;
      expect(error.name).to.equal('CancelledError');
      await held?.release();
    } finally {
      await coordinator.stop();
    }
  });

  it('an error other than a cancellation, thrown after the abort, is still a failure', async () => {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'other' });
    const done: { outcome: string }[] = [];
    executor.actor.on('statesmith.executor.done', (event) => done.push(event));
    executor.actor.send({
      type: 'statesmith.executor.run',
      fn: async (signal: AbortSignal) => {
        await once(signal, 'abort');
        throw new Error('cleanup failed');
      },
    });
    await waitUntil(() => executor.actor.getSnapshot().matches('running'), 2_000, 'the action to run');
    await executor.cancel();
    expect(done.map((d) => d.outcome)).to.deep.equal(['failed']);
  });

  it('the telemetry outcome label of a cancelled executor task is cancelled', async () => {
    const telemetry = await enableTelemetry();
    try {
      const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'tel' });
      executor.actor.send({ type: 'statesmith.executor.run', fn: (signal: AbortSignal) => sleep(60_000, undefined, { signal }) });
      await waitUntil(() => executor.actor.getSnapshot().matches('running'), 2_000, 'the action to run');
      await executor.cancel();
      const text = await telemetry.metrics();
      expect(text).to.match(/statesmith_executor_task_duration_seconds_count\{executor="tel",outcome="cancelled"\} 1/);
      expect(text).to.not.match(/executor="tel",outcome="failed"/);
    } finally {
      await telemetry.disable();
    }
  });
});
