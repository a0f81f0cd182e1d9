/**
 * The force protocol between a locksmith and a lock's owner. Python's asyncutils throws a
 * `LockForceRequest` into the owner's coroutine; a promise cannot be interrupted, so here
 * the request is a message: handed to the owner's handler in this thread, or posted to a
 * worker over its `MessagePort`. The owner answers by returning `'release'`, `{ answer }`
 * or `'refuse'` (or by throwing), and {@link serveLockForceRequests} turns that into the
 * reply.
 *
 * @module
 */
import { ArgumentTypeError, ArgumentValueError, isCritical } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { requireFunction } from '../runtime/validate.ts';
import { fromWire, type WireLock } from './lockKinds.ts';

/** The message type of a force request posted to a worker. @internal */
export const REQUEST = 'statesmith.lock-force-request';
/** The message type of the owner's reply. @internal */
export const REPLY = 'statesmith.lock-force-reply';

/**
 * A locksmith asking a lock's owner to give the lock up. It is an `Error` (as Python's is
 * an exception), so an owner that cannot deal with it may throw it back: the locksmith
 * then compels the lock.
 */
export class LockForceRequest extends Error {
  /** The class name, `'LockForceRequest'`, as Node's own errors have it. */
  override readonly name = 'LockForceRequest';
  /** A stable code to branch on, always `'ERR_LOCK_FORCE_REQUEST'`; messages may change, codes do not. */
  readonly code = 'ERR_LOCK_FORCE_REQUEST';
  /** Unique per request. */
  readonly requestId: string;
  /** The locksmith's name. */
  readonly requester: string;
  /**
   * The lock: the object itself in this thread; in a worker, a `SharedMutex` view of the
   * same cell (or `{ kind: 'opaque', name }` for a lock that cannot travel).
   */
  readonly lock: unknown;
  /** Why the lock is being forced. */
  readonly info: unknown;

  /** @internal */
  constructor(fields: { requestId: string; requester: string; lock: unknown; lockName: string; info: unknown }) {
    // A request's stack says nothing useful (it is a message), and capturing one costs
    // more than the rest of a force round trip.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`request from ${fields.requester} to release ${fields.lockName}`);
    Error.stackTraceLimit = limit;
    this.requestId = fields.requestId;
    this.requester = fields.requester;
    this.lock = fields.lock;
    this.info = fields.info;
  }
}

/** What an owner's handler decides. */
export type LockForceDecision = 'release' | 'refuse' | { readonly answer: unknown };

/** An owner's handler: decide, or throw (a `CriticalError` is not absorbed by the locksmith). */
export type LockForceHandler = (request: LockForceRequest) => LockForceDecision | Promise<LockForceDecision>;

/** An error as it crosses a thread: the fields that matter to the locksmith. @internal */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly code?: unknown;
  readonly stack?: string;
  readonly critical: boolean;
}

/** The owner's reply. @internal */
export type Reply =
  | { readonly kind: 'release' }
  | { readonly kind: 'answer'; readonly answer: unknown }
  | { readonly kind: 'refuse' }
  /** The owner threw the request back. */
  | { readonly kind: 'propagated' }
  /** The owner is already handling another locksmith's request for this lock. */
  | { readonly kind: 'busy'; readonly other: string }
  | { readonly kind: 'error'; readonly error: unknown; readonly critical: boolean };

/** The message a worker posts back. @internal */
export interface ReplyMessage {
  readonly type: typeof REPLY;
  readonly requestId: string;
  readonly reply: Reply;
}

/** The message a locksmith posts to a worker. @internal */
export interface RequestMessage {
  readonly type: typeof REQUEST;
  readonly requestId: string;
  readonly requester: string;
  readonly lock: WireLock;
  readonly lockName: string;
  readonly info: unknown;
}

/** A `MessagePort`, `parentPort` or `Worker`: something that posts and hears messages. @internal */
export interface PortLike {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** @internal */
export function isPortLike(value: unknown): value is PortLike {
  if (typeof value !== 'object' || value === null) return false;
  const port = value as Partial<Record<'postMessage' | 'on' | 'off', unknown>>;
  return typeof port.postMessage === 'function' && typeof port.on === 'function' && typeof port.off === 'function';
}

/** Owners in this thread that serve force requests, and how. @internal */
export const servers = new Map<unknown, (request: LockForceRequest) => Promise<Reply>>();

function fromDecision(decision: unknown): Reply {
  if (decision === 'release') return RELEASE;
  if (decision === 'refuse') return REFUSE;
  if (typeof decision === 'object' && decision !== null && 'answer' in decision) return { kind: 'answer', answer: decision.answer };
  const error = new ArgumentValueError('force handler result', "'release', 'refuse' or { answer }", decision);
  return { kind: 'error', error, critical: false };
}

function fromError(request: LockForceRequest, error: unknown): Reply {
  if (error === request) return { kind: 'propagated' };
  if (error instanceof LockForceRequest) return { kind: 'busy', other: error.requester };
  return { kind: 'error', error, critical: isCritical(error) };
}

const RELEASE: Reply = Object.freeze({ kind: 'release' });
const REFUSE: Reply = Object.freeze({ kind: 'refuse' });

/** @internal */
export function decide(handler: LockForceHandler, request: LockForceRequest): Promise<Reply> {
  // The handler runs on a later microtask, as a message would arrive: never inside force().
  return Promise.resolve(request)
    .then(handler)
    .then(fromDecision, (error: unknown) => fromError(request, error));
}

/** @internal */
export function toWireError(error: unknown, critical: boolean): WireError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, code, ...(error.stack === undefined ? {} : { stack: error.stack }), critical };
  }
  return { name: 'Error', message: String(error), critical };
}

