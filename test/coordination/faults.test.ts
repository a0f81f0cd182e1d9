/**
 * The holes a fault campaign found in coordination, each reproduced as it was reported:
 * fences after data loss, a PostgreSQL acquire that fails half-way, a grant that comes
 * back after its lease, one name for Lock/synchronized/getLock, a cancellable
 * synchronized, and a Redis database the server does not have.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import {
  createCoordinator,
  CoordinationError,
  Lock,
  LockAcquireFailed,
  ManualClock,
  setDefaultCoordinator,
  synchronized,
  type Coordinator,
} from '../../src/index.ts';
import type { Backend } from '../../src/coordination/types.ts';
import { kBackendFactory } from '../../src/coordination/options.ts';
import { MemoryBackend, resetMemoryStores } from '../../src/coordination/backends/memory.ts';
import { isolatedUrl, withPostgresAdmin, withRedisAdmin } from '../support/admin.ts';
import { gate, rejection, settle } from '../support/async.ts';
import { freePort, privateRedis, sharedPostgres, sharedRedis } from '../support/servers.ts';

describe('coordination under faults', function () {
  this.timeout(30_000);
  const open: Coordinator[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.stop()));
  });
  async function started(options: Parameters<typeof createCoordinator>[0]): Promise<Coordinator> {
    const c = createCoordinator(options);
    open.push(c);
    await c.start();
    return c;
  }

  describe('fences only grow', () => {
    it('on Redis, across a restart of a server that keeps nothing on disk', async () => {
      const server = await privateRedis();
      try {
        const c = await started({ url: server.url, heartbeatMs: 100, initialReconnectBackoffMs: 50, maxReconnectBackoffMs: 200 });
        const lock = c.getLock('v');
        let last = 0n;
        for (let i = 0; i < 6; i++) {
          const handle = await lock.acquire();
          expect(handle!.fence > last).to.equal(true);
          last = handle!.fence;
          await handle!.release();
        }
        await server.stop();
        await server.restart();
        for (const deadline = Date.now() + 10_000; c.state !== 'connected';) {
          if (Date.now() > deadline) throw new Error(`the coordinator did not reconnect (${c.state})`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const after = await lock.acquire({ timeoutMs: 5_000 });
        expect(after, 'granted after the restart').to.not.equal(null);
        expect(after!.fence > last, `fence ${after!.fence} after the data loss is above ${last}`).to.equal(true);
        await after!.release();
      } finally {
        await server.stop();
      }
    });

    it('on Redis, when the fence key alone is lost (FLUSHALL of a namespace)', async function () {
      const base = await sharedRedis();
      if (base === undefined) this.skip(); // no Redis could be started: outside CI only (under CI=true the harness throws)
      const url = isolatedUrl(base);
      const c = await started({ url });
      const first = await c.getLock('v').acquire();
      await first!.release();
      const namespace = new URL(url).searchParams.get('namespace');
      await withRedisAdmin(base, (admin) => admin.del(`${namespace}:fence:v`));
      const second = await c.getLock('v').acquire();
      expect(second!.fence > first!.fence).to.equal(true);
      await second!.release();
    });

    it('on PostgreSQL, when the fence row is lost (a restore from an older backup)', async function () {
      const base = await sharedPostgres();
      if (base === undefined) this.skip(); // no PostgreSQL could be started: outside CI only (under CI=true the harness throws)
      const url = isolatedUrl(base);
      const c = await started({ url });
      const first = await c.getLock('v').acquire();
      await first!.release();
      const namespace = new URL(url).searchParams.get('namespace');
      await withPostgresAdmin(base, (admin) => admin.query('DELETE FROM statesmith_fences WHERE namespace = $1', [namespace]));
      const second = await c.getLock('v').acquire();
      expect(second!.fence > first!.fence).to.equal(true);
      await second!.release();
    });
  });

  describe('a PostgreSQL acquire that fails leaves its session holding nothing', () => {
    let base: string;
    before(async function () {
      const found = await sharedPostgres();
      if (found === undefined) this.skip(); // no PostgreSQL could be started: outside CI only (under CI=true the harness throws)
      base = found;
    });

    /** The advisory locks the session of `memberId` holds, as the server sees them. */
    const advisoryLocksOf = (memberId: string): Promise<number> =>
      withPostgresAdmin(base, async (admin) => {
        const { rows } = await admin.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1",
          [memberId],
        );
        return Number(rows[0]?.n);
      });

    it('when the fence row is locked by another transaction past the command timeout', async () => {
      const url = isolatedUrl(base);
      const namespace = new URL(url).searchParams.get('namespace');
      const one = await started({ url, agentId: 'one', heartbeatMs: 200 });
      const two = await started({ url, agentId: 'two', heartbeatMs: 200 });
      await (await one.getLock('v').acquire())!.release(); // the fence row exists now
      await withPostgresAdmin(base, async (admin) => {
        await admin.query('BEGIN');
        await admin.query('SELECT * FROM statesmith_fences WHERE namespace = $1 AND name = $2 FOR UPDATE', [namespace, 'v']);
        const failed = await rejection(one.getLock('v').acquire({ blocking: false }));
        expect(failed).to.be.instanceOf(CoordinationError);
        await admin.query('COMMIT');
      });
      expect(await advisoryLocksOf(one.memberId), 'advisory locks left in the failed session').to.equal(0);
      const next = await two.getLock('v').acquire({ blocking: false });
      expect(next, 'another member gets the lock').to.not.equal(null);
      await next!.release();
      expect(one.state).to.equal('connected');
    });

    it('when the statement fails after pg_try_advisory_lock succeeded (a key the index refuses)', async () => {
      // A namespace too long for the fence table's btree makes the INSERT fail after the lock was taken.
      const url = new URL(base);
      url.searchParams.set('namespace', `n${randomBytes(4_000).toString('hex')}`); // random: PostgreSQL would compress a repeated one into the index
      const c = await started({ url: url.href, agentId: `long-${process.pid}` });
      const failed = await rejection(c.getLock('v').acquire({ blocking: false }));
      expect(failed).to.be.instanceOf(CoordinationError);
      expect((failed as Error).message).to.match(/index row|btree/i);
      expect(await advisoryLocksOf(c.memberId)).to.equal(0);
    });
  });

  describe('a PostgreSQL holder that falls silent (a partition)', () => {
    it('has its session given up by the server within about two TTLs, not the OS default of two hours: its socket probes after one TTL', async function () {
      const base = await sharedPostgres();
      if (base === undefined) this.skip(); // no PostgreSQL could be started: outside CI only (under CI=true the harness throws)
      const agentId = `silent-${randomBytes(3).toString('hex')}`;
      const c = await started({ url: isolatedUrl(base), agentId, lockTtlMs: 3_000, heartbeatMs: 1_000 });
      const handle = await c.getLock('v').acquire();
      expect(handle).to.not.equal(null);
      // The server's end of this session's socket, as the kernel sees it: its keepalive timer says when it probes next.
      const clientPort = await withPostgresAdmin(base, async (admin) => {
        const { rows } = await admin.query<{ port: number }>('SELECT client_port AS port FROM pg_stat_activity WHERE application_name = $1', [agentId]);
        return rows[0]?.port;
      });
      expect(clientPort, 'the session is a TCP one').to.be.a('number');
      const serverPort = Number(new URL(base).port || 5432);
      await new Promise((resolve) => setTimeout(resolve, 200)); // the socket idle: its timer is the keepalive one
      const { execFileSync } = await import('node:child_process');
      const line = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${serverPort} and dport = :${clientPort} )`], { encoding: 'utf8' });
      const timer = /timer:\(keepalive,([\d.]+)(ms|sec|min|h)?/.exec(line);
      expect(timer, `a keepalive timer on the server's socket: ${line}`).to.not.equal(null);
      const [, amount, unit] = timer as RegExpExecArray;
      // One TTL (3 s) at most before the first probe; the OS default would show about 119 min.
      expect(unit === 'min' || unit === 'h', `next probe in ${amount}${unit ?? ''}`).to.equal(false);
      expect(Number(amount)).to.be.at.most(unit === 'ms' ? 3_000 : 3);
      await handle!.release();
    });
  });

  describe('a grant that comes back after its lease could have run out', () => {
    beforeEach(() => resetMemoryStores());

    it('is given back, never resolved as a handle', async () => {
      const clock = new ManualClock();
      const inner = new MemoryBackend({ url: new URL('memory://late'), memberId: 'm', clock, commandTimeoutMs: 100 });
      const answer = gate();
      let released = 0;
      const slow: Backend = {
        kind: inner.kind,
        capabilities: inner.capabilities,
        connect: () => inner.connect(),
        close: () => inner.close(),
        ping: () => inner.ping(),
        renew: (name, token, ttlMs) => inner.renew(name, token, ttlMs),
        onReleased: (listener) => inner.onReleased(listener),
        onLost: () => inner.onLost(),
        async tryAcquire(name, token, ttlMs) {
          const fence = await inner.tryAcquire(name, token, ttlMs);
          await answer.promise; // the process froze while the reply was on its way
          return fence;
        },
        release(name, token) {
          released++;
          return inner.release(name, token);
        },
      };
      const c = createCoordinator({ clock, lockTtlMs: 1_000, [kBackendFactory]: () => slow } as never);
      open.push(c);
      await c.start();
      const pending = c.getLock('v').acquire({ blocking: false });
      await settle();
      clock.stall(1_500);
      answer.open();
      expect(await pending).to.equal(null);
      expect(released).to.equal(1);
      expect(await inner.tryAcquire('v', 'someone-else', 1_000)).to.not.equal(null);
    });

    it('after a freeze, held and signal say lost to the first reader, before any timer ran', async () => {
      const clock = new ManualClock();
      const c = createCoordinator({ clock, lockTtlMs: 1_000 });
      open.push(c);
      await c.start();
      const handle = await c.getLock('v').acquire();
      const signal = handle!.signal;
      await clock.advance(900); // renewed once at 333 ms and again at 666 ms
      expect(handle!.held).to.equal(true);
      clock.stall(1_500);
      expect(() => signal.throwIfAborted())
        .to.throw()
        .with.property('code', 'ERR_LOCK_LOST');
      expect(handle!.held).to.equal(false);
      expect(signal.aborted).to.equal(true);
    });
  });

  describe('Lock, synchronized and getLock name the same lock', () => {
    afterEach(() => setDefaultCoordinator(null));

    it('with a default coordinator that has a prefix', async () => {
      const c = await started({ prefix: 'vol-', url: 'memory://names' });
      setDefaultCoordinator(c);
      const lock = new Lock('x-{id}', { id: 7 });
      expect(lock.name).to.equal('vol-x-7');
      expect(c.getLock('x-7').name).to.equal('vol-x-7');
      const held = await lock.acquire();
      expect(await c.getLock('x-7').acquire({ blocking: false })).to.equal(null);
      let ran = false;
      const guarded = synchronized('x-7', { blocking: false })(async () => (ran = true));
      expect(await rejection(guarded()))
        .to.be.instanceOf(LockAcquireFailed)
        .with.property('reason', 'busy');
      expect(ran).to.equal(false);
      await held!.release();
      expect(await guarded()).to.equal(true);
    });

    it('with a coordinator given explicitly', async () => {
      const c = await started({ prefix: 'vol-', url: 'memory://names2' });
      const lock = new Lock('x-{id}', { id: 7 }, { coordinator: c });
      expect(lock.name).to.equal('vol-x-7');
      const held = await lock.acquire();
      const guarded = synchronized('x-{0}', { coordinator: c, blocking: false })(async (_id: number) => 'ran');
      expect(await rejection(guarded(7)))
        .to.be.instanceOf(LockAcquireFailed)
        .with.property('lock', 'vol-x-7');
      await held!.release();
      expect(await guarded(7)).to.equal('ran');
    });
  });

  describe('synchronized', () => {
    it('is cancelled by its signal while it waits, without running the function', async () => {
      const c = await started({ url: 'memory://sync-signal' });
      const held = await c.getLock('busy').acquire();
      const controller = new AbortController();
      let ran = false;
      const guarded = synchronized('busy', { coordinator: c, signal: controller.signal })(async () => (ran = true));
      const call = guarded();
      await new Promise((resolve) => setTimeout(resolve, 20));
      controller.abort(new Error('agent shutting down'));
      expect(((await rejection(call)) as Error).message).to.equal('agent shutting down');
      expect(ran).to.equal(false);
      await held!.release();
      expect(await c.getLock('busy').acquire({ blocking: false })).to.not.equal(null);
    });

    it('gives up after timeoutMs with LockAcquireFailed', async () => {
      const c = await started({ url: 'memory://sync-timeout' });
      const held = await c.getLock('busy').acquire();
      const guarded = synchronized('busy', { coordinator: c, timeoutMs: 30 })(async () => 'ran');
      expect(await rejection(guarded()))
        .to.be.instanceOf(LockAcquireFailed)
        .with.property('reason', 'timeout');
      await held!.release();
    });

    it('refuses an unknown option key', () => {
      expect(() => synchronized('x', { timeout: 5 } as never))
        .to.throw(TypeError)
        .with.property('code', 'ERR_UNKNOWN_OPTION');
    });
  });

  describe('a Redis database the server does not have', () => {
    it('fails the start instead of using database 0', async function () {
      const base = await sharedRedis();
      if (base === undefined) this.skip(); // no Redis could be started: outside CI only (under CI=true the harness throws)
      const url = new URL(base);
      url.pathname = '/99';
      const c = createCoordinator({ url: url.href });
      open.push(c);
      const failed = await rejection(c.start());
      expect(failed).to.be.instanceOf(CoordinationError).with.property('code', 'ERR_COORDINATION_BACKEND');
      expect((failed as Error).message).to.match(/DB index is out of range/);
      expect(c.state).to.equal('disconnected');
    });

    it('refuses a path that is not a database number when the URL is parsed', () => {
      expect(() => createCoordinator({ url: 'redis://127.0.0.1:6379/volumes' }))
        .to.throw(CoordinationError)
        .with.property('code', 'ERR_COORDINATION_URL');
    });
  });

  describe('etcd:// URLs and an etcd that is not there', () => {
    it('takes one or several host:port pairs, and refuses anything else with ERR_COORDINATION_URL', () => {
      expect(createCoordinator({ url: 'etcd://127.0.0.1:2379' }).backendKind).to.equal('etcd');
      expect(createCoordinator({ url: 'etcd://h1:2379,h2:2379,[::1]:2379?namespace=ha' }).backendKind).to.equal('etcd');
      for (const url of ['etcd://', 'etcd://h1', 'etcd://h1:2379,', 'etcd://h1:2379,h2', 'etcd://h1:99999', 'etcd://h1:2379/keys', 'etcd://user@h1:2379']) {
        let error: unknown;
        try {
          createCoordinator({ url });
        } catch (caught) {
          error = caught;
        }
        expect(error, url).to.be.instanceOf(CoordinationError).with.property('code', 'ERR_COORDINATION_URL');
        expect((error as Error).message, url).to.include(JSON.stringify(url));
      }
    });

    it('an unreachable etcd fails the start within the connect bound, with ERR_COORDINATION_BACKEND, and leaves nothing running', async () => {
      // A port nobody listens on.
      const port = await freePort();
      const c = createCoordinator({ url: `etcd://127.0.0.1:${port}`, heartbeatMs: 200, lockTtlMs: 2_000 });
      open.push(c);
      const t0 = performance.now();
      const failed = await rejection(c.start());
      expect(performance.now() - t0, 'bounded').to.be.below(5_000);
      expect(failed).to.be.instanceOf(CoordinationError).with.property('code', 'ERR_COORDINATION_BACKEND');
      expect((failed as Error).message).to.include(`etcd://127.0.0.1:${port}`);
      expect(c.state).to.equal('disconnected');
    });
  });
});
