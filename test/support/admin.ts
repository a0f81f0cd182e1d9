/** Operator-side access to the test servers, and per-test key namespaces. */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Etcd3 } from 'etcd3';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';

/** `base` with a namespace of its own, so runs and tests never see each other's keys. */
export function isolatedUrl(base: string, tag = 't'): string {
  const url = new URL(base);
  url.searchParams.set('namespace', `${tag}${randomBytes(5).toString('hex')}`);
  return url.href;
}

/** Runs `fn` with an admin connection to the Redis at `base`. */
export async function withRedisAdmin<T>(base: string, fn: (admin: Redis) => Promise<T>): Promise<T> {
  const admin = new Redis(base);
  try {
    return await fn(admin);
  } finally {
    admin.disconnect();
  }
}

/** Runs `fn` with an admin connection to the PostgreSQL at `base`. */
export async function withPostgresAdmin<T>(base: string, fn: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

/** Runs `fn` with an admin client of the etcd at `base` (`etcd://host:port`). */
export async function withEtcdAdmin<T>(base: string, fn: (admin: Etcd3) => Promise<T>): Promise<T> {
  const url = new URL(base);
  const admin = new Etcd3({ hosts: `http://${url.host}` });
  try {
    return await fn(admin);
  } finally {
    admin.close();
  }
}

/** Runs `fn` with a connection of its own to the SQLite file a `sqlite://` URL names (it waits up to 5 s for a busy file). */
export function withSqliteAdmin<T>(base: string, fn: (admin: Database.Database) => T): T {
  const admin = new Database(decodeURIComponent(new URL(base).pathname), { timeout: 5_000 });
  try {
    return fn(admin);
  } finally {
    admin.close();
  }
}

/** Runs `fn` with an admin connection to the MySQL or MariaDB at `base` (`mysql://user@host:port/db`). */
export async function withMysqlAdmin<T>(base: string, fn: (admin: mysql.Connection) => Promise<T>): Promise<T> {
  const url = new URL(base);
  const admin = await mysql.createConnection({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
  });
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}
