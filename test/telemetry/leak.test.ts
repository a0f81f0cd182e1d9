/**
 * Telemetry must not keep an actor reachable once it has ended: a long-running agent makes
 * a ping actor per heartbeat and a grant per lock taken, and each would stay forever.
 */
import { expect } from 'chai';
import v8 from 'node:v8';
import vm from 'node:vm';
import { assign, createActor, setup } from 'xstate';
import { AsyncExecutor, createCoordinator, executorLogic, WakeupBus } from '../../src/index.ts';
import { enableTelemetry } from '../../src/telemetry/index.ts';
import { rejection } from '../support/async.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
}

/** 50 executors that ran and stopped, and 200 grants of a coordinator with the children it had meanwhile: weak refs to them. */
async function executorsAndGrants(): Promise<WeakRef<object>[]> {
  const refs: WeakRef<object>[] = [];
  for (let i = 0; i < 50; i++) {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: `leak-${i}` });
    await executor.run(async () => i);
    refs.push(new WeakRef(executor.actor));
    executor.actor.stop();
  }
  const coordinator = createCoordinator({ agentId: 'leak' });
  await coordinator.start();
  for (let i = 0; i < 200; i++) {
    const handle = await coordinator.getLock(`l-${i % 5}`).acquire();
    // A grant is kept in the coordinator actor's context while it is held, and must go with its release;
    // so must every child but the actor's one command runner.
    if (handle !== null) refs.push(new WeakRef(handle));
    for (const [id, child] of Object.entries(coordinator.actor.getSnapshot().children))
      if (child !== undefined && id !== 'backend') refs.push(new WeakRef(child));
    await handle?.release();
  }
  await coordinator.stop();
  return refs;
}

function logicActors(): WeakRef<object>[] {
  const refs: WeakRef<object>[] = [];
  for (let i = 0; i < 20; i++) {
    const actor = createActor(executorLogic, { input: {} }).start();
    refs.push(new WeakRef(actor));
    actor.stop();
  }
  return refs;
}

describe('telemetry and ended actors', function () {
  this.timeout(20_000);

  it('lets ended actors be collected while telemetry is on', async () => {
    const telemetry = await enableTelemetry();
    try {
      // Made in a function of their own, so no frame of the test keeps the last one.
      const refs = await executorsAndGrants();
      await collect();
      const alive = refs.filter((ref) => ref.deref() !== undefined).length;
      expect(alive, 'actors kept reachable after they ended').to.equal(0);
      expect(await telemetry.metrics()).to.match(/statesmith_actors/);
    } finally {
      await telemetry.disable();
    }
  });

  it('counts actors made from the logic exports too, and forgets them when they stop', async () => {
    const telemetry = await enableTelemetry();
    try {
      const refs = logicActors();
      await collect();
      expect(refs.filter((ref) => ref.deref() !== undefined).length).to.equal(0);
    } finally {
      await telemetry.disable();
    }
  });
});

describe('telemetry counts actors made from the logic exports', function () {
  this.timeout(20_000);

  it('an executorLogic actor made with createActor, spawned, and invoked each shows in /metrics, and its transitions count', async () => {
    const create = createActor;
    const telemetry = await enableTelemetry();
    // Other tests' executors may still run in this process: count ours as the change.
    const idle = async (): Promise<number> => Number(/statesmith_actors\{kind="executor",state="idle"\} (\d+)/.exec(await telemetry.metrics())?.[1] ?? 0);
    const transitions = async (from: string, to: string): Promise<number> =>
      Number(new RegExp(`statesmith_actor_transitions_total\\{kind="executor",from="${from}",to="${to}"\\} (\\d+)`).exec(await telemetry.metrics())?.[1] ?? 0);
    try {
      const idleBefore = await idle();
      const scheduledBefore = await transitions('idle', 'scheduled.starting');
      const direct = create(executorLogic, { input: { name: 'direct', actions: { go: async () => 1 } } }).start();
      const parent = setup({ actors: { executor: executorLogic } }).createMachine({
        invoke: { id: 'invoked', src: 'executor', input: { name: 'invoked' } },
        context: {},
        entry: assign({ spawned: ({ spawn }) => spawn('executor', { id: 'spawned', input: { name: 'spawned' } }) }),
      });
      const app = create(parent).start();
      // Three more executors idle: the direct one, the invoked one, the spawned one.
      expect((await idle()) - idleBefore).to.equal(3);
      direct.send({ type: 'statesmith.executor.run', action: 'go' });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect((await transitions('idle', 'scheduled.starting')) - scheduledBefore).to.equal(1);
      expect(await transitions('done', 'idle')).to.be.at.least(1);
      app.stop();
      direct.stop();
      expect(await idle(), 'the three leave the gauge when they stop').to.equal(idleBefore);
    } finally {
      await telemetry.disable();
    }
  });
});

describe('telemetry options for series and process metrics', function () {
  this.timeout(20_000);

  it('bounds the executor label: 50 executors make at most 20 names and other, unless executorNamesInLabels', async () => {
    for (const names of [false, true]) {
      const telemetry = await enableTelemetry({ executorNamesInLabels: names });
      try {
        for (let i = 0; i < 50; i++) {
          const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: `volume-${i}` });
          await executor.run(async () => i);
          executor.actor.stop();
        }
        const labels = new Set(
          [...(await telemetry.metrics()).matchAll(/statesmith_executor_task_duration_seconds_count\{executor="([^"]+)"/g)].map((m) => m[1]),
        );
        if (names) expect(labels.size).to.equal(50);
        else {
          expect(labels.size).to.equal(21);
          expect(labels.has('other')).to.equal(true);
        }
      } finally {
        await telemetry.disable();
      }
    }
  });

  it('has a build info gauge, default process metrics when asked, and the buckets you give', async () => {
    const telemetry = await enableTelemetry({ collectDefaultMetrics: true, buckets: { work: [0.5, 2], lock: [0.001] } });
    try {
      const text = await telemetry.metrics();
      expect(text).to.match(/statesmith_build_info\{version="\d+\.\d+\.\d+[^"]*",node="v\d+/);
      expect(text).to.match(/^process_cpu_user_seconds_total /m);
      expect(text).to.match(/^nodejs_heap_size_used_bytes /m);
      expect(text).to.match(/# TYPE statesmith_executor_task_duration_seconds histogram/);
    } finally {
      await telemetry.disable();
    }
    // The default metrics leave with the rest: enabling again does not find them registered.
    const again = await enableTelemetry({ collectDefaultMetrics: true });
    await again.disable();
    expect(await rejection(enableTelemetry({ buckets: { work: [2, 1] } }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
    expect(await rejection(enableTelemetry({ buckets: { wrok: [1] } as never }))).to.have.property('code', 'ERR_UNKNOWN_OPTION');
  });
});