/**
 * Makes `owner` answer force requests with `handler`; returns the function that stops it.
 *
 * - In this thread, `owner` is whatever the owner's locks name as their owner (the value
 *   given to `runAsOwner`, a task, an actor). A locksmith forcing a lock held by it calls
 *   `handler` with the request.
 * - In a worker, `owner` is `parentPort` (or a `MessagePort`): requests arrive as messages
 *   and the replies go back the same way. While it serves, the port keeps the worker alive.
 *
 * The handler returns `'release'` (take the lock: its handle's `signal` aborts with a
 * `LockLostError`), `{ answer }` (the same, with a message for the locksmith), or
 * `'refuse'` (keep it; the force ends in `FAILURE`). Throwing a `CriticalError` makes the
 * force reject; throwing anything else, throwing the request back or not answering in
 * time gets the lock taken anyway.
 *
 * @example
 * ```ts
 * import { ForceResult, Locksmith, Mutex, runAsOwner, serveLockForceRequests } from 'statesmith';
 * const mutex = new Mutex({ name: 'volume-7' });
 * const owner = 'snapshot job';
 * const handle = await runAsOwner(owner, () => mutex.acquire());
 * const stop = serveLockForceRequests(owner, (request) => ({ answer: `giving up ${request.info}` }));
 * const smith = new Locksmith({ name: 'watchdog' });
 * await smith.recognize(mutex);
 * const result = await smith.force(mutex, { info: 'stuck for 60 s' });
 * console.log(result === ForceResult.SUCCESS, handle.signal.aborted); // true true
 * stop();
 * ```
 */
export function serveLockForceRequests(owner: unknown, handler: LockForceHandler): () => void {
  requireFunction('handler', handler);
  if (owner === undefined || owner === null) throw new ArgumentTypeError('owner', 'an owner value or a MessagePort', owner);
  if (isPortLike(owner)) {
    const listener = (message: unknown): void => {
      const request = message as Partial<RequestMessage> | null;
      if (request?.type !== REQUEST || typeof request.requestId !== 'string') return;
      const forced = new LockForceRequest({
        requestId: request.requestId,
        requester: String(request.requester),
        lock: fromWire(request.lock as WireLock),
        lockName: String(request.lockName),
        info: request.info,
      });
      void decide(handler, forced).then((reply) => {
        const wire: Reply = reply.kind === 'error' ? { ...reply, error: toWireError(reply.error, reply.critical) } : reply;
        try {
          owner.postMessage({ type: REPLY, requestId: forced.requestId, reply: wire } satisfies ReplyMessage);
        } catch (error) {
          // An answer that cannot be cloned: send it as text rather than leave the locksmith waiting.
          getLogger().warn('force reply could not be posted as is; sending it as text', { error });
          const text: Reply = reply.kind === 'answer' ? { kind: 'answer', answer: String(reply.answer) } : { kind: 'release' };
          owner.postMessage({ type: REPLY, requestId: forced.requestId, reply: text } satisfies ReplyMessage);
        }
      });
    };
    owner.on('message', listener);
    return () => void owner.off('message', listener);
  }
  if (servers.has(owner)) throw new ArgumentValueError('owner', 'an owner that is not already serving force requests', owner);
  const respond = (request: LockForceRequest): Promise<Reply> => decide(handler, request);
  servers.set(owner, respond);
  return () => {
    if (servers.get(owner) === respond) servers.delete(owner);
  };
}

/** An error sent over the wire, as an `Error` again. @internal */
export function errorFromWire(wire: WireError): Error {
  const error = new Error(wire.message);
  error.name = wire.name;
  Object.assign(error, { code: wire.code, critical: wire.critical });
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}

/** True for an error as the wire carries it (not an `Error`). @internal */
export function isErrorWire(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && !(value instanceof Error) && typeof (value as WireError).message === 'string' && 'critical' in value;
}
