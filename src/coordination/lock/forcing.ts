/**
 * The locksmith across machines: a distributed lock forced by negotiating with its
 * holder over the backend's own messaging (Redis pub/sub, PostgreSQL `NOTIFY`, an etcd
 * watch), as the in-process locksmith negotiates with a task.
 *
 * - The lock kind asks the server who holds the lock (`holderOf`): the member, and what
 *   names this hold. The owner the locksmith negotiates with is that member, reached on
 *   the channel `force:<memberId>` with a reply channel of the request's own.
 * - Every coordinator listens on its `force:<memberId>` channel. A request for a lock it
 *   holds goes to the handler its holder registered with `serveLockForceRequests(handle,
 *   …)` (or the coordinator's, `serveLockForceRequests(coordinator, …)`), exactly as
 *   in-process. `'release'` or `{ answer }` gives the lock up (the handle's signal aborts
 *   with a `LockLostError`) before the reply goes; `'refuse'` keeps it.
 * - A holder that does not answer within `answerTimeoutMs` (no handler, a frozen or dead
 *   process) is compelled with `breakLock`, and only while the hold the force was about is
 *   in place: a lock that changed hands meanwhile is left alone.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { randomBytes } from 'node:crypto';
import { getLogger } from '../../logger.ts';
import { OWNED as OWNED_MARK, registerLockKind, type HostHold, type LockKind } from '../../locksmith/lockKinds.ts';
import { LockForceRequest, REPLY, servers, toWireError, type PortLike, type Reply, type ReplyMessage, type RequestMessage } from '../../locksmith/protocol.ts';
import type { Backend, DistributedLockHandle, MessageBus } from '../types.ts';
import type { DistributedLock } from './DistributedLock.ts';

/** Marks a `DistributedLock` (set by its class), so the locksmith knows the kind without importing it. */
export const kDistributedLock: unique symbol = Symbol('statesmith.distributedLock');

/** The force channel of a member. */
const forceChannel = (memberId: string): string => `force:${memberId}`;

/** The holder of a distributed lock, in another process (or this one), reached over the backend. */
export class RemoteOwner {
  readonly memberId: string;
  /** What names the hold in place when the force started. */
  readonly hold: string;
  readonly lockName: string;
  readonly port: PortLike;

  constructor(bus: MessageBus, from: string, memberId: string, hold: string, lockName: string) {
    this.memberId = memberId;
    this.hold = hold;
    this.lockName = lockName;
    this.port = new BusPort(bus, from, memberId);
  }

  toString(): string {
    return `member ${this.memberId}`;
  }
}

/** A `PortLike` over the backend: requests to the holder's channel, replies on a channel of this port's own. */
class BusPort implements PortLike {
  readonly #bus: MessageBus;
  readonly #to: string;
  readonly #replyTo: string;
  readonly #listeners = new Set<(message: unknown) => void>();
  #ready: Promise<(() => Promise<void>) | undefined> | undefined;

  constructor(bus: MessageBus, from: string, memberId: string) {
    this.#bus = bus;
    this.#to = forceChannel(memberId);
    this.#replyTo = `force-reply:${from}:${randomBytes(8).toString('hex')}`;
  }

