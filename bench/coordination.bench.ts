/**
 * Distributed locks on real servers, one connection each, side by side:
 *
 * - Redis: statesmith's acquire + release against the floor of the same two round trips
 *   done by hand (`SET NX PX`, then a compare-and-delete script), and against `redlock`
 *   on one instance (target ≥ 0.8× the floor, ≥ 1.0× redlock).
 * - PostgreSQL: against `pg_try_advisory_lock` + `pg_advisory_unlock` by hand (target
 *   ≥ 0.8× the floor); statesmith's acquire also bumps the fence in the same statement.
 * - etcd: against the same two transactions done by hand with the `etcd3` client (create
 *   the key if absent, on a lease; delete it if its value and create revision match)
 *   (target ≥ 0.8× the floor).
 * - SQLite: against the same two transactions by hand with `better-sqlite3` (the grant's
 *   `BEGIN IMMEDIATE` read, fence upsert and lock row; the release's delete and event row)
 *   (target ≥ 0.8×).
 * - MySQL (MariaDB): against `GET_LOCK` plus the fence upsert in one round trip, then
 *   `RELEASE_LOCK`, by hand (target ≥ 0.8×).
 * - Wake-up: a waiter on another connection, from the holder's release to its grant
 *   (SQLite target: within 50 ms).
 * - Contended: 8 processes on one name for 2 s each; grants per second.
 * - Actor floor, per backend: the floor's own calls run by a one-state XState machine in the
 *   three macrosteps statesmith's coordinator takes (the command, the backend's answer, the
 *   release), with nothing else: no validation, queue, lease loop or reply protocol. No lock
 *   whose grants an actor owns can beat it on this machine; it shows how much of each gap is
 *   the actor model itself and how much is statesmith.
 *
 * statesmith is measured on the compiled package (`dist/`, what users run; `npm run bench`
 * builds it first), as the locksmith and inspector benchmarks are; the sources under tsx carry
 * a `__name` wrapper per closure and class that the package does not. Without `dist/` the
 * sources are measured, and the table says so.
 *
 * Needs the servers the tests use (test/support/servers.ts); a backend that cannot be
 * reached is left out of the table.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { assign, createActor, setup } from 'xstate';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Etcd3 } from 'etcd3';
import Redlock from 'redlock';
import * as source from '../src/index.ts';
import { sharedEtcd, sharedMysql, sharedPostgres, sharedRedis, sqliteUrl } from '../test/support/servers.ts';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { fmtNs, fmtRatio, measure, table, type Result } from './harness.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

type Api = Pick<typeof source, 'createCoordinator' | 'setLogger'>;
const dist = new URL('../dist/src/index.js', import.meta.url);
/** What users run when it is built, else the sources; `build` names which, for the table. */
const { api, build } = existsSync(dist)
  ? { api: (await import(dist.href)) as Api, build: 'dist' }
  : { api: source as Api, build: 'src under tsx (no dist/: run npm run build)' };
const { createCoordinator, setLogger } = api;

type FloorEvent =
  | { readonly type: 'take'; readonly done: (held: unknown) => void }
  | { readonly type: 'taken'; readonly id: string; readonly held: unknown; readonly done: (held: unknown) => void }
  | { readonly type: 'give'; readonly id: string; readonly held: unknown; readonly done: () => void };

/**
 * The actor floor: `take` and `give` (the floor's own calls) run by a one-state machine in three
 * macrosteps, the grant kept in its context as the coordinator keeps it. Returns the loop to
 * measure and a stop.
 */
function actorFloor<T>(take: () => Promise<T>, give: (held: T) => Promise<unknown>): { run(n: number): Promise<void>; stop(): void } {
  const machine = setup({ types: { context: {} as { held: Readonly<Record<string, unknown>>; next: number }, events: {} as FloorEvent } }).createMachine({
    context: { held: {}, next: 0 },
    on: {
      take: {
        actions: [
          assign({ next: ({ context }) => context.next + 1 }),
          ({ context, event, self }) => {
            const id = `grant-${context.next}`;
            const { done } = event as Extract<FloorEvent, { type: 'take' }>;
            void take().then((held) => self.send({ type: 'taken', id, held, done }));
          },
        ],
      },
      taken: {
        actions: [
          assign({
            held: ({ context, event }) => {
              const { id, held } = event as Extract<FloorEvent, { type: 'taken' }>;
              return Object.assign({}, context.held, { [id]: held });
            },
          }),
          ({ event }) => {
            const { id, held, done } = event as Extract<FloorEvent, { type: 'taken' }>;
            done([id, held]);
          },
        ],
      },
      give: {
        actions: [
          assign({
            held: ({ context, event }) => {
              const next: Record<string, unknown> = Object.assign({}, context.held);
              delete next[(event as Extract<FloorEvent, { type: 'give' }>).id];
              return next;
            },
          }),
          ({ event }) => {
            const { held, done } = event as Extract<FloorEvent, { type: 'give' }>;
            void give(held as T).then(done);
          },
        ],
      },
    },
  });
  const actor = createActor(machine).start();
  return {
    run: async (n) => {
      for (let i = 0; i < n; i++) {
        const [id, held] = (await new Promise<unknown>((done) => actor.send({ type: 'take', done }))) as [string, unknown];
        await new Promise<void>((done) => actor.send({ type: 'give', id, held, done }));
      }
    },
    stop: () => actor.stop(),
  };
}

