/**
 * The PostgreSQL backend (`postgresql://`, with `pg`): session-level advisory locks on one
 * dedicated, non-pooled connection per coordinator, so a lock frees the moment its
 * holder's session ends (a killed process, a terminated backend).
 *
 * - The advisory key is the first 8 bytes of SHA-256(namespace, name) as a signed 64-bit
 *   number: no collisions to speak of (tooz used the first 2 bytes of MD5: 65,536 keys).
 * - `pg_try_advisory_lock` and the fence update are one statement, hence one transaction:
 *   a grant always comes with its fence, from a small table `statesmith_fences`. The
 *   fence is max(previous + 1, the server's clock in microseconds), so it keeps growing
 *   after a restore from an older backup or a failover to a replica that lagged.
 * - Session-level advisory locks outlive a failed statement (PostgreSQL docs, "Advisory
 *   Locks": they do not honour transaction semantics). An acquire that fails after the
 *   lock was taken (the fence row locked by someone else past `statement_timeout`, a key
 *   the index refuses) unlocks at once; one whose answer never came (a client-side
 *   timeout) drops the session, which frees everything it held.
 * - While this process has waiters, it `LISTEN`s on the same connection and holds a shared
 *   advisory lock on the namespace's waiters key (the two-int form, which never overlaps the
 *   bigint keys of locks). A release unlocks and, in the same statement, `pg_notify`s the
 *   name only when some other session holds that key: a `NOTIFY` serialises every notifying
 *   commit of the server, and most releases have nobody to wake. The waiter takes the key
 *   before it looks at the lock again and the release checks it after unlocking, so a waiter
 *   that saw the lock held is always notified.
 * - A partitioned holder's session would keep its locks on the server until the server's TCP
 *   keepalive gave up (about 2 h 11 min by the OS defaults), long after the holder reconnected
 *   in a new session. The session's own `tcp_keepalives_*` and `tcp_user_timeout` are set from
 *   the lock TTL, so the server drops a silent holder's session about two TTLs after its last
 *   packet: never before the holder's own lease has run out (its renewals are its traffic).
 * - A session holds advisory locks re-entrantly: this backend remembers which token holds
 *   each name, so a second grant through the same session is refused, and a release with
 *   a stale token never unlocks someone else's hold.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import type { Client, ClientConfig } from 'pg';
import { getLogger } from '../../logger.ts';
import { ChannelListeners, capabilitiesOf, namespaceOf } from './common.ts';
import type { Backend, BackendCapabilities, BackendOptions, MessageBus, RecordStore } from '../types.ts';

type PgModule = { Client?: new (config: ClientConfig) => Client; default?: { Client?: new (config: ClientConfig) => Client } };

/** The advisory key of a name: 8 bytes of SHA-256 as a signed bigint, in decimal. */
export function advisoryKey(namespace: string, name: string): string {
  const digest = createHash('sha256').update(namespace).update('\0').update(name).digest();
  return digest.readBigInt64BE(0).toString();
}

/**
 * The namespace's waiters key: two int4 from SHA-256, for the two-key advisory lock form
 * (PostgreSQL docs, "Advisory Lock Functions": it does not overlap the bigint form).
 */
export function waitersKey(namespace: string): [number, number] {
  const digest = createHash('sha256').update('statesmith waiters').update('\0').update(namespace).digest();
  return [digest.readInt32BE(0), digest.readInt32BE(4)];
}

/** How `pg_locks` shows an advisory bigint key: its high half as `classid`, its low half as `objid` (PostgreSQL docs, pg_locks). */
function advisoryParts(namespace: string, name: string): [string, string] {
  const unsigned = BigInt.asUintN(64, BigInt(advisoryKey(namespace, name)));
  return [String(unsigned >> 32n), String(unsigned & 0xffffffffn)];
}

const quoteIdent = (id: string): string => `"${id.replace(/"/g, '""')}"`;

/** A hold as `holderOf` names it, `<pid>:<fence>:<member>`: its session and its grant. */
function holdParts(hold: string): [number, string] {
  const [pid, fence] = hold.split(':');
  return [Number(pid), /^\d+$/.test(fence ?? '') ? (fence as string) : '-1'];
}

