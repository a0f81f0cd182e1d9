/**
 * statesmith/nats against a real NATS server (127.0.0.1:4222, as CI runs it): commands
 * and replies, snapshots and events across the wire, and every kind of bad input
 * answered with a typed code while the exposed actor goes on.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'chai';
import { createActor, setup } from 'xstate';
import { executorLogic, NoReplyError, RejectedError, taskGroupLogic } from '../../src/index.ts';
import { exposeActor, remoteActor, type Exposed } from '../../src/nats/index.ts';
import { rejection, waitUntil } from '../support/async.ts';
import { sharedNats } from '../support/servers.ts';

let run = 0;
const subjectFor = (name: string): string => `statesmith.test.${process.pid}.${++run}.${name}`;

describe('statesmith/nats', function () {
  this.timeout(15_000);
  let server: NatsConnection;
  let client: NatsConnection;
  const closing: Array<Exposed | { close(): void }> = [];

  before(async function () {
    // The machine's NATS on 4222, or one the harness starts; under CI=true a missing one fails the run.
    const url = await sharedNats();
    if (url === undefined) this.skip(); // outside CI only: no NATS here and none could be started (under CI=true sharedNats throws instead)
    server = await connect({ servers: url, timeout: 2_000 });
    client = await connect({ servers: url, timeout: 2_000 });
  });
  afterEach(async () => {
    for (const c of closing.splice(0)) await c.close();
  });
  after(async () => {
    await server?.close();
    await client?.close();
  });

  it('drives an executor in another connection: request → reply, snapshots and events follow', async () => {
    const executor = createActor(executorLogic, { input: { name: 'remote', actions: { promote: async () => 'promoted' } } }).start();
    const subject = subjectFor('executor');
    closing.push(await exposeActor(executor, { connection: server, subject }));
    const remote = remoteActor({ connection: client, subject });
    closing.push(remote);
    await waitUntil(() => remote.getSnapshot() !== undefined, 5_000, 'the first snapshot');
    expect(remote.getSnapshot()).to.deep.include({ status: 'active', value: 'idle' });
    const values: unknown[] = [];
    remote.subscribe((s) => values.push(s.value));
    const events: Array<Record<string, unknown>> = [];
    remote.events$.subscribe((e) => events.push(e));
    // The request resolves with the command's final reply; the interim ones go to onReply, and everything comes as events too.
    const interim: string[] = [];
    const reply = await remote.request({ type: 'statesmith.executor.run', action: 'promote' } as { type: string }, {
      timeoutMs: 5_000,
      onReply: (r) => interim.push(r.type),
    });
    expect(reply).to.deep.include({ type: 'statesmith.executor.done', action: 'promote', outcome: 'completed', result: 'promoted' });
    expect(interim).to.deep.equal(['statesmith.executor.scheduled', 'statesmith.executor.started']);
    await waitUntil(() => events.some((e) => e['type'] === 'statesmith.executor.done'), 5_000, 'the emitted done');
    expect(events.find((e) => e['type'] === 'statesmith.executor.done')).to.deep.include({ action: 'promote', outcome: 'completed', result: 'promoted' });
    await waitUntil(() => values.at(-1) === 'idle', 5_000, 'the idle snapshot');
    expect(values).to.deep.include('running');
    const refused = (await rejection(remote.request({ type: 'statesmith.executor.frobnicate' }))) as RejectedError;
    expect(refused).to.be.instanceOf(RejectedError);
    expect(refused.code).to.equal('ERR_UNKNOWN_COMMAND');
    expect(refused.rejection).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_UNKNOWN_COMMAND' });
    // A bare word, or a misspelled facility, is answered too.
    expect(((await rejection(remote.request({ type: 'run' }, { timeoutMs: 5_000 }))) as RejectedError).code).to.equal('ERR_UNKNOWN_COMMAND');
    expect(((await rejection(remote.request({ type: 'statesmith.exectuor.run' }, { timeoutMs: 5_000 }))) as RejectedError).code).to.equal(
      'ERR_UNKNOWN_COMMAND',
    );
    executor.stop();
  });

  it('answers malformed JSON, a non-command, an internal event, an oversize message and a missing reply subject with typed codes', async () => {
    const group = createActor(taskGroupLogic, { input: { uniqueId: 'nats' } }).start();
    const subject = subjectFor('group');
    closing.push(await exposeActor(group, { connection: server, subject, maxCommandBytes: 256 }));
    const raw = async (payload: string): Promise<{ code: string }> =>
      JSON.parse(new TextDecoder().decode((await client.request(`${subject}.cmd`, payload, { timeout: 5_000 })).data)) as { code: string };
    expect((await raw('{not json')).code).to.equal('ERR_MALFORMED_JSON');
    expect((await raw('[1,2]')).code).to.equal('ERR_INVALID_COMMAND');
    expect((await raw('{"type":"xstate.stop"}')).code).to.equal('ERR_INVALID_COMMAND');
    expect((await raw(JSON.stringify({ type: 'statesmith.taskGroup.wait', pad: 'x'.repeat(300) }))).code).to.equal('ERR_MESSAGE_TOO_LARGE');
    const watcher = remoteActor({ connection: client, subject });
    closing.push(watcher);
    const errors: string[] = [];
    watcher.events$.subscribe((e) => errors.push(String(e['code'])));
    await client.flush();
    client.publish(`${subject}.cmd`, JSON.stringify({ type: 'statesmith.taskGroup.wait' }));
    await waitUntil(() => errors.includes('ERR_NO_REPLY_SUBJECT'), 5_000, 'the refusal on .events');
    // Through all of it the group kept serving.
    expect(group.getSnapshot().status).to.equal('active');
    expect(await watcher.request({ type: 'statesmith.taskGroup.wait' })).to.deep.include({ type: 'statesmith.taskGroup.finished', errors: [] });
    group.stop();
  });

  it('refuses a command that is not JSON before sending it, times out and aborts requests, and validates subjects', async () => {
    const remote = remoteActor({ connection: client, subject: subjectFor('nobody') });
    closing.push(remote);
    expect(() => remote.send({ type: 'x', fn: () => 1 } as never))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_VALUE');
    expect((await rejection(remote.request({ type: 'x', n: 10n } as never))) as { code: string }).to.have.property('code', 'ERR_INVALID_ARG_VALUE');
    // A getter that throws is a typed refusal too, with what it threw, never the raw error.
    const unreadable = {
      type: 'x',
      get volume(): string {
        throw new Error('getter exploded');
      },
    };
    expect(() => remote.send(unreadable))
      .to.throw(/reading them threw: getter exploded/)
      .with.property('code', 'ERR_INVALID_ARG_VALUE');
    expect(await rejection(remote.request(unreadable))).to.have.property('code', 'ERR_INVALID_ARG_VALUE');
    // Nobody serves this subject: NATS answers "no responders" at once, which is not a timeout.
    const group = createActor(taskGroupLogic, {
      input: { uniqueId: 'slow', tasks: { nap: (signal: AbortSignal) => new Promise((r) => signal.addEventListener('abort', r)) } },
    }).start();
    const subject = subjectFor('slow');
    closing.push(await exposeActor(group, { connection: server, subject }));
    const slow = remoteActor({ connection: client, subject });
    closing.push(slow);
    // createTask answers when the task ends: this one does not end, so the request times out.
    const silent = await rejection(slow.request({ type: 'statesmith.taskGroup.createTask', task: 'nap' } as { type: string }, { timeoutMs: 200 }));
    expect(silent).to.be.instanceOf(NoReplyError);
    expect(silent).to.have.property('code', 'ERR_NO_REPLY');
    const controller = new AbortController();
    const aborted = slow.request({ type: 'statesmith.taskGroup.createTask', task: 'nap', name: 'second' } as { type: string }, { signal: controller.signal });
    controller.abort(new Error('operator gave up'));
    expect(await rejection(aborted)).to.have.property('message', 'operator gave up');
    group.stop();
    for (const bad of ['a.*', 'a.>', '', 'a..b', 'a b']) {
      expect(() => remoteActor({ connection: client, subject: bad }))
        .to.throw()
        .with.property('code', 'ERR_INVALID_ARG_VALUE');
    }
    await rejection(exposeActor(group, { connection: server, subject: 'x.*' }));
  });

  it("refuses unrun a command that arrives after its request's deadline, and carries the deadline in each request's reply subject", async () => {
    const ran: number[] = [];
    const executor = createActor(executorLogic, {
      input: { name: 'deadline', actions: { bump: async (_signal: AbortSignal, params: unknown) => ran.push((params as { n: number }).n) } },
    }).start();
    const subject = subjectFor('deadline');
    closing.push(await exposeActor(executor, { connection: server, subject }));
    const command = (n: number): Uint8Array => new TextEncoder().encode(JSON.stringify({ type: 'statesmith.executor.run', action: 'bump', params: { n } }));
    const inbox = (deadline: number): string => `_INBOX.statesmith.${'ab'.repeat(16)}.d${deadline}`;
    // What a partition does to a request: it arrives after the sender's timeoutMs has passed.
    const answers: Array<Record<string, unknown>> = [];
    const late = inbox(Date.now() - 50);
    const listening = client.subscribe(late, {
      callback: (_e, m) => {
        answers.push(JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown>);
      },
    });
    client.publish(`${subject}.cmd`, command(1), { reply: late });
    await waitUntil(() => answers.length === 1, 5_000, 'the refusal');
    listening.unsubscribe();
    expect(answers[0]).to.include({ type: 'statesmith.rejected', code: 'ERR_TIMEOUT' });
    expect(answers[0]?.['reason']).to.match(/arrived \d+ ms after its request's timeoutMs had passed; it was not delivered to the actor/);
    // In time: run. A reply subject without a deadline (another client's): run.
    const remote = remoteActor({ connection: client, subject });
    closing.push(remote);
    expect(await remote.request({ type: 'statesmith.executor.run', action: 'bump', params: { n: 3 } }, { timeoutMs: 5_000 })).to.include({
      outcome: 'completed',
    });
    const plain = await client.request(`${subject}.cmd`, command(4), { timeout: 5_000 });
    expect(JSON.parse(new TextDecoder().decode(plain.data))).to.include({ type: 'statesmith.executor.scheduled' });
    await waitUntil(() => ran.includes(4), 5_000, 'the plain request run');
    expect(ran, 'the late command never reached the actor').to.deep.equal([3, 4]);
    // remoteActor's own requests carry their deadline: watch one go by.
    const seen: string[] = [];
    const spy = server.subscribe(`${subject}.cmd`, {
      callback: (_e, m) => {
        seen.push(m.reply ?? '');
      },
    });
    await server.flush();
    const before = Date.now();
    await remote.request({ type: 'statesmith.executor.run', action: 'bump', params: { n: 5 } }, { timeoutMs: 4_000 });
    spy.unsubscribe();
    const deadline = Number(/\.d(\d+)$/.exec(seen[0] ?? '')?.[1]);
    expect(deadline).to.be.within(before + 4_000, Date.now() + 4_000);
    executor.stop();
  });

  it('a request to a subject nobody serves (a process that died) fails at once with ERR_NO_REPLY', async () => {
    const remote = remoteActor({ connection: client, subject: subjectFor('dead') });
    closing.push(remote);
    const started = Date.now();
    const error = (await rejection(remote.request({ type: 'statesmith.executor.run', action: 'x' }, { timeoutMs: 10_000 }))) as NoReplyError;
    expect(error).to.be.instanceOf(NoReplyError);
    expect(error.code).to.equal('ERR_NO_REPLY');
    expect(error.message).to.match(/nobody serves/);
    expect(Date.now() - started, 'no responders is known at once, not after the timeout').to.be.lessThan(5_000);
  });

  it('a user actor that stays silent gets ERR_NO_REPLY from the bridge when its reply time runs out', async () => {
    const silent = createActor(setup({}).createMachine({ on: { poke: {} } })).start();
    const subject = subjectFor('silent');
    closing.push(await exposeActor(silent, { connection: server, subject, replyTimeoutMs: 100 }));
    const remote = remoteActor({ connection: client, subject });
    closing.push(remote);
    const error = (await rejection(remote.request({ type: 'poke' }, { timeoutMs: 5_000 }))) as RejectedError;
    expect(error).to.be.instanceOf(RejectedError);
    expect(error.code).to.equal('ERR_NO_REPLY');
    silent.stop();
  });

  it('a pending request on an actor that stops is answered at once with ERR_ACTOR_STOPPED', async () => {
    const group = createActor(taskGroupLogic, {
      input: { uniqueId: 'stops', tasks: { nap: (signal: AbortSignal) => new Promise((r) => signal.addEventListener('abort', r)) } },
    }).start();
    const subject = subjectFor('stops');
    closing.push(await exposeActor(group, { connection: server, subject }));
    const remote = remoteActor({ connection: client, subject });
    closing.push(remote);
    const pending = remote.request({ type: 'statesmith.taskGroup.createTask', task: 'nap' }, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 300)); // the command crosses the real server
    group.stop();
    const error = (await rejection(pending)) as RejectedError;
    expect(error.code).to.equal('ERR_ACTOR_STOPPED');
  });

  it('one deeply nested command does not stop the server: it is answered, and the next command is served', async () => {
    const executor = createActor(executorLogic, { input: { name: 'deep', actions: { promote: async () => 'promoted' } } }).start();
    const subject = subjectFor('deep');
    closing.push(await exposeActor(executor, { connection: server, subject }));
    // 20,000 levels, about 40 KB: under the size limit, past what JSON.stringify can write back.
    const deep = `{"type":"statesmith.executor.run","action":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
    const answer = JSON.parse(new TextDecoder().decode((await client.request(`${subject}.cmd`, deep, { timeout: 5_000 })).data)) as { type: string };
    expect(answer.type).to.equal('statesmith.rejected');
    const remote = remoteActor({ connection: client, subject });
    closing.push(remote);
    expect(await remote.request({ type: 'statesmith.executor.run', action: 'promote' }, { timeoutMs: 5_000 })).to.deep.include({ outcome: 'completed' });
    executor.stop();
  });

  it('a non-JSON message on the events or state subject does not end the remote side: its requests still work', async () => {
    const executor = createActor(executorLogic, { input: { name: 'junk', actions: { promote: async () => 'promoted' } } }).start();
    const subject = subjectFor('junk');
    closing.push(await exposeActor(executor, { connection: server, subject }));
    const remote = remoteActor({ connection: client, subject });
    closing.push(remote);
    await waitUntil(() => remote.getSnapshot() !== undefined, 5_000, 'the first snapshot');
    server.publish(`${subject}.events`, 'not json {');
    server.publish(`${subject}.state`, '\u0000garbage');
    server.publish(`${subject}.events`, '[1,2,3]');
    await server.flush();
    expect(await remote.request({ type: 'statesmith.executor.run', action: 'promote' }, { timeoutMs: 5_000 })).to.deep.include({ outcome: 'completed' });
    expect(remote.getSnapshot()).to.have.property('status', 'active');
    executor.stop();
  });
});
