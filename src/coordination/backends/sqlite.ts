/**
 * The SQLite backend (`sqlite:///abs/path/coord.db`, with `better-sqlite3` 12): several
 * processes of one host share a lock file with no server. One connection per coordinator.
 *
 * - WAL mode, so readers never wait for the writer, and `synchronous = NORMAL`: a commit
 *   survives its process being killed (the case locks must cover), not a power cut, which
 *   takes every holder with it anyway.
 * - A grant is one `BEGIN IMMEDIATE` transaction: it reads the name's row, refuses while
 *   the lease on it is live by the wall clock (which the processes of one host share),
 *   and writes the new holder and its fence. The fence is max(previous + 1, the wall clock
 *   in microseconds), kept in `statesmith_fences`, which nothing ever deletes from: it
 *   keeps growing after the file is restored from a backup, or recreated.
 * - Renew and release compare the holder's token and fence, so a stale holder never
 *   touches a newer grant.
 * - The event loop never waits on the file lock: `busy_timeout` is 0, and a transaction
 *   that finds the file busy is retried asynchronously with a jittered back-off, up to the
 *   coordinator's command bound.
 * - Wake-ups (a release, a broken lock, a locksmith's message) are rows of
 *   `statesmith_events`. While this process listens, it looks at `PRAGMA data_version` (a
 *   read of shared memory, no I/O) every `pollMs` (default 10 ms) and reads the new rows
 *   only when another connection committed: a waiter wakes within about 10 ms of a release.
 * - The file is checked before every grant, renewal and record put, and at every heartbeat
 *   (a `stat` of the path against the inode opened): deleted or replaced under a running
 *   coordinator, it is a `CoordinationError` (`ERR_COORDINATION_STORE_GONE`) and a lost
 *   connection, never a split between processes that opened different files. Releases and
 *   reads skip the check: on a lost file they cannot make a second holder.
 * - The calls are synchronous and short (no `fsync` per commit in WAL with `NORMAL`): a
 *   command runs in its caller's turn unless one before it waits on a busy file.
 *
 * Not promised: a file on a network file system (its locking is not what SQLite's WAL
 * needs: SQLite docs, "WAL mode" and "How To Corrupt An SQLite Database File"), processes on
 * different hosts, and wall-clock steps larger than the lease (a step forward ends leases
 * early; the fence still refuses the old holder's writes).
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { statSync } from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import { CoordinationError } from '../../errors.ts';
import { getLogger } from '../../logger.ts';
import { capabilitiesOf, ChannelListeners, namespaceOf, pollMsOf, sqlitePath } from './common.ts';
import { databaseClass, isBusy, openWal, retryWhileBusy } from '../../sqlite.ts';
import type { Backend, BackendCapabilities, BackendOptions, MessageBus, RecordStore } from '../types.ts';

type Database = BetterSqlite3.Database;
type DatabaseConstructor = new (filename: string, options?: BetterSqlite3.Options) => Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;
type Transaction = BetterSqlite3.Transaction<(fn: (sql: Prepared) => unknown) => unknown>;

/** The channel of lock wake-ups in the events table; messages go under `m:<channel>`. */
const LOCKS = 'locks';
/** How long an event row is kept: far past any poll interval, so a slow listener still reads it. */
const EVENT_KEEP_MS = 60_000;
/** How often the rows older than that are swept (by whichever process pings). */
const SWEEP_EVERY_MS = 10_000;

const SCHEMA = [
  'CREATE TABLE IF NOT EXISTS statesmith_fences (ns TEXT NOT NULL, name TEXT NOT NULL, fence INTEGER NOT NULL, PRIMARY KEY (ns, name)) WITHOUT ROWID',
  `CREATE TABLE IF NOT EXISTS statesmith_locks (ns TEXT NOT NULL, name TEXT NOT NULL, token TEXT NOT NULL, member TEXT NOT NULL,
     fence INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (ns, name)) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS statesmith_records (ns TEXT NOT NULL, dir TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,
     expires_at INTEGER NOT NULL, PRIMARY KEY (ns, dir, id)) WITHOUT ROWID`,
  `CREATE TABLE IF NOT EXISTS statesmith_events (id INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, channel TEXT NOT NULL,
     payload TEXT NOT NULL, at INTEGER NOT NULL)`,
  'CREATE INDEX IF NOT EXISTS statesmith_events_at ON statesmith_events (at)',
];

