/**
 * statesmith/nats against a real NATS server (127.0.0.1:4222, as CI runs it): commands
 * and replies, snapshots and events across the wire, and every kind of bad input
 * answered with a typed code while the exposed actor goes on.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'chai';
import { createActor } from 'xstate';
import { executorLogic, taskGroupLogic, TimeoutError } from '../../src/index.ts';
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
    // The request's answer is the command's first reply; what follows comes as events.
    const reply = await remote.request({ type: 'statesmith.executor.run', action: 'promote' } as { type: string }, { timeoutMs: 5_000 });
    expect(reply).to.deep.include({ type: 'statesmith.executor.scheduled', action: 'promote' });
    await waitUntil(() => events.some((e) => e['type'] === 'statesmith.executor.done'), 5_000, 'the emitted done');
    expect(events.find((e) => e['type'] === 'statesmith.executor.done')).to.deep.include({ action: 'promote', outcome: 'completed', result: 'promoted' });
    await waitUntil(() => values.at(-1) === 'idle', 5_000, 'the idle snapshot');
    expect(values).to.deep.include('running');
    const refused = await remote.request({ type: 'statesmith.executor.frobnicate' });
    expect(refused).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_UNKNOWN_COMMAND' });
    executor.stop();
  });

  it('answers malformed JSON, a non-command, an internal event, an oversize message and a missing reply subject with typed codes', async () => {
    const group = createActor(taskGroupLogic, { input: { uniqueId: 'nats' } }).start();
    const subject = subjectFor('group');
    closing.push(await exposeActor(group, { connection: server, subject, maxCommandBytes: 256 }));
    const raw = async (payload: string): Promise<{ code: string }> => JSON.parse(new TextDecoder().decode((await client.request(`${subject}.cmd`, payload, { timeout: 5_000 })).data)) as { code: string };
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
    expect(() => remote.send({ type: 'x', fn: () => 1 } as never)).to.throw().with.property('code', 'ERR_INVALID_ARG_VALUE');
    expect((await rejection(remote.request({ type: 'x', n: 10n } as never))) as { code: string }).to.have.property('code', 'ERR_INVALID_ARG_VALUE');
    // Nobody serves this subject: NATS answers "no responders" at once, which is not a timeout.
    const group = createActor(taskGroupLogic, { input: { uniqueId: 'slow', tasks: { nap: (signal: AbortSignal) => new Promise((r) => signal.addEventListener('abort', r)) } } }).start();
    const subject = subjectFor('slow');
    closing.push(await exposeActor(group, { connection: server, subject }));
    const slow = remoteActor({ connection: client, subject });
    closing.push(slow);
    // createTask answers when the task ends: this one does not end, so the request times out.
    expect(await rejection(slow.request({ type: 'statesmith.taskGroup.createTask', task: 'nap' } as { type: string }, { timeoutMs: 200 }))).to.be.instanceOf(TimeoutError);
    const controller = new AbortController();
    const aborted = slow.request({ type: 'statesmith.taskGroup.createTask', task: 'nap', name: 'second' } as { type: string }, { signal: controller.signal });
    controller.abort(new Error('operator gave up'));
    expect(await rejection(aborted)).to.have.property('message', 'operator gave up');
    group.stop();
    for (const bad of ['a.*', 'a.>', '', 'a..b', 'a b']) {
      expect(() => remoteActor({ connection: client, subject: bad })).to.throw().with.property('code', 'ERR_INVALID_ARG_VALUE');
    }
    await rejection(exposeActor(group, { connection: server, subject: 'x.*' }));
  });
});