const ACTOR_FLOOR = 'actor floor: the same calls run by a one-state XState machine, three macrosteps';

/** The statesmith row's "other" column: speed against the actor floor. */
const vsActor = (actor: Result, ours: Result): string => `${fmtRatio(actor.nsPerOp / ours.nsPerOp)} the actor floor`;
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
// The least a fenced grant costs: SET NX PX and the fence bump in one script.
const FENCED_ACQUIRE = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end return false";

function withNamespace(base: string): string {
  const url = new URL(base);
  url.searchParams.set('namespace', `bench${randomBytes(4).toString('hex')}`);
  return url.href;
}

async function redisRows(base: string): Promise<Array<Record<string, string>>> {
  const coordinator = createCoordinator({ url: withNamespace(base), agentId: 'bench' });
  await coordinator.start();
  const lock = coordinator.getLock('bench');
  const raw = new Redis(base);
  const redlockClient = new Redis(base);
  const redlock = new Redlock([redlockClient], { retryCount: 0 });
  const actor = actorFloor(
    async () => {
      const token = randomBytes(8).toString('hex');
      await raw.eval(FENCED_ACQUIRE, 2, 'bench:actor', 'bench:actor:fence', token, 30_000);
      return token;
    },
    (token) => raw.eval(RELEASE, 1, 'bench:actor', token),
  );
  try {
    const results = await measure(
      [
        {
          name: 'statesmith DistributedLock acquire + release',
          run: async (n) => {
            for (let i = 0; i < n; i++) await (await lock.acquire())?.release();
          },
        },
        {
          name: 'floor: SET NX PX + compare-and-delete by hand',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              const token = randomBytes(8).toString('hex');
              await raw.set('bench:raw', token, 'PX', 30_000, 'NX');
              await raw.eval(RELEASE, 1, 'bench:raw', token);
            }
          },
        },
        {
          name: 'fenced floor: SET NX PX + fence INCR in one script, then compare-and-delete, by hand',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              const token = randomBytes(8).toString('hex');
              await raw.eval(FENCED_ACQUIRE, 2, 'bench:fenced', 'bench:fenced:fence', token, 30_000);
              await raw.eval(RELEASE, 1, 'bench:fenced', token);
            }
          },
        },
        {
          name: 'redlock (one instance) acquire + release',
          run: async (n) => {
            for (let i = 0; i < n; i++) await (await redlock.acquire(['bench:redlock'], 30_000)).release();
          },
        },
        { name: `${ACTOR_FLOOR} (fenced)`, run: actor.run },
      ],
      { n: 2_000, rounds: 5 },
    );
    const [ours, floor, fenced, theirs, actorRow] = results as [Result, Result, Result, Result, Result];
    return [
      {
        case: `Redis: ${ours.name}`,
        'per op': fmtNs(ours.nsPerOp),
        'speed vs floor': fmtRatio(floor.nsPerOp / ours.nsPerOp),
        other: `${fmtRatio(theirs.nsPerOp / ours.nsPerOp)} redlock, ${fmtRatio(fenced.nsPerOp / ours.nsPerOp)} the fenced floor, ${vsActor(actorRow, ours)}`,
      },
      { case: `Redis: ${floor.name}`, 'per op': fmtNs(floor.nsPerOp), 'speed vs floor': '1.00×', other: '' },
      { case: `Redis: ${fenced.name}`, 'per op': fmtNs(fenced.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / fenced.nsPerOp), other: '' },
      { case: `Redis: ${theirs.name}`, 'per op': fmtNs(theirs.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / theirs.nsPerOp), other: '1.00×' },
      {
        case: `Redis: ${actorRow.name}`,
        'per op': fmtNs(actorRow.nsPerOp),
        'speed vs floor': fmtRatio(floor.nsPerOp / actorRow.nsPerOp),
        other: `${fmtRatio(fenced.nsPerOp / actorRow.nsPerOp)} the fenced floor`,
      },
    ];
  } finally {
    actor.stop();
    await coordinator.stop();
    raw.disconnect();
    redlockClient.disconnect();
  }
}

