/**
 * The PostgreSQL backend (`postgresql://`, with `pg`): session-level advisory locks on one
 * dedicated, non-pooled connection per coordinator, so a lock frees the moment its
 * holder's session ends (a killed process, a terminated backend).
 *
 * - The advisory key is the first 8 bytes of SHA-256(namespace, name) as a signed 64-bit
 *   number: no collisions to speak of (tooz used the first 2 bytes of MD5: 65,536 keys).
 * - `pg_try_advisory_lock` and the fence update are one statement, hence one transaction:
 *   a grant always comes with its fence, from a small table `statesmith_fences`.
 * - Release unlocks and `pg_notify`s the name; while this process has waiters, it
 *   `LISTEN`s on the same connection.
 * - A session holds advisory locks re-entrantly: this backend remembers which token holds
 *   each name, so a second grant through the same session is refused, and a release with
 *   a stale token never unlocks someone else's hold.
 *
 * @internal
 */
import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import type { Client, ClientConfig } from 'pg';
import { getLogger } from '../logger.ts';
import { namespaceOf, type Backend, type BackendCapabilities, type BackendOptions } from './backend.ts';

type PgModule = { Client?: new (config: ClientConfig) => Client; default?: { Client?: new (config: ClientConfig) => Client } };

/** The advisory key of a name: 8 bytes of SHA-256 as a signed bigint, in decimal. */
export function advisoryKey(namespace: string, name: string): string {
  const digest = createHash('sha256').update(namespace).update('\0').update(name).digest();
  return digest.readBigInt64BE(0).toString();
}

const quoteIdent = (id: string): string => `"${id.replace(/"/g, '""')}"`;

export class PostgresBackend implements Backend {
  readonly kind = 'postgresql' as const;
  readonly capabilities: BackendCapabilities = Object.freeze({ distributed: true, sessionBased: true, fencing: true });
  readonly #options: BackendOptions;
  readonly #Client: new (config: ClientConfig) => Client;
  readonly #ns: string;
  readonly #channel: string;
  readonly #released: Array<(name: string) => void> = [];
  readonly #lost: Array<(error: unknown) => void> = [];
  /** name → the token holding it through this session. */
  readonly #held = new Map<string, string>();
  #client: Client | undefined;
  #generation = 0;
  /** Queries go one at a time: pg 8 warns on overlapping queries of one client and pg 9 refuses them. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: BackendOptions, module: unknown) {
    this.#options = options;
    const mod = module as PgModule;
    const Client = mod.Client ?? mod.default?.Client;
    if (Client === undefined) throw new Error('the "pg" module has no Client export');
    this.#Client = Client;
    this.#ns = namespaceOf(options.url);
    this.#channel = `${this.#ns}_locks`;
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
      query_timeout: this.#options.commandTimeoutMs,
      connectionTimeoutMillis: Math.max(this.#options.commandTimeoutMs, 1_000),
    });
    const onLost = (error: unknown): void => this.#reportLost(generation, error);
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the PostgreSQL connection ended')));
    client.on('notification', (message) => {
      if (message.channel !== this.#channel || message.payload === undefined) return;
      for (const listener of this.#released) listener(message.payload);
    });
    this.#client = client;
    this.#tail = Promise.resolve();
    try {
      await client.connect();
      await client.query('BEGIN');
      // Two coordinators creating the table at once would collide in the catalog: serialise them.
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [advisoryKey('statesmith', 'schema')]);
      await client.query(
        'CREATE TABLE IF NOT EXISTS statesmith_fences (namespace text NOT NULL, name text NOT NULL, fence bigint NOT NULL, PRIMARY KEY (namespace, name))',
      );
      await client.query('COMMIT');
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    this.#generation++;
    this.#held.clear();
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
    const result = await this.#query<{ fence: string }>(
      `WITH l AS (SELECT pg_try_advisory_lock($1::bigint) AS ok)
       INSERT INTO statesmith_fences AS f (namespace, name, fence)
       SELECT $2, $3, 1 FROM l WHERE l.ok
       ON CONFLICT (namespace, name) DO UPDATE SET fence = f.fence + 1
       RETURNING fence::text AS fence`,
      [advisoryKey(this.#ns, name), this.#ns, name],
    );
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

  async release(name: string, token: string): Promise<boolean> {
    if (this.#held.get(name) !== token) return false;
    this.#held.delete(name);
    const result = await this.#query<{ ok: boolean }>('SELECT pg_advisory_unlock($1::bigint) AS ok, pg_notify($2, $3)', [
      advisoryKey(this.#ns, name),
      this.#channel,
      name,
    ]);
    return result.rows[0]?.ok === true;
  }

  onReleased(listener: (name: string) => void): void {
    this.#released.push(listener);
  }

  async listen(on: boolean): Promise<void> {
    if (this.#client === undefined) return;
    await this.#query(`${on ? 'LISTEN' : 'UNLISTEN'} ${quoteIdent(this.#channel)}`);
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
