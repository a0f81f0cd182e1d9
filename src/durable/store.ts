/**
 * Snapshot stores for durable actors: `openStore('sqlite:///abs/path/state.db')` (one host,
 * no server; `better-sqlite3` 12) or `openStore('postgresql://…')` (several hosts; `pg`).
 *
 * A store keeps, per actor id, the persisted snapshot (JSON), the machine version, the
 * fence it was saved under, and when. A save is conditional on the fence: it writes
 * nothing, and resolves false, when a larger fence is stored, so an incarnation that a newer
 * one replaced can never overwrite the newer one's snapshot.
 *
 * @module
 */
import { userInfo } from 'node:os';
import type BetterSqlite3 from 'better-sqlite3';
import type { Client, ClientConfig } from 'pg';
import { DurableError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { optionalObject } from '../runtime/validate.ts';
import { databaseClass, openWal, retryWhileBusy, type SqliteDatabase } from '../sqlite.ts';

/** A saved snapshot, as {@link SnapshotStore.load} returns it. */
export interface StoredSnapshot {
  /** The persisted snapshot (what the logic's `getPersistedSnapshot` made, and the armed timers). */
  readonly snapshot: unknown;
  /** The machine version that saved it. */
  readonly version: string | number;
  /** The fence it was saved under; `undefined` when saved without one. */
  readonly fence: bigint | undefined;
  /** When it was saved: milliseconds since 1970 (the store's clock). */
  readonly savedAt: number;
}

/** What {@link SnapshotStore.save} writes. */
export interface SnapshotRecord {
  /** The snapshot to keep: JSON, with bigints allowed. */
  readonly snapshot: unknown;
  /** The machine version that saves it. */
  readonly version: string | number;
  /** The saver's fence: the save writes nothing when a larger one is stored (an equal one is allowed). Without it, any stored fence is larger. */
  readonly fence?: bigint;
}

/**
 * Where durable actors keep their snapshots. `openStore(url)` makes one; any object with
 * these methods will do (a store passed in as an object stays its owner's to close).
 *
 * @example
 * ```ts
 * import { openStore } from 'statesmith';
 * import { mkdtempSync } from 'node:fs';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 *
 * const store = await openStore(`sqlite://${join(mkdtempSync(join(tmpdir(), 'doc-')), 'state.db')}`);
 * console.log(await store.save('agent', { snapshot: { value: 'idle' }, version: 1, fence: 3n })); // true
 * // A save under a smaller fence writes nothing:
 * console.log(await store.save('agent', { snapshot: { value: 'stale' }, version: 1, fence: 2n })); // false
 * console.log((await store.load('agent'))?.snapshot); // { value: 'idle' }
 * await store.close();
 * ```
 */
export interface SnapshotStore {
  /** The last snapshot saved under `id`, or null. */
  load(id: string): Promise<StoredSnapshot | null>;
  /** Saves `record` under `id`; false, with nothing written, when a larger fence is stored. */
  save(id: string, record: SnapshotRecord): Promise<boolean>;
  /** Forgets `id`; true when it was there. */
  delete(id: string): Promise<boolean>;
  /** Every id with a snapshot, sorted. */
  list(): Promise<string[]>;
  /** Closes the connection; idempotent. */
  close(): Promise<void>;
}

/** Bigints (fences in statesmith's own contexts) survive the trip through JSON as `{ "$bigint": "12" }`. */
function toJson(id: string, value: unknown): string {
  try {
    const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? { $bigint: v.toString() } : v));
    if (typeof text !== 'string') throw new TypeError(`it serialises to ${String(text)}`);
    return text;
  } catch (error) {
    throw new DurableError('ERR_SNAPSHOT_JSON', `the snapshot of ${JSON.stringify(id)} must be JSON (bigints allowed); ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function fromJson(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const big = (v as { $bigint?: unknown }).$bigint;
      if (keys.length === 1 && typeof big === 'string' && /^-?\d+$/.test(big)) return BigInt(big);
    }
    return v;
  });
}

function checkId(id: unknown): string {
  if (typeof id !== 'string' || id === '' || Buffer.byteLength(id) > 1024) {
    throw new DurableError(
      'ERR_STORE',
      `a durable actor id is a non-empty string of at most 1,024 bytes; received ${typeof id === 'string' ? JSON.stringify(id) : typeof id}`,
    );
  }
  return id;
}

function checkRecord(id: string, record: unknown): { snapshot: string; version: string; fence: bigint | null } {
  const r = optionalObject<SnapshotRecord>('record', record, ['snapshot', 'version', 'fence']);
  if (typeof r.version !== 'string' && typeof r.version !== 'number') {
    throw new DurableError('ERR_STORE', `record.version is a string or a number; received ${typeof r.version}`);
  }
  if (r.fence !== undefined && (typeof r.fence !== 'bigint' || r.fence < 0n)) {
    throw new DurableError(
      'ERR_STORE',
      `record.fence is a bigint of at least 0, or undefined; received ${typeof r.fence === 'bigint' ? r.fence : typeof r.fence}`,
    );
  }
  return { snapshot: toJson(id, r.snapshot), version: JSON.stringify(r.version), fence: r.fence ?? null };
}

type Loader = (specifier: string) => Promise<unknown>;
const load: Loader = (specifier) => import(specifier);

async function client(specifier: 'better-sqlite3' | 'pg', scheme: string): Promise<unknown> {
  try {
    return await load(specifier);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new DurableError(
        'ERR_STORE_CLIENT_MISSING',
        `a ${scheme}// store URL needs the "${specifier}" package; install it with: npm install ${specifier}`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

/** How long one store command may wait on a busy SQLite file, or for PostgreSQL's answer. */
const COMMAND_MS = 5_000;

type Statement = BetterSqlite3.Statement<unknown[], unknown>;
interface Statements {
  readonly load: Statement;
  readonly save: Statement;
  readonly del: Statement;
  readonly list: Statement;
}

/** The `sqlite://` store: one WAL file, one row per actor. */
class SqliteStore implements SnapshotStore {
  readonly #path: string;
  #db: SqliteDatabase | undefined;
  #statements: Statements | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  async open(module: unknown): Promise<void> {
    const db = await openWal(databaseClass(module), this.#path, COMMAND_MS, (error) => this.#busy(error));
    try {
      await retryWhileBusy(
        () =>
          db.exec(`CREATE TABLE IF NOT EXISTS statesmith_snapshots (id TEXT NOT NULL PRIMARY KEY, snapshot TEXT NOT NULL, version TEXT NOT NULL,
             fence INTEGER, saved_at INTEGER NOT NULL) WITHOUT ROWID`),
        COMMAND_MS,
        (error) => this.#busy(error),
      );
      this.#statements = {
        load: db.prepare('SELECT snapshot, version, fence, saved_at FROM statesmith_snapshots WHERE id = ?').safeIntegers(true),
        // The fence condition is in the upsert itself: a stored larger fence leaves the row as it is, and no row changes.
        save: db.prepare(
          `INSERT INTO statesmith_snapshots (id, snapshot, version, fence, saved_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, version = excluded.version, fence = excluded.fence, saved_at = excluded.saved_at
           WHERE coalesce(statesmith_snapshots.fence, -1) <= coalesce(excluded.fence, -1)`,
        ),
        del: db.prepare('DELETE FROM statesmith_snapshots WHERE id = ?'),
        list: db.prepare('SELECT id FROM statesmith_snapshots ORDER BY id'),
      };
    } catch (error) {
      db.close();
      throw error;
    }
    this.#db = db;
  }

  #busy(error: unknown): DurableError {
    return new DurableError('ERR_STORE', `the SQLite file ${JSON.stringify(this.#path)} stayed busy (written by another connection) for ${COMMAND_MS} ms`, {
      cause: error,
    });
  }

  #run<T>(fn: (s: Statements) => T): Promise<T> {
    const statements = this.#statements;
    if (statements === undefined) return Promise.reject(new DurableError('ERR_STORE', `the snapshot store ${JSON.stringify(this.#path)} is closed`));
    return retryWhileBusy(
      () => fn(statements),
      COMMAND_MS,
      (error) => this.#busy(error),
    );
  }

  async load(id: string): Promise<StoredSnapshot | null> {
    checkId(id);
    const row = (await this.#run((s) => s.load.get(id))) as { snapshot: string; version: string; fence: bigint | null; saved_at: bigint } | undefined;
    if (row === undefined) return null;
    return {
      snapshot: fromJson(row.snapshot),
      version: JSON.parse(row.version) as string | number,
      fence: row.fence ?? undefined,
      savedAt: Number(row.saved_at),
    };
  }

  async save(id: string, record: SnapshotRecord): Promise<boolean> {
    checkId(id);
    const { snapshot, version, fence } = checkRecord(id, record);
    return (await this.#run((s) => s.save.run(id, snapshot, version, fence, Date.now()))).changes === 1;
  }

  async delete(id: string): Promise<boolean> {
    checkId(id);
    return (await this.#run((s) => s.del.run(id))).changes === 1;
  }

  async list(): Promise<string[]> {
    return ((await this.#run((s) => s.list.all())) as Array<{ id: string }>).map((row) => row.id);
  }

  async close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    this.#statements = undefined;
    db?.close();
  }
}

type PgModule = { Client?: new (config: ClientConfig) => Client; default?: { Client?: new (config: ClientConfig) => Client } };

/** The `postgresql://` store: one connection, one row per actor. */
class PostgresStore implements SnapshotStore {
  readonly #url: URL;
  #client: Client | undefined;
  /** Queries go one at a time: pg 9 refuses overlapping queries of one client. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(url: URL) {
    this.#url = url;
  }

  async open(module: unknown): Promise<void> {
    const mod = module as PgModule;
    const PgClient = mod.Client ?? mod.default?.Client;
    if (PgClient === undefined) throw new Error('the "pg" module has no Client export');
    const url = new URL(this.#url.href);
    if (url.username === '') url.username = encodeURIComponent(process.env['PGUSER'] ?? userInfo().username);
    const client = new PgClient({ connectionString: url.href, keepAlive: true, query_timeout: COMMAND_MS, connectionTimeoutMillis: COMMAND_MS });
    // A dropped connection fails the next command with ERR_STORE; it must not crash the process meanwhile.
    client.on('error', (error) => getLogger().warn('the snapshot store lost its PostgreSQL connection', { error }));
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT pg_advisory_xact_lock(hashtext('statesmith_snapshots'))");
      await client.query(
        'CREATE TABLE IF NOT EXISTS statesmith_snapshots (id text PRIMARY KEY, snapshot text NOT NULL, version text NOT NULL, fence bigint, saved_at timestamptz NOT NULL)',
      );
      await client.query('COMMIT');
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.#client = client;
  }

  #query<R extends Record<string, unknown>>(sql: string, params: unknown[]): Promise<{ rows: R[] }> {
    const client = this.#client;
    if (client === undefined) return Promise.reject(new DurableError('ERR_STORE', 'the PostgreSQL snapshot store is closed'));
    const run = this.#tail.then(() => client.query<R>(sql, params));
    this.#tail = run.catch(() => undefined);
    return run.catch((error: unknown) => {
      throw new DurableError('ERR_STORE', `the PostgreSQL snapshot store failed: ${(error as Error).message}`, { cause: error });
    });
  }

  async load(id: string): Promise<StoredSnapshot | null> {
    checkId(id);
    const { rows } = await this.#query<{ snapshot: string; version: string; fence: string | null; at: string }>(
      'SELECT snapshot, version, fence::text AS fence, (extract(epoch FROM saved_at) * 1000)::bigint::text AS at FROM statesmith_snapshots WHERE id = $1',
      [id],
    );
    const row = rows[0];
    if (row === undefined) return null;
    return {
      snapshot: fromJson(row.snapshot),
      version: JSON.parse(row.version) as string | number,
      fence: row.fence === null ? undefined : BigInt(row.fence),
      savedAt: Number(row.at),
    };
  }

  async save(id: string, record: SnapshotRecord): Promise<boolean> {
    checkId(id);
    const { snapshot, version, fence } = checkRecord(id, record);
    const { rows } = await this.#query(
      `INSERT INTO statesmith_snapshots AS s (id, snapshot, version, fence, saved_at) VALUES ($1, $2, $3, $4::bigint, clock_timestamp())
       ON CONFLICT (id) DO UPDATE SET snapshot = EXCLUDED.snapshot, version = EXCLUDED.version, fence = EXCLUDED.fence, saved_at = EXCLUDED.saved_at
       WHERE coalesce(s.fence, -1) <= coalesce(EXCLUDED.fence, -1)
       RETURNING id`,
      [id, snapshot, version, fence === null ? null : fence.toString()],
    );
    return rows.length === 1;
  }

  async delete(id: string): Promise<boolean> {
    checkId(id);
    const { rows } = await this.#query('DELETE FROM statesmith_snapshots WHERE id = $1 RETURNING id', [id]);
    return rows.length === 1;
  }

  async list(): Promise<string[]> {
    const { rows } = await this.#query<{ id: string }>('SELECT id FROM statesmith_snapshots ORDER BY id', []);
    return rows.map((row) => row.id);
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch((error: unknown) => getLogger().debug('closing the snapshot store failed', { error }));
  }
}

/**
 * Opens a snapshot store: `sqlite:///abs/path/state.db` (the embedded default; optional peer
 * `better-sqlite3` 12) or `postgresql://user@host/db` (optional peer `pg`).
 *
 * @example
 * ```ts
 * import { openStore } from 'statesmith';
 * import { mkdtempSync } from 'node:fs';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 *
 * const store = await openStore(`sqlite://${join(mkdtempSync(join(tmpdir(), 'doc-')), 'state.db')}`);
 * console.log(await store.list()); // []
 * await store.close();
 * ```
 */
export async function openStore(url: string): Promise<SnapshotStore> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new DurableError(
      'ERR_STORE_URL',
      `a snapshot store URL is sqlite:///abs/path/state.db or postgresql://user@host/db; received ${JSON.stringify(url)}`,
      {
        cause: error,
      },
    );
  }
  if (parsed.protocol === 'sqlite:') {
    if ((parsed.host !== '' && parsed.host !== 'localhost') || !parsed.pathname.startsWith('/') || parsed.pathname === '/') {
      throw new DurableError(
        'ERR_STORE_URL',
        `a sqlite:// store URL names an absolute file path, such as sqlite:///var/lib/app/state.db; received ${JSON.stringify(url)}`,
      );
    }
    const store = new SqliteStore(decodeURIComponent(parsed.pathname));
    try {
      await store.open(await client('better-sqlite3', parsed.protocol));
    } catch (error) {
      if (error instanceof DurableError) throw error;
      throw new DurableError('ERR_STORE', `cannot open the snapshot store ${JSON.stringify(parsed.pathname)}: ${(error as Error).message}`, { cause: error });
    }
    return store;
  }
  if (parsed.protocol === 'postgresql:' || parsed.protocol === 'postgres:') {
    const store = new PostgresStore(parsed);
    try {
      await store.open(await client('pg', parsed.protocol));
    } catch (error) {
      if (error instanceof DurableError) throw error;
      throw new DurableError('ERR_STORE', `cannot open the snapshot store at ${parsed.host}${parsed.pathname}: ${(error as Error).message}`, { cause: error });
    }
    return store;
  }
  throw new DurableError(
    'ERR_STORE_URL',
    `a snapshot store URL is sqlite:///abs/path/state.db or postgresql://user@host/db; received the scheme ${JSON.stringify(parsed.protocol)} in ${JSON.stringify(url)}`,
  );
}
