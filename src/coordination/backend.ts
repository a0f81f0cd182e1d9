/**
 * The small interface every coordination backend implements, and how a URL picks one.
 * Clients (`ioredis`, `pg`) are loaded only when a URL names their backend.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { Clock } from '../clock.ts';
import { ArgumentRangeError, CoordinationError } from '../errors.ts';

/** What a backend guarantees, so a caller can require what it needs (tooz's characteristics). */
export interface BackendCapabilities {
  /** Locks are shared across processes and hosts (false: this process only). */
  readonly distributed: boolean;
  /** A lock lives as long as its holder's session, not a TTL: it frees at once when the holder dies. */
  readonly sessionBased: boolean;
  /** Every grant carries a fence that grows per name. */
  readonly fencing: boolean;
}

/** Which backend a coordination URL names. */
export type BackendKind = 'memory' | 'redis' | 'postgresql' | 'etcd';

export interface Backend {
  readonly kind: BackendKind;
  readonly capabilities: BackendCapabilities;
  /** Opens the connection(s). May be called again after `close()` (a reconnect). */
  connect(): Promise<void>;
  /** Closes the connection(s); never throws. */
  close(): Promise<void>;
  /** One round trip; throws when the backend cannot be reached. */
  ping(): Promise<void>;
  /** Takes `name` for `token` with a lease of `ttlMs`; the fence, or null when held by someone else. */
  tryAcquire(name: string, token: string, ttlMs: number): Promise<bigint | null>;
  /** Sets the lease back to the full `ttlMs` if `token` still holds `name`; false when it does not. */
  renew(name: string, token: string, ttlMs: number): Promise<boolean>;
  /** Frees `name` if `token` holds it (and wakes waiters); false when it did not. */
  release(name: string, token: string): Promise<boolean>;
  /** Called with a name when it may have come free (push wake-ups). */
  onReleased(listener: (name: string) => void): void;
  /**
   * Starts (`true`) or stops (`false`) hearing release wake-ups. The coordinator listens
   * only while someone waits, so an uncontended release costs no message to anyone.
   */
  listen?(on: boolean): Promise<void>;
  /** Called when the connection is lost: locks held through it can no longer be vouched for. */
  onLost(listener: (error: unknown) => void): void;
  /** Frees `name` whoever holds it (an operator's break), or only while `hold` (from `holderOf`) does; true when it freed it. */
  breakLock?(name: string, hold?: string): Promise<boolean>;
  /** Who holds `name` now: the member, and what names this hold for a conditional `breakLock`; null when free. */
  holderOf?(name: string): Promise<{ readonly memberId: string; readonly hold: string } | null>;
  /** Asks the server whether `token` holds `name` now. */
  isHolder?(name: string, token: string): Promise<boolean>;
  /** Messages between members (the distributed locksmith's requests and replies). */
  readonly messages?: MessageBus;
  /**
   * Small records that live for `ttlMs` unless put again: group members, an election's
   * leader. `dir` ends with `/`; `id` is unique in it. Every backend statesmith ships has
   * them; a backend without them cannot hold elections or groups.
   */
  readonly records?: RecordStore;
}

/** A backend's own messaging: Redis pub/sub, PostgreSQL `NOTIFY`, an etcd watch. At most once, in order per sender. */
export interface MessageBus {
  /** Sends `payload` (a string, under 7,000 bytes) to whoever listens on `channel` now. */
  publish(channel: string, payload: string): Promise<void>;
  /** Listens on `channel` until the returned function is called (or the connection closes). */
  subscribe(channel: string, listener: (payload: string) => void): Promise<() => Promise<void>>;
}

/**
 * Listeners by server channel, for a backend whose connection subscribes once per channel
 * (Redis `SUBSCRIBE`, PostgreSQL `LISTEN`): the first listener subscribes, the last one
 * out unsubscribes.
 */
export class ChannelListeners {
  readonly #channels = new Map<string, Set<(payload: string) => void>>();

