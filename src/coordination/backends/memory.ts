/**
 * The embedded backend (`memory://`, the default): the whole lock contract inside this
 * process, with TTL expiry on the injected clock. Coordinators whose URLs name the same
 * store (`memory://` or `memory://<name>`) share it, as processes share a Redis.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { Clock } from '../../clock.ts';
import { capabilitiesOf, memberOfToken } from './common.ts';
import type { Backend, BackendCapabilities, BackendOptions, MessageBus, RecordStore } from '../types.ts';

interface Entry {
  token: string;
  expiresAt: number;
}

/** One in-process "server". */
class Store {
  readonly locks = new Map<string, Entry>();
  readonly fences = new Map<string, bigint>();
  readonly listeners = new Set<(name: string) => void>();
  readonly records = new Map<string, Map<string, { value: string; expiresAt: number }>>();
  readonly channels = new Map<string, Set<(payload: string) => void>>();

  dir(name: string, clock: Clock): Map<string, { value: string; expiresAt: number }> {
    let dir = this.records.get(name);
    if (dir === undefined) this.records.set(name, (dir = new Map()));
    const now = clock.now();
    for (const [id, record] of dir) if (now >= record.expiresAt) dir.delete(id);
    return dir;
  }

  live(name: string, clock: Clock): Entry | undefined {
    const entry = this.locks.get(name);
    if (entry !== undefined && clock.now() >= entry.expiresAt) {
      this.locks.delete(name);
      return undefined;
    }
    return entry;
  }

  wake(name: string): void {
    for (const listener of this.listeners) listener(name);
  }
}

const stores = new Map<string, Store>();

/** Forgets every memory store (tests start from nothing). @internal */
export function resetMemoryStores(): void {
  stores.clear();
}

export class MemoryBackend implements Backend {
  readonly kind = 'memory' as const;
  /** Commands on its one connection run in the order sent. */
  readonly ordered = true;
  readonly capabilities: BackendCapabilities = capabilitiesOf({ distributed: false, sessionBased: false, watch: true });
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #released: Array<(name: string) => void> = [];
  readonly #relay = (name: string): void => {
    for (const listener of this.#released) listener(name);
  };
  #connected = false;
  readonly messages: MessageBus = {
    publish: async (channel, payload) => {
      this.#requireConnected();
      // Delivered on a later turn, as a server's message would be.
      const listeners = [...(this.#store.channels.get(channel) ?? [])];
      setImmediate(() => {
        for (const listener of listeners) listener(payload);
      });
    },
    subscribe: async (channel, listener) => {
      this.#requireConnected();
      let set = this.#store.channels.get(channel);
      if (set === undefined) this.#store.channels.set(channel, (set = new Set()));
      const mine = (payload: string): void => listener(payload);
      set.add(mine);
      this.#subscriptions.add(() => set.delete(mine));
      return async () => void set.delete(mine);
    },
  };
  readonly #subscriptions = new Set<() => void>();
  readonly records: RecordStore = {
    onLease: false,
    put: async (dir, id, value, ttlMs) => {
      this.#requireConnected();
      this.#store.dir(dir, this.#clock).set(id, { value, expiresAt: this.#clock.now() + ttlMs });
    },
    get: async (dir, id) => {
      this.#requireConnected();
      return this.#store.dir(dir, this.#clock).get(id)?.value ?? null;
    },
    list: async (dir) => {
      this.#requireConnected();
      return [...this.#store.dir(dir, this.#clock)].map(([id, record]) => ({ id, value: record.value }));
    },
    delete: async (dir, id, value) => {
      this.#requireConnected();
      const records = this.#store.dir(dir, this.#clock);
      const record = records.get(id);
      if (record === undefined || (value !== undefined && record.value !== value)) return false;
      records.delete(id);
      return true;
    },
  };

  constructor(options: BackendOptions) {
    const key = options.url.host || 'default';
    let store = stores.get(key);
    if (store === undefined) stores.set(key, (store = new Store()));
    this.#store = store;
    this.#clock = options.clock;
  }

  async connect(): Promise<void> {
    this.#connected = true;
    this.#store.listeners.add(this.#relay);
  }

  async close(): Promise<void> {
    this.#connected = false;
    for (const unsubscribe of this.#subscriptions) unsubscribe();
    this.#subscriptions.clear();
    this.#store.listeners.delete(this.#relay);
  }

  async ping(): Promise<void> {
    this.#requireConnected();
  }

  async tryAcquire(name: string, token: string, ttlMs: number): Promise<bigint | null> {
    this.#requireConnected();
    if (this.#store.live(name, this.#clock) !== undefined) return null;
    const fence = (this.#store.fences.get(name) ?? 0n) + 1n;
    this.#store.fences.set(name, fence);
    this.#store.locks.set(name, { token, expiresAt: this.#clock.now() + ttlMs });
    return fence;
  }

  async renew(name: string, token: string, ttlMs: number): Promise<boolean> {
    this.#requireConnected();
    const entry = this.#store.live(name, this.#clock);
    if (entry?.token !== token) return false;
    entry.expiresAt = this.#clock.now() + ttlMs;
    return true;
  }

  async release(name: string, token: string): Promise<boolean> {
    this.#requireConnected();
    const entry = this.#store.live(name, this.#clock);
    if (entry?.token !== token) return false;
    this.#store.locks.delete(name);
    this.#store.wake(name);
    return true;
  }

  async breakLock(name: string, hold?: string): Promise<boolean> {
    this.#requireConnected();
    const entry = this.#store.live(name, this.#clock);
    if (entry === undefined || (hold !== undefined && entry.token !== hold)) return false;
    this.#store.locks.delete(name);
    this.#store.wake(name);
    return true;
  }

  async holderOf(name: string): Promise<{ memberId: string; hold: string } | null> {
    this.#requireConnected();
    const entry = this.#store.live(name, this.#clock);
    return entry === undefined ? null : { memberId: memberOfToken(entry.token), hold: entry.token };
  }

  async isHolder(name: string, token: string): Promise<boolean> {
    this.#requireConnected();
    return this.#store.live(name, this.#clock)?.token === token;
  }

  onReleased(listener: (name: string) => void): void {
    this.#released.push(listener);
  }

  onLost(): void {
    // An in-process store cannot be lost.
  }

  #requireConnected(): void {
    if (!this.#connected) throw new Error('the memory backend is closed');
  }
}