/** A hold as `holderOf` names it, `<fence>:<token>`: one grant. */
function holdParts(hold: string): [bigint, string] {
  const at = hold.indexOf(':');
  const fence = hold.slice(0, at);
  return [/^\d+$/.test(fence) ? BigInt(fence) : -1n, hold.slice(at + 1)];
}

/** A TTL as whole milliseconds a row can store (`Infinity` becomes a lease of 2^47 ms, about 4,000 years). */
const ttlOf = (ms: number): number => Math.max(1, Math.ceil(Math.min(ms, 2 ** 47)));

interface Prepared {
  lockOf: Statement;
  fenceUp: Statement;
  lockPut: Statement;
  renew: Statement;
  release: Statement;
  breakAny: Statement;
  breakHold: Statement;
  holder: Statement;
  isHolder: Statement;
  event: Statement;
  events: Statement;
  lastEvent: Statement;
  sweep: Statement;
  recordPut: Statement;
  recordGet: Statement;
  recordList: Statement;
  recordSweep: Statement;
  recordDelete: Statement;
}

export class SqliteBackend implements Backend {
  readonly kind = 'sqlite' as const;
  /** Commands run one at a time, in the order sent. */
  readonly ordered = true;
  readonly capabilities: BackendCapabilities = capabilitiesOf({ distributed: true, sessionBased: false, watch: false });
  readonly #options: BackendOptions;
  readonly #Database: DatabaseConstructor;
  readonly #path: string;
  readonly #ns: string;
  readonly #pollMs: number;
  readonly #released: Array<(name: string) => void> = [];
  readonly #lost: Array<(error: unknown) => void> = [];
  /** name → the grant this connection holds of it. */
  readonly #held = new Map<string, { token: string; fence: bigint }>();
  readonly #channels = new ChannelListeners();
  #db: Database | undefined;
  #sql: Prepared | undefined;
  /** One transaction function for every write: `immediate(fn)` runs `fn` inside `BEGIN IMMEDIATE`. */
  #transaction: Transaction | undefined;
  /** The file opened, by device and inode: another file at the path is a lost store. */
  #file: { dev: number; ino: number } | undefined;
  #generation = 0;
  #tail: Promise<unknown> = Promise.resolve();
  /** Commands queued behind a busy file. */
  #waiting = 0;
  #listening = false;
  #poller: ReturnType<typeof setInterval> | undefined;
  #lastEvent = 0;
  #dataVersion = -1;
  /** This connection wrote an event: its own commits do not move `data_version`. */
  #wroteEvent = false;
  #lastSweep = 0;

