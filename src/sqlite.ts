/**
 * What statesmith's two SQLite users share (the `sqlite://` coordination backend and the
 * `sqlite://` snapshot store): opening a file in WAL mode without ever letting SQLite wait
 * on a busy file, and retrying a busy file asynchronously instead.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type BetterSqlite3 from 'better-sqlite3';

export type SqliteDatabase = BetterSqlite3.Database;
type DatabaseConstructor = new (filename: string, options?: BetterSqlite3.Options) => SqliteDatabase;

/** The longest wait between two attempts on a busy file. */
const MAX_BACKOFF_MS = 20;

/** SQLite's result codes for a file another connection holds (SQLite docs, "Result and Error Codes"). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** The `Database` class of a loaded `better-sqlite3` module (its default export, or the module itself under CommonJS). */
export function databaseClass(module: unknown): DatabaseConstructor {
  const mod = module as DatabaseConstructor | { default?: DatabaseConstructor };
  const Database = typeof mod === 'function' ? mod : mod.default;
  if (typeof Database !== 'function') throw new Error('the "better-sqlite3" module has no default export');
  return Database;
}

/**
 * Runs `fn` until the file is not busy, backing off asynchronously (1 ms doubling to 20 ms,
 * jittered), for at most `boundMs`; then rejects with what `tooLong` makes of the last busy error.
 */
export async function retryWhileBusy<T>(fn: () => T, boundMs: number, tooLong: (error: unknown) => Error): Promise<T> {
  const started = Date.now();
  let delay = 0;
  for (;;) {
    try {
      return fn();
    } catch (error) {
      if (!isBusy(error)) throw error;
      if (Date.now() - started >= boundMs) throw tooLong(error);
      delay = Math.min(MAX_BACKOFF_MS, Math.max(1, delay * 2));
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
    }
  }
}

/**
 * Opens `path` for statesmith: `timeout` 0 (a busy file is answered at once, and retried
 * without blocking the event loop), WAL mode (readers never wait for the writer), and
 * `synchronous = NORMAL` (a commit survives its process being killed; a power cut may lose
 * the last ones).
 */
export async function openWal(Database: DatabaseConstructor, path: string, boundMs: number, tooLong: (error: unknown) => Error): Promise<SqliteDatabase> {
  const db = new Database(path, { timeout: 0 });
  try {
    await retryWhileBusy(() => db.pragma('journal_mode = WAL'), boundMs, tooLong);
    db.pragma('synchronous = NORMAL');
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}