async function postgresRows(base: string): Promise<Array<Record<string, string>>> {
  const coordinator = createCoordinator({ url: withNamespace(base), agentId: 'bench' });
  await coordinator.start(); // also creates statesmith_fences, which the fenced floor uses
  const lock = coordinator.getLock('bench');
  const raw = new pg.Client({ connectionString: base });
  await raw.connect();
  const actor = actorFloor(
    () =>
      raw.query(
        `WITH l AS (SELECT pg_try_advisory_lock($1::bigint) AS ok)
         INSERT INTO statesmith_fences AS f (namespace, name, fence) SELECT 'bench-actor', 'x', 1 FROM l WHERE l.ok
         ON CONFLICT (namespace, name) DO UPDATE SET fence = f.fence + 1 RETURNING fence`,
        ['44'],
      ),
    () => raw.query('SELECT pg_advisory_unlock($1::bigint)', ['44']),
  );
  try {
    const results = await measure(
      [
        {
          name: 'statesmith DistributedLock acquire + release',
          run: async (n) => {
            for (let i = 0; i < n; i++) await (await lock.acquire())?.release();
          },
        },
        {
          name: 'floor: pg_try_advisory_lock + pg_advisory_unlock by hand',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              await raw.query('SELECT pg_try_advisory_lock($1::bigint)', ['42']);
              await raw.query('SELECT pg_advisory_unlock($1::bigint)', ['42']);
            }
          },
        },
        {
          // The same, plus the durable fence bump statesmith does in the acquire statement:
          // what a fenced lock costs at least (one commit, so one WAL flush, per grant).
          name: 'floor with a durable fence: lock + fence UPSERT, then unlock, by hand',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              await raw.query(
                `WITH l AS (SELECT pg_try_advisory_lock($1::bigint) AS ok)
                 INSERT INTO statesmith_fences AS f (namespace, name, fence) SELECT 'bench-floor', 'x', 1 FROM l WHERE l.ok
                 ON CONFLICT (namespace, name) DO UPDATE SET fence = f.fence + 1 RETURNING fence`,
                ['43'],
              );
              await raw.query('SELECT pg_advisory_unlock($1::bigint)', ['43']);
            }
          },
        },
        { name: `${ACTOR_FLOOR} (durable fence)`, run: actor.run },
      ],
      { n: 2_000, rounds: 5 },
    );
    const [ours, floor, fenced, actorRow] = results as [Result, Result, Result, Result];
    return [
      {
        case: `PostgreSQL: ${ours.name}`,
        'per op': fmtNs(ours.nsPerOp),
        'speed vs floor': fmtRatio(floor.nsPerOp / ours.nsPerOp),
        other: `${fmtRatio(fenced.nsPerOp / ours.nsPerOp)} the fenced floor, ${vsActor(actorRow, ours)}`,
      },
      { case: `PostgreSQL: ${floor.name}`, 'per op': fmtNs(floor.nsPerOp), 'speed vs floor': '1.00×', other: '' },
      { case: `PostgreSQL: ${fenced.name}`, 'per op': fmtNs(fenced.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / fenced.nsPerOp), other: '' },
      {
        case: `PostgreSQL: ${actorRow.name}`,
        'per op': fmtNs(actorRow.nsPerOp),
        'speed vs floor': fmtRatio(floor.nsPerOp / actorRow.nsPerOp),
        other: `${fmtRatio(fenced.nsPerOp / actorRow.nsPerOp)} the fenced floor`,
      },
    ];
  } finally {
    actor.stop();
    await coordinator.stop();
    await raw.end();
  }
}