export class PostgresBackend implements Backend {
  readonly kind = 'postgresql' as const;
  /** Commands on its one connection run in the order sent. */
  readonly ordered = true;
  readonly capabilities: BackendCapabilities = capabilitiesOf({ distributed: true, sessionBased: true, watch: true });
  readonly #options: BackendOptions;
  readonly #Client: new (config: ClientConfig) => Client;
  readonly #ns: string;
  readonly #channel: string;
  /** The namespace's waiters key (see the file's comment). */
  readonly #waiters: [number, number];
  readonly #released: Array<(name: string) => void> = [];
  readonly #lost: Array<(error: unknown) => void> = [];
  /** name → the token holding it through this session. */
  readonly #held = new Map<string, string>();
  #client: Client | undefined;
  #generation = 0;
  /** Queries go one at a time: pg 8 warns on overlapping queries of one client and pg 9 refuses them. */
  #tail: Promise<unknown> = Promise.resolve();
  readonly #channels = new ChannelListeners();
  /** A NOTIFY channel is an identifier of at most 63 bytes: the namespace's and channel's digest. */
  #channelOf(channel: string): string {
    return `ss_${createHash('sha256').update(this.#ns).update('\0').update(channel).digest('hex').slice(0, 40)}`;
  }
  readonly messages: MessageBus = {
    publish: async (channel, payload) => {
      await this.#query('SELECT pg_notify($1, $2)', [this.#channelOf(channel), payload]);
    },
    subscribe: async (channel, listener) => {
      const name = this.#channelOf(channel);
      return this.#channels.add(
        name,
        listener,
        () => this.#query(`LISTEN ${quoteIdent(name)}`),
        async () => (this.#client === undefined ? undefined : this.#query(`UNLISTEN ${quoteIdent(name)}`)),
      );
    },
  };
  readonly records: RecordStore = {
    onLease: false,
    put: async (dir, id, value, ttlMs) => {
      await this.#query(
        `INSERT INTO statesmith_records AS r (namespace, dir, id, value, expires_at)
         VALUES ($1, $2, $3, $4, clock_timestamp() + $5::bigint * interval '1 millisecond')
         ON CONFLICT (namespace, dir, id) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`,
        [this.#ns, dir, id, value, Math.max(1, Math.ceil(Math.min(ttlMs, 2 ** 47)))],
      );
    },
    get: async (dir, id) => {
      const result = await this.#query<{ value: string }>(
        'SELECT value FROM statesmith_records WHERE namespace = $1 AND dir = $2 AND id = $3 AND expires_at > clock_timestamp()',
        [this.#ns, dir, id],
      );
      return result.rows[0]?.value ?? null;
    },
    list: async (dir) => {
      // The dead are swept as the living are read: nothing else deletes them.
      const result = await this.#query<{ id: string; value: string }>(
        `WITH gone AS (DELETE FROM statesmith_records WHERE namespace = $1 AND dir = $2 AND expires_at <= clock_timestamp())
         SELECT id, value FROM statesmith_records WHERE namespace = $1 AND dir = $2 AND expires_at > clock_timestamp() ORDER BY id`,
        [this.#ns, dir],
      );
      return result.rows;
    },
    delete: async (dir, id, value) => {
      const result = await this.#query<{ id: string }>(
        'DELETE FROM statesmith_records WHERE namespace = $1 AND dir = $2 AND id = $3 AND ($4::text IS NULL OR value = $4) RETURNING id',
        [this.#ns, dir, id, value ?? null],
      );
      return result.rows.length > 0;
    },
  };

  constructor(options: BackendOptions, module: unknown) {
    this.#options = options;
    const mod = module as PgModule;
    const Client = mod.Client ?? mod.default?.Client;
    if (Client === undefined) throw new Error('the "pg" module has no Client export');
    this.#Client = Client;
    this.#ns = namespaceOf(options.url);
    this.#channel = `${this.#ns}_locks`;
    this.#waiters = waitersKey(this.#ns);
  }

  async connect(): Promise<void> {
    await this.close();
    const generation = ++this.#generation;
    const url = new URL(this.#options.url.href);
    url.searchParams.delete('namespace');
    // libpq's default when the URL names no user; pg reads only $USER, which services often lack.
    if (url.username === '') url.username = encodeURIComponent(process.env['PGUSER'] ?? userInfo().username);
    const client = new this.#Client({
      connectionString: url.href,
      keepAlive: true,
      application_name: this.#options.memberId.slice(0, 63),
      // The server gives up on a statement first, so the session stays usable and a
      // failed acquire can be undone; the client's own bound is only for a dead link.
      statement_timeout: Math.ceil(this.#options.commandTimeoutMs),
      query_timeout: Math.ceil(this.#options.commandTimeoutMs + Math.max(1_000, this.#options.commandTimeoutMs)),
      connectionTimeoutMillis: Math.max(this.#options.commandTimeoutMs, 1_000),
    });
    const onLost = (error: unknown): void => this.#reportLost(generation, error);
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the PostgreSQL connection ended')));
    client.on('notification', (message) => {
      if (message.payload === undefined) return;
      if (message.channel === this.#channel) {
        for (const listener of this.#released) listener(message.payload);
        return;
      }
      this.#channels.dispatch(message.channel, message.payload);
    });
    this.#client = client;
    this.#tail = Promise.resolve();
    try {
      await client.connect();
      await this.#boundSilence(client);
      await client.query('BEGIN');
      // Two coordinators creating the table at once would collide in the catalog: serialise them.
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryKey('statesmith', 'schema')]);
      await client.query(
        'CREATE TABLE IF NOT EXISTS statesmith_fences (namespace text NOT NULL, name text NOT NULL, fence bigint NOT NULL, PRIMARY KEY (namespace, name))',
      );
      await client.query(
        'CREATE TABLE IF NOT EXISTS statesmith_records (namespace text NOT NULL, dir text NOT NULL, id text NOT NULL, value text NOT NULL, expires_at timestamptz NOT NULL, PRIMARY KEY (namespace, dir, id))',
      );
      await client.query('COMMIT');
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /**
   * How long the server keeps this session once the holder has gone silent (a partition): the
   * first keepalive probe after a TTL with nothing heard, and the session dropped once nothing
   * is acknowledged for two TTLs. The holder's lease ends before (at most one TTL after its last
   * renewal), so the server never frees a lock its holder still believes it holds.
   */
  async #boundSilence(client: Client): Promise<void> {
    const ttlMs = this.#options.leaseTtlMs ?? 30_000;
    const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const settings: Array<[string, number]> = [
      ['tcp_keepalives_idle', seconds],
      ['tcp_keepalives_interval', Math.max(1, Math.ceil(seconds / 4))],
      ['tcp_keepalives_count', 4],
      // PostgreSQL 12 and later: also bounds a send the silent holder never acknowledges.
      ['tcp_user_timeout', Math.ceil(2 * ttlMs)],
    ];
    for (const [name, value] of settings) {
      try {
        await client.query(`SET ${name} = ${value}`);
      } catch (error) {
        getLogger().warn(`PostgreSQL would not set ${name} for this session: a partitioned holder's locks may outlive its lease on the server`, {
          error,
        });
      }
    }
  }

  async close(): Promise<void> {
    this.#generation++;
    this.#held.clear();
    this.#channels.clear();
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    try {
      await client.end();
    } catch (error) {
      getLogger().debug('closing the PostgreSQL connection failed', { error });
    }
  }

  async ping(): Promise<void> {
    await this.#query('SELECT 1');
  }

  async tryAcquire(name: string, token: string, _ttlMs: number): Promise<bigint | null> {
    if (this.#held.has(name)) return null;
    const key = advisoryKey(this.#ns, name);
    const generation = this.#generation;
    let result: { rows: Array<{ fence: string }> };
    try {
      result = await this.#query<{ fence: string }>(
        `WITH l AS (SELECT pg_try_advisory_lock($1::bigint) AS ok),
              t AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us)
         INSERT INTO statesmith_fences AS f (namespace, name, fence)
         SELECT $2, $3, t.us FROM l, t WHERE l.ok
         ON CONFLICT (namespace, name) DO UPDATE SET fence = GREATEST(f.fence + 1, EXCLUDED.fence)
         RETURNING fence::text AS fence`,
        [key, this.#ns, name],
      );
    } catch (error) {
      await this.#undoAcquire(generation, key, error);
      throw error;
    }
    const row = result.rows[0];
    if (row === undefined) return null;
    this.#held.set(name, token);
    return BigInt(row.fence);
  }

  async renew(name: string, token: string): Promise<boolean> {
    // The session holds the lock for as long as it lives: a round trip proves it does.
    if (this.#held.get(name) !== token) return false;
    await this.#query('SELECT 1');
    return this.#held.get(name) === token;
  }

  /** The session holds every lock: one round trip proves all of them held. */
  async renewAll(grants: ReadonlyArray<{ readonly name: string; readonly token: string }>): Promise<boolean[]> {
    if (grants.some(({ name, token }) => this.#held.get(name) === token)) await this.#query('SELECT 1');
    return grants.map(({ name, token }) => this.#held.get(name) === token);
  }

  async release(name: string, token: string): Promise<boolean> {
    if (this.#held.get(name) !== token) return false;
    this.#held.delete(name);
    // The unlock first (a volatile CTE is evaluated before the query that reads it), then the
    // waiters key: held by any other session, it is told; our own waiters queue in-process.
    const [k1, k2] = this.#waiters;
    const result = await this.#query<{ ok: boolean }>(
      `WITH u AS (SELECT pg_advisory_unlock($1::bigint) AS ok)
       SELECT u.ok, CASE WHEN pg_try_advisory_xact_lock($4::int, $5::int) THEN NULL ELSE pg_notify($2, $3) END AS told FROM u`,
      [advisoryKey(this.#ns, name), this.#channel, name, k1, k2],
    );
    return result.rows[0]?.ok === true;
  }

  /**
   * An advisory lock can only be freed by its session: breaking one ends the holder's
   * session (every lock it held goes with it, as a crash would), and wakes the waiters.
   */
  async breakLock(name: string, hold?: string): Promise<boolean> {
    const [classid, objid] = advisoryParts(this.#ns, name);
    // A conditional break names a grant, not only a session: one session holds a member's
    // later grants of the same name too, so the hold's fence must still be the name's
    // latest (each grant raises it), or the newer grant would be ended by a force about
    // the older one.
    const [pid, fence] = hold === undefined ? [null, null] : holdParts(hold);
    const result = await this.#query<{ ended: boolean }>(
      `SELECT pg_terminate_backend(l.pid) AS ended FROM pg_locks l
       WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1 AND l.pid <> pg_backend_pid()
         AND ($3::int IS NULL OR (l.pid = $3::int
              AND (SELECT f.fence FROM statesmith_fences f WHERE f.namespace = $5 AND f.name = $6) = $4::bigint))`,
      [classid, objid, pid, fence, this.#ns, name],
    );
    const ended = result.rows.some((row) => row.ended);
    if (ended) await this.#query('SELECT pg_notify($1, $2)', [this.#channel, name]);
    // This session's own hold is broken as a release would.
    if (!ended && this.#held.has(name) && hold === undefined) {
      const token = this.#held.get(name) as string;
      return this.release(name, token);
    }
    return ended;
  }

  /** The holder: its session's pid and application name (the member id, cut at 63 bytes), and its grant's fence. */
  async holderOf(name: string): Promise<{ memberId: string; hold: string } | null> {
    const [classid, objid] = advisoryParts(this.#ns, name);
    const result = await this.#query<{ pid: number; app: string; fence: string | null }>(
      `SELECT l.pid, a.application_name AS app,
              (SELECT f.fence::text FROM statesmith_fences f WHERE f.namespace = $3 AND f.name = $4) AS fence
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1`,
      [classid, objid, this.#ns, name],
    );
    const row = result.rows[0];
    return row === undefined ? null : { memberId: row.app, hold: `${row.pid}:${row.fence ?? '0'}:${row.app}` };
  }

  async isHolder(name: string, token: string): Promise<boolean> {
    if (this.#held.get(name) !== token) return false;
    const [classid, objid] = advisoryParts(this.#ns, name);
    const result = await this.#query<{ held: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
         AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1) AS held`,
      [classid, objid],
    );
    return result.rows[0]?.held === true && this.#held.get(name) === token;
  }

  /** The failed statement may have left this session holding `key`: unlock it, or drop the session when it cannot be trusted. */
  async #undoAcquire(generation: number, key: string, error: unknown): Promise<void> {
    if (generation !== this.#generation) return; // the session is already gone, and its locks with it
    const fromServer = typeof (error as { code?: unknown } | null)?.code === 'string';
    if (fromServer) {
      try {
        await this.#query('SELECT pg_advisory_unlock($1::bigint)', [key]);
        return;
      } catch (unlockError) {
        error = unlockError;
      }
    }
    getLogger().warn('a PostgreSQL acquire failed without a server answer; dropping the session so that it holds nothing', { error });
    this.#reportLost(generation, error);
  }

  onReleased(listener: (name: string) => void): void {
    this.#released.push(listener);
  }

  async listen(on: boolean): Promise<void> {
    if (this.#client === undefined) return;
    const [k1, k2] = this.#waiters;
    if (on) {
      // Listening first, then known to releasers: a release seen as a waiter is always heard.
      await this.#query(`LISTEN ${quoteIdent(this.#channel)}`);
      await this.#query('SELECT pg_advisory_lock_shared($1::int, $2::int)', [k1, k2]);
    } else {
      await this.#query('SELECT pg_advisory_unlock_shared($1::int, $2::int)', [k1, k2]);
      await this.#query(`UNLISTEN ${quoteIdent(this.#channel)}`);
    }
  }

  onLost(listener: (error: unknown) => void): void {
    this.#lost.push(listener);
  }

  #query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }> {
    const client = this.#client;
    if (client === undefined) return Promise.reject(new Error('the PostgreSQL backend is not connected'));
    const run = this.#tail.then(() => client.query<R>(sql, params));
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #reportLost(generation: number, error: unknown): void {
    if (generation !== this.#generation) return;
    this.#generation++;
    // The session is gone, and every advisory lock with it.
    this.#held.clear();
    const client = this.#client;
    this.#client = undefined;
    void client?.end().catch(() => undefined);
    for (const listener of this.#lost) listener(error);
  }
}
