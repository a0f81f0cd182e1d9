/**
 * The Redis backend (`redis://`, with `ioredis`). A dedicated connection for the lock
 * commands and one that subscribes to the release channel while this process has
 * waiters, so they wake when a lock is released instead of polling (polling stays as the
 * fallback for TTL expiry).
 *
 * - acquire: one script does `SET key token NX PX ttl` and, on success, sets the name's
 *   fence to max(previous fence + 1, the server's `TIME` in microseconds), so a grant and
 *   its fence are one atomic step, and the fence keeps growing even when Redis lost its
 *   data (a restart without persistence, a failover to a replica that lagged): the time
 *   floor is past every fence handed out before, since no name is granted a million
 *   times a second. It fails only if the server's clock steps back further than the time
 *   since the name's previous grant at the same moment the data is lost;
 * - renew: compare the token, then `PEXPIRE` to the full TTL (never adds, tooz's bug);
 * - release: compare the token, `DEL`, and `PUBLISH` the name: another owner's lock is
 *   never deleted.
 *
 * The offline queue is off and ioredis does not reconnect by itself: a lost connection
 * is reported, the coordinator reconnects with its own back-off, and no renewal is
 * replayed after its lease could have run out.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { getLogger } from '../../logger.ts';
import { ChannelListeners, capabilitiesOf, memberOfToken, namespaceOf } from './common.ts';
import type { Backend, BackendCapabilities, BackendOptions, MessageBus, RecordStore } from '../types.ts';

// Lua numbers are doubles: exact up to 2^53, and microseconds since 1970 stay below
// that until the year 2255. string.format('%.0f') prints them without an exponent.
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.replicate_commands then redis.replicate_commands() end
  local now = redis.call('TIME')
  local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local fence = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, floor)
  local text = string.format('%.0f', fence)
  redis.call('SET', KEYS[2], text)
  return text
end
return false`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`;

// Records: a sorted set of ids by expiry (server time, ms) and a hash of their values, per dir.
const RECORD_PUT = `
if redis.replicate_commands then redis.replicate_commands() end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], string.format('%.0f', ms + ttl), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 1`;

const RECORD_LIST = `
if redis.replicate_commands then redis.replicate_commands() end
local now = redis.call('TIME')
local ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms)
for _, id in ipairs(expired) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
local out = {}
if ARGV[1] ~= '' then
  if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    out[1] = ARGV[1]
    out[2] = redis.call('HGET', KEYS[2], ARGV[1])
  end
  return out
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local value = redis.call('HGET', KEYS[2], id)
  if value then
    out[#out + 1] = id
    out[#out + 1] = value
  end
end
return out`;

const RECORD_DELETE = `
local value = redis.call('HGET', KEYS[2], ARGV[1])
if not value or (ARGV[2] ~= '' and value ~= ARGV[3]) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1`;

const BREAK = `
if ARGV[3] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
return 0`;

interface LockCommands {
  statesmithBreak(lockKey: string, channel: string, name: string, hold: string): Promise<number>;
  statesmithRecordPut(expiries: string, values: string, id: string, value: string, ttlMs: number): Promise<number>;
  statesmithRecordList(expiries: string, values: string, id: string): Promise<string[]>;
  statesmithRecordDelete(expiries: string, values: string, id: string, compare: string, value: string): Promise<number>;
  statesmithAcquire(lockKey: string, fenceKey: string, token: string, ttlMs: number): Promise<string | null>;
  statesmithRenew(lockKey: string, token: string, ttlMs: number): Promise<number>;
  statesmithRelease(lockKey: string, token: string, channel: string, name: string): Promise<number>;
}

type RedisModule = { Redis?: new (url: string, options: RedisOptions) => RedisClient; default?: unknown };

export class RedisBackend implements Backend {
  readonly kind = 'redis' as const;
  /** Commands on its one connection run in the order sent. */
  readonly ordered = true;
  readonly capabilities: BackendCapabilities = capabilitiesOf({ distributed: true, sessionBased: false, watch: true });
  readonly #options: BackendOptions;
  readonly #Redis: new (url: string, options: RedisOptions) => RedisClient;
  readonly #ns: string;
  readonly #channel: string;
  readonly #released: Array<(name: string) => void> = [];
  readonly #lost: Array<(error: unknown) => void> = [];
  #client: (RedisClient & LockCommands) | undefined;
  #subscriber: RedisClient | undefined;
  #generation = 0;
  readonly #channels = new ChannelListeners();
  readonly messages: MessageBus = {
    publish: async (channel, payload) => {
      await this.#connection().publish(`${this.#ns}:msg:${channel}`, payload);
    },
    subscribe: async (channel, listener) => {
      const subscriber = this.#subscriber;
      if (subscriber === undefined) throw new Error('the Redis backend is not connected');
      const name = `${this.#ns}:msg:${channel}`;
      return this.#channels.add(
        name,
        listener,
        () => subscriber.subscribe(name),
        async () => this.#subscriber?.unsubscribe(name),
      );
    },
  };
  readonly records: RecordStore = {
    onLease: false,
    put: async (dir, id, value, ttlMs) => {
      await this.#connection().statesmithRecordPut(...this.#dirKeys(dir), id, value, Math.max(1, Math.ceil(Math.min(ttlMs, 2 ** 47))));
    },
    get: async (dir, id) => {
      const [, value] = await this.#connection().statesmithRecordList(...this.#dirKeys(dir), id);
      return value ?? null;
    },
    list: async (dir) => {
      const flat = await this.#connection().statesmithRecordList(...this.#dirKeys(dir), '');
      const out: Array<{ id: string; value: string }> = [];
      for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i] as string, value: flat[i + 1] as string });
      return out;
    },
    delete: async (dir, id, value) =>
      (await this.#connection().statesmithRecordDelete(...this.#dirKeys(dir), id, value === undefined ? '' : '1', value ?? '')) === 1,
  };

  constructor(options: BackendOptions, module: unknown) {
    this.#options = options;
    const mod = module as RedisModule;
    this.#Redis = (mod.Redis ?? (mod.default as RedisModule | undefined)?.Redis ?? mod.default) as new (url: string, options: RedisOptions) => RedisClient;
    this.#ns = namespaceOf(options.url);
    this.#channel = `${this.#ns}:released`;
  }

  async connect(): Promise<void> {
    await this.close();
    const generation = ++this.#generation;
    const url = new URL(this.#options.url.href);
    url.searchParams.delete('namespace');
    const base: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      commandTimeout: this.#options.commandTimeoutMs,
      connectTimeout: Math.max(this.#options.commandTimeoutMs, 1_000),
    };
    const client = new this.#Redis(url.href, { ...base, connectionName: clientName(this.#options.memberId) }) as RedisClient & LockCommands;
    client.defineCommand('statesmithAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    client.defineCommand('statesmithRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('statesmithRelease', { numberOfKeys: 1, lua: RELEASE });
    client.defineCommand('statesmithBreak', { numberOfKeys: 1, lua: BREAK });
    client.defineCommand('statesmithRecordPut', { numberOfKeys: 2, lua: RECORD_PUT });
    client.defineCommand('statesmithRecordList', { numberOfKeys: 2, lua: RECORD_LIST });
    client.defineCommand('statesmithRecordDelete', { numberOfKeys: 2, lua: RECORD_DELETE });
    const subscriber = new this.#Redis(url.href, { ...base, commandTimeout: undefined as never, connectionName: clientName(`${this.#options.memberId}:wake`) });
    const onEnd = (): void => this.#reportLost(generation, new Error('the Redis connection closed'));
    /** The last connection error ioredis reported: its connect() itself only says "Connection is closed.". */
    let lastError: unknown;
    for (const connection of [client, subscriber]) {
      // ioredis reports connection errors as events; the 'end' that follows is what counts.
      connection.on('error', (error: unknown) => {
        lastError = error;
        getLogger().debug('redis connection error', { error });
      });
      connection.on('end', onEnd);
    }
    subscriber.on('message', (channel: string, payload: string) => {
      if (channel === this.#channel) {
        for (const listener of this.#released) listener(payload);
        return;
      }
      this.#channels.dispatch(channel, payload);
    });
    this.#client = client;
    this.#subscriber = subscriber;
    try {
      await client.connect();
      // ioredis selects the URL's database on connect but carries on in database 0 when
      // the server refuses it; select it again and let a refusal fail the connect.
      const db = redisDatabase(url);
      if (db !== 0) await client.select(db);
      await subscriber.connect();
    } catch (error) {
      await this.close();
      // "Connection is closed." tells nothing: the cause (ECONNREFUSED, ENOTFOUND...) is in the error event.
      if (lastError instanceof Error && error instanceof Error && !error.message.includes(lastError.message)) {
        throw new Error(`${lastError.message} (${error.message})`, { cause: lastError });
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    this.#generation++;
    this.#channels.clear();
    const connections = [this.#client, this.#subscriber];
    this.#client = undefined;
    this.#subscriber = undefined;
    for (const connection of connections) connection?.disconnect();
  }

  async ping(): Promise<void> {
    await this.#connection().ping();
  }

  async tryAcquire(name: string, token: string, ttlMs: number): Promise<bigint | null> {
    const fence = await this.#connection().statesmithAcquire(this.#key('lock', name), this.#key('fence', name), token, Math.ceil(ttlMs));
    return fence === null ? null : BigInt(fence);
  }

  async renew(name: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.#connection().statesmithRenew(this.#key('lock', name), token, Math.ceil(ttlMs))) === 1;
  }

  /** Every grant's renewal in one pipeline: one round trip for all of this member's locks. */
  async renewAll(grants: ReadonlyArray<{ readonly name: string; readonly token: string }>, ttlMs: number): Promise<boolean[]> {
    const pipeline = this.#connection().pipeline() as unknown as {
      statesmithRenew(lockKey: string, token: string, ttlMs: number): unknown;
      exec(): Promise<Array<[Error | null, unknown]> | null>;
    };
    for (const { name, token } of grants) pipeline.statesmithRenew(this.#key('lock', name), token, Math.ceil(ttlMs));
    const results = (await pipeline.exec()) ?? [];
    return grants.map((_, i) => {
      const [error, value] = results[i] ?? [new Error('no answer in the pipeline'), null];
      if (error !== null) throw error;
      return value === 1;
    });
  }

  async release(name: string, token: string): Promise<boolean> {
    return (await this.#connection().statesmithRelease(this.#key('lock', name), token, this.#channel, name)) === 1;
  }

  async breakLock(name: string, hold?: string): Promise<boolean> {
    return (await this.#connection().statesmithBreak(this.#key('lock', name), this.#channel, name, hold ?? '')) === 1;
  }

  async holderOf(name: string): Promise<{ memberId: string; hold: string } | null> {
    const token = await this.#connection().get(this.#key('lock', name));
    return token === null ? null : { memberId: memberOfToken(token), hold: token };
  }

  async isHolder(name: string, token: string): Promise<boolean> {
    return (await this.#connection().get(this.#key('lock', name))) === token;
  }

  onReleased(listener: (name: string) => void): void {
    this.#released.push(listener);
  }

  async listen(on: boolean): Promise<void> {
    const subscriber = this.#subscriber;
    if (subscriber === undefined) return;
    if (on) await subscriber.subscribe(this.#channel);
    else await subscriber.unsubscribe(this.#channel);
  }

  onLost(listener: (error: unknown) => void): void {
    this.#lost.push(listener);
  }

  #dirKeys(dir: string): [string, string] {
    return [`${this.#ns}:rec:${dir}`, `${this.#ns}:recv:${dir}`];
  }

  #key(kind: 'lock' | 'fence', name: string): string {
    return `${this.#ns}:${kind}:${name}`;
  }

  #connection(): RedisClient & LockCommands {
    if (this.#client === undefined) throw new Error('the Redis backend is not connected');
    return this.#client;
  }

  #reportLost(generation: number, error: unknown): void {
    // Only the live connection's end counts, once; closing it ourselves starts a new generation.
    if (generation !== this.#generation) return;
    this.#generation++;
    for (const listener of this.#lost) listener(error);
  }
}

/** The database index a `redis://host/N` URL names (0 when none); a path that is not one is refused when the URL is parsed. */
export function redisDatabase(url: URL): number {
  const path = url.pathname.replace(/^\//, '');
  return path === '' ? 0 : Number(path);
}

/** Redis client names may not contain spaces. */
function clientName(memberId: string): string {
  return memberId.replace(/\s/g, '_').slice(0, 100);
}