  readonly messages: MessageBus = {
    publish: async (channel, payload) => {
      await this.#write((sql) => {
        sql.event.run(this.#ns, `m:${channel}`, payload, Date.now());
        this.#wroteEvent = true;
      });
    },
    subscribe: async (channel, listener) => {
      return this.#channels.add(
        `m:${channel}`,
        listener,
        async () => this.#poll(true),
        async () => this.#poll(false),
      );
    },
  };

  readonly records: RecordStore = {
    onLease: false,
    put: async (dir, id, value, ttlMs) => {
      await this.#write((sql) => sql.recordPut.run(this.#ns, dir, id, value, Date.now() + ttlOf(ttlMs)), true);
    },
    get: async (dir, id) => {
      const row = await this.#read((sql) => sql.recordGet.get(this.#ns, dir, id, Date.now()) as { value: string } | undefined);
      return row?.value ?? null;
    },
    list: async (dir) => {
      // The dead are swept as the living are read: nothing else deletes them.
      return this.#write((sql) => {
        const now = Date.now();
        sql.recordSweep.run(this.#ns, dir, now);
        return sql.recordList.all(this.#ns, dir, now) as Array<{ id: string; value: string }>;
      });
    },
    delete: async (dir, id, value) => {
      const result = await this.#write((sql) => sql.recordDelete.run(this.#ns, dir, id, value ?? null, value ?? null));
      return result.changes > 0;
    },
  };

  constructor(options: BackendOptions, module: unknown) {
    this.#options = options;
    this.#Database = databaseClass(module);
    this.#path = sqlitePath(options.url);
    this.#ns = namespaceOf(options.url);
    this.#pollMs = pollMsOf(options.url, 10);
  }

  async connect(): Promise<void> {
    await this.close();
    const generation = ++this.#generation;
    let db: Database;
    try {
      db = await openWal(this.#Database, this.#path, this.#options.commandTimeoutMs, (error) => this.#busyError(error));
    } catch (error) {
      if (error instanceof CoordinationError) throw error;
      throw new CoordinationError('ERR_COORDINATION_BACKEND', `cannot open the SQLite file ${JSON.stringify(this.#path)}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    try {
      await this.#retry(() =>
        db
          .transaction(() => {
            for (const statement of SCHEMA) db.exec(statement);
          })
          .immediate(),
      );
      const sql = (this.#sql = this.#prepare(db));
      this.#transaction = db.transaction((fn: (sql: Prepared) => unknown) => fn(sql));
      const stat = statSync(this.#path);
      this.#file = { dev: stat.dev, ino: stat.ino };
    } catch (error) {
      db.close();
      throw error;
    }
    if (generation !== this.#generation) {
      db.close();
      throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the SQLite backend was closed while it connected');
    }
    this.#db = db;
    this.#tail = Promise.resolve();
    this.#waiting = 0;
  }

  #prepare(db: Database): Prepared {
    const big = (sql: string): Statement => db.prepare(sql).safeIntegers(true);
    return {
      lockOf: big('SELECT token, fence, expires_at FROM statesmith_locks WHERE ns = ? AND name = ?'),
      fenceUp: big(
        `INSERT INTO statesmith_fences (ns, name, fence) VALUES (?, ?, ?)
         ON CONFLICT (ns, name) DO UPDATE SET fence = max(fence + 1, excluded.fence) RETURNING fence`,
      ),
      lockPut: db.prepare(
        `INSERT INTO statesmith_locks (ns, name, token, member, fence, expires_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (ns, name) DO UPDATE SET token = excluded.token, member = excluded.member, fence = excluded.fence, expires_at = excluded.expires_at`,
      ),
      renew: db.prepare('UPDATE statesmith_locks SET expires_at = ? WHERE ns = ? AND name = ? AND token = ? AND fence = ? AND expires_at > ?'),
      release: big('DELETE FROM statesmith_locks WHERE ns = ? AND name = ? AND token = ? AND fence = ? RETURNING expires_at'),
      breakAny: big('DELETE FROM statesmith_locks WHERE ns = ? AND name = ? AND expires_at > ? RETURNING token'),
      breakHold: big('DELETE FROM statesmith_locks WHERE ns = ? AND name = ? AND expires_at > ? AND fence = ? AND token = ? RETURNING token'),
      holder: big('SELECT member, token, fence FROM statesmith_locks WHERE ns = ? AND name = ? AND expires_at > ?'),
      isHolder: db.prepare('SELECT 1 AS ok FROM statesmith_locks WHERE ns = ? AND name = ? AND token = ? AND expires_at > ?'),
      event: db.prepare('INSERT INTO statesmith_events (ns, channel, payload, at) VALUES (?, ?, ?, ?)'),
      events: db.prepare('SELECT id, channel, payload FROM statesmith_events WHERE id > ? AND ns = ? ORDER BY id'),
      lastEvent: db.prepare('SELECT coalesce(max(id), 0) AS id FROM statesmith_events'),
      sweep: db.prepare('DELETE FROM statesmith_events WHERE at < ?'),
      recordPut: db.prepare(
        `INSERT INTO statesmith_records (ns, dir, id, value, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (ns, dir, id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      ),
      recordGet: db.prepare('SELECT value FROM statesmith_records WHERE ns = ? AND dir = ? AND id = ? AND expires_at > ?'),
      recordList: db.prepare('SELECT id, value FROM statesmith_records WHERE ns = ? AND dir = ? AND expires_at > ? ORDER BY id'),
      recordSweep: db.prepare('DELETE FROM statesmith_records WHERE ns = ? AND dir = ? AND expires_at <= ?'),
      recordDelete: db.prepare('DELETE FROM statesmith_records WHERE ns = ? AND dir = ? AND id = ? AND (? IS NULL OR value = ?)'),
    };
  }

  async close(): Promise<void> {
    this.#generation++;
    this.#held.clear();
    this.#channels.clear();
    this.#stopPoller();
    this.#listening = false;
    const db = this.#db;
    this.#db = undefined;
    this.#sql = undefined;
    this.#transaction = undefined;
    if (db === undefined) return;
    try {
      db.close();
    } catch (error) {
      getLogger().debug('closing the SQLite connection failed', { error });
    }
  }

  async ping(): Promise<void> {
    // The file check, in this turn, not behind the queue: a command waiting on a busy file is
    // not a lost connection, and a heartbeat stuck behind it would time out and drop every
    // lock this member holds.
    this.#attempt(() => undefined, true, this.#generation);
    const now = Date.now();
    if (now - this.#lastSweep >= SWEEP_EVERY_MS) {
      this.#lastSweep = now;
      // Best effort, in its turn: a busy file delays the sweep, it does not fail the heartbeat
      // (an error other than busy has already been reported as a lost connection).
      this.#write((sql) => sql.sweep.run(now - EVENT_KEEP_MS)).catch((error: unknown) =>
        getLogger().debug('sweeping old SQLite events failed; the next heartbeat tries again', { error }),
      );
    }
  }

  async tryAcquire(name: string, token: string, ttlMs: number): Promise<bigint | null> {
    if (this.#held.has(name)) return null;
    const fence = await this.#write((sql) => {
      const now = Date.now();
      const row = sql.lockOf.get(this.#ns, name) as { expires_at: bigint } | undefined;
      if (row !== undefined && row.expires_at > BigInt(now)) return null;
      const { fence } = sql.fenceUp.get(this.#ns, name, BigInt(now) * 1000n) as { fence: bigint };
      sql.lockPut.run(this.#ns, name, token, this.#options.memberId, fence, now + ttlOf(ttlMs));
      return fence;
    }, true);
    if (fence !== null) this.#held.set(name, { token, fence });
    return fence;
  }

  async renew(name: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.renewAll([{ name, token }], ttlMs))[0] === true;
  }

  /** Every grant of the batch in one transaction. */
  async renewAll(grants: ReadonlyArray<{ readonly name: string; readonly token: string }>, ttlMs: number): Promise<boolean[]> {
    const mine = grants.map(({ name, token }) => {
      const held = this.#held.get(name);
      return held?.token === token ? held : undefined;
    });
    if (mine.every((held) => held === undefined)) return grants.map(() => false);
    return this.#write((sql) => {
      const now = Date.now();
      return grants.map(({ name }, i) => {
        const held = mine[i];
        return held !== undefined && sql.renew.run(now + ttlOf(ttlMs), this.#ns, name, held.token, held.fence, now).changes === 1;
      });
    }, true);
  }

  async release(name: string, token: string): Promise<boolean> {
    const held = this.#held.get(name);
    if (held?.token !== token) return false;
    this.#held.delete(name);
    return this.#write((sql) => {
      const row = sql.release.get(this.#ns, name, token, held.fence) as { expires_at: bigint } | undefined;
      if (row === undefined) return false;
      this.#event(sql, LOCKS, name);
      return row.expires_at > BigInt(Date.now());
    });
  }

  /** Frees `name` whoever holds it, or only while the grant `hold` names does; wakes the waiters. */
  async breakLock(name: string, hold?: string): Promise<boolean> {
    const broken = await this.#write((sql) => {
      const now = Date.now();
      const [fence, token] = hold === undefined ? [null, null] : holdParts(hold);
      const row = (hold === undefined ? sql.breakAny.get(this.#ns, name, now) : sql.breakHold.get(this.#ns, name, now, fence, token)) as
        { token: string } | undefined;
      if (row === undefined) return undefined;
      this.#event(sql, LOCKS, name);
      return row.token;
    });
    if (broken !== undefined && this.#held.get(name)?.token === broken) this.#held.delete(name);
    return broken !== undefined;
  }

  async holderOf(name: string): Promise<{ memberId: string; hold: string } | null> {
    const row = await this.#read((sql) => sql.holder.get(this.#ns, name, Date.now()) as { member: string; token: string; fence: bigint } | undefined);
    return row === undefined ? null : { memberId: row.member, hold: `${row.fence}:${row.token}` };
  }

  async isHolder(name: string, token: string): Promise<boolean> {
    if (this.#held.get(name)?.token !== token) return false;
    const row = await this.#read((sql) => sql.isHolder.get(this.#ns, name, token, Date.now()));
    return row !== undefined && this.#held.get(name)?.token === token;
  }

  onReleased(listener: (name: string) => void): void {
    this.#released.push(listener);
  }

  async listen(on: boolean): Promise<void> {
    if (on === this.#listening) return;
    this.#listening = on;
    this.#poll(on);
  }

  onLost(listener: (error: unknown) => void): void {
    this.#lost.push(listener);
  }

  #event(sql: Prepared, channel: string, payload: string): void {
    sql.event.run(this.#ns, channel, payload, Date.now());
    this.#wroteEvent = true;
  }

  /** Starts polling for events when the first listener comes, stops when the last one goes. */
  #poll(on: boolean): void {
    const wanted = this.#listening || this.#channels.size > 0 || on;
    if (!on && !wanted) this.#stopPoller();
    if (!on || this.#poller !== undefined || this.#sql === undefined) return;
    this.#lastEvent = Number((this.#sql.lastEvent.get() as { id: number | bigint }).id);
    this.#dataVersion = -1;
    this.#poller = setInterval(() => this.#tick(), this.#pollMs);
    // Waiters and subscriptions keep their own handles; the poll alone never keeps a process alive.
    this.#poller.unref();
  }

  #stopPoller(): void {
    if (this.#poller !== undefined) clearInterval(this.#poller);
    this.#poller = undefined;
  }

  #tick(): void {
    const db = this.#db;
    const sql = this.#sql;
    if (db === undefined || sql === undefined) return;
    if (!this.#listening && this.#channels.size === 0) return this.#stopPoller();
    let rows: Array<{ id: number; channel: string; payload: string }>;
    try {
      const version = db.pragma('data_version', { simple: true }) as number;
      if (version === this.#dataVersion && !this.#wroteEvent) return;
      this.#dataVersion = version;
      this.#wroteEvent = false;
      rows = sql.events.all(this.#lastEvent, this.#ns) as typeof rows;
    } catch (error) {
      if (!isBusy(error)) this.#reportLost(this.#generation, error);
      return;
    }
    for (const row of rows) {
      this.#lastEvent = row.id;
      if (row.channel === LOCKS) {
        if (this.#listening) for (const listener of this.#released) listener(row.payload);
      } else {
        this.#channels.dispatch(row.channel, row.payload);
      }
    }
  }

  /** Runs `fn` in a `BEGIN IMMEDIATE` transaction, after the commands before it; `grants` checks the file first (see `#checkFile`). */
  #write<T>(fn: (sql: Prepared) => T, grants = false): Promise<T> {
    return this.#queue(() => (this.#transaction as Transaction).immediate(fn) as T, grants);
  }

  /** Runs a read (no transaction: one statement sees one snapshot), after the commands before it. */
  #read<T>(fn: (sql: Prepared) => T): Promise<T> {
    return this.#queue((_db, sql) => fn(sql), false);
  }

  /**
   * Runs `fn` after the commands before it. The calls are synchronous: when none is
   * waiting on a busy file, `fn` runs at once, in the caller's turn (no hop through the
   * queue); otherwise it runs after the last one.
   */
  #queue<T>(fn: (db: Database, sql: Prepared) => T, grants: boolean): Promise<T> {
    if (this.#waiting === 0) {
      try {
        return Promise.resolve(this.#attempt(fn, grants, this.#generation));
      } catch (error) {
        if (!isBusy(error)) return Promise.reject(error);
      }
    }
    // The file is busy (or a command before this one waits on it): retry asynchronously, in order.
    this.#waiting++;
    const run = this.#tail.then(() => this.#retry(() => this.#attempt(fn, grants, this.#generation)));
    this.#tail = run.then(
      () => void this.#waiting--,
      () => void this.#waiting--,
    );
    return run;
  }

  /** One attempt of `fn`; an error from SQLite other than a busy file (I/O, a corrupt or read-only file) loses the connection. */
  #attempt<T>(fn: (db: Database, sql: Prepared) => T, grants: boolean, generation: number): T {
    const db = this.#db;
    const sql = this.#sql;
    if (db === undefined || sql === undefined) throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the SQLite backend is not connected');
    if (grants) this.#checkFile();
    try {
      return fn(db, sql);
    } catch (error) {
      if (!(error instanceof CoordinationError) && !isBusy(error) && typeof (error as { code?: unknown }).code === 'string')
        this.#reportLost(generation, error);
      throw error;
    }
  }

  /** Runs `fn` until the file is not busy, backing off asynchronously, for at most the command bound. */
  #retry<T>(fn: () => T): Promise<T> {
    return retryWhileBusy(fn, this.#options.commandTimeoutMs, (error) => this.#busyError(error));
  }

  #busyError(error: unknown): CoordinationError {
    return new CoordinationError(
      'ERR_COORDINATION_BUSY',
      `the SQLite file ${JSON.stringify(this.#path)} stayed busy (written by another connection) for ${this.#options.commandTimeoutMs} ms, the command bound`,
      { cause: error },
    );
  }

  /** The path must still name the file opened: deleted or replaced, every process after would open another. */
  #checkFile(): void {
    let stat: { dev: number; ino: number } | undefined;
    try {
      stat = statSync(this.#path, { throwIfNoEntry: false });
    } catch {
      stat = undefined;
    }
    const file = this.#file;
    if (stat !== undefined && file !== undefined && stat.dev === file.dev && stat.ino === file.ino) return;
    const error = new CoordinationError(
      'ERR_COORDINATION_STORE_GONE',
      `the SQLite file ${JSON.stringify(this.#path)} was ${stat === undefined ? 'deleted' : 'replaced by another file'} under a running coordinator; its locks cannot be vouched for`,
    );
    this.#reportLost(this.#generation, error);
    throw error;
  }

  #reportLost(generation: number, error: unknown): void {
    if (generation !== this.#generation) return;
    this.#generation++;
    this.#held.clear();
    this.#stopPoller();
    const db = this.#db;
    this.#db = undefined;
    this.#sql = undefined;
    try {
      db?.close();
    } catch {
      // already unusable
    }
    for (const listener of this.#lost) listener(error);
  }
}
