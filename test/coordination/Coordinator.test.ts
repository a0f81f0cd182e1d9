/**
 * The coordinator's logic on simulated time: leases, renewals, local deadlines, the
 * heartbeat and reconnect back-off, against the memory backend (and a flaky one).
 */
import { expect } from 'chai';
import { CoordinationError, createCoordinator, LockLostError, ManualClock, type Coordinator, type CoordinatorState } from '../../src/index.ts';
import { setModuleLoader } from '../../src/coordination/backends/common.ts';
import type { Backend } from '../../src/coordination/types.ts';
import { kBackendFactory } from '../../src/coordination/options.ts';
import { MemoryBackend, resetMemoryStores } from '../../src/coordination/backends/memory.ts';
import { capabilitiesOf } from '../../src/coordination/backends/common.ts';
import { rejection, settle } from '../support/async.ts';
import { sharedRedis } from '../support/servers.ts';

/** A memory backend whose server can be "down": every call fails while it is. */
class FlakyBackend implements Backend {
  readonly kind = 'memory' as const;
  readonly capabilities = capabilitiesOf({ distributed: true, sessionBased: false, watch: true });
  down = false;
  connects = 0;
  renewals = 0;
  refuseRenewals = false;
  readonly #inner: MemoryBackend;
  readonly #lost: Array<(error: unknown) => void> = [];
  constructor(clock: ManualClock) {
    this.#inner = new MemoryBackend({ url: new URL('memory://flaky'), memberId: 'm', clock, commandTimeoutMs: 100 });
  }
  #check(): void {
    if (this.down) throw new Error('server down');
  }
  async connect(): Promise<void> {
    this.connects++;
    this.#check();
    await this.#inner.connect();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  async ping(): Promise<void> {
    this.#check();
  }
  /** While set, a grant's answer waits for it. */
  gate: Promise<void> | undefined;
  async tryAcquire(name: string, token: string, ttlMs: number): Promise<bigint | null> {
    this.#check();
    const fence = await this.#inner.tryAcquire(name, token, ttlMs);
    await this.gate;
    return fence;
  }
  async renew(name: string, token: string, ttlMs: number): Promise<boolean> {
    this.renewals++;
    this.#check();
    if (this.refuseRenewals) return false;
    return this.#inner.renew(name, token, ttlMs);
  }
  async release(name: string, token: string): Promise<boolean> {
    this.#check();
    return this.#inner.release(name, token);
  }
  onReleased(listener: (name: string) => void): void {
    this.#inner.onReleased(listener);
  }
  onLost(listener: (error: unknown) => void): void {
    this.#lost.push(listener);
  }
  dropConnection(): void {
    for (const listener of this.#lost) listener(new Error('connection reset'));
  }
  /** A client's raw error (no statesmith code), as gRPC or ioredis throw. */
  #raw(): never {
    throw Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 });
  }
  rawFailures = false;
  async breakLock(name: string): Promise<boolean> {
    if (this.rawFailures) this.#raw();
    this.#check();
    return (await this.#inner.breakLock?.(name)) ?? false;
  }
  get records(): NonNullable<Backend['records']> {
    const inner = this.#inner.records as NonNullable<Backend['records']>;
    const guard = <T>(call: () => Promise<T>): Promise<T> =>
      this.rawFailures ? Promise.reject(Object.assign(new Error('Command timed out'), { code: 14 })) : call();
    return {
      onLease: inner.onLease,
      put: (dir, id, value, ttlMs) => guard(() => inner.put(dir, id, value, ttlMs)),
      get: (dir, id) => guard(() => inner.get(dir, id)),
      list: (dir) => guard(() => inner.list(dir)),
      delete: (dir, id, value) => guard(() => inner.delete(dir, id, value)),
    } as NonNullable<Backend['records']>;
  }
}

