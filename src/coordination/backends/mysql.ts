/**
 * The MySQL and MariaDB backend (`mysql://user:pass@host:3306/db`, with `mysql2`): named
 * user locks (`GET_LOCK`) on one dedicated connection per coordinator, so a lock frees the
 * moment its holder's session ends (a killed process, a `KILL CONNECTION`), as on PostgreSQL.
 *
 * - A lock's server name is `ss_` and 60 hex digits of SHA-256(namespace, name): user lock
 *   names are server-wide and at most 64 characters (MySQL 8 docs, "Locking Functions";
 *   MariaDB's are longer, MySQL's bound is the one kept). The original name is recorded
 *   beside the name's fence.
 * - A grant is one round trip: `GET_LOCK(name, 0)` into a session variable, the fence
 *   upsert in `statesmith_fences` (InnoDB) only if it was granted, and a read of both. The
 *   fence is max(previous + 1, the server's clock in microseconds), so it keeps growing
 *   after a restore from an older backup. A batch that fails after the lock was taken
 *   releases it; one whose answer never came drops the connection, which frees everything.
 * - `GET_LOCK` is re-entrant within a session (MySQL 5.7+, MariaDB 10.0+): this backend
 *   remembers which token holds each name, so a second grant through the same session is
 *   refused, and a release with a stale token never unlocks another grant.
 * - There is no LISTEN/NOTIFY: while this process has waiters it asks `IS_FREE_LOCK` of
 *   the names they wait for, every `pollMs` (default 20 ms), in one query, with no write;
 *   messages (the locksmith's) are rows of `statesmith_messages`, read the same way while
 *   someone listens. The poll has a connection of its own, made on its first round, so the
 *   lock commands never wait behind it. Group members and leaders are rows with a
 *   server-clock expiry.
 * - `breakLock` ends the holder's connection: `IS_USED_LOCK` names it.
 * - A holder that falls silent (a partition, a frozen process) would keep its session, and its
 *   locks, until the server's `wait_timeout` (8 hours by default). The session's own is set to
 *   two lock TTLs: a holder renews (and the heartbeat pings) well inside it, and the server ends
 *   a silent one's session, freeing its locks, only after its own lease has run out.
 *
 * MariaDB 10.11 (tested here) and MySQL 8 differ in nothing this backend relies on: both
 * have re-entrant `GET_LOCK` with several locks per session, `IS_USED_LOCK`, `NOW(6)`,
 * `INSERT … SELECT … ON DUPLICATE KEY UPDATE` with `VALUES()` (deprecated in MySQL 8.0.20
 * with a warning, still supported) and `KILL CONNECTION`.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import type { Connection, ConnectionOptions } from 'mysql2/promise';
import { CoordinationError } from '../../errors.ts';
import { getLogger } from '../../logger.ts';
import { capabilitiesOf, ChannelListeners, mysqlDatabase, namespaceOf, pollMsOf } from './common.ts';
import type { Backend, BackendCapabilities, BackendOptions, MessageBus, RecordStore } from '../types.ts';

type MysqlModule = { createConnection?: (config: ConnectionOptions) => Promise<Connection>; default?: MysqlModule };
type Row = Record<string, unknown>;

/** How long a message row is kept, and how often the old ones are swept. */
const MESSAGE_KEEP_MS = 60_000;
const SWEEP_EVERY_MS = 10_000;
/** A message row this old is surely committed: ids below it need not be read again. */
const SETTLED_MS = 2_000;
/** At most this many names are asked about in one poll. */
const MAX_WATCHED = 256;

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS statesmith_fences (k BINARY(32) NOT NULL PRIMARY KEY, ns VARCHAR(255) NOT NULL, name TEXT NOT NULL,
     fence BIGINT NOT NULL) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS statesmith_records (k BINARY(32) NOT NULL PRIMARY KEY, dk BINARY(32) NOT NULL, id TEXT NOT NULL,
     value MEDIUMTEXT NOT NULL, expires_at DATETIME(3) NOT NULL, KEY (dk, expires_at)) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS statesmith_messages (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, ck BINARY(32) NOT NULL,
     payload MEDIUMTEXT NOT NULL, at DATETIME(3) NOT NULL, KEY (ck, id), KEY (at)) ENGINE=InnoDB`,
  'CREATE TABLE IF NOT EXISTS statesmith_sessions (conn BIGINT NOT NULL PRIMARY KEY, member TEXT NOT NULL) ENGINE=InnoDB',
];

const digest = (...parts: string[]): Buffer => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest();
};

/** The server-wide user-lock name of a lock: 63 characters, under MySQL's 64. */
export function userLockName(namespace: string, name: string): string {
  return `ss_${digest(namespace, name).toString('hex').slice(0, 60)}`;
}

/** A hold as `holderOf` names it, `<connection id>:<fence>:<member>`: its session and its grant. */
function holdParts(hold: string): [string, string] {
  const [conn, fence] = hold.split(':');
  return [/^\d+$/.test(conn ?? '') ? (conn as string) : '-1', /^\d+$/.test(fence ?? '') ? (fence as string) : '-1'];
}

/** The connection settings a `mysql://` URL names. */
function connectionOf(url: URL): { host: string; port: number; user: string; password: string; database: string } {
  const database = mysqlDatabase(url);
  return {
    host: url.hostname === '' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? 3306 : Number(url.port),
    user: url.username === '' ? (process.env['USER'] ?? userInfo().username) : decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database,
  };
}

