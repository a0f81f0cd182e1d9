/**
 * The etcd backend (`etcd://host:2379`, several hosts as `etcd://h1:2379,h2:2379`), on the
 * `etcd3` client, loaded only when a URL names it.
 *
 * - One lease per coordinator connection, granted on connect with the coordinator's
 *   `lockTtlMs` (rounded up to whole seconds, at least 2: etcd's own minimum), and kept
 *   alive by the coordinator's heartbeat (`ping` is a lease keep-alive). Every lock key is
 *   attached to it, so when the process dies or stops beating, etcd deletes its keys when
 *   the lease runs out, and a lost lease fails the next heartbeat: the coordinator then
 *   aborts every handle it holds.
 * - A lock is the key `<namespace>/lock/<name>`, created in a transaction only if it does
 *   not exist (`Create == 0`). Its fence is the key's create revision: etcd's revision
 *   only grows across the cluster, so every later grant of the name has a larger one.
 * - Renewal and release compare the key's value (this grant's token) and its create
 *   revision (the fence) in the same transaction: a key deleted and made again by someone
 *   else is never renewed or deleted by the old holder (Jepsen's etcd lock finding).
 * - Release wake-ups come from a watch on the lock prefix (delete events), opened only
 *   while someone waits.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { CoordinationError } from '../../errors.ts';
import { capabilitiesOf, memberOfToken, namespaceOf } from './common.ts';
import type { Backend, BackendCapabilities, BackendOptions, MessageBus, RecordStore } from '../types.ts';
import { randomBytes } from 'node:crypto';

/** The parts of `etcd3` used here (typed by hand, so the package's types are not needed to build). */
interface EtcdKeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly create_revision: string;
  readonly lease: string;
}
interface TxnResponse {
  readonly succeeded: boolean;
  readonly header: { readonly revision: string };
  readonly responses: ReadonlyArray<{ readonly response_range?: { readonly kvs: readonly EtcdKeyValue[] } }>;
}
interface Lease {
  grant(): Promise<string>;
  revoke(): Promise<void>;
  keepaliveOnce(): Promise<{ TTL: string }>;
  on(event: 'lost', listener: (error: Error) => void): void;
}
interface PutBuilder {
  value(value: string): PutBuilder;
  lease(id: string): PutBuilder;
  exec(): Promise<unknown>;
}
interface Comparator {
  and(key: string, column: string, cmp: string, value: string | number): Comparator;
  then(...ops: unknown[]): Comparator;
  else(...ops: unknown[]): Comparator;
  commit(): Promise<TxnResponse>;
}
interface Watcher {
  on(event: 'delete' | 'put', listener: (kv: EtcdKeyValue) => void): Watcher;
  on(event: 'error' | 'disconnected', listener: (error: Error) => void): Watcher;
  on(event: 'connected', listener: () => void): Watcher;
  cancel(): Promise<void>;
}
interface EtcdClient {
  lease(ttlSeconds: number, options: { autoKeepAlive: boolean }): Lease;
  if(key: string, column: string, cmp: string, value: string | number): Comparator;
  put(key: string): PutBuilder;
  get(key: string): { exec(): Promise<{ kvs: EtcdKeyValue[] }> };
  getAll(): { prefix(prefix: string): { exec(): Promise<{ kvs: EtcdKeyValue[] }> } };
  delete(): { key(key: string): { exec(): Promise<{ deleted: string }> } };
  watch(): { prefix(prefix: string): { create(): Promise<Watcher> } };
  leaseClient: { leaseRevoke(request: { ID: string }): Promise<unknown> };
  close(): void;
}
export interface EtcdModule {
  Etcd3: new (options: { hosts: string[]; dialTimeout?: number; defaultCallOptions?: (context: unknown) => { deadline: Date } }) => EtcdClient;
}

/** The hosts of an `etcd://` URL (`endpoints` is set by `parseUrl` for several). */
export function etcdHosts(url: URL): string[] {
  const list = url.searchParams.get('endpoints') ?? url.host;
  return list.split(',').map((host) => `http://${host}`);
}

/** The lease's TTL in whole seconds: `ttlMs` rounded up, at least 2 (etcd refuses shorter ones by extending them). */
export function leaseSeconds(ttlMs: number): number {
  return Math.max(2, Math.ceil(Math.min(ttlMs, 9e15) / 1_000));
}