describe('Coordinator on simulated time', () => {
  let clock: ManualClock;
  const open: Coordinator[] = [];
  beforeEach(() => {
    clock = new ManualClock();
    resetMemoryStores();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.stop()));
  });

  function make(options: Parameters<typeof createCoordinator>[0] = {}): Coordinator {
    const c = createCoordinator({ clock, random: () => 0, ...options });
    open.push(c);
    return c;
  }

  function flaky(options: Parameters<typeof createCoordinator>[0] = {}): { c: Coordinator; backend: FlakyBackend } {
    const backend = new FlakyBackend(clock);
    const c = createCoordinator({ clock, random: () => 0, heartbeatMs: 1_000, ...options, [kBackendFactory]: () => backend } as never);
    open.push(c);
    return { c, backend };
  }

  it('renewals keep a memory lock well past its TTL', async () => {
    const one = make({ agentId: 'one', lockTtlMs: 3_000 });
    const two = make({ agentId: 'two', lockTtlMs: 3_000 });
    await one.start();
    await two.start();
    const held = await one.getLock('v').acquire();
    // Renewals every 1 s keep it: after 10 s it is still held.
    await clock.advance(10_000);
    expect(held?.held).to.equal(true);
    expect(await two.getLock('v').acquire({ blocking: false })).to.equal(null);
    expect(clock.now()).to.equal(10_000);
    await held?.release();
  });

  it('renews every TTL/3 with the full TTL, and a refused renewal aborts the handle with LockLostError', async () => {
    const { c, backend } = flaky({ lockTtlMs: 3_000 });
    await c.start();
    const held = await c.getLock('v').acquire();
    await clock.advance(999);
    expect(backend.renewals).to.equal(0);
    await clock.advance(1);
    expect(backend.renewals).to.equal(1);
    await clock.advance(3_000);
    expect(backend.renewals).to.equal(4);
    backend.refuseRenewals = true;
    await clock.advance(1_000);
    expect(held?.signal.aborted).to.equal(true);
    const reason = held?.signal.reason as LockLostError;
    expect(reason.code).to.equal('ERR_LOCK_LOST');
    expect(reason.message).to.match(/refused to renew/);
    expect(await held?.release()).to.equal(false);
  });

  it('renews all grants in one batch per round, with one timer for the coordinator, however many grants it holds', async () => {
    const { c, backend } = flaky({ lockTtlMs: 3_000, heartbeatMs: 60_000 });
    const batches: number[] = [];
    (backend as unknown as Backend).renewAll = async (grants, ttlMs) => {
      batches.push(grants.length);
      return Promise.all(grants.map(({ name, token }) => backend.renew(name, token, ttlMs)));
    };
    await c.start();
    const timersBefore = clock.pendingTimers;
    const first = await c.getLock('a').acquire();
    await clock.advance(500);
    const others = await Promise.all(['b', 'c', 'd'].map((name) => c.getLock(name).acquire()));
    // One renewal timer for all four grants (no timer, and no child, per grant).
    expect(clock.pendingTimers - timersBefore).to.equal(1);
    expect(Object.keys(c.actor.getSnapshot().children)).to.deep.equal(['backend']);
    // The oldest grant is due at 1000 ms: the whole batch goes then, in one call.
    await clock.advance(500);
    expect(batches).to.deep.equal([4]);
    await clock.advance(1_000);
    expect(batches).to.deep.equal([4, 4]);
    expect([first, ...others].every((h) => h?.held === true)).to.equal(true);
    await Promise.all([first, ...others].map((h) => h?.release()));
    expect(clock.pendingTimers - timersBefore).to.equal(0);
  });

  it('a grant whose answer comes after the coordinator actor stopped is given back, not kept by nobody', async () => {
    const { c, backend } = flaky({ lockTtlMs: 3_000 });
    await c.start();
    let open!: () => void;
    backend.gate = new Promise<void>((resolve) => (open = resolve));
    const waiting = c.getLock('v').acquire();
    waiting.catch(() => undefined);
    await clock.advance(0);
    c.actor.stop();
    backend.gate = undefined;
    open();
    await rejection(waiting);
    await clock.advance(0);
    // Free at once for another member: no TTL to wait out.
    const other = make({ agentId: 'other', url: 'memory://flaky' });
    await other.start();
    expect(await other.getLock('v').acquire({ blocking: false })).to.not.equal(null);
    // Its facade answers at once, never leaving a caller hanging on an actor that cannot reply.
    await c.stop();
    expect(((await rejection(c.start())) as { code?: string }).code).to.equal('ERR_ACTOR_STOPPED');
  });

  it('when renewals cannot reach the server, the handle is aborted at the local lease deadline, not later', async () => {
    const { c, backend } = flaky({ lockTtlMs: 3_000, heartbeatMs: 60_000 });
    await c.start();
    const held = await c.getLock('v').acquire();
    backend.down = true;
    await clock.advance(2_900);
    expect(held?.signal.aborted).to.equal(false);
    // TTL less the 2% drift margin: 3000 - 60.
    await clock.advance(40);
    expect(held?.signal.aborted).to.equal(true);
    expect((held?.signal.reason as Error).message).to.match(/lease ran out/);
  });

  it('a failed heartbeat moves to reconnecting, loses the locks, and retries with exponential back-off up to the cap', async () => {
    const { c, backend } = flaky({ initialReconnectBackoffMs: 100, maxReconnectBackoffMs: 1_000 });
    const states: CoordinatorState[] = [];
    c.state$.subscribe((s) => states.push(s));
    await c.start();
    const held = await c.getLock('v').acquire();
    backend.down = true;
    await clock.advance(1_000); // heartbeat fails
    expect(c.state).to.equal('reconnecting');
    expect(held?.signal.aborted).to.equal(true);
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      delays.push(c.actor.getSnapshot().context.backoffMs);
      await clock.advance(c.actor.getSnapshot().context.backoffMs);
      await settle();
    }
    expect(delays).to.deep.equal([100, 200, 400, 800, 1_000, 1_000]);
    backend.down = false;
    await clock.advance(c.actor.getSnapshot().context.backoffMs);
    await settle();
    expect(c.state).to.equal('connected');
    expect(c.actor.getSnapshot().context.attempt).to.equal(0);
    expect(states).to.deep.equal(['disconnected', 'connecting', 'connected', 'reconnecting', 'connected']);
    // The lost lease could not be given back while the server was down: it expires with its TTL.
    expect(await c.getLock('v').acquire({ blocking: false })).to.equal(null);
    await clock.advance(30_000);
    const again = await c.getLock('v').acquire({ blocking: false });
    expect(again?.fence).to.equal(2n);
  });

  it('jitter only shortens a delay, never below the initial back-off', () => {
    const c = createCoordinator({ random: () => 1, initialReconnectBackoffMs: 100, maxReconnectBackoffMs: 1_000 });
    expect([1, 2, 3, 4, 5].map((n) => c.engine.backoffDelay(n))).to.deep.equal([100, 160, 320, 640, 800]);
  });

  it('a dropped connection reported by the backend reconnects at once, without waiting for the heartbeat', async () => {
    const { c, backend } = flaky({ heartbeatMs: 60_000 });
    await c.start();
    const held = await c.getLock('v').acquire();
    backend.dropConnection();
    expect(c.state).to.equal('reconnecting');
    expect(held?.signal.aborted).to.equal(true);
    await clock.advance(100);
    await settle();
    expect(c.state).to.equal('connected');
    expect(backend.connects).to.equal(2);
  });

  it('a blocked acquire waits through a reconnect and gets the lock after it', async () => {
    const { c, backend } = flaky({ initialReconnectBackoffMs: 100, pollIntervalMs: 50 });
    await c.start();
    const first = await c.getLock('v').acquire();
    const waiting = c.getLock('v').acquire({ blocking: 10_000 });
    backend.dropConnection(); // first is lost; its server-side lease remains until its TTL
    await clock.advance(100);
    await settle();
    expect(c.state).to.equal('connected');
    expect(first?.held).to.equal(false);
    await clock.advance(30_000);
    const second = await waiting;
    expect(second?.fence).to.equal(2n);
  });

  it("an acquire sent while reconnecting, to the facade or as the actor's command, waits through the reconnect within its timeoutMs", async () => {
    const { c, backend } = flaky({ initialReconnectBackoffMs: 100, pollIntervalMs: 50 });
    await c.start();
    backend.down = true;
    await clock.advance(1_000); // heartbeat fails
    expect(c.state).to.equal('reconnecting');
    const viaFacade = c.getLock('w').acquire({ timeoutMs: 10_000 });
    const replies: Array<{ type: string; code?: string }> = [];
    c.actor.on('*', (reply) => replies.push(reply as never));
    c.actor.send({ type: 'statesmith.coordinator.acquire', lock: 'x', timeoutMs: 10_000 });
    await clock.advance(10);
    await settle();
    expect(
      replies.map((r) => r.code ?? r.type),
      'nothing refused while reconnecting',
    ).to.deep.equal([]);
    backend.down = false;
    for (let i = 0; i < 10 && c.state !== 'connected'; i++) {
      await clock.advance(200);
      await settle();
    }
    expect(c.state).to.equal('connected');
    const handle = await viaFacade;
    expect(handle?.held).to.equal(true);
    for (let i = 0; i < 5 && !replies.some((r) => r.type === 'statesmith.coordinator.acquired'); i++) {
      await clock.advance(50);
      await settle();
    }
    expect(replies.map((r) => r.type)).to.include('statesmith.coordinator.acquired');
    // With no time to wait, it is refused at once, as before.
    backend.down = true;
    await clock.advance(60_000);
    expect(c.state).to.equal('reconnecting');
    expect(await rejection(c.getLock('z').acquire({ blocking: false }))).to.have.property('code', 'ERR_COORDINATION_STATE');
  });

  it("joinGroup, getMembers, leader() and breakLock wrap a client's raw error as ERR_COORDINATION_BACKEND, with it as the cause", async () => {
    const { c, backend } = flaky({ heartbeatMs: 60_000 });
    await c.start();
    backend.rawFailures = true;
    for (const [what, call] of [
      ['joinGroup', () => c.joinGroup('g')],
      ['getMembers', () => c.getMembers('g')],
      ['leader', () => c.getElection('e').leader()],
      ['breakLock', () => c.breakLock('x')],
    ] as const) {
      const error = (await rejection((call as () => Promise<unknown>)())) as CoordinationError;
      expect(error, what).to.be.instanceOf(CoordinationError);
      expect(error.code, what).to.equal('ERR_COORDINATION_BACKEND');
      expect((error.cause as { code?: unknown }).code, what).to.equal(14);
    }
    backend.rawFailures = false;
  });

  it('start() fails when the backend cannot be reached, and the coordinator may be started again', async () => {
    const { c, backend } = flaky();
    backend.down = true;
    const error = (await rejection(c.start())) as CoordinationError;
    expect(error.code).to.equal('ERR_COORDINATION_BACKEND');
    expect(c.state).to.equal('disconnected');
    backend.down = false;
    await c.start();
    expect(c.state).to.equal('connected');
  });

  it('stop() during a reconnect stops the retries', async () => {
    const { c, backend } = flaky();
    await c.start();
    backend.down = true;
    await clock.advance(1_000);
    expect(c.state).to.equal('reconnecting');
    await c.stop();
    expect(c.state).to.equal('stopped');
    expect(clock.pendingTimers).to.equal(0);
  });
});

