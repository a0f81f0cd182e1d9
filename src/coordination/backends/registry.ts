/**
 * How a coordination URL picks its backend. Each backend's module is loaded only when a
 * URL names it, and its client (`ioredis`, `pg`, `etcd3`) with it: this file imports none
 * of them statically.
 *
 * Internal to statesmith (not exported from the package).
 */
import { CoordinationError } from '../../errors.ts';
import type { Backend, BackendKind, BackendOptions } from '../types.ts';
import { loadClient, mysqlDatabase, sqlitePath } from './common.ts';

/** The schemes statesmith knows, by backend. */
const SCHEMES: Record<string, BackendKind> = {
  'memory:': 'memory',
  'redis:': 'redis',
  'rediss:': 'redis',
  'postgres:': 'postgresql',
  'postgresql:': 'postgresql',
  'etcd:': 'etcd',
  'sqlite:': 'sqlite',
  'mysql:': 'mysql',
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
      `the coordinator URL must be a URL such as memory://, redis://host:6379, postgresql://host/db, etcd://host:2379, sqlite:///abs/path/coord.db or mysql://user@host:3306/db; received ${JSON.stringify(raw)}`,
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
  if (kind === 'sqlite') sqlitePath(url);
  if (kind === 'mysql') mysqlDatabase(url);
  return { url, kind };
}

/** Builds the backend a parsed URL names, loading its module (and its client) on first use. */
export async function createBackend(kind: BackendKind, options: BackendOptions): Promise<Backend> {
  switch (kind) {
    case 'memory': {
      const { MemoryBackend } = await import('./memory.ts');
      return new MemoryBackend(options);
    }
    case 'redis': {
      const { RedisBackend } = await import('./redis.ts');
      return new RedisBackend(options, await loadClient('ioredis', options.url.protocol));
    }
    case 'postgresql': {
      const { PostgresBackend } = await import('./postgres.ts');
      return new PostgresBackend(options, await loadClient('pg', options.url.protocol));
    }
    case 'etcd': {
      const { EtcdBackend } = await import('./etcd.ts');
      return new EtcdBackend(options, await loadClient('etcd3', options.url.protocol));
    }
    case 'sqlite': {
      const { SqliteBackend } = await import('./sqlite.ts');
      return new SqliteBackend(options, await loadClient('better-sqlite3', options.url.protocol));
    }
    case 'mysql': {
      const { MysqlBackend } = await import('./mysql.ts');
      return new MysqlBackend(options, await loadClient('mysql2/promise', options.url.protocol));
    }
  }
}