async function etcdRows(base: string): Promise<Array<Record<string, string>>> {
  const coordinator = createCoordinator({ url: withNamespace(base), agentId: 'bench' });
  await coordinator.start();
  const lock = coordinator.getLock('bench');
  const raw = new Etcd3({ hosts: `http://${new URL(base).host}` });
  // The floor's own lease must outlive the whole measurement (10,000 rounds of each row at
  // ~2-3 ms on this machine kind is past 30 s): a 30 s lease without keep-alive ran out mid-run
  // once, and the floor's put then failed with "requested lease not found".
  const lease = raw.lease(900, { autoKeepAlive: false });
  const leaseId = await lease.grant();
  let taken = 0;
  const actor = actorFloor(
    async () => {
      const token = `a${taken++}`;
      const result = await raw.if('bench-actor/lock', 'Create', '==', 0).then(raw.put('bench-actor/lock').value(token).lease(leaseId)).commit();
      return { token, revision: result.header.revision };
    },
    ({ token, revision }) =>
      raw.if('bench-actor/lock', 'Value', '==', token).and('bench-actor/lock', 'Create', '==', revision).then(raw.delete().key('bench-actor/lock')).commit(),
  );
  try {
    const results = await measure(
      [
        {
          name: 'statesmith DistributedLock acquire + release',
          run: async (n) => {
            for (let i = 0; i < n; i++) await (await lock.acquire())?.release();
          },
        },
        {
          name: 'floor: create-if-absent txn on a lease, then compare-and-delete txn, by hand',
          run: async (n) => {
            const key = 'bench-floor/lock';
            for (let i = 0; i < n; i++) {
              const token = `t${i}`;
              const taken = await raw.if(key, 'Create', '==', 0).then(raw.put(key).value(token).lease(leaseId)).commit();
              await raw.if(key, 'Value', '==', token).and(key, 'Create', '==', taken.header.revision).then(raw.delete().key(key)).commit();
            }
          },
        },
        { name: ACTOR_FLOOR, run: actor.run },
      ],
      { n: 1_000, rounds: 5 },
    );
    const [ours, floor, actorRow] = results as [Result, Result, Result];
    return [
      { case: `etcd: ${ours.name}`, 'per op': fmtNs(ours.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / ours.nsPerOp), other: vsActor(actorRow, ours) },
      { case: `etcd: ${floor.name}`, 'per op': fmtNs(floor.nsPerOp), 'speed vs floor': '1.00×', other: '' },
      { case: `etcd: ${actorRow.name}`, 'per op': fmtNs(actorRow.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / actorRow.nsPerOp), other: '' },
    ];
  } finally {
    actor.stop();
    await coordinator.stop();
    await lease.revoke().catch(() => undefined);
    raw.close();
  }
}

async function sqliteRows(base: string): Promise<Array<Record<string, string>>> {
  const coordinator = createCoordinator({ url: withNamespace(base), agentId: 'bench' });
  await coordinator.start(); // also creates the tables the floor uses
  const lock = coordinator.getLock('bench');
  const raw = new Database(decodeURIComponent(new URL(base).pathname), { timeout: 0 });
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  const lockOf = raw.prepare('SELECT token, fence, expires_at FROM statesmith_locks WHERE ns = ? AND name = ?').safeIntegers(true);
  const fenceUp = raw
    .prepare(
      'INSERT INTO statesmith_fences (ns, name, fence) VALUES (?, ?, ?) ON CONFLICT (ns, name) DO UPDATE SET fence = max(fence + 1, excluded.fence) RETURNING fence',
    )
    .safeIntegers(true);
  const lockPut = raw.prepare(
    'INSERT INTO statesmith_locks (ns, name, token, member, fence, expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ns, name) DO UPDATE SET token = excluded.token, fence = excluded.fence, expires_at = excluded.expires_at',
  );
  const unlock = raw.prepare('DELETE FROM statesmith_locks WHERE ns = ? AND name = ? AND token = ? AND fence = ? RETURNING expires_at');
  const event = raw.prepare('INSERT INTO statesmith_events (ns, channel, payload, at) VALUES (?, ?, ?, ?)');
  const grant = raw.transaction((token: string) => {
    const now = Date.now();
    const row = lockOf.get('bench-floor', 'x') as { expires_at: bigint } | undefined;
    if (row !== undefined && row.expires_at > BigInt(now)) return null;
    const { fence } = fenceUp.get('bench-floor', 'x', BigInt(now) * 1000n) as { fence: bigint };
    lockPut.run('bench-floor', 'x', token, 'bench', fence, now + 30_000);
    return fence;
  });
  const free = raw.transaction((token: string, fence: bigint) => {
    if (unlock.get('bench-floor', 'x', token, fence) !== undefined) event.run('bench-floor', 'locks', 'x', Date.now());
  });
  let taken = 0;
  // The same transactions (on the floor's row, which the floor leaves free between its turns).
  const actor = actorFloor(
    async () => {
      const token = `a${taken++}`;
      return { token, fence: grant.immediate(token) };
    },
    async ({ token, fence }) => {
      if (fence !== null) free.immediate(token, fence);
    },
  );
  try {
    const results = await measure(
      [
        {
          name: 'statesmith DistributedLock acquire + release',
          run: async (n) => {
            for (let i = 0; i < n; i++) await (await lock.acquire())?.release();
          },
        },
        {
          name: 'floor: the grant and release transactions by hand (better-sqlite3, BEGIN IMMEDIATE)',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              const token = `t${i}`;
              const fence = grant.immediate(token);
              // An await per call, as any caller in an event loop has.
              await undefined;
              if (fence !== null) free.immediate(token, fence);
              await undefined;
            }
          },
        },
        { name: ACTOR_FLOOR, run: actor.run },
      ],
      { n: 2_000, rounds: 5 },
    );
    const [ours, floor, actorRow] = results as [Result, Result, Result];
    return [
      { case: `SQLite: ${ours.name}`, 'per op': fmtNs(ours.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / ours.nsPerOp), other: vsActor(actorRow, ours) },
      { case: `SQLite: ${floor.name}`, 'per op': fmtNs(floor.nsPerOp), 'speed vs floor': '1.00×', other: '' },
      { case: `SQLite: ${actorRow.name}`, 'per op': fmtNs(actorRow.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / actorRow.nsPerOp), other: '' },
    ];
  } finally {
    actor.stop();
    await coordinator.stop();
    raw.close();
  }
}

