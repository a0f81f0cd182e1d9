/**
 * Several processes and real servers: no lost updates, killed and frozen holders,
 * connections cut from the server side, and the server itself going away.
 */
import { expect } from 'chai';
import type { RowDataPacket } from 'mysql2/promise';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCoordinator, ForceResult, Locksmith, RecognitionResult, type Coordinator, type CoordinatorState } from '../../src/index.ts';
import { isolatedUrl, withEtcdAdmin, withMysqlAdmin, withPostgresAdmin, withRedisAdmin } from '../support/admin.ts';
import { waitUntil } from '../support/async.ts';
import {
  privateEtcd,
  privateMysql,
  privatePostgres,
  privateRedis,
  sharedEtcd,
  sharedMysql,
  sharedPostgres,
  sharedRedis,
  sqliteUrl,
} from '../support/servers.ts';

const fixture = new URL('./fixtures/member.ts', import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function member(config: Record<string, unknown>): ChildProcess {
  return fork(fixture, [JSON.stringify(config)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function nextMessage<T>(child: ChildProcess, ms = 15_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message from member ${child.pid} within ${ms} ms`)), ms);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve(message as T);
    });
  });
}

function exited(child: ChildProcess, ms = 30_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`member ${child.pid} did not exit within ${ms} ms`)), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

for (const backend of [
  { kind: 'redis', url: sharedRedis, server: privateRedis },
  { kind: 'postgresql', url: sharedPostgres, server: privatePostgres },
  { kind: 'etcd', url: sharedEtcd, server: privateEtcd },
  { kind: 'sqlite', url: async () => sqliteUrl(), server: undefined },
  { kind: 'mysql', url: sharedMysql, server: privateMysql },
] as const) {
  describe(`coordination across processes: ${backend.kind}`, function () {
    this.timeout(60_000);
    let base: string;
    let url: string;
    const children: ChildProcess[] = [];
    const open: Coordinator[] = [];

    before(async function () {
      const found = await backend.url();
      if (found === undefined) this.skip(); // no server and none could be started: outside CI only (under CI=true the harness throws)
      base = found;
    });
    beforeEach(() => (url = isolatedUrl(base, 'p')));
    afterEach(async () => {
      for (const child of children.splice(0)) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await Promise.all(open.splice(0).map((c) => c.stop()));
    });

    async function local(options: Parameters<typeof createCoordinator>[0] = {}): Promise<Coordinator> {
      const c = createCoordinator({ url, heartbeatMs: 300, ...options });
      open.push(c);
      await c.start();
      return c;
    }

    it('four processes incrementing a file counter under one lock lose no update', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'statesmith-count-'));
      const file = join(dir, 'counter');
      writeFileSync(file, '0');
      try {
        const members = [1, 2, 3, 4].map((n) => member({ mode: 'count', url, name: 'counter', agentId: `counter-${n}`, file, iterations: 25 }));
        children.push(...members);
        const codes = await Promise.all(members.map((child) => exited(child)));
        expect(codes).to.deep.equal([0, 0, 0, 0]);
        expect(Number(readFileSync(file, 'utf8'))).to.equal(100);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`a holder killed with SIGKILL loses its lock (${backend.kind === 'postgresql' || backend.kind === 'mysql' ? 'at once' : 'within its TTL'}), and the next grant has a larger fence`, async () => {
      const ttlMs = 2_000;
      const holder = member({ mode: 'hold', url, name: 'killed', agentId: 'holder', ttlMs });
      children.push(holder);
      const held = await nextMessage<{ fence: string }>(holder);
      const c = await local({ lockTtlMs: ttlMs });
      expect(await c.getLock('killed').acquire({ blocking: false })).to.equal(null);
      holder.kill('SIGKILL');
      const t0 = performance.now();
      const next = await c.getLock('killed').acquire({ blocking: ttlMs + 3_000 });
      const waited = performance.now() - t0;
      expect(next, 'acquired after the kill').to.not.equal(null);
      expect(next!.fence > BigInt(held.fence)).to.equal(true);
      if (backend.kind === 'postgresql' || backend.kind === 'mysql') expect(waited, 'the session ends with the process').to.be.below(1_500);
      else expect(waited).to.be.below(ttlMs + 1_000);
      await next?.release();
    });

    it('a member killed with SIGKILL leaves its group within its TTL', async () => {
      const ttlMs = 2_000;
      const joined = member({ mode: 'join', url, name: 'workers', agentId: 'doomed', ttlMs });
      children.push(joined);
      const { pid } = await nextMessage<{ pid: number }>(joined);
      const c = await local({ lockTtlMs: ttlMs });
      expect(await c.getMembers('workers')).to.deep.equal([{ memberId: 'doomed', capabilities: { pid } }]);
      joined.kill('SIGKILL');
      const t0 = performance.now();
      await waitUntil(async () => (await c.getMembers('workers')).length === 0, ttlMs + 3_000, 'the dead member to leave the list');
      expect(performance.now() - t0).to.be.below(ttlMs + 1_500);
    });

    it(`a leader killed with SIGKILL is followed by a waiting candidate (${backend.kind === 'postgresql' || backend.kind === 'mysql' ? 'at once' : 'within its TTL'}) with a larger term`, async () => {
      const ttlMs = 2_000;
      const leader = member({ mode: 'lead', url, name: 'primary', agentId: 'old-leader', ttlMs });
      children.push(leader);
      const { term } = await nextMessage<{ term: string }>(leader);
      const c = await local({ agentId: 'candidate', lockTtlMs: ttlMs });
      const election = c.getElection('primary');
      expect((await election.leader())?.memberId).to.equal('old-leader');
      const campaign = election.campaign({ timeoutMs: ttlMs + 5_000 });
      leader.kill('SIGKILL');
      const killedAt = performance.now();
      const leadership = await campaign;
      const waited = performance.now() - killedAt;
      expect(leadership.term > BigInt(term), 'the new term is larger').to.equal(true);
      // Generous bounds (timed tests flake): a session lock frees before the TTL could run out, a lease at most a little after it.
      if (backend.kind === 'postgresql' || backend.kind === 'mysql') expect(waited, 'the session ends with the process').to.be.below(ttlMs);
      else expect(waited).to.be.below(ttlMs + 2_000);
      await waitUntil(async () => (await election.leader())?.memberId === 'candidate', 5_000, 'leader() to name the candidate');
      await leadership.resign();
    });

    describe('the locksmith forces a lock held in another process', () => {
      it('negotiates over the backend: the holder answers, lets go, and the next grant has a larger fence', async () => {
        const holder = member({ mode: 'serve', decision: 'answer', url, name: 'stuck', agentId: 'answering', ttlMs: 3_000 });
        children.push(holder);
        const held = await nextMessage<{ fence: string }>(holder);
        const c = await local();
        const smith = new Locksmith({ name: 'watchdog' });
        const lock = c.getLock('stuck');
        expect(await smith.recognize(lock)).to.equal(RecognitionResult.SUCCESS);
        const lost = nextMessage<{ lost: string }>(holder);
        expect(await smith.force(lock, { info: 'stuck for 60 s', answerTimeoutMs: 5_000 })).to.equal(ForceResult.SUCCESS);
        expect((await lost).lost).to.match(/given up to watchdog/);
        const next = await lock.acquire({ blocking: 5_000 });
        expect(next!.fence > BigInt(held.fence)).to.equal(true);
        await next!.release();
      });

      it('a holder that refuses keeps its lock (FAILURE)', async () => {
        const holder = member({ mode: 'serve', decision: 'refuse', url, name: 'kept', agentId: 'refusing', ttlMs: 3_000 });
        children.push(holder);
        await nextMessage(holder);
        const c = await local();
        const smith = new Locksmith({ name: 'watchdog' });
        const lock = c.getLock('kept');
        await smith.recognize(lock);
        expect(await smith.force(lock, { answerTimeoutMs: 5_000 })).to.equal(ForceResult.FAILURE);
        expect(await lock.acquire({ blocking: false }), 'still held').to.equal(null);
      });

      it('a silent holder is compelled with breakLock after the answer timeout, and hears it', async () => {
        const holder = member({ mode: 'hold', url, name: 'silent', agentId: 'silent', ttlMs: 1_500 });
        children.push(holder);
        const held = await nextMessage<{ fence: string }>(holder);
        const c = await local();
        const smith = new Locksmith({ name: 'watchdog' });
        const lock = c.getLock('silent');
        await smith.recognize(lock);
        const lost = nextMessage<{ lost: string }>(holder);
        const t0 = performance.now();
        expect(await smith.force(lock, { answerTimeoutMs: 300 })).to.equal(ForceResult.RELEASED);
        expect(performance.now() - t0).to.be.within(250, 3_000);
        expect((await lost).lost).to.be.a('string');
        const next = await lock.acquire({ blocking: 3_000 });
        expect(next!.fence > BigInt(held.fence)).to.equal(true);
        await next!.release();
      });
    });

    it('a holder frozen with SIGSTOP past its TTL finds, on SIGCONT, its signal aborted and release() false', async () => {
      const ttlMs = 1_500;
      const holder = member({ mode: 'hold', url, name: 'frozen', agentId: 'frozen-holder', ttlMs });
      children.push(holder);
      await nextMessage(holder);
      const frozenAt = performance.now();
      holder.kill('SIGSTOP');
      await sleep(ttlMs + 1_000);
      if (backend.kind !== 'postgresql') {
        // The lease ran out on the server: someone else may take the lock meanwhile. On MySQL the silent
        // session ends at its wait_timeout, two TTLs after its last statement (PostgreSQL's frozen one lives on).
        const c = await local({ lockTtlMs: ttlMs });
        const other = await c.getLock('frozen').acquire({ blocking: backend.kind === 'mysql' ? 2 * ttlMs + 3_000 : false });
        expect(other).to.not.equal(null);
        expect(performance.now() - frozenAt, 'never before the frozen holder’s own lease ran out').to.be.at.least(ttlMs);
        await other?.release();
      }
      const lost = nextMessage<{ lost: string }>(holder);
      holder.kill('SIGCONT');
      expect((await lost).lost).to.match(backend.kind === 'mysql' ? /lease ran out|refused to renew|connection .* lost/ : /lease ran out|refused to renew/);
      holder.send('release');
      expect(await nextMessage(holder)).to.deep.equal({ released: false });
    });

    const server = backend.server;
    if (server === undefined) return; // SQLite has no server and no connection to cut: its own faults are in sqlite.test.ts

    it(`${{ redis: 'CLIENT KILL', postgresql: 'pg_terminate_backend', etcd: 'revoking the lease', mysql: 'KILL CONNECTION' }[backend.kind]} of the holder's connection aborts its handle, and the coordinator reconnects`, async () => {
      const agentId = `victim-${randomBytes(3).toString('hex')}`;
      const c = await local({ agentId, initialReconnectBackoffMs: 50, lockTtlMs: 2_000 });
      const held = await c.getLock('cut').acquire();
      await cutConnection(backend.kind, base, agentId, url);
      await waitUntil(() => held!.signal.aborted, 5_000);
      // etcd: whichever comes first, the lock's renewal or the heartbeat, finds the lease gone.
      expect((held!.signal.reason as Error).message).to.match(backend.kind === 'etcd' ? /connection .* lost|refused to renew/ : /connection .* lost/);
      expect(await held?.release()).to.equal(false);
      await waitUntil(() => c.state === 'connected', 5_000);
      const again = await c.getLock('cut').acquire({ blocking: 5_000 });
      expect(again).to.not.equal(null);
      await again?.release();
    });

    it('stopping the server moves the coordinator to reconnecting with growing back-off, and back to connected when it returns', async () => {
      const running = await server();
      try {
        const c = createCoordinator({ url: isolatedUrl(running.url, 'p'), heartbeatMs: 200, initialReconnectBackoffMs: 100, maxReconnectBackoffMs: 400 });
        open.push(c);
        const states: CoordinatorState[] = [];
        c.state$.subscribe((s) => states.push(s));
        await c.start();
        const held = await c.getLock('server').acquire();
        await running.stop();
        await waitUntil(() => c.state === 'reconnecting', 5_000);
        expect(held?.signal.aborted).to.equal(true);
        const backoffs: number[] = [];
        const subscription = c.actor.subscribe((s) => {
          if (s.matches('reconnecting') && backoffs.at(-1) !== s.context.backoffMs) backoffs.push(s.context.backoffMs);
        });
        await waitUntil(() => c.actor.getSnapshot().context.attempt >= 4, 10_000);
        subscription.unsubscribe();
        await running.restart();
        await waitUntil(() => c.state === 'connected', 10_000);
        expect(states).to.deep.equal(['disconnected', 'connecting', 'connected', 'reconnecting', 'connected']);
        // Exponential, capped at 400 ms, jittered by at most 20% below.
        const attempts = backoffs.slice(0, 3);
        expect(attempts[0]).to.be.within(100, 200);
        expect(attempts[1]! > attempts[0]!).to.equal(true);
        expect(Math.max(...backoffs)).to.be.at.most(400);
        const again = await c.getLock('server').acquire({ blocking: 5_000 });
        expect(again).to.not.equal(null);
        await again?.release();
        await c.stop();
      } finally {
        await running.stop();
      }
    });
  });
}