export class MysqlBackend implements Backend {
  readonly kind = 'mysql' as const;
  /** Commands on its one connection run in the order sent. */
  readonly ordered = true;
  readonly capabilities: BackendCapabilities = capabilitiesOf({ distributed: true, sessionBased: true, watch: false });
  readonly #options: BackendOptions;
  readonly #createConnection: (config: ConnectionOptions) => Promise<Connection>;
  readonly #ns: string;
  readonly #pollMs: number;
  readonly #connection: ReturnType<typeof connectionOf>;
  readonly #released: Array<(name: string) => void> = [];
  readonly #lost: Array<(error: unknown) => void> = [];
  /** name → the grant this session holds of it. */
  readonly #held = new Map<string, { token: string; fence: string }>();
  /** Names a local waiter was refused, asked about while listening: the lock name and its server name. */
  readonly #watched = new Map<string, string>();
  readonly #channels = new ChannelListeners();
  /** Message channel keys (hex of their digest) → channel. */
  readonly #channelKeys = new Map<string, string>();
  #client: Connection | undefined;
  /**
   * The poll's own connection (made on the first poll): the poll (waiters' `IS_FREE_LOCK`, the
   * messages table) every `pollMs` would otherwise queue the lock commands behind it on the
   * session's one connection. Nothing it runs needs the session.
   */
  #pollClient: Promise<Connection> | undefined;
  #connectionId = 0;
  #generation = 0;
  #listening = false;
  #poller: ReturnType<typeof setTimeout> | undefined;
  #polling = false;
  /** Message ids at or below this were all read; ids above it that were read are in `#seen`. */
  #settledId = 0;
  readonly #seen = new Set<number>();
  #lastSweep = 0;

  readonly messages: MessageBus = {
    publish: async (channel, payload) => {
      await this.#query('INSERT INTO statesmith_messages (ck, payload, at) VALUES (?, ?, NOW(3))', [digest(this.#ns, channel), payload]);
    },
    subscribe: async (channel, listener) => {
      const key = digest(this.#ns, channel).toString('hex');
      return this.#channels.add(
        key,
        listener,
        async () => {
          if (this.#channels.size === 1) {
            const rows = await this.#query<Row>('SELECT coalesce(max(id), 0) AS id FROM statesmith_messages');
            this.#settledId = Number(rows[0]?.['id'] ?? 0);
            this.#seen.clear();
          }
          this.#channelKeys.set(key, channel);
          this.#schedulePoll();
        },
        async () => void this.#channelKeys.delete(key),
      );
    },
  };