async function mysqlRows(base: string): Promise<Array<Record<string, string>>> {
  const coordinator = createCoordinator({ url: withNamespace(base), agentId: 'bench' });
  await coordinator.start(); // also creates statesmith_fences, which the floor uses
  const lock = coordinator.getLock('bench');
  const url = new URL(base);
  const raw = await mysql.createConnection({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
    multipleStatements: true,
  });
  const key = Buffer.alloc(32, 7);
  const actorKey = Buffer.alloc(32, 8);
  const actor = actorFloor(
    () =>
      raw.query(
        `SET @ok = GET_LOCK('bench_actor', 0);
         INSERT INTO statesmith_fences (k, ns, name, fence) SELECT ?, 'bench-actor', 'x', 1 FROM DUAL WHERE @ok = 1
           ON DUPLICATE KEY UPDATE fence = fence + 1;
         SELECT @ok AS ok, (SELECT fence FROM statesmith_fences WHERE k = ?) AS fence`,
        [actorKey, actorKey],
      ),
    () => raw.query("SELECT RELEASE_LOCK('bench_actor')"),
  );
  try {
    const results = await measure(
      [
        {
          name: 'statesmith DistributedLock acquire + release',
          run: async (n) => {
            for (let i = 0; i < n; i++) await (await lock.acquire())?.release();
          },
        },
        {
          name: 'floor: GET_LOCK + fence upsert in one round trip, then RELEASE_LOCK, by hand',
          run: async (n) => {
            for (let i = 0; i < n; i++) {
              await raw.query(
                `SET @ok = GET_LOCK('bench_floor', 0);
                 INSERT INTO statesmith_fences (k, ns, name, fence) SELECT ?, 'bench-floor', 'x', 1 FROM DUAL WHERE @ok = 1
                   ON DUPLICATE KEY UPDATE fence = fence + 1;
                 SELECT @ok AS ok, (SELECT fence FROM statesmith_fences WHERE k = ?) AS fence`,
                [key, key],
              );
              await raw.query("SELECT RELEASE_LOCK('bench_floor')");
            }
          },
        },
        { name: ACTOR_FLOOR, run: actor.run },
      ],
      { n: 1_000, rounds: 5 },
    );
    const [ours, floor, actorRow] = results as [Result, Result, Result];
    return [
      { case: `MySQL: ${ours.name}`, 'per op': fmtNs(ours.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / ours.nsPerOp), other: vsActor(actorRow, ours) },
      { case: `MySQL: ${floor.name}`, 'per op': fmtNs(floor.nsPerOp), 'speed vs floor': '1.00×', other: '' },
      { case: `MySQL: ${actorRow.name}`, 'per op': fmtNs(actorRow.nsPerOp), 'speed vs floor': fmtRatio(floor.nsPerOp / actorRow.nsPerOp), other: '' },
    ];
  } finally {
    actor.stop();
    await coordinator.stop();
    await raw.end();
  }
}

