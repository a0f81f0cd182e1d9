/**
 * Inspection across processes over a real NATS server: a process's feed
 * (`exposeInspection`) and an inspector merging other processes' feeds
 * (`startInspector({ nats })`). The other process is played by a raw NATS connection
 * that speaks the feed's wire format, so each rule of the merge is pinned: ids made
 * unique per process and boot, the picture first, live records the picture holds
 * dropped, a closed feed, a restarted process, a silent one.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'chai';
import { AsyncExecutor, WakeupBus } from '../../src/index.ts';
import { inspection } from '../../src/inspect/capture.ts';
import { watchRemoteFeeds } from '../../src/inspect/remote.ts';
import { startInspector } from '../../src/inspect/server.ts';
import { exposeInspection } from '../../src/nats/index.ts';
import { pictureOf } from '../../src/nats/inspection.ts';
import { startCapture } from '../../src/runtime/startActor.ts';
import { waitUntil } from '../support/async.ts';
import { sharedNats } from '../support/servers.ts';

type Rec = { type: string; seq: number; sessionId?: string; [key: string]: unknown };
const records = (): Rec[] => inspection.records().map((r) => JSON.parse(r.json) as Rec);
let run = 0;

describe('inspection over NATS', function () {
  this.timeout(15_000);
  let a: NatsConnection;
  let b: NatsConnection;
  const cleanup: Array<() => unknown> = [];

  before(async function () {
    const url = await sharedNats();
    if (url === undefined) this.skip(); // outside CI only: no NATS here and none could be started (under CI=true sharedNats throws instead)
    a = await connect({ servers: url, timeout: 2_000 });
    b = await connect({ servers: url, timeout: 2_000 });
  });
  beforeEach(() => inspection.reset());
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
    inspection.reset();
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  /** Another process's feed, by hand: answers picture requests with `picture`, publishes batches. */
  function fakeFeed(subject: string, picture: () => object): { publish(batch: object): void } {
    const sub = b.subscribe(`${subject}.inspect`, {
      callback: (_error, message) => {
        if (message.reply) message.respond(JSON.stringify(picture()));
      },
    });
    cleanup.push(() => sub.unsubscribe());
    return { publish: (batch) => b.publish(`${subject}.inspect`, JSON.stringify(batch)) };
  }

  const actorRecord = (seq: number, sessionId: string, parentId: string | null, id: string): Rec => ({
    type: '@xstate.actor',
    seq,
    sessionId,
    id,
    name: id,
    kind: 'executor',
    parentId,
    systemId: null,
    rootId: sessionId,
    graphId: 'statesmith.executor#1',
  });
  const snapshotRecord = (seq: number, sessionId: string, value: string): Rec => ({
    type: '@xstate.snapshot',
    seq,
    sessionId,
    event: { type: 'go' },
    sourceId: null,
    transitions: [],
    status: 'active',
    value,
    context: { n: seq },
    activeIds: [],
  });

  it('shows another process as an agent with its actors under it: the picture first, then live records it does not hold', async () => {
    const subject = `statesmith.test.${process.pid}.${++run}.agent1`;
    const feed = fakeFeed(subject, () => ({
      boot: 'b1',
      seq: 5,
      records: [
        {
          type: 'statesmith.graph',
          seq: 1,
          graphId: 'statesmith.executor#1',
          machine: 'statesmith.executor',
          root: { id: 'statesmith.executor', key: 'statesmith.executor', type: 'compound', initial: 'idle', children: [], edges: [] },
        },
        actorRecord(2, 'x:0', null, 'ha'),
        actorRecord(3, 'x:1', 'x:0', 'sub'),
        snapshotRecord(5, 'x:0', 'scheduled'),
        { type: 'statesmith.lock', seq: 4, lock: 'mutex:wal', kind: 'mutex', op: 'held', holder: 'task a', waiters: 0, fence: null, by: null },
      ],
    }));
    const inspector = await startInspector({ nats: { connection: a, subjects: [`statesmith.test.${process.pid}.>`] } });
    cleanup.push(() => inspector.close());
    await a.flush();
    // A live batch: seq 4 and 5 are in the picture already, 6 is new.
    feed.publish({ boot: 'b1', seq: 6, records: [snapshotRecord(4, 'x:0', 'old'), snapshotRecord(6, 'x:0', 'running')] });
    const ns = `nats:${subject}#b1/`;
    await waitUntil(() => records().some((r) => r.sessionId === `${ns}x:0` && r['value'] === 'running'), 5_000, 'the live record');
    const all = records();
    const root = all.find((r) => r.type === '@xstate.actor' && r.sessionId === `nats:${subject}`);
    expect(root, 'the agent row').to.deep.include({ kind: 'agent', id: subject, parentId: null });
    expect(all.find((r) => r.type === '@xstate.actor' && r.sessionId === `${ns}x:0`)).to.deep.include({
      parentId: `nats:${subject}`,
      graphId: `${ns}statesmith.executor#1`,
      id: 'ha',
    });
    expect(all.find((r) => r.type === '@xstate.actor' && r.sessionId === `${ns}x:1`)).to.deep.include({ parentId: `${ns}x:0` });
    expect(all.some((r) => r.type === 'statesmith.graph' && r['graphId'] === `${ns}statesmith.executor#1`)).to.equal(true);
    // This process's own held locks (other tests') are in the capture too, since it starts with what is held: pick the feed's.
    expect(all.find((r) => r.type === 'statesmith.lock' && String(r['lock']).startsWith(subject))).to.deep.include({
      lock: `${subject}: mutex:wal`,
      holder: 'task a',
    });
    const values = all.filter((r) => r.sessionId === `${ns}x:0` && r.type === '@xstate.snapshot').map((r) => r['value']);
    expect(values, 'the picture, then only what it did not hold').to.deep.equal(['scheduled', 'running']);
    // Numbered here, in order.
    const seqs = all.map((r) => r.seq);
    expect(seqs).to.deep.equal([...seqs].sort((x, y) => x - y));
  });

  it('a closed feed shows its agent done and its actors stopped; a new boot of the process gets new rows', async () => {
    const subject = `statesmith.test.${process.pid}.${++run}.agent2`;
    let boot = 'one';
    const feed = fakeFeed(subject, () => ({ boot, seq: 1, records: [actorRecord(1, 'x:0', null, 'ha')] }));
    const inspector = await startInspector({ nats: { connection: a, subjects: [`statesmith.test.${process.pid}.*.agent2`] } });
    cleanup.push(() => inspector.close());
    await a.flush();
    feed.publish({ boot, seq: 2, records: [snapshotRecord(2, 'x:0', 'idle')] });
    await waitUntil(() => records().some((r) => r.sessionId === `nats:${subject}#one/x:0` && r['value'] === 'idle'), 5_000, 'the first boot');
    boot = 'two';
    feed.publish({ boot, seq: 2, records: [snapshotRecord(2, 'x:0', 'running')] });
    await waitUntil(() => records().some((r) => r.sessionId === `nats:${subject}#two/x:0` && r['value'] === 'running'), 5_000, 'the second boot');
    const old = records().filter((r) => r.sessionId === `nats:${subject}#one/x:0` && r.type === '@xstate.snapshot');
    expect(old.at(-1), 'the old boot’s actor').to.deep.include({ status: 'stopped', value: 'idle' });
    feed.publish({ boot, closed: true });
    await waitUntil(() => records().some((r) => r.sessionId === `nats:${subject}` && r['status'] === 'done'), 5_000, 'the agent done');
    expect(
      records()
        .filter((r) => r.sessionId === `nats:${subject}#two/x:0`)
        .at(-1),
    ).to.deep.include({ status: 'stopped' });
  });

  it('a feed silent for three heartbeats shows its agent stopped, and live again when it speaks', async () => {
    const subject = `statesmith.test.${process.pid}.${++run}.agent3`;
    const feed = fakeFeed(subject, () => ({ boot: 'q', seq: 0, records: [] }));
    const stopCapture = startCapture();
    cleanup.push(stopCapture);
    const stop = watchRemoteFeeds(a, [subject], 50);
    cleanup.push(stop);
    await a.flush();
    feed.publish({ boot: 'q', seq: 0, records: [] });
    const rootStates = (): unknown[] =>
      records()
        .filter((r) => r.sessionId === `nats:${subject}` && r.type === '@xstate.snapshot')
        .map((r) => r['value']);
    await waitUntil(() => rootStates().includes('silent'), 5_000, 'silent');
    feed.publish({ boot: 'q', seq: 0, records: [] });
    await waitUntil(() => rootStates().at(-1) === 'live', 5_000, 'live again');
    expect(rootStates()).to.deep.equal(['live', 'silent', 'live']);
  });

  it('publishes this process’s actors: batches, a picture on request, a closed marker; nothing taken in from elsewhere goes out again', async () => {
    const subject = `statesmith.test.${process.pid}.${++run}.self`;
    const batches: Array<{ boot: string; seq?: number; closed?: boolean; records?: Rec[] }> = [];
    const sub = b.subscribe(`${subject}.inspect`, {
      callback: (_e, m) => void (m.reply ? undefined : batches.push(JSON.parse(new TextDecoder().decode(m.data)))),
    });
    cleanup.push(() => sub.unsubscribe());
    await b.flush();
    const feed = await exposeInspection({ connection: a, subject });
    cleanup.push(() => feed.close());
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'fed' });
    await executor.run(async () => 1);
    // A record from another process, as an inspector here would take it in.
    inspection.ingest('@xstate.actor', { sessionId: 'nats:elsewhere#z/x:9', id: 'foreign', kind: 'executor', parentId: null });
    await waitUntil(() => batches.some((batch) => batch.records?.some((r) => r['id'] === 'fed')), 5_000, 'the executor in a batch');
    const picture = JSON.parse(new TextDecoder().decode((await b.request(`${subject}.inspect`, '{"picture":true}', { timeout: 5_000 })).data)) as {
      boot: string;
      seq: number;
      records: Rec[];
    };
    expect(picture.boot).to.equal(batches[0]?.boot);
    expect(picture.records.some((r) => r.type === '@xstate.actor' && r['id'] === 'fed')).to.equal(true);
    expect(picture.records.some((r) => r.type === 'statesmith.graph')).to.equal(true);
    await feed.close();
    await waitUntil(() => batches.at(-1)?.closed === true, 5_000, 'the closed marker');
    const sent = batches.flatMap((batch) => batch.records ?? []).concat(picture.records);
    expect(
      sent.some((r) => r['id'] === 'foreign'),
      'a foreign record republished',
    ).to.equal(false);
    expect(inspection.enabled, 'capture off with the feed').to.equal(false);
  });

  it('an inspector does not take in its own process’s feed; capture outlives either of them', async () => {
    const subject = `statesmith.test.${process.pid}.${++run}.own`;
    const inspector = await startInspector({ nats: { connection: a, subjects: [`statesmith.test.${process.pid}.>`] } });
    cleanup.push(() => inspector.close());
    const feed = await exposeInspection({ connection: b, subject });
    cleanup.push(() => feed.close());
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'own' });
    await executor.run(async () => 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(
      records().some((r) => String(r.sessionId).startsWith('nats:')),
      'own feed merged',
    ).to.equal(false);
    await inspector.close();
    expect(inspection.enabled, 'the feed still captures').to.equal(true);
    await feed.close();
    expect(inspection.enabled).to.equal(false);
  });

  it('a picture larger than one reply keeps the newest actors, says it is truncated, and stays within its bound', async () => {
    const stopCapture = startCapture();
    try {
      const executors = Array.from({ length: 30 }, (_, i) => new AsyncExecutor({ wakeup: new WakeupBus(), name: `many-${i}` }));
      for (const executor of executors) await executor.run(async () => 1);
      // Live actors of earlier tests in this process are adopted too: the whole picture, unbounded, is the reference.
      const whole = pictureOf(Number.MAX_SAFE_INTEGER);
      expect(whole.truncated).to.equal(false);
      const bytes = whole.records.reduce((sum, json) => sum + json.length + 1, 0);
      // Room for about a third of the actors (each with its graph record and its latest snapshot).
      const actorBytes = whole.records.filter((json) => json.includes('"@xstate.actor"')).reduce((sum, json) => sum + json.length + 1, 0);
      const alwaysBytes = whole.records
        .filter((json) => json.includes('"statesmith.graph"') || json.includes('"statesmith.lock"'))
        .reduce((sum, json) => sum + json.length + 1, 0);
      const limit = alwaysBytes + Math.floor(actorBytes / 3);
      const cut = pictureOf(limit);
      expect(cut.truncated, `${bytes} bytes in all, ${actorBytes} of actors`).to.equal(true);
      expect(cut.records.reduce((sum, json) => sum + json.length + 1, 0)).to.be.at.most(limit);
      const actorsIn = (records: string[]) =>
        records.map((json) => JSON.parse(json) as { type: string; seq: number }).filter((r) => r.type === '@xstate.actor');
      const all = actorsIn(whole.records).map((r) => r.seq);
      const kept = actorsIn(cut.records).map((r) => r.seq);
      expect(kept, 'the newest actor is in').to.include(Math.max(...all));
      expect(kept, 'the oldest is left out').to.not.include(Math.min(...all));
      expect(
        cut.records.some((json) => json.includes('"statesmith.graph"')),
        'the graphs always go',
      ).to.equal(true);
    } finally {
      stopCapture();
    }
  });

  it('refuses bad subjects and options with typed errors', async () => {
    const bad = [
      [{ connection: a, subjects: [] }, /non-empty array/],
      [{ connection: a, subjects: ['a.>.b'] }, /">" may be the last/],
      [{ connection: a, subjects: ['a b'] }, /tokens/],
      [{ connection: {}, subjects: ['a'] }, /NATS connection/],
      [{ connection: a, subjects: ['a'], extra: 1 }, /extra/],
    ] as const;
    for (const [nats, message] of bad) {
      let error: unknown;
      await startInspector({ nats: nats as never }).then(
        (i) => i.close(),
        (e: unknown) => (error = e),
      );
      expect(error, JSON.stringify(Object.keys(nats)))
        .to.be.instanceOf(TypeError)
        .and.have.property('message')
        .match(message);
      expect((error as { code?: string }).code).to.match(/^ERR_/);
    }
    let error: unknown;
    await exposeInspection({ connection: a, subject: 'a.*' }).catch((e: unknown) => (error = e));
    expect(error).to.have.property('code', 'ERR_INVALID_ARG_VALUE');
    expect(inspection.enabled).to.equal(false);
  });
});