export class EtcdBackend implements Backend {
  readonly kind = 'etcd' as const;
  readonly capabilities: BackendCapabilities = capabilitiesOf({ distributed: true, sessionBased: false, watch: true });
  readonly #module: EtcdModule;
  readonly #options: BackendOptions;
  readonly #prefix: string;
  readonly #released: Array<(name: string) => void> = [];
  readonly #lost: Array<(error: unknown) => void> = [];
  #client: EtcdClient | undefined;
  #lease: Lease | undefined;
  #leaseId: string | undefined;
  #watcher: Promise<Watcher> | undefined;
  /** Which connection is current: a late event of a closed one is ignored. */
  #generation = 0;
  /** Leases of closed connections that could not be revoked (the cluster was away): revoked on the next connect. */
  #stale: string[] = [];
  readonly #recordPrefix: string;
  readonly #watchers = new Set<Promise<Watcher>>();
  readonly messages: MessageBus = {
    // A message is a key put on this connection's lease and deleted at once: watchers see the put.
    publish: async (channel, payload) => {
      const client = this.#requireClient();
      const key = `${this.#recordPrefix.slice(0, -'rec/'.length)}msg/${channel}/${randomBytes(8).toString('hex')}`;
      await client
        .put(key)
        .value(payload)
        .lease(this.#leaseId as string)
        .exec();
      await client.delete().key(key).exec();
    },
    subscribe: async (channel, listener) => {
      const client = this.#requireClient();
      const generation = this.#generation;
      const watcher = client
        .watch()
        .prefix(`${this.#recordPrefix.slice(0, -'rec/'.length)}msg/${channel}/`)
        .create();
      this.#watchers.add(watcher);
      const w = await watcher;
      w.on('put', (kv) => {
        if (generation === this.#generation) listener(kv.value.toString('utf8'));
      });
      w.on('error', () => undefined);
      return async () => {
        this.#watchers.delete(watcher);
        await w.cancel().catch(() => undefined);
      };
    },
  };
  readonly records: RecordStore = {
    // A record is a key on the connection's lease: the heartbeat keeps it, the lease's end removes it.
    onLease: true,
    put: async (dir, id, value) => {
      const client = this.#requireClient();
      await client
        .put(this.#recordPrefix + dir + id)
        .value(value)
        .lease(this.#leaseId as string)
        .exec();
    },
    get: async (dir, id) => {
      const { kvs } = await this.#requireClient()
        .get(this.#recordPrefix + dir + id)
        .exec();
      return kvs[0]?.value.toString('utf8') ?? null;
    },
    list: async (dir) => {
      const prefix = this.#recordPrefix + dir;
      const { kvs } = await this.#requireClient().getAll().prefix(prefix).exec();
      return kvs.map((kv) => ({ id: kv.key.toString('utf8').slice(prefix.length), value: kv.value.toString('utf8') }));
    },
    delete: async (dir, id, value) => {
      const client = this.#requireClient();
      const key = this.#recordPrefix + dir + id;
      if (value === undefined) return Number((await client.delete().key(key).exec()).deleted) > 0;
      return (await client.if(key, 'Value', '==', value).then(client.delete().key(key)).commit()).succeeded;
    },
  };
  /** Per held name, the create revision of the grant (the fence), checked by renew and release. */
  readonly #fences = new Map<string, string>();

  constructor(options: BackendOptions, module: unknown) {
    const mod = module as EtcdModule & { default?: EtcdModule };
    this.#module = mod.Etcd3 !== undefined ? mod : (mod.default as EtcdModule);
    this.#options = options;
    this.#prefix = `${namespaceOf(options.url)}/lock/`;
    this.#recordPrefix = `${namespaceOf(options.url)}/rec/`;
  }

  async connect(): Promise<void> {
    await this.close();
    const generation = ++this.#generation;
    const timeout = this.#options.commandTimeoutMs;
    const client = new this.#module.Etcd3({
      hosts: etcdHosts(this.#options.url),
      dialTimeout: Math.max(timeout, 1_000),
      // Every call is bounded: an unreachable cluster fails a call, it does not hang it.
      defaultCallOptions: () => ({ deadline: new Date(Date.now() + Math.max(timeout, 1_000)) }),
    });
    this.#client = client;
    const lease = client.lease(leaseSeconds(this.#options.leaseTtlMs ?? 30_000), { autoKeepAlive: false });
    lease.on('lost', (error) => {
      if (generation === this.#generation) for (const listener of this.#lost) listener(error);
    });
    try {
      this.#leaseId = await lease.grant();
    } catch (error) {
      if (generation === this.#generation) await this.close();
      throw error;
    }
    this.#lease = lease;
    // The locks of a lost connection were given up when it was lost: free their keys now, not at their lease's end.
    for (const id of this.#stale.splice(0)) await client.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.#generation++;
    const client = this.#client;
    const lease = this.#lease;
    const leaseId = this.#leaseId;
    const watcher = this.#watcher;
    this.#client = undefined;
    this.#lease = undefined;
    this.#leaseId = undefined;
    this.#watcher = undefined;
    this.#fences.clear();
    await watcher?.then((w) => w.cancel()).catch(() => undefined);
    const watchers = [...this.#watchers];
    this.#watchers.clear();
    await Promise.all(watchers.map((w) => w.then((x) => x.cancel()).catch(() => undefined)));
    // Revoking frees every key of this connection at once, instead of at the lease's end.
    if (lease !== undefined) {
      await lease.revoke().catch(() => {
        if (leaseId !== undefined) this.#stale.push(leaseId);
      });
    }
    client?.close();
  }

  async ping(): Promise<void> {
    const lease = this.#requireLease();
    const answer = await lease.keepaliveOnce();
    // A TTL of 0 or less: the lease is gone (it ran out while this process was frozen, or was revoked).
    if (!(Number(answer.TTL) > 0)) throw new CoordinationError('ERR_COORDINATION_BACKEND', `the etcd lease ${this.#leaseId ?? '?'} has expired`);
  }

  async tryAcquire(name: string, token: string): Promise<bigint | null> {
    const client = this.#requireClient();
    const leaseId = this.#leaseId as string;
    const key = this.#prefix + name;
    const result = await client.if(key, 'Create', '==', 0).then(client.put(key).value(token).lease(leaseId)).commit();
    if (!result.succeeded) return null;
    // The put is the transaction's only write: its revision is the key's create revision.
    const revision = result.header.revision;
    this.#fences.set(name, revision);
    return BigInt(revision);
  }

  async renew(name: string, token: string): Promise<boolean> {
    const client = this.#requireClient();
    const revision = this.#fences.get(name);
    if (revision === undefined) return false;
    const key = this.#prefix + name;
    const result = await client.if(key, 'Value', '==', token).and(key, 'Create', '==', revision).commit();
    if (!result.succeeded) {
      this.#fences.delete(name);
      return false;
    }
    // The key lives on the connection's lease: keeping that alive is the renewal.
    await this.ping();
    return true;
  }

  /** Every grant's key checked (one request each, on one connection), then the session lease kept alive once for all. */
  async renewAll(grants: ReadonlyArray<{ readonly name: string; readonly token: string }>): Promise<boolean[]> {
    const client = this.#requireClient();
    const kept = await Promise.all(
      grants.map(async ({ name, token }) => {
        const revision = this.#fences.get(name);
        if (revision === undefined) return false;
        const key = this.#prefix + name;
        const result = await client.if(key, 'Value', '==', token).and(key, 'Create', '==', revision).commit();
        if (!result.succeeded) this.#fences.delete(name);
        return result.succeeded;
      }),
    );
    // The keys live on the connection's lease: keeping that alive is the renewal.
    if (kept.some(Boolean)) await this.ping();
    return kept;
  }

  async release(name: string, token: string): Promise<boolean> {
    const client = this.#requireClient();
    const revision = this.#fences.get(name);
    if (revision === undefined) return false;
    const key = this.#prefix + name;
    const result = await client.if(key, 'Value', '==', token).and(key, 'Create', '==', revision).then(client.delete().key(key)).commit();
    this.#fences.delete(name);
    return result.succeeded;
  }

  async breakLock(name: string, hold?: string): Promise<boolean> {
    const client = this.#requireClient();
    const key = this.#prefix + name;
    if (hold !== undefined) return (await client.if(key, 'Value', '==', hold).then(client.delete().key(key)).commit()).succeeded;
    const deleted = await client.delete().key(key).exec();
    return Number(deleted.deleted) > 0;
  }

  async holderOf(name: string): Promise<{ memberId: string; hold: string } | null> {
    const { kvs } = await this.#requireClient()
      .get(this.#prefix + name)
      .exec();
    const token = kvs[0]?.value.toString('utf8');
    return token === undefined ? null : { memberId: memberOfToken(token), hold: token };
  }

  async isHolder(name: string, token: string): Promise<boolean> {
    const revision = this.#fences.get(name);
    if (revision === undefined) return false;
    const { kvs } = await this.#requireClient()
      .get(this.#prefix + name)
      .exec();
    const kv = kvs[0];
    return kv !== undefined && kv.value.toString('utf8') === token && kv.create_revision === revision;
  }

  onReleased(listener: (name: string) => void): void {
    this.#released.push(listener);
  }

  async listen(on: boolean): Promise<void> {
    if (!on) {
      const watcher = this.#watcher;
      this.#watcher = undefined;
      await watcher?.then((w) => w.cancel()).catch(() => undefined);
      return;
    }
    if (this.#watcher !== undefined) return;
    const client = this.#requireClient();
    const generation = this.#generation;
    const watcher = client.watch().prefix(this.#prefix).create();
    this.#watcher = watcher;
    const w = await watcher;
    w.on('delete', (kv) => {
      if (generation !== this.#generation) return;
      const name = kv.key.toString('utf8').slice(this.#prefix.length);
      for (const listener of this.#released) listener(name);
    });
    w.on('error', () => undefined);
  }

  onLost(listener: (error: unknown) => void): void {
    this.#lost.push(listener);
  }

  #requireClient(): EtcdClient {
    if (this.#client === undefined || this.#leaseId === undefined) throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the etcd backend is not connected');
    return this.#client;
  }

  #requireLease(): Lease {
    if (this.#lease === undefined) throw new CoordinationError('ERR_COORDINATION_BACKEND', 'the etcd backend is not connected');
    return this.#lease;
  }
}