  /** Adds `listener` on `name`; `first` subscribes the connection, `last` unsubscribes it. */
  async add(name: string, listener: (payload: string) => void, first: () => Promise<unknown>, last: () => Promise<unknown>): Promise<() => Promise<void>> {
    let set = this.#channels.get(name);
    if (set === undefined) {
      this.#channels.set(name, (set = new Set()));
      await first();
    }
    const mine = (payload: string): void => listener(payload);
    set.add(mine);
    return async () => {
      set.delete(mine);
      if (set.size === 0 && this.#channels.get(name) === set) {
        this.#channels.delete(name);
        await last().catch(() => undefined);
      }
    };
  }

  /** Hands `payload` to the listeners of `name`. */
  dispatch(name: string, payload: string): void {
    for (const listener of this.#channels.get(name) ?? []) listener(payload);
  }

  /** Forgets every listener (the connection closed: its subscriptions are gone). */
  clear(): void {
    this.#channels.clear();
  }
}

/** The records of a backend (see {@link Backend.records}). */
export interface RecordStore {
  /** Sets `dir + id` to `value` for `ttlMs` (on etcd: for the connection's lease). */
  put(dir: string, id: string, value: string, ttlMs: number): Promise<void>;
  /** The live value, or null. */
  get(dir: string, id: string): Promise<string | null>;
  /** Every live record of `dir`, by id. */
  list(dir: string): Promise<Array<{ readonly id: string; readonly value: string }>>;
  /** Deletes `dir + id` (only if its value is `value`, when given); true when it was there. */
  delete(dir: string, id: string, value?: string): Promise<boolean>;
  /** True when a put lives on the connection's lease, so the heartbeat keeps it and puts need not be repeated. */
  readonly onLease: boolean;
}

/**
 * The longest lock name, prefix included, in bytes of UTF-8: the same on every backend,
 * so a name that works on `memory://` works in production. PostgreSQL sets the bound: its
 * fence row's btree key holds at most 2,704 bytes and a `NOTIFY` payload under 8,000
 * (PostgreSQL 15 docs, "Index row size" and `NOTIFY`); 1 KiB leaves room for the namespace.
 */
export const MAX_LOCK_NAME_BYTES = 1024;

/** The member id inside a grant's token (`<memberId>:<12 hex>:<n>`, see `Coordinator.nextToken`). */
export function memberOfToken(token: string): string {
  return token.replace(/:[0-9a-f]{12}:\d+$/, '');
}

/** Refuses a lock name over {@link MAX_LOCK_NAME_BYTES} up front, before any backend sees it. */
export function checkLockName(name: string): string {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_LOCK_NAME_BYTES) {
    throw new ArgumentRangeError('name', `a lock name of at most ${MAX_LOCK_NAME_BYTES} bytes in UTF-8, prefix included (it has ${bytes})`, name);
  }
  return name;
}

/** What a backend is built with. */
export interface BackendOptions {
  readonly url: URL;
  readonly memberId: string;
  readonly clock: Clock;
  /** Bound on one command (Redis `commandTimeout`). */
  readonly commandTimeoutMs: number;
  /** The coordinator's `lockTtlMs`: the TTL of a backend's session lease (etcd's). */
  readonly leaseTtlMs?: number;
}

type Loader = (specifier: string) => Promise<unknown>;
let loader: Loader = (specifier) => import(specifier);

/** Replaces the module loader (tests use it to play an uninstalled client). @internal */
export function setModuleLoader(next: Loader | null): void {
  loader = next ?? ((specifier) => import(specifier));
}

