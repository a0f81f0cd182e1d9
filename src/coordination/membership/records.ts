/**
 * The records a member keeps alive with its heartbeat: its group memberships and its
 * leader records. A record whose `live()` says no is deleted at the next heartbeat.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { RecordStore } from '../types.ts';

interface Owned {
  readonly dir: string;
  readonly id: string;
  readonly value: string;
  readonly live: () => boolean;
}

export class OwnedRecords {
  readonly #owned = new Map<string, Owned>();
  readonly #ttlMs: number;

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /** Puts a record and keeps it alive while `live()` says so. */
  async own(records: RecordStore, dir: string, id: string, value: string, live: () => boolean = () => true): Promise<void> {
    await records.put(dir, id, value, this.#ttlMs);
    this.#owned.set(dir + id, { dir, id, value, live });
  }

  /** Stops keeping a record and deletes it (if it is still this member's). */
  async disown(records: RecordStore | undefined, dir: string, id: string): Promise<boolean> {
    const record = this.#owned.get(dir + id);
    if (record === undefined) return false;
    this.#owned.delete(dir + id);
    return (await records?.delete(dir, id, record.value)) ?? false;
  }

  /** Stops keeping and deletes every record. */
  async disownAll(records: RecordStore | undefined): Promise<void> {
    await Promise.all([...this.#owned.values()].map((record) => this.disown(records, record.dir, record.id).catch(() => false)));
  }

  /** Puts the records again (all of them after a reconnect; on a lease-bound store only then); drops the dead ones. */
  async refresh(records: RecordStore | undefined, all: boolean): Promise<void> {
    if (records === undefined || this.#owned.size === 0) return;
    await Promise.all(
      [...this.#owned.entries()].map(async ([key, record]) => {
        if (!record.live()) {
          this.#owned.delete(key);
          await records.delete(record.dir, record.id, record.value).catch(() => false);
          return;
        }
        if (all || !records.onLease) await records.put(record.dir, record.id, record.value, this.#ttlMs);
      }),
    );
  }
}
