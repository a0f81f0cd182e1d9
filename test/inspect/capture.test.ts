import { expect } from 'chai';
import { AsyncExecutor, createCoordinator, Locksmith, ManualClock, Mutex, ServiceBase, SharedMutex, TaskGroup, WakeupBus } from '../../src/index.ts';
import { settle } from '../support/async.ts';
import { assign, createActor, setup, type InspectionEvent } from 'xstate';
import { InspectionStream, inspection } from '../../src/inspect/capture.ts';
import { describeAs } from '../../src/inspect/safeJson.ts';
import { startCapture } from '../../src/runtime/startActor.ts';

type Record = { type: string; seq: number; sessionId?: string; [key: string]: unknown };
const parse = (stream: InspectionStream): Record[] => stream.records().map((r) => JSON.parse(r.json) as Record);

describe('inspection capture', () => {
  let stop: (() => void) | undefined;
  beforeEach(() => inspection.reset());
  afterEach(() => {
    stop?.();
    stop = undefined;
    inspection.reset();
  });

  it('is off until started: actors run without reporting anything', async () => {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'quiet' });
    await executor.run(async () => 1);
    expect(inspection.enabled).to.equal(false);
    expect(inspection.records()).to.have.length(0);
  });

  it('reports an actor (with its graph once per machine), then one numbered record per processed event: the event, its transitions, the state after', async () => {
    stop = startCapture();
    const a = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'one' });
    const b = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'two' });
    await a.run(async () => 'done');
    void b;
    const records = parse(inspection);
    const graphs = records.filter((r) => r.type === 'statesmith.graph' && r['machine'] === 'statesmith.executor');
    expect(graphs, 'one graph per machine').to.have.length(1);
    // Executors of earlier tests are still alive and adopted too: look at these two.
    const actorRecords = records.filter((r) => r.type === '@xstate.actor' && r['kind'] === 'executor' && ['one', 'two'].includes(r['id'] as string));
    expect(actorRecords.map((r) => r['id'])).to.deep.equal(['one', 'two']);
    expect(actorRecords[0]?.['graphId']).to.equal(graphs[0]?.['graphId']);
    const session = actorRecords[0]?.sessionId;
    const mine = records.filter((r) => r.sessionId === session);
    expect([...new Set(mine.map((r) => r.type))]).to.deep.equal(['@xstate.actor', '@xstate.snapshot']);
    const steps = mine.filter((r) => r.type === '@xstate.snapshot');
    // The command, then the task child's answers: the executor lock for the start, the outcome, the lock for the cleanup.
    expect(steps.map((s) => [(s['event'] as { type: string }).type, s['value']])).to.deep.equal([
      ['xstate.init', 'idle'],
      ['statesmith.executor.run', { scheduled: 'starting' }],
      ['statesmith.executor.gate', 'running'],
      ['statesmith.executor.settled', 'done'],
      ['statesmith.executor.cleaned', 'idle'],
    ]);
    expect(steps[1]?.['event']).to.deep.equal({ type: 'statesmith.executor.run', fn: '[Function anonymous]', scheduleAs: 'anonymous task' });
    expect(steps[2]?.['transitions']).to.deep.equal([{ source: 'statesmith.executor.scheduled.starting', targets: ['statesmith.executor.running'] }]);
    // One tree: the executor's children name it as their parent.
    const children = records.filter((r) => r.type === '@xstate.actor' && r['parentId'] === session).map((r) => r['id']);
    expect(children).to.deep.equal(['task']);
    expect(steps.at(-1)?.['activeIds']).to.deep.equal(['statesmith.executor', 'statesmith.executor.idle']);
    const seqs = records.map((r) => r.seq);
    expect(seqs).to.deep.equal([...seqs].sort((x, y) => x - y));
  });

  it('adopts actors that were running before capture started, with their current state', () => {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'early' });
    executor.schedule('restart');
    stop = startCapture();
    const records = parse(inspection);
    const actor = records.find((r) => r.type === '@xstate.actor' && r['id'] === 'early');
    expect(actor, 'adopted').to.not.equal(undefined);
    const snapshot = records.find((r) => r.type === '@xstate.snapshot' && r.sessionId === actor?.sessionId);
    expect(snapshot?.['value']).to.deep.equal({ scheduled: 'waiting' });
  });

  it('adopts the children of an actor that was running before capture started, under their parent', async () => {
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'busy-early' });
    let finish: () => void = () => undefined;
    executor.runAsync(() => new Promise<void>((resolve) => (finish = resolve)));
    await settle();
    const children = Object.values(executor.actor.getSnapshot().children) as Array<{ sessionId: string }>;
    expect(children.length, 'the executor has a child while running').to.be.greaterThan(0);
    stop = startCapture();
    const records = parse(inspection);
    for (const child of children) {
      expect(
        records.find((r) => r.type === '@xstate.actor' && r.sessionId === child.sessionId),
        'an adopted child',
      ).to.deep.include({ parentId: executor.actor.sessionId });
    }
    finish();
  });

  it("shows an election as its coordinator's child, and its campaign as transitions", async () => {
    stop = startCapture();
    const coordinator = createCoordinator({ url: 'memory://capture-election', agentId: 'seen' });
    await coordinator.start();
    const leadership = await coordinator.getElection('db').campaign();
    await leadership.resign();
    const records = parse(inspection);
    // Other tests' coordinators may still run in this process: take this one's child.
    const election = records.find((r) => r.type === '@xstate.actor' && r['kind'] === 'election' && r['parentId'] === coordinator.actor.sessionId);
    expect(election, 'an election record under this coordinator').to.deep.include({ id: 'election:db' });
    const values = records.filter((r) => r.type === '@xstate.snapshot' && r.sessionId === election?.sessionId).map((r) => JSON.stringify(r['value']));
    expect(values).to.include.members(['"candidate"', '{"leader":"serving"}', '"resigning"', '"follower"']);
    await coordinator.stop();
  });

  it('nests: capture stays on until every user has stopped, and a stop function counts once', () => {
    const first = startCapture();
    const second = startCapture();
    first();
    first();
    expect(inspection.enabled, 'the second user still captures').to.equal(true);
    second();
    expect(inspection.enabled).to.equal(false);
  });

  it('makes tasks real actors while capturing, so they show', async () => {
    stop = startCapture();
    await using group = new TaskGroup({ uniqueId: 'seen' });
    await group.createTask(async () => 1, { name: 'job' }).wait();
    const records = parse(inspection);
    expect(records.some((r) => r.type === '@xstate.actor' && r['kind'] === 'task' && r['id'] === 'TaskGroup:seen:job')).to.equal(true);
  });

  it('shows a restart as a transition of the task, with its attempt and delay, and an escalation on the parent service', async () => {
    stop = startCapture();
    const clock = new ManualClock();
    class Flaky extends ServiceBase {
      protected async main(signal: AbortSignal): Promise<void> {
        this.createTask(() => Promise.reject(new Error('flaky')), {
          name: 'sub',
          logException: false,
          restart: { maxRestarts: 10, backoff: { initialMs: 100, jitter: 0 } },
        });
        await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      }
    }
    const service = new Flaky({ uniqueId: 'flaky', clock, maxRestarts: 1, withinMs: 10_000 }).start();
    await settle();
    await clock.advance(100);
    await settle();
    const records = parse(inspection);
    const task = records.find((r) => r.type === '@xstate.actor' && r['id'] === 'TaskGroup:flaky:sub');
    const steps = records.filter((r) => r.type === '@xstate.snapshot' && r.sessionId === task?.sessionId);
    expect(steps.map((s) => [(s['event'] as { type: string }).type, s['value']])).to.deep.include.members([
      ['statesmith.task.restart', 'scheduled'],
      ['statesmith.task.start', 'running'],
      ['statesmith.task.fail', { done: 'failed' }],
    ]);
    expect(steps.find((s) => (s['event'] as { type: string }).type === 'statesmith.task.restart')?.['event']).to.deep.equal({
      type: 'statesmith.task.restart',
      attempt: 1,
      delayMs: 100,
    });
    const serviceActor = records.find((r) => r.type === '@xstate.actor' && r['id'] === 'Flaky:flaky');
    const serviceSteps = records.filter((r) => r.type === '@xstate.snapshot' && r.sessionId === serviceActor?.sessionId);
    const escalated = serviceSteps.find((s) => (s['event'] as { type: string }).type === 'statesmith.taskGroup.failed');
    expect(escalated?.['value']).to.equal('cancelling');
    expect((escalated?.['event'] as { task: string }).task).to.equal('sub');
    expect(serviceSteps.at(-1)?.['value']).to.deep.equal({ done: 'failed' });
    await service.stop().catch(() => undefined);
  });

  it('reports locks: holder, waiters, forced releases', async () => {
    stop = startCapture();
    const mutex = new Mutex({ name: 'volumes' });
    const held = await mutex.acquire({ owner: 'resize job' });
    const waiting = mutex.acquire({ owner: 'snapshot job' });
    mutex.forceRelease({ by: 'watchdog' });
    (await waiting).release();
    held.release();
    const locks = parse(inspection).filter((r) => r.type === 'statesmith.lock' && r['lock'] === 'mutex:volumes');
    // A waiter is counted as it comes, not only at the next grant.
    expect(locks.map((l) => [l['op'], l['holder'], l['by'], l['waiters']])).to.deep.equal([
      ['held', 'resize job', null, 0],
      ['held', 'resize job', null, 1],
      ['forced', 'resize job', 'watchdog', 1],
      ['held', 'snapshot job', null, 0],
      ['free', null, null, 0],
    ]);
    expect(
      locks.map((l) => l['forceRun']),
      'no force run took it: the watchdog here is a name',
    ).to.deep.equal([null, null, null, null, null]);
  });

  it('starts with the locks taken before it: a held Mutex, one waited for, and a held distributed lock', async () => {
    const mutex = new Mutex({ name: 'before-capture' });
    const held = await mutex.acquire({ owner: 'early job' });
    const waiting = mutex.acquire({ owner: 'second job' });
    const free = new Mutex({ name: 'taken-and-given-back' });
    (await free.acquire()).release();
    const coordinator = createCoordinator({ agentId: 'early' });
    await coordinator.start();
    const lease = await coordinator.getLock('early-volume').acquire();
    try {
      stop = startCapture();
      const locks = parse(inspection).filter((r) => r.type === 'statesmith.lock');
      expect(locks.find((l) => l['lock'] === 'mutex:before-capture')).to.deep.include({ op: 'held', holder: 'early job', waiters: 1 });
      expect(locks.find((l) => l['lock'] === 'distributed:early-volume')).to.deep.include({ op: 'held', holder: 'early' });
      expect(
        locks.some((l) => l['lock'] === 'mutex:taken-and-given-back'),
        'a free lock nobody waits for is not news',
      ).to.equal(false);
    } finally {
      held.release();
      (await waiting).release();
      await lease?.release();
      await coordinator.stop();
    }
  });

  it("names the locksmith's force run in the record of the hold it forced, so the timeline links to that actor", async () => {
    stop = startCapture();
    const wal = new Mutex({ name: 'wal-forced' });
    await wal.acquire({ owner: 'archiver' });
    const smith = new Locksmith({ name: 'keeper' });
    await smith.recognize(wal);
    await smith.force(wal, { answerTimeoutMs: 0 });
    const records = parse(inspection);
    const forced = records.find((r) => r.type === 'statesmith.lock' && r['lock'] === 'mutex:wal-forced' && r['op'] === 'forced');
    // The force run is the locksmith's child (not an actor on its own), and the record names it by that place.
    const run = records.find((r) => r.type === '@xstate.actor' && r['kind'] === 'force' && r['parentId'] === smith.actor.sessionId);
    expect(run, "the force run is the locksmith's child in the picture").to.not.equal(undefined);
    expect(forced?.['forceRun']).to.deep.equal({ parentId: smith.actor.sessionId, id: run?.['id'] });
    expect(forced?.['by']).to.equal('keeper');
  });

  it('reports a SharedMutex too: held by its thread, then free', async () => {
    stop = startCapture();
    const shared = SharedMutex.create();
    const handle = await shared.acquire();
    handle.release();
    expect(shared.tryAcquire()).to.equal(true);
    shared.release();
    const locks = parse(inspection).filter((r) => r.type === 'statesmith.lock' && r['lock'] === `shared:SharedMutex[${shared.index}]`);
    expect(locks.map((l) => [l['op'], l['holder'], l['kind']])).to.deep.equal([
      ['held', 'thread 0', 'shared'],
      ['free', null, 'shared'],
      ['held', 'thread 0', 'shared'],
      ['free', null, 'shared'],
    ]);
  });

  it('reports who waits for a distributed lock held elsewhere', async () => {
    stop = startCapture();
    const one = createCoordinator({ url: 'memory://capture-waits', agentId: 'one' });
    const two = createCoordinator({ url: 'memory://capture-waits', agentId: 'two' });
    await one.start();
    await two.start();
    const held = await one.getLock('volume-3').acquire();
    expect(await two.getLock('volume-3').acquire({ blocking: 30 })).to.equal(null);
    await held?.release();
    const ops = parse(inspection)
      .filter((r) => r.type === 'statesmith.lock' && r['lock'] === 'distributed:volume-3')
      .map((l) => [l['op'], l['waiters']]);
    expect(ops[0]).to.deep.equal(['held', 0]);
    expect(ops).to.deep.include(['waiting', 1]);
    await one.stop();
    await two.stop();
  });

  it('keeps a step by reference and writes its JSON only when read; what could change under the reference is copied at the step', () => {
    stop = startCapture();
    let described = 0;
    class Named {
      readonly name = 'pool';
    }
    describeAs(Named, () => {
      described++;
      return '[Named pool]';
    });
    class Gauge {
      level = 1;
    }
    const gauge = new Gauge();
    const machine = setup({ types: {} as { context: { named: Named; plain: { n: number }; gauge?: Gauge } } }).createMachine({
      id: 'kept',
      context: ({ input }) => input as { named: Named; plain: { n: number }; gauge?: Gauge },
      on: { bump: { actions: assign({ plain: ({ context }) => ({ n: context.plain.n + 1 }) }) } },
    });
    const stable = createActor(machine, { input: { named: new Named(), plain: { n: 0 } }, inspect: inspection.observer }).start();
    const volatile = createActor(machine, { input: { named: new Named(), plain: { n: 0 }, gauge }, inspect: inspection.observer }).start();
    stable.send({ type: 'bump' });
    volatile.send({ type: 'bump' });
    const describedAtSteps = described;
    gauge.level = 99;
    const steps = (actor: { sessionId: string }): Record[] => parse(inspection).filter((r) => r.sessionId === actor.sessionId && r.type === '@xstate.snapshot');
    const stableSteps = steps(stable);
    expect(stableSteps.map((r) => r['context'])).to.deep.equal([
      { named: '[Named pool]', plain: { n: 0 } },
      { named: '[Named pool]', plain: { n: 1 } },
    ]);
    // Written at the steps: only what holds a Gauge (the second actor's init event, with its input, and its two contexts).
    expect(describedAtSteps, 'only the copied values were written at their steps').to.equal(3);
    // The first actor's were written when read.
    expect(described).to.be.greaterThan(describedAtSteps);
    expect(
      steps(volatile).map((r) => (r['context'] as { gauge: { level: number } }).gauge.level),
      'the gauge as it was at each step',
    ).to.deep.equal([1, 1]);
    stable.stop();
    volatile.stop();
  });

  it("hears a statesmith actor's system without XState's copy per event, and XState's own subscribers still hear it", async () => {
    stop = startCapture();
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'heard' });
    const theirs: InspectionEvent[] = [];
    const subscription = executor.actor.system.inspect((event) => theirs.push(event));
    await executor.run(async () => 1);
    subscription.unsubscribe();
    const session = executor.actor.sessionId;
    expect(parse(inspection).filter((r) => r.sessionId === session && r.type === '@xstate.snapshot')).to.have.length.greaterThan(3);
    expect(theirs.some((e) => e.type === '@xstate.snapshot' && e.actorRef === executor.actor && e.rootId === session)).to.equal(true);
    expect(
      theirs.some((e) => e.type === '@xstate.action'),
      'actions still reach XState subscribers',
    ).to.equal(true);
    // The dispatch capture wraps is XState's internal one: if a later XState drops it, this
    // says so here (capture would still work, through the slower subscription below).
    expect(typeof (executor.actor.system as unknown as { _sendInspectionEvent?: unknown })._sendInspectionEvent, "XState's system dispatch").to.equal(
      'function',
    );
    // A system without XState's dispatch (another version) is subscribed to instead.
    const stream = new InspectionStream(10);
    let subscribed: unknown;
    stream.hook({ inspect: (observer: unknown) => (subscribed = observer) }, executor.actor);
    expect(subscribed).to.equal(stream.observer);
  });

  it('finds a record of the ring by its sequence number, while the ring holds it', () => {
    const stream = new InspectionStream(5);
    stream.enable();
    for (let i = 0; i < 12; i++) stream.lock({ lock: 'l', kind: 'mutex', op: `op${i}` });
    const seqs = stream.records().map((r) => r.seq);
    for (const seq of seqs) expect(stream.recordOf(seq)?.seq).to.equal(seq);
    expect(stream.recordOf((seqs[0] as number) - 1), 'left the ring').to.equal(undefined);
    expect(stream.recordOf((seqs.at(-1) as number) + 1)).to.equal(undefined);
  });

  it("splits a late viewer's picture: every latest state and the newest history first, the rest of the history after", () => {
    const stream = new InspectionStream(50);
    stream.enable();
    stream.lock({ lock: 'early', kind: 'mutex', op: 'held' });
    stream.lock({ lock: 'early', kind: 'mutex', op: 'free' });
    for (let i = 0; i < 20; i++) stream.lock({ lock: 'busy', kind: 'mutex', op: i % 2 ? 'free' : 'held' });
    const { first, earlier } = stream.pictureParts(5);
    const ops = (records: typeof first): string[] => records.map((r) => `${(JSON.parse(r.json) as { lock: string }).lock}#${r.seq}`);
    const all = stream.records().map((r) => r.seq);
    // The early lock's last change goes first although it is old; then the newest five.
    expect(ops(first)).to.deep.equal(['early#2', 'busy#18', 'busy#19', 'busy#20', 'busy#21', 'busy#22']);
    expect(earlier.map((r) => r.seq)).to.deep.equal(all.filter((seq) => seq !== 2 && seq < 18));
    expect([...first, ...earlier].map((r) => r.seq).sort((a, b) => a - b)).to.deep.equal(all);
  });

  it('bounds the ring by bytes too: past maxBytes the oldest records go, whatever their count', () => {
    const stream = new InspectionStream(1_000, 50_000);
    stream.enable();
    for (let i = 0; i < 100; i++) stream.lock({ lock: 'l', kind: 'mutex', op: `op${i}`, holder: 'x'.repeat(1_000) });
    expect(stream.ringBytes).to.be.at.most(50_000);
    const kept = parse(stream);
    expect(kept.length).to.be.lessThan(100);
    expect(kept.at(-1)?.['op'], 'the newest stays').to.equal('op99');
    // One record larger than the bound is still kept, alone: the newest always stays.
    stream.lock({ lock: 'l', kind: 'mutex', op: 'huge', holder: 'x'.repeat(60_000) });
    expect(parse(stream).map((r) => r['op'])).to.deep.equal(['huge']);
  });

  it('counts a step whose context was copied at capture, and counts it again once written', () => {
    const stream = new InspectionStream(1_000, 200_000);
    stream.enable();
    const machine = setup({ types: { context: {} as { big: Map<string, string>; n: number } } }).createMachine({
      context: { big: new Map([['k', 'v'.repeat(20_000)]]), n: 0 },
      on: { inc: { actions: assign({ n: ({ context }) => context.n + 1, big: ({ context }) => new Map(context.big) }) } },
    });
    const actor = createActor(machine);
    stream.hook(actor.system, actor);
    actor.start();
    for (let i = 0; i < 50; i++) actor.send({ type: 'inc' });
    // 50 contexts of about 40 KB each, copied at the step: far more than the bound.
    expect(stream.ringBytes).to.be.at.most(200_000);
    expect(stream.records().length).to.be.lessThan(50);
    for (const record of stream.records()) void record.json;
    expect(stream.ringBytes).to.be.at.most(200_000);
    actor.stop();
  });

  it('keeps the ring bounded, oldest records first out', () => {
    const stream = new InspectionStream(5);
    stream.enable();
    const context = { n: 0 };
    for (let i = 0; i < 12; i++) {
      context.n = i;
      stream.lock({ lock: 'l', kind: 'mutex', op: `op${i}` });
    }
    const kept = parse(stream);
    expect(kept.map((r) => r['op'])).to.deep.equal(['op7', 'op8', 'op9', 'op10', 'op11']);
    expect(stream.ringBytes).to.be.greaterThan(0);
    // A late viewer gets the lock's history that is left, in order (for the timeline).
    expect(
      stream
        .picture()
        .filter((r) => r.type === 'statesmith.lock')
        .map((r) => (JSON.parse(r.json) as { op: unknown }).op),
    ).to.deep.equal(['op7', 'op8', 'op9', 'op10', 'op11']);
  });
});