/** Loads an optional peer dependency, with a clear error when it is not installed. */
export async function loadClient<T>(specifier: 'ioredis' | 'pg' | 'etcd3', scheme: string): Promise<T> {
  try {
    return (await loader(specifier)) as T;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CoordinationError(
        'ERR_COORDINATION_CLIENT_MISSING',
        `a ${scheme}// coordinator URL needs the "${specifier}" package; install it with: npm install ${specifier}`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** The schemes statesmith knows, by backend. */
const SCHEMES: Record<string, BackendKind> = {
  'memory:': 'memory',
  'redis:': 'redis',
  'rediss:': 'redis',
  'postgres:': 'postgresql',
  'postgresql:': 'postgresql',
  'etcd:': 'etcd',
};

/** One `host:port` of an etcd URL: a name or IPv4 address, or a bracketed IPv6 one, and a port. */
const ETCD_HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

/**
 * An `etcd://h1:2379,h2:2379/?namespace=x` URL: WHATWG URLs take one host, so the list is
 * checked here and kept in the `endpoints` query of a URL naming the first.
 */
function parseEtcdUrl(raw: string): URL {
  const match = /^etcd:\/\/([^/?#]*)([^#]*)$/.exec(raw);
  const hosts = match?.[1]?.split(',') ?? [];
  const bad = hosts.find((host) => {
    const parts = ETCD_HOST.exec(host);
    return parts === null || Number(parts[2]) < 1 || Number(parts[2]) > 65_535;
  });
  if (match === null || hosts.length === 0 || hosts[0] === '' || bad !== undefined) {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `an etcd:// URL names one or more host:port pairs, comma-separated, such as etcd://127.0.0.1:2379 or etcd://h1:2379,h2:2379; received ${JSON.stringify(raw)}${bad === undefined ? '' : ` (${JSON.stringify(bad)} is not host:port)`}`,
    );
  }
  const url = new URL(`etcd://${hosts[0] as string}${match[2] ?? ''}`);
  if (url.pathname !== '' && url.pathname !== '/') {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `an etcd:// URL has no path (use ?namespace= for a key prefix); received ${JSON.stringify(url.pathname)} in ${JSON.stringify(raw)}`,
    );
  }
  url.searchParams.set('endpoints', hosts.join(','));
  return url;
}

/** Parses a coordinator URL; a malformed one or an unknown scheme is a `CoordinationError`. */
export function parseUrl(raw: string): { url: URL; kind: BackendKind } {
  if (typeof raw === 'string' && raw.startsWith('etcd:')) return { url: parseEtcdUrl(raw), kind: 'etcd' };
  let url: URL;
  try {
    url = new URL(raw);
  } catch (error) {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `the coordinator URL must be a URL such as memory://, redis://host:6379, postgresql://host/db or etcd://host:2379; received ${JSON.stringify(raw)}`,
      {
        cause: error,
      },
    );
  }
  const kind = SCHEMES[url.protocol];
  if (kind === undefined) {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `the coordinator URL scheme must be one of ${Object.keys(SCHEMES)
        .map((s) => `${s}//`)
        .join(', ')}; received ${JSON.stringify(url.protocol)} in ${JSON.stringify(raw)}`,
    );
  }
  if (kind === 'redis' && !/^\/?(\d{1,5})?$/.test(url.pathname)) {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `a redis:// URL's path must be a database number such as /0; received ${JSON.stringify(url.pathname)} in ${JSON.stringify(raw)}`,
    );
  }
  return { url, kind };
}

// The backends themselves import no client: the client module is handed to them once loaded.
import { EtcdBackend } from './etcdBackend.ts';
import { MemoryBackend } from './memoryBackend.ts';
import { PostgresBackend } from './postgresBackend.ts';
import { RedisBackend } from './redisBackend.ts';

/** Builds the backend a parsed URL names. */
export async function createBackend(kind: BackendKind, options: BackendOptions): Promise<Backend> {
  switch (kind) {
    case 'memory':
      return new MemoryBackend(options);
    case 'redis':
      return new RedisBackend(options, await loadClient('ioredis', options.url.protocol));
    case 'postgresql':
      return new PostgresBackend(options, await loadClient('pg', options.url.protocol));
    case 'etcd':
      return new EtcdBackend(options, await loadClient('etcd3', options.url.protocol));
  }
}

/** The namespace keys and channels live under: the URL's `namespace` query, default `statesmith`. */
export function namespaceOf(url: URL): string {
  const ns = url.searchParams.get('namespace');
  return ns === null || ns === '' ? 'statesmith' : ns;
}