  postMessage(message: unknown): void {
    const request = message as RequestMessage;
    let payload: string;
    try {
      payload = JSON.stringify({ ...request, replyTo: this.#replyTo });
    } catch {
      payload = JSON.stringify({ ...request, info: String(request.info), replyTo: this.#replyTo });
    }
    // Sent once the reply channel listens, so no answer can come before it does.
    void (this.#ready ?? Promise.resolve(undefined))
      .then(() => this.#bus.publish(this.#to, payload))
      .catch((error: unknown) => getLogger().warn(`sending a force request on ${this.#to} failed`, { error }));
  }

  on(_event: 'message', listener: (message: unknown) => void): this {
    this.#listeners.add(listener);
    this.#ready ??= this.#bus
      .subscribe(this.#replyTo, (payload) => {
        let message: unknown;
        try {
          message = JSON.parse(payload);
        } catch {
          return;
        }
        for (const each of [...this.#listeners]) each(message);
      })
      .catch((error: unknown) => {
        getLogger().warn(`listening for force replies on ${this.#replyTo} failed`, { error });
        return undefined;
      });
    return this;
  }

  off(_event: 'message', listener: (message: unknown) => void): this {
    this.#listeners.delete(listener);
    if (this.#listeners.size === 0 && this.#ready !== undefined) {
      const ready = this.#ready;
      this.#ready = undefined;
      void ready.then((unsubscribe) => unsubscribe?.()).catch(() => undefined);
    }
    return this;
  }
}

interface ForceState {
  holder: RemoteOwner | null;
  pending: Promise<unknown> | undefined;
}

const keys = new Map<string, object>();
const states = new WeakMap<object, ForceState>();

const lockOf = (lock: object): DistributedLock => lock as DistributedLock;
const backendOf = (lock: object): Backend => lockOf(lock).coordinator.backend();

function stateOf(lock: object): ForceState {
  const key = distributedKind.key(lock);
  let state = states.get(key);
  if (state === undefined) states.set(key, (state = { holder: null, pending: undefined }));
  return state;
}

const distributedKind: LockKind = {
  async prepare(lock) {
    const distributed = lockOf(lock);
    const backend = backendOf(lock);
    if (backend.holderOf === undefined || backend.messages === undefined)
      throw new Error(`the ${backend.kind} backend cannot say who holds a lock or carry messages`);
    const holder = await backend.holderOf(distributed.name);
    stateOf(lock).holder =
      holder === null ? null : new RemoteOwner(backend.messages, distributed.coordinator.memberId, holder.memberId, holder.hold, distributed.name);
  },
  async flush(lock) {
    const state = stateOf(lock);
    const pending = state.pending;
    state.pending = undefined;
    await pending;
  },
  key(lock) {
    const distributed = lockOf(lock);
    const id = `${distributed.coordinator.url}\u0000${distributed.name}`;
    let key = keys.get(id);
    if (key === undefined) keys.set(id, (key = { lock: id }));
    return key;
  },
  describe: (lock) => lockOf(lock).name,
  // Before `prepare`, presume held: the force then asks the server.
  isLocked: (lock) => states.get(distributedKind.key(lock))?.holder !== null,
  ownerOf: (lock) => states.get(distributedKind.key(lock))?.holder ?? undefined,
  holdOf: (lock) => states.get(distributedKind.key(lock))?.holder?.hold,
  release(lock, knownOwner) {
    // Nobody holds it: nothing to take. Someone does: only they may let go, so ask them.
    if (knownOwner === undefined && stateOf(lock).holder === null) return true;
    return OWNED_MARK;
  },
  compel(lock, by, _info, hold) {
    const distributed = lockOf(lock);
    const backend = backendOf(lock);
    const state = stateOf(lock);
    if (backend.breakLock === undefined) return;
    state.pending = backend.breakLock(distributed.name, typeof hold === 'string' ? hold : undefined).then((broken) => {
      if (!broken) return;
      state.holder = null;
      getLogger().warn(`${by} broke distributed lock ${distributed.name} over its holder's head`);
    });
  },
  async acquire(lock, _owner, signal): Promise<HostHold> {
    const handle = await lockOf(lock).acquire({ signal });
    if (handle === null) throw new Error(`${lockOf(lock).name} was not acquired`);
    return {
      release: () => void handle.release(),
      get signal() {
        return handle.signal;
      },
    };
  },
  purge: () => 0,
  toWire: (lock) => ({ kind: 'opaque', name: lockOf(lock).name }),
};

registerLockKind((lock) => typeof lock === 'object' && lock !== null && (lock as { [kDistributedLock]?: true })[kDistributedLock] === true, distributedKind);

/**
 * Makes `coordinator` answer force requests for the locks it holds (called on every
 * connect). Returns the function that stops listening.
 */
export async function serveForces(
  coordinator: { readonly memberId: string; readonly forceKey: object },
  backend: Backend,
  held: () => ReadonlyArray<DistributedLockHandle & { lose(info: string): void }>,
): Promise<(() => Promise<void>) | undefined> {
  const bus = backend.messages;
  if (bus === undefined) return undefined;
  return bus.subscribe(forceChannel(coordinator.memberId), (payload) => {
    let message: RequestMessage & { replyTo?: string };
    try {
      message = JSON.parse(payload) as RequestMessage & { replyTo?: string };
    } catch {
      return;
    }
    if (typeof message.requestId !== 'string' || typeof message.replyTo !== 'string') return;
    const replyTo = message.replyTo;
    const answer = (reply: Reply): void => {
      const wire: Reply = reply.kind === 'error' ? { ...reply, error: toWireError(reply.error, reply.critical) } : reply;
      void bus
        .publish(replyTo, JSON.stringify({ type: REPLY, requestId: message.requestId, reply: wire } satisfies ReplyMessage))
        .catch((error: unknown) => getLogger().warn('answering a force request failed', { error }));
    };
    const handle = held().find((record) => record.name === message.lockName);
    // Not held here (any more): nothing to give up; the locksmith's break is conditional on the hold it saw.
    if (handle === undefined) return answer({ kind: 'release' });
    const respond = servers.get(handle) ?? servers.get(coordinator.forceKey);
    // Nobody here serves force requests: silence, and the locksmith compels after its answer timeout.
    if (respond === undefined) return;
    const request = new LockForceRequest({
      requestId: message.requestId,
      requester: String(message.requester),
      lock: handle,
      lockName: message.lockName,
      info: message.info,
    });
    void respond(request).then((reply) => {
      if (reply.kind === 'release' || reply.kind === 'answer')
        handle.lose(
          `given up to ${String(message.requester)}${message.info === undefined ? '' : ` (${typeof message.info === 'string' ? message.info : JSON.stringify(message.info)})`}`,
        );
      answer(reply);
    });
  });
}