  readonly records: RecordStore = {
    onLease: false,
    put: async (dir, id, value, ttlMs) => {
      await this.#query(
        `INSERT INTO statesmith_records (k, dk, id, value, expires_at) VALUES (?, ?, ?, ?, NOW(3) + INTERVAL ? MICROSECOND)
         ON DUPLICATE KEY UPDATE value = VALUES(value), expires_at = VALUES(expires_at)`,
        [digest(this.#ns, dir, id), digest(this.#ns, dir), id, value, Math.max(1, Math.ceil(Math.min(ttlMs, 2 ** 40))) * 1000],
      );
    },
    get: async (dir, id) => {
      const rows = await this.#query<Row>('SELECT value FROM statesmith_records WHERE k = ? AND expires_at > NOW(3)', [digest(this.#ns, dir, id)]);
      return (rows[0]?.['value'] as string | undefined) ?? null;
    },
    list: async (dir) => {
      // The dead are swept as the living are read: nothing else deletes them.
      const dk = digest(this.#ns, dir);
      const results = await this.#query<Row[] | Row>(
        'DELETE FROM statesmith_records WHERE dk = ? AND expires_at <= NOW(3); SELECT id, value FROM statesmith_records WHERE dk = ? AND expires_at > NOW(3) ORDER BY id',
        [dk, dk],
      );
      return (results[1] as Row[]).map((row) => ({ id: String(row['id']), value: String(row['value']) }));
    },
    delete: async (dir, id, value) => {
      const rows = await this.#query<Row>('DELETE FROM statesmith_records WHERE k = ? AND (? IS NULL OR value = ?)', [
        digest(this.#ns, dir, id),
        value ?? null,
        value ?? null,
      ]);
      return Number((rows as unknown as { affectedRows?: number }).affectedRows ?? 0) > 0;
    },
  };

  constructor(options: BackendOptions, module: unknown) {
    this.#options = options;
    const mod = module as MysqlModule;
    const createConnection = mod.createConnection ?? mod.default?.createConnection;
    if (createConnection === undefined) throw new Error('the "mysql2/promise" module has no createConnection export');
    this.#createConnection = createConnection;
    this.#ns = namespaceOf(options.url);
    this.#connection = connectionOf(options.url);
    this.#pollMs = pollMsOf(options.url, 20);
  }

  /** The options of both connections. */
  #connectionConfig(): ConnectionOptions {
    return {
      ...this.#connection,
      multipleStatements: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      connectTimeout: Math.max(this.#options.commandTimeoutMs, 1_000),
      enableKeepAlive: true,
      // Server and session times in UTC, so NOW(3) in records compares the same on every member.
      timezone: 'Z',
    };
  }

