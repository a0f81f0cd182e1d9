/**
 * What the backends share: loading an optional client, the key namespace, the member id
 * inside a token, channel listeners, and the bound on lock names.
 *
 * Internal to statesmith (not exported from the package).
 */
import { ArgumentRangeError, CoordinationError } from '../../errors.ts';
import type { BackendCapabilities } from '../types.ts';

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

  /** How many channels have listeners. */
  get size(): number {
    return this.#channels.size;
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

type Loader = (specifier: string) => Promise<unknown>;
let loader: Loader = (specifier) => import(specifier);

/** Replaces the module loader (tests use it to play an uninstalled client). @internal */
export function setModuleLoader(next: Loader | null): void {
  loader = next ?? ((specifier) => import(specifier));
}

/** Loads an optional peer dependency, with a clear error when it is not installed. */
export async function loadClient<T>(specifier: 'ioredis' | 'pg' | 'etcd3' | 'better-sqlite3' | 'mysql2/promise', scheme: string): Promise<T> {
  try {
    return (await loader(specifier)) as T;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      const pkg = specifier.replace(/\/.*$/, '');
      throw new CoordinationError(
        'ERR_COORDINATION_CLIENT_MISSING',
        `a ${scheme}// coordinator URL needs the "${pkg}" package; install it with: npm install ${pkg}`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** The namespace keys and channels live under: the URL's `namespace` query, default `statesmith`. */
export function namespaceOf(url: URL): string {
  const ns = url.searchParams.get('namespace');
  return ns === null || ns === '' ? 'statesmith' : ns;
}

/** The file a `sqlite://` URL names: an absolute path, percent-decoded. */
export function sqlitePath(url: URL): string {
  if ((url.host !== '' && url.host !== 'localhost') || !url.pathname.startsWith('/') || url.pathname === '/') {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `a sqlite:// URL names an absolute file path, such as sqlite:///var/lib/app/coord.db; received ${JSON.stringify(url.href)}`,
    );
  }
  return decodeURIComponent(url.pathname);
}

/** A backend's capabilities: what sets it apart, and the rest, which every backend statesmith ships has. */
export function capabilitiesOf(own: { distributed: boolean; sessionBased: boolean; watch: boolean }): BackendCapabilities {
  return Object.freeze({ ...own, fencing: true, locks: true, fences: true, election: true, membership: true, breakLock: true, forcing: true });
}

/** The `pollMs` query of a polling backend's URL (`sqlite://`, `mysql://`): whole milliseconds from 1 to 60,000, or `fallback`. */
export function pollMsOf(url: URL, fallback: number): number {
  const poll = url.searchParams.get('pollMs');
  const ms = poll === null ? fallback : Number(poll);
  if (!Number.isInteger(ms) || ms < 1 || ms > 60_000) {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `a ${url.protocol}// URL's pollMs is a whole number of milliseconds from 1 to 60000; received ${JSON.stringify(poll)}`,
    );
  }
  return ms;
}

/** The database a `mysql://` URL names (its path), or a `CoordinationError` when it names none. */
export function mysqlDatabase(url: URL): string {
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) {
    throw new CoordinationError(
      'ERR_COORDINATION_URL',
      `a mysql:// URL names its database, such as mysql://root@127.0.0.1:3306/test; received ${JSON.stringify(url.pathname)} as the path of ${JSON.stringify(`${url.protocol}//${url.host}${url.pathname}`)}`,
    );
  }
  return database;
}