describe('createCoordinator: bad input and missing clients', () => {
  afterEach(() => setModuleLoader(null));

  it('rejects malformed URLs, unknown schemes and bad options with typed errors', () => {
    const cases: Array<[() => unknown, string, RegExp]> = [
      [() => createCoordinator({ url: 'not a url' }), 'ERR_COORDINATION_URL', /must be a URL such as memory:\/\//],
      [
        () => createCoordinator({ url: 'zookeeper://127.0.0.1:2181' }),
        'ERR_COORDINATION_URL',
        /scheme must be one of memory:\/\/, redis:\/\/.*received "zookeeper:"/,
      ],
      [() => createCoordinator({ url: 42 as never }), 'ERR_INVALID_ARG_TYPE', /"options.url"/],
      [() => createCoordinator({ heartbeatMs: 0 }), 'ERR_OUT_OF_RANGE', /heartbeatMs.*> 0/],
      [() => createCoordinator({ lockTtlMs: -1 }), 'ERR_OUT_OF_RANGE', /lockTtlMs/],
      [() => createCoordinator({ initialReconnectBackoffMs: 500, maxReconnectBackoffMs: 100 }), 'ERR_OUT_OF_RANGE', /maxReconnectBackoffMs/],
      [() => createCoordinator({ agentId: '' }), 'ERR_INVALID_ARG_VALUE', /agentId/],
      [() => createCoordinator().getLock(''), 'ERR_INVALID_ARG_VALUE', /"name"/],
    ];
    for (const [make, code, message] of cases) {
      let caught: { code?: string; message: string } | undefined;
      try {
        make();
      } catch (error) {
        caught = error as { code?: string; message: string };
      }
      expect(caught?.code, String(make)).to.equal(code);
      expect(caught?.message).to.match(message);
    }
  });

  it('a URL whose client is not installed fails start() with ERR_COORDINATION_CLIENT_MISSING and how to fix it', async () => {
    setModuleLoader(async (specifier) => {
      throw Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
    });
    for (const [url, client] of [
      ['redis://127.0.0.1:6379', 'ioredis'],
      ['postgresql://127.0.0.1/test', 'pg'],
      ['sqlite:///tmp/statesmith-missing-client.db', 'better-sqlite3'],
      ['mysql://root@127.0.0.1:3306/test', 'mysql2'],
    ] as const) {
      const c = createCoordinator({ url });
      const error = (await rejection(c.start())) as CoordinationError;
      expect(error.code).to.equal('ERR_COORDINATION_CLIENT_MISSING');
      expect(error.message).to.include(`npm install ${client}`);
      expect(c.state).to.equal('disconnected');
    }
  });

  it('acquire() checks its options', async () => {
    const c = createCoordinator();
    await c.start();
    const lock = c.getLock('x');
    expect(((await rejection(lock.acquire({ blocking: -1 }))) as { code: string }).code).to.equal('ERR_OUT_OF_RANGE');
    expect(((await rejection(lock.acquire({ blocking: 'yes' as never }))) as { code: string }).code).to.equal('ERR_INVALID_ARG_TYPE');
    expect(((await rejection(lock.acquire({ signal: {} as never }))) as { code: string }).code).to.equal('ERR_INVALID_ARG_TYPE');
    await c.stop();
  });
});

describe('rediss:// against a plaintext Redis', function () {
  this.timeout(15_000);

  it('fails fast, saying the TLS handshake did not complete, not a bare timeout', async function () {
    const url = await sharedRedis();
    if (url === undefined) this.skip(); // outside CI only: no Redis here and none could be started (under CI=true sharedRedis throws)
    const plain = new URL(url as string);
    const c = createCoordinator({ url: `rediss://${plain.host}` });
    const started = Date.now();
    const error = (await rejection(c.start())) as CoordinationError;
    expect(error.code).to.equal('ERR_COORDINATION_BACKEND');
    expect(error.message).to.match(/the TLS handshake did not complete: is the server speaking TLS\?/);
    expect(Date.now() - started).to.be.lessThan(10_000);
    await c.stop();
  });
});

describe('connection errors name the URL the user gave', () => {
  it('an etcd that cannot be reached: the given URL, its password masked, and no gRPC boilerplate', async () => {
    for (const [url, shown] of [
      ['etcd://127.0.0.1:1,127.0.0.1:2', 'etcd://127.0.0.1:1,127.0.0.1:2'],
      ['redis://user:secret@127.0.0.1:1', 'redis://user:***@127.0.0.1:1'],
    ] as const) {
      const c = createCoordinator({ url, initialReconnectBackoffMs: 10 });
      const error = (await rejection(c.start())) as CoordinationError;
      await c.stop();
      expect(error.code, url).to.equal('ERR_COORDINATION_BACKEND');
      expect(error.message, url).to.include(`could not connect to ${shown}:`);
      expect(error.message, url).to.not.match(/secret|endpoints=|Resolution note|Last error/);
    }
  });
});