  async connect(): Promise<void> {
    await this.close();
    const generation = ++this.#generation;
    const client = await this.#createConnection(this.#connectionConfig());
    const onLost = (error: unknown): void => this.#reportLost(generation, error);
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the MySQL connection ended')));
    this.#client = client;
    try {
      // Two coordinators creating the tables at once would collide: serialise them.
      // Seconds; at least two TTLs after the last statement, so never before the holder's lease ends.
      await client.query(`SET SESSION wait_timeout = ${Math.max(1, Math.ceil((2 * (this.#options.leaseTtlMs ?? 30_000)) / 1000))}`);
      await client.query("DO GET_LOCK('statesmith_schema', 10)");
      for (const statement of SCHEMA) await client.query(statement);
      await client.query("DO RELEASE_LOCK('statesmith_schema')");
      const [rows] = (await client.query('SELECT CONNECTION_ID() AS id')) as unknown as [Row[]];
      this.#connectionId = Number(rows[0]?.['id']);
      await client.query('REPLACE INTO statesmith_sessions (conn, member) VALUES (?, ?)', [this.#connectionId, this.#options.memberId]);
    } catch (error) {
      await this.close();
      throw error;
    }
    if (generation !== this.#generation) throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the MySQL backend was closed while it connected');
    if (this.#listening || this.#channels.size > 0) this.#schedulePoll();
  }

  async close(): Promise<void> {
    this.#generation++;
    this.#held.clear();
    this.#watched.clear();
    this.#channels.clear();
    this.#channelKeys.clear();
    this.#stopPoll();
    const polls = this.#dropPollClient();
    const client = this.#client;
    this.#client = undefined;
    await polls;
    if (client === undefined) return;
    try {
      await client.end();
    } catch (error) {
      getLogger().debug('closing the MySQL connection failed', { error });
      client.destroy();
    }
  }

  async ping(): Promise<void> {
    await this.#query('SELECT 1');
    const now = Date.now();
    if (now - this.#lastSweep >= SWEEP_EVERY_MS) {
      this.#lastSweep = now;
      await this.#query('DELETE FROM statesmith_messages WHERE at < NOW(3) - INTERVAL ? MICROSECOND', [MESSAGE_KEEP_MS * 1000]);
    }
  }

  async tryAcquire(name: string, token: string): Promise<bigint | null> {
    if (this.#held.has(name)) {
      this.#watch(name);
      return null;
    }
    const lockName = userLockName(this.#ns, name);
    const key = digest(this.#ns, name);
    const generation = this.#generation;
    let rows: Row[];
    try {
      const results = await this.#query<Row[] | Row>(
        `SET @ss_ok = GET_LOCK(?, 0);
         INSERT INTO statesmith_fences (k, ns, name, fence)
           SELECT ?, ?, ?, CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) FROM DUAL WHERE @ss_ok = 1
           ON DUPLICATE KEY UPDATE fence = GREATEST(fence + 1, VALUES(fence));
         SELECT @ss_ok AS ok, (SELECT fence FROM statesmith_fences WHERE k = ?) AS fence`,
        [lockName, key, this.#ns, name, key],
      );
      rows = results[2] as Row[];
    } catch (error) {
      await this.#undoAcquire(generation, lockName, error);
      throw error;
    }
    const row = rows[0];
    if (String(row?.['ok']) !== '1' || row?.['fence'] === null || row?.['fence'] === undefined) {
      this.#watch(name);
      return null;
    }
    const fence = String(row['fence']);
    this.#held.set(name, { token, fence });
    this.#watched.delete(name);
    return BigInt(fence);
  }

  async renew(name: string, token: string): Promise<boolean> {
    return (await this.renewAll([{ name, token }]))[0] === true;
  }

  /** The session holds every lock: one round trip proves all of them held. */
  async renewAll(grants: ReadonlyArray<{ readonly name: string; readonly token: string }>): Promise<boolean[]> {
    if (grants.some(({ name, token }) => this.#held.get(name)?.token === token)) await this.#query('SELECT 1');
    return grants.map(({ name, token }) => this.#held.get(name)?.token === token);
  }

  async release(name: string, token: string): Promise<boolean> {
    if (this.#held.get(name)?.token !== token) return false;
    this.#held.delete(name);
    const rows = await this.#query<Row>('SELECT RELEASE_LOCK(?) AS ok', [userLockName(this.#ns, name)]);
    const freed = String(rows[0]?.['ok']) === '1';
    // A local waiter is woken here: the poll would only see it a round later.
    if (freed && this.#listening) for (const listener of this.#released) listener(name);
    return freed;
  }

  /**
   * A user lock can only be freed by its session: breaking one ends the holder's
   * connection (every lock it held goes with it, as a crash would).
   */
  async breakLock(name: string, hold?: string): Promise<boolean> {
    const lockName = userLockName(this.#ns, name);
    const rows = await this.#query<Row>('SELECT IS_USED_LOCK(?) AS conn, (SELECT fence FROM statesmith_fences WHERE k = ?) AS fence', [
      lockName,
      digest(this.#ns, name),
    ]);
    const conn = rows[0]?.['conn'];
    if (conn === null || conn === undefined) return false;
    if (hold !== undefined) {
      // A conditional break names a grant, not only a session: the hold's fence must still be the name's latest.
      const [heldConn, fence] = holdParts(hold);
      if (String(conn) !== heldConn || String(rows[0]?.['fence']) !== fence) return false;
    }
    if (Number(conn) === this.#connectionId) {
      const mine = this.#held.get(name);
      return mine !== undefined && hold === undefined ? this.release(name, mine.token) : false;
    }
    try {
      await this.#query(`KILL CONNECTION ${Number(conn)}`);
    } catch (error) {
      // ER_NO_SUCH_THREAD: it ended on its own meanwhile.
      if ((error as { errno?: unknown }).errno === 1094) return false;
      throw error;
    }
    if (this.#listening) for (const listener of this.#released) listener(name);
    return true;
  }

  /** The holder: its connection id and member (recorded when it connected), and its grant's fence. */
  async holderOf(name: string): Promise<{ memberId: string; hold: string } | null> {
    const rows = await this.#query<Row>(
      `SELECT c.conn, (SELECT member FROM statesmith_sessions s WHERE s.conn = c.conn) AS member,
              (SELECT fence FROM statesmith_fences WHERE k = ?) AS fence
       FROM (SELECT IS_USED_LOCK(?) AS conn) c`,
      [digest(this.#ns, name), userLockName(this.#ns, name)],
    );
    const row = rows[0];
    if (row === undefined || row['conn'] === null) return null;
    const member = String(row['member'] ?? '');
    return { memberId: member, hold: `${row['conn']}:${row['fence'] ?? '0'}:${member}` };
  }

  async isHolder(name: string, token: string): Promise<boolean> {
    if (this.#held.get(name)?.token !== token) return false;
    const rows = await this.#query<Row>('SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS held', [userLockName(this.#ns, name)]);
    return String(rows[0]?.['held']) === '1' && this.#held.get(name)?.token === token;
  }

  onReleased(listener: (name: string) => void): void {
    this.#released.push(listener);
  }

  async listen(on: boolean): Promise<void> {
    this.#listening = on;
    if (!on) this.#watched.clear();
    else this.#schedulePoll();
  }

  onLost(listener: (error: unknown) => void): void {
    this.#lost.push(listener);
  }

  /** A local waiter was refused `name`: ask whether it is free at every poll, while listening. */
  #watch(name: string): void {
    if (!this.#listening || this.#watched.has(name)) return;
    if (this.#watched.size >= MAX_WATCHED) this.#watched.delete(this.#watched.keys().next().value as string);
    this.#watched.set(name, userLockName(this.#ns, name));
    this.#schedulePoll();
  }

  #schedulePoll(): void {
    if (this.#poller !== undefined || this.#polling || this.#client === undefined) return;
    if (this.#watched.size === 0 && this.#channelKeys.size === 0) return;
    this.#poller = setTimeout(() => {
      this.#poller = undefined;
      void this.#pollOnce();
    }, this.#pollMs);
    // Waiters and subscriptions keep their own handles; the poll alone never keeps a process alive.
    this.#poller.unref();
  }

  #stopPoll(): void {
    if (this.#poller !== undefined) clearTimeout(this.#poller);
    this.#poller = undefined;
  }

  /** One round trip: which watched names are free now, and the new messages of the channels listened to. */
  async #pollOnce(): Promise<void> {
    this.#polling = true;
    const generation = this.#generation;
    try {
      const names = this.#listening ? [...this.#watched] : [];
      const keys = [...this.#channelKeys.keys()];
      const statements: string[] = [];
      const params: unknown[] = [];
      if (names.length > 0) {
        statements.push(`SELECT ${names.map((_, i) => `IS_FREE_LOCK(?) AS f${i}`).join(', ')}`);
        params.push(...names.map(([, lockName]) => lockName));
      }
      if (keys.length > 0) {
        statements.push(
          `SELECT id, HEX(ck) AS ck, payload, at < NOW(3) - INTERVAL ? MICROSECOND AS settled FROM statesmith_messages
           WHERE id > ? AND ck IN (${keys.map(() => 'UNHEX(?)').join(', ')}) ORDER BY id`,
        );
        params.push(SETTLED_MS * 1000, this.#settledId, ...keys);
      }
      if (statements.length === 0) return;
      const results = await this.#pollQuery<Row[] | Row>(statements.join('; '), params);
      if (generation !== this.#generation) return;
      const sets = (statements.length === 1 ? [results] : results) as Row[][];
      let at = 0;
      if (names.length > 0) {
        const row = sets[at++]?.[0] ?? {};
        names.forEach(([name], i) => {
          if (String(row[`f${i}`]) !== '1') return;
          this.#watched.delete(name);
          for (const listener of this.#released) listener(name);
        });
      }
      if (keys.length > 0) {
        for (const row of sets[at] ?? []) {
          const id = Number(row['id']);
          if (String(row['settled']) === '1' && id > this.#settledId) this.#settledId = id;
          if (this.#seen.has(id)) continue;
          this.#seen.add(id);
          this.#channels.dispatch(String(row['ck']).toLowerCase(), String(row['payload']));
        }
        for (const id of this.#seen) if (id <= this.#settledId) this.#seen.delete(id);
      }
    } catch (error) {
      getLogger().debug('a MySQL poll failed', { error });
    } finally {
      this.#polling = false;
      if (generation === this.#generation) this.#schedulePoll();
    }
  }

  /** The failed batch may have left this session holding `lockName`: release it, or drop the session when it cannot be trusted. */
  async #undoAcquire(generation: number, lockName: string, error: unknown): Promise<void> {
    if (generation !== this.#generation) return; // the session is already gone, and its locks with it
    const fromServer = typeof (error as { errno?: unknown } | null)?.errno === 'number' && (error as { fatal?: unknown }).fatal !== true;
    if (fromServer) {
      try {
        await this.#query('DO IF(IS_USED_LOCK(?) = CONNECTION_ID(), RELEASE_LOCK(?), 0)', [lockName, lockName]);
        return;
      } catch (releaseError) {
        error = releaseError;
      }
    }
    getLogger().warn('a MySQL acquire failed without a server answer; dropping the connection so that it holds nothing', { error });
    this.#reportLost(generation, error);
  }

  async #query<R>(sql: string, params?: unknown[]): Promise<R[]> {
    const client = this.#client;
    if (client === undefined) throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the MySQL backend is not connected');
    const generation = this.#generation;
    try {
      const [rows] = await client.query({ sql, timeout: Math.ceil(this.#options.commandTimeoutMs) }, params);
      return rows as R[];
    } catch (error) {
      // A command whose answer did not come in time leaves the connection in an unknown state: drop it.
      if ((error as { code?: unknown }).code === 'PROTOCOL_SEQUENCE_TIMEOUT' || (error as { fatal?: unknown }).fatal === true) {
        this.#reportLost(generation, error);
      }
      throw error;
    }
  }

  /** A poll's query, on the poll's own connection (made on first use; a failed one is dropped and made again at the next poll). */
  async #pollQuery<R>(sql: string, params: unknown[]): Promise<R[]> {
    const generation = this.#generation;
    if (this.#client === undefined) throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the MySQL backend is not connected');
    let made = this.#pollClient;
    if (made === undefined) {
      made = this.#pollClient = this.#createConnection(this.#connectionConfig()).then((client) => {
        const drop = (): void => {
          if (this.#pollClient === made) this.#pollClient = undefined;
          client.destroy();
        };
        client.on('error', drop);
        client.on('end', drop);
        return client;
      });
      // Its failure is the poll's, reported there; this promise is not awaited by anyone else.
      made.catch(() => {
        if (this.#pollClient === made) this.#pollClient = undefined;
      });
    }
    const client = await made;
    // Closed or lost while it connected: the close did not see it, so it is ended here.
    if (generation !== this.#generation) {
      if (this.#pollClient === made) this.#pollClient = undefined;
      void client.end().catch(() => client.destroy());
      throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the MySQL backend was closed during a poll');
    }
    try {
      const [rows] = await client.query({ sql, timeout: Math.ceil(this.#options.commandTimeoutMs) }, params);
      return rows as R[];
    } catch (error) {
      // Its state is unknown after a timeout or a fatal error: the next poll makes a new one.
      if ((error as { code?: unknown }).code === 'PROTOCOL_SEQUENCE_TIMEOUT' || (error as { fatal?: unknown }).fatal === true) {
        if (this.#pollClient === made) this.#pollClient = undefined;
        client.destroy();
      }
      throw error;
    }
  }

  /** Ends the poll's connection (resolves once it is closed; never rejects). */
  #dropPollClient(): Promise<void> {
    const made = this.#pollClient;
    this.#pollClient = undefined;
    if (made === undefined) return Promise.resolve();
    return made.then(
      (client) => client.end().catch(() => client.destroy()),
      () => undefined,
    );
  }

  #reportLost(generation: number, error: unknown): void {
    if (generation !== this.#generation) return;
    this.#generation++;
    // The session is gone, and every user lock with it.
    this.#held.clear();
    this.#stopPoll();
    void this.#dropPollClient();
    const client = this.#client;
    this.#client = undefined;
    client?.destroy();
    for (const listener of this.#lost) listener(error);
  }
}