/** Cuts the coordinator's connection (etcd: its session lease) from the server side. */
async function cutConnection(kind: string, base: string, agentId: string, url: string): Promise<void> {
  if (kind === 'etcd') {
    const namespace = new URL(url).searchParams.get('namespace') as string;
    await withEtcdAdmin(base, async (admin) => {
      const kv = (await admin.get(`${namespace}/lock/cut`).exec()).kvs[0];
      expect(kv?.lease, "the lock key lives on its coordinator's lease").to.be.a('string').and.not.equal('0');
      await admin.leaseClient.leaseRevoke({ ID: kv?.lease as string });
    });
    return;
  }
  if (kind === 'mysql') {
    await withMysqlAdmin(base, async (admin) => {
      const [rows] = await admin.query<Array<{ conn: string } & RowDataPacket>>(
        'SELECT conn FROM statesmith_sessions WHERE member = ? AND conn IN (SELECT ID FROM information_schema.PROCESSLIST)',
        [agentId],
      );
      expect(rows, 'the holder connection is recorded under the member').to.have.length(1);
      await admin.query(`KILL CONNECTION ${Number(rows[0]?.conn)}`);
    });
    return;
  }
  if (kind === 'redis') {
    await withRedisAdmin(base, async (admin) => {
      const clients = String(await admin.client('LIST'))
        .split('\n')
        .filter((line) => line.includes(` name=${agentId} `));
      expect(clients, 'the holder connection is named after the member').to.have.length(1);
      const id = /\bid=(\d+)/.exec(clients[0] as string)?.[1];
      await admin.client('KILL', 'ID', id as string);
    });
    return;
  }
  await withPostgresAdmin(base, async (admin) => {
    const { rows } = await admin.query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [agentId]);
    expect(rows).to.have.length(1);
  });
}
