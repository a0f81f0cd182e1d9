/**
 * The operator's side of statesmith/nats: `statesmith send` and `statesmith watch` as
 * child processes, a NATS restart survived by both sides, and a server that requires a
 * password.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createActor } from 'xstate';
import { taskGroupLogic } from '../../src/index.ts';
import { exposeActor, remoteActor, type Exposed } from '../../src/nats/index.ts';
import { waitUntil } from '../support/async.ts';
import { runExample } from '../support/examples.ts';
import { privateNats, sharedNats } from '../support/servers.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let run = 0;
const subjectFor = (name: string): string => `statesmith.optest.${process.pid}.${++run}.${name}`;

describe('statesmith/nats for operators', function () {
  this.timeout(30_000);
  let url: string;
  let connection: NatsConnection;
  const closing: Exposed[] = [];

  before(async function () {
    const shared = await sharedNats();
    if (shared === undefined) this.skip(); // outside CI only: no NATS here and none could be started (under CI=true sharedNats throws instead)
    url = shared as string;
    connection = await connect({ servers: url, timeout: 2_000 });
  });
  afterEach(async () => {
    for (const c of closing.splice(0)) await c.close();
  });
  after(async () => {
    await connection?.close();
  });

  it('statesmith send prints the reply and exits 0, or exits 1 with the rejection’s code; a bad command line exits 2', async () => {
    const group = createActor(taskGroupLogic, { input: { uniqueId: 'ops' } }).start();
    const subject = subjectFor('group');
    closing.push(await exposeActor(group, { connection, subject }));
    const ok = await runExample('src/cli.ts', 20_000, ['send', '--nats', url, subject, '{"type":"statesmith.taskGroup.wait"}']);
    expect(ok.code, ok.out).to.equal(0);
    expect(JSON.parse(ok.out.trim())).to.deep.equal({ type: 'statesmith.taskGroup.finished', errors: [] });
    const refused = await runExample('src/cli.ts', 20_000, ['send', '--nats', url, subject, '{"type":"statesmith.taskGroup.frobnicate"}']);
    expect(refused.code).to.equal(1);
    expect(refused.out).to.match(/statesmith send: rejected: .* \(ERR_UNKNOWN_COMMAND\)/);
    const bad = await runExample('src/cli.ts', 20_000, ['send', subject, '{oops']);
    expect(bad.code).to.equal(2);
    expect(bad.out).to.match(/the command is not JSON/);
    const help = await runExample('src/cli.ts', 20_000, ['send', '--help']);
    expect(help.code).to.equal(0);
    expect(help.out).to.match(/^usage: statesmith send/);
    group.stop();
  });

  it('statesmith watch prints state changes and events, one line each, until Ctrl-C', async () => {
    const group = createActor(taskGroupLogic, { input: { uniqueId: 'watched', tasks: { quick: async () => 'done' } } }).start();
    const subject = subjectFor('watched');
    closing.push(await exposeActor(group, { connection, subject }));
    const child = spawn(process.execPath, ['--conditions=statesmith-source', '--import', 'tsx', 'src/cli.ts', 'watch', '--nats', url, subject], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitUntil(() => out.includes('state {'), 15_000, 'the first state line');
      const remote = remoteActor({ connection, subject });
      await remote.request({ type: 'statesmith.taskGroup.createTask', task: 'quick', name: 'q' } as { type: string });
      remote.close();
      await waitUntil(() => out.includes('event {"type":"statesmith.taskGroup.taskDone"'), 10_000, 'the taskDone line');
      expect(out).to.match(/^state \{"status":"active","value":"running"/m);
      child.kill('SIGINT');
      expect(await exited).to.equal(0);
    } finally {
      child.kill('SIGKILL');
      group.stop();
    }
  });

  it('statesmith watch on a subject nobody serves says so after a while, and goes on watching', async function () {
    this.timeout(20_000);
    const child = spawn(process.execPath, ['--conditions=statesmith-source', '--import', 'tsx', 'src/cli.ts', 'watch', '--nats', url, subjectFor('nobody')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitUntil(() => err.includes('nobody seems to serve it'), 15_000, 'the silence notice');
      expect(err).to.match(
        /statesmith watch: nothing heard from statesmith\.optest\.\S+ in 5 s: nobody seems to serve it \(is the subject right\?\); still watching/,
      );
      child.kill('SIGINT');
      expect(await exited).to.equal(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('survives a NATS restart: the exposed actor serves again and the remote snapshot$ resumes', async () => {
    const server = await privateNats();
    const options = { servers: server.url, timeout: 2_000, reconnectTimeWait: 100, maxReconnectAttempts: -1 };
    const side = await connect(options);
    const other = await connect(options);
    try {
      const group = createActor(taskGroupLogic, { input: { uniqueId: 'restart', tasks: { quick: async () => 'done' } } }).start();
      const subject = subjectFor('restart');
      const exposed = await exposeActor(group, { connection: side, subject });
      const remote = remoteActor({ connection: other, subject });
      const values: unknown[] = [];
      remote.subscribe((s) => values.push(s.value));
      await waitUntil(() => values.length > 0, 5_000, 'a snapshot');
      await server.stop();
      await server.restart();
      // Both clients reconnect and subscribe again by themselves.
      await waitUntil(() => !side.isClosed() && !other.isClosed(), 5_000, 'still open');
      let reply: { type: string } | undefined;
      await waitUntil(
        () => {
          if (reply === undefined)
            void remote
              .request({ type: 'statesmith.taskGroup.createTask', task: 'quick', name: `n${values.length}` } as { type: string }, { timeoutMs: 500 })
              .then(
                (r) => (reply = r),
                () => undefined,
              );
          return reply !== undefined;
        },
        10_000,
        'a command answered after the restart',
      );
      expect(reply).to.deep.include({ type: 'statesmith.taskGroup.taskDone', outcome: 'completed' });
      const before = values.length;
      await remote.request({ type: 'statesmith.taskGroup.createTask', task: 'quick', name: 'after' } as { type: string }, { timeoutMs: 5_000 });
      await waitUntil(() => values.length > before, 5_000, 'snapshot$ resumed');
      remote.close();
      await exposed.close();
      group.stop();
    } finally {
      await side.close();
      await other.close();
      await server.stop();
    }
  });

  it('uses the connection’s own authentication: a server that requires a password refuses a client without it', async () => {
    const server = await privateNats(['--user', 'operator', '--pass', 's3cret']);
    try {
      let refused: unknown;
      await connect({ servers: server.url, timeout: 2_000, maxReconnectAttempts: 0 }).then(
        (c) => c.close(),
        (error: unknown) => (refused = error),
      );
      expect(String(refused)).to.match(/auth/i);
      const side = await connect({ servers: server.url, user: 'operator', pass: 's3cret', timeout: 2_000 });
      const group = createActor(taskGroupLogic, { input: { uniqueId: 'auth' } }).start();
      const subject = subjectFor('auth');
      const exposed = await exposeActor(group, { connection: side, subject });
      const remote = remoteActor({ connection: side, subject });
      expect(await remote.request({ type: 'statesmith.taskGroup.wait' })).to.deep.include({ type: 'statesmith.taskGroup.finished' });
      remote.close();
      await exposed.close();
      group.stop();
      await side.close();
    } finally {
      await server.stop();
    }
  });
});