/** From a holder's release to a waiting member's grant, on two connections: median and p99 of `runs`, in ms. */
async function wakeUp(base: string, runs: number): Promise<{ medianMs: number; p99Ms: number }> {
  const url = withNamespace(base);
  const holder = createCoordinator({ url, agentId: 'holder' });
  const waiter = createCoordinator({ url, agentId: 'waiter' });
  await holder.start();
  await waiter.start();
  const samples: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const held = await holder.getLock('wake').acquire();
      const waiting = waiter.getLock('wake').acquire({ blocking: 10_000 });
      // Let the waiter be refused once and start waiting before the release.
      await new Promise((resolve) => setTimeout(resolve, 30));
      const released = performance.now();
      await held?.release();
      const granted = await waiting;
      samples.push(performance.now() - released);
      await granted?.release();
    }
  } finally {
    await holder.stop();
    await waiter.stop();
  }
  samples.sort((a, b) => a - b);
  return {
    medianMs: samples[Math.floor(samples.length / 2)] as number,
    p99Ms: samples[Math.min(samples.length - 1, Math.ceil(samples.length * 0.99) - 1)] as number,
  };
}

/** 8 processes taking one lock in a loop for `ms`; total grants per second. */
async function contended(url: string, ms: number): Promise<number> {
  const namespaced = withNamespace(url);
  const worker = new URL('./coordination.worker.ts', import.meta.url);
  const counts = await Promise.all(
    Array.from({ length: 8 }, (_, i) => {
      const child = fork(worker, [namespaced, String(ms), `contender-${i}`], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      return new Promise<number>((resolve, reject) => {
        child.once('message', (grants) => resolve(grants as number));
        child.once('exit', (code) => code !== 0 && reject(new Error(`contender exited with ${code}`)));
      });
    }),
  );
  return counts.reduce((a, b) => a + b, 0) / (ms / 1000);
}

export async function benchCoordination(): Promise<void> {
  setLogger(quiet);
  try {
    const redis = await sharedRedis().catch(() => undefined);
    const postgres = await sharedPostgres().catch(() => undefined);
    const etcd = await sharedEtcd().catch(() => undefined);
    const mysqlUrl = await sharedMysql().catch(() => undefined);
    const sqlite = sqliteUrl('bench-coordination.db');
    const rows = [
      ...(redis ? await redisRows(redis) : []),
      ...(postgres ? await postgresRows(postgres) : []),
      ...(etcd ? await etcdRows(etcd) : []),
      ...(await sqliteRows(sqlite)),
      ...(mysqlUrl ? await mysqlRows(mysqlUrl) : []),
    ];
    if (rows.length > 0) {
      table(`Distributed lock acquire + release, one connection (2,000 ops × 5 rounds, median; statesmith from ${build})`, rows);
      console.log('target: ≥ 0.80× the (fenced) floor; on Redis ≥ 1.00× redlock. "other": speed vs redlock, the fenced floor and the actor floor');
    }
    const contention: Array<Record<string, string>> = [];
    for (const [name, url] of [
      ['Redis', redis],
      ['PostgreSQL', postgres],
      ['etcd', etcd],
      ['SQLite', sqlite],
      ['MySQL (MariaDB)', mysqlUrl],
    ] as const) {
      if (url === undefined) continue;
      contention.push({ backend: name, 'grants/s (8 processes, one name, 2 s)': Math.round(await contended(url, 2_000)).toLocaleString() });
    }
    if (contention.length > 0) table('Contended: 8 processes on one lock name', contention);
    const wakes: Array<Record<string, string>> = [];
    for (const [name, url] of [
      ['Redis (pub/sub)', redis],
      ['PostgreSQL (NOTIFY)', postgres],
      ['SQLite (data_version, polled every 10 ms)', sqlite],
      ['MySQL (IS_FREE_LOCK, polled every 20 ms)', mysqlUrl],
    ] as const) {
      if (url === undefined) continue;
      const { medianMs, p99Ms } = await wakeUp(url, 40);
      wakes.push({ backend: name, 'median ms': medianMs.toFixed(1), 'p99 ms': p99Ms.toFixed(1) });
    }
    table("Wake-up: from a release to the waiting member's grant, another connection (40 runs)", wakes);
    console.log('target: SQLite within 50 ms');
  } finally {
    setLogger(null);
  }
}
