/**
 * `statesmith/nats`: any actor, served over NATS to other processes, and its remote
 * handle. `@nats-io/transport-node` is an optional peer: you connect, and hand the
 * connection here.
 *
 * - `<subject>.cmd`: request/reply. A JSON command comes in; the reply is the command's
 *   reply event, or `statesmith.rejected` with a typed `code`.
 * - `<subject>.state`: every snapshot change is published (status, value, context through
 *   the inspector's safe serialiser); a request on it gets the latest.
 * - `<subject>.events`: every event the actor emits is published.
 *
 * @module
 */
import { Observable, ReplaySubject, Subject, type Observer, type Subscription as RxSubscription } from 'rxjs';
import type { AnyActorRef } from 'xstate';
import { ArgumentTypeError, ArgumentValueError, TimeoutError } from '../errors.ts';
import { safeStringify } from '../inspect/safeJson.ts';
import { getLogger } from '../logger.ts';
import { optionalDuration, optionalObject, optionalSignal } from '../runtime/validate.ts';
import { requireConnection, requireSubject, type NatsConnectionLike, type NatsMessageLike } from './wire.ts';

export type { NatsConnectionLike, NatsMessageLike } from './wire.ts';
export { exposeInspection, type InspectionFeed, type InspectionFeedOptions } from './inspection.ts';

/** Options of {@link exposeActor}. */
export interface ExposeOptions {
  /** A connected NATS client (`await connect({ servers })` from `@nats-io/transport-node`). */
  readonly connection: NatsConnectionLike;
  /** The subject prefix: tokens of letters, digits, `-` and `_` joined by dots; no wildcards. */
  readonly subject: string;
  /** The largest command accepted, in bytes; default 65,536. */
  readonly maxCommandBytes?: number;
  /** How long a command may wait for its reply before `ERR_NO_REPLY` is answered; default 30,000 ms. */
  readonly replyTimeoutMs?: number;
}

/** A served actor; `close()` stops serving it (the actor runs on). */
export interface Exposed {
  /** Stops serving: unsubscribes, and answers no more commands. */
  close(): Promise<void>;
}

/** Options of {@link remoteActor}. */
export interface RemoteOptions {
  /** A connected NATS client. */
  readonly connection: NatsConnectionLike;
  /** The subject prefix the actor is exposed on. */
  readonly subject: string;
}

/** A snapshot as it crosses the wire. */
export interface RemoteSnapshot {
  /** `active`, `done`, `error` or `stopped`. */
  readonly status: string;
  /** The state value. */
  readonly value: unknown;
  /** The context, as the inspector's safe serialiser writes it (functions and actor refs named, secrets redacted). */
  readonly context: unknown;
}

/** The other side of {@link exposeActor}: an actor in another process. */
export interface RemoteActor {
  /** Sends a command without waiting; a refusal is logged. */
  send(event: { readonly type: string }): void;
  /** Sends a command and resolves with its reply event (a `statesmith.rejected` too). */
  request(event: { readonly type: string }, options?: { readonly timeoutMs?: number; readonly signal?: AbortSignal }): Promise<{ readonly type: string } & Record<string, unknown>>;
  /** The latest snapshot received, or `undefined` before the first. */
  getSnapshot(): RemoteSnapshot | undefined;
  /** Every snapshot published, the latest first when subscribing. */
  readonly snapshot$: Observable<RemoteSnapshot>;
  /** Every event the actor emits. */
  readonly events$: Observable<{ readonly type: string } & Record<string, unknown>>;
  /** `snapshot$.subscribe`, as XState's and RxJS's habits expect. */
  subscribe(observer: Partial<Observer<RemoteSnapshot>> | ((snapshot: RemoteSnapshot) => void)): RxSubscription;
  /** Stops listening. */
  close(): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function rejected(command: unknown, state: unknown, code: string, reason: string): string {
  return JSON.stringify({ type: 'statesmith.rejected', command, state, code, reason });
}

/**
 * Serves `actor` (a statesmith actor or any XState actor) on `<subject>.cmd`,
 * `<subject>.state` and `<subject>.events`. Every command gets exactly one answer: its
 * reply, or a `statesmith.rejected` (`ERR_MALFORMED_JSON`, `ERR_MESSAGE_TOO_LARGE`,
 * `ERR_INVALID_COMMAND`, `ERR_ACTOR_STOPPED`, `ERR_NO_REPLY`); the actor itself never
 * sees a malformed message. A command sent without a reply subject cannot be answered:
 * its refusal (`ERR_NO_REPLY_SUBJECT`) is published on `<subject>.events`.
 */
export async function exposeActor(actor: AnyActorRef, options: ExposeOptions): Promise<Exposed> {
  if (actor === null || typeof actor !== 'object' || typeof (actor as { send?: unknown }).send !== 'function') throw new ArgumentTypeError('actor', 'an XState actor', actor);
  const opts = optionalObject<ExposeOptions>('options', options, ['connection', 'subject', 'maxCommandBytes', 'replyTimeoutMs']);
  const connection = requireConnection('options.connection', opts.connection);
  const subject = requireSubject('options.subject', opts.subject);
  const maxBytes = opts.maxCommandBytes ?? 65_536;
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new ArgumentValueError('options.maxCommandBytes', 'an integer >= 1', maxBytes);
  const replyTimeoutMs = optionalDuration('options.replyTimeoutMs', opts.replyTimeoutMs, 30_000);
  type Snapshot = { status?: string; value?: unknown; context?: unknown };
  // A value object is reused while the state does not change: not serialised again.
  let valueRef: unknown = {};
  let valueJson = '';
  const valueOf = (snapshot: Snapshot): string => {
    if (snapshot.value !== valueRef || typeof snapshot.value !== 'object') {
      valueRef = snapshot.value;
      valueJson = snapshot.value === undefined ? 'null' : safeStringify(snapshot.value);
    }
    return valueJson;
  };
  const stateOf = (snapshot: Snapshot = actor.getSnapshot() as Snapshot): string =>
    `{"status":${JSON.stringify(snapshot.status ?? 'active')},"value":${valueOf(snapshot)},"context":${snapshot.context === undefined ? 'null' : safeStringify(snapshot.context)}}`;
  const pending = new Set<ReplyPort>();
  let requests = 0;
  const events = `${subject}.events`;

  const onCommand = (error: Error | null, message: NatsMessageLike): void => {
    if (error !== null) return;
    const answer = (payload: string): void => {
      if (message.reply) message.respond(payload);
      else connection.publish(events, payload);
    };
    if (!message.reply) {
      answer(rejected(null, (actor.getSnapshot() as { value?: unknown }).value ?? null, 'ERR_NO_REPLY_SUBJECT', `a command on ${subject}.cmd needs a reply subject (send it as a request)`));
      return;
    }
    if (message.data.length > maxBytes) {
      answer(rejected(null, null, 'ERR_MESSAGE_TOO_LARGE', `a command may have at most ${maxBytes} bytes; received ${message.data.length}`));
      return;
    }
    let command: unknown;
    try {
      command = JSON.parse(decoder.decode(message.data));
    } catch (parseError) {
      answer(rejected(null, null, 'ERR_MALFORMED_JSON', `the command is not JSON: ${(parseError as Error).message}`));
      return;
    }
    const type = (command as { type?: unknown } | null)?.type;
    if (command === null || typeof command !== 'object' || Array.isArray(command) || typeof type !== 'string' || type.length === 0) {
      answer(rejected(command, null, 'ERR_INVALID_COMMAND', 'a command is a JSON object with a string "type"'));
      return;
    }
    // XState's own events (xstate.*) are the actor's internals: never from outside.
    if (type.startsWith('xstate.') || 'replyTo' in command) {
      answer(rejected(command, null, 'ERR_INVALID_COMMAND', `${type.startsWith('xstate.') ? `${type} is an internal XState event` : '"replyTo" is set by the bridge'}; it cannot be sent`));
      return;
    }
    if ((actor.getSnapshot() as { status?: string }).status !== 'active') {
      answer(rejected(command, null, 'ERR_ACTOR_STOPPED', `the actor on ${subject} is not running`));
      return;
    }
    // The reply comes to a port of this request's own, which answers the request once.
    const port = new ReplyPort(`${subject}.cmd#${++requests}`, (payload) => {
      message.respond(payload);
      pending.delete(port);
    });
    port.arm(replyTimeoutMs, () => rejected(command, null, 'ERR_NO_REPLY', `the actor sent no reply within ${replyTimeoutMs} ms; the command was delivered`));
    pending.add(port);
    actor.send({ ...(command as object), replyTo: port } as never);
  };

  const subscriptions = [
    connection.subscribe(`${subject}.cmd`, { callback: onCommand }),
    // A request on the state subject gets the latest snapshot; the bridge's own publications have no reply.
    connection.subscribe(`${subject}.state`, {
      callback: (error, message) => {
        if (error === null && message.reply) message.respond(stateOf());
      },
    }),
  ];
  let lastState = '';
  let open = true;
  // What goes out, in order, once per turn of the event loop. Every change of state value
  // (and status) is published, a short-lived one too; steps that change only the context
  // within one turn are published as the last of them. Events go in the same queue, so a
  // watcher never sees an event before the state it came from.
  type Outgoing = { readonly snapshot: Snapshot; readonly key: string } | { readonly event: unknown };
  let outbox: Outgoing[] = [];
  let scheduled: ReturnType<typeof setImmediate> | undefined;
  let lastSnapshot: unknown;
  const flushOutbox = (): void => {
    scheduled = undefined;
    const batch = outbox;
    outbox = [];
    for (const item of batch) {
      if ('event' in item) {
        connection.publish(events, safeStringify(item.event));
        continue;
      }
      const state = stateOf(item.snapshot);
      if (state === lastState) continue;
      lastState = state;
      connection.publish(`${subject}.state`, state);
    }
  };
  const enqueue = (item: Outgoing): void => {
    outbox.push(item);
    scheduled ??= setImmediate(flushOutbox);
  };
  const publishState = (): void => {
    if (!open) return;
    const snapshot = actor.getSnapshot() as Snapshot;
    if (snapshot === lastSnapshot) return;
    lastSnapshot = snapshot;
    const key = `${snapshot.status ?? 'active'}:${valueOf(snapshot)}`;
    const last = outbox.at(-1);
    if (last !== undefined && 'key' in last && last.key === key) outbox[outbox.length - 1] = { snapshot, key };
    else enqueue({ snapshot, key });
  };
  const snapshots = actor.subscribe({ next: publishState, error: publishState, complete: publishState });
  const emitted = (actor as { on?: (type: string, fn: (event: unknown) => void) => { unsubscribe(): void } }).on?.('*', (event) => {
    if (open) enqueue({ event });
  });
  publishState();
  flushOutbox();
  // Served once the server knows the subscriptions: a request sent right after this resolves finds them.
  await connection.flush?.();
  return {
    close: async () => {
      if (!open) return;
      if (scheduled !== undefined) {
        clearImmediate(scheduled);
        flushOutbox();
      }
      open = false;
      for (const subscription of subscriptions) subscription.unsubscribe();
      snapshots.unsubscribe();
      emitted?.unsubscribe();
      for (const port of pending) port.close();
      pending.clear();
    },
  };
}

/**
 * Where an exposed actor's reply to one request goes: as XState delivers to an actor
 * (`_send`, what `sendTo` uses) and as a user's code does (`send`). It answers the request
 * once: the first reply, or a timeout's refusal. Lighter than an actor per request.
 */
class ReplyPort {
  readonly id: string;
  readonly sessionId: string;
  readonly #answer: (payload: string) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done = false;

  constructor(id: string, answer: (payload: string) => void) {
    this.id = id;
    this.sessionId = id;
    this.#answer = answer;
  }

  arm(timeoutMs: number, refusal: () => string): void {
    if (timeoutMs === Infinity) return;
    this.#timer = setTimeout(() => this.#finish(refusal()), Math.min(timeoutMs, 2 ** 31 - 1));
    this.#timer.unref();
  }

  send(event: unknown): void {
    this.#finish(safeStringify(event));
  }

  _send(event: unknown): void {
    this.send(event);
  }

  getSnapshot(): { status: string } {
    return { status: this.#done ? 'done' : 'active' };
  }

  close(): void {
    this.#done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  #finish(payload: string): void {
    if (this.#done) return;
    this.close();
    this.#answer(payload);
  }
}

/** Throws unless `value` survives JSON unchanged in meaning: no functions, symbols, bigints, undefined, or cycles. */
function requireJson(name: string, value: unknown, seen = new Set<unknown>()): void {
  const kind = typeof value;
  if (kind === 'function' || kind === 'symbol' || kind === 'bigint' || kind === 'undefined') {
    throw new ArgumentValueError(name, 'JSON (no functions, symbols, bigints or undefined)', value);
  }
  if (kind === 'number' && !Number.isFinite(value as number)) throw new ArgumentValueError(name, 'JSON (a finite number)', value);
  if (value === null || kind !== 'object') return;
  if (seen.has(value)) throw new ArgumentValueError(name, 'JSON (no cycles)', '[a cycle]');
  seen.add(value);
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) {
    throw new ArgumentValueError(name, 'JSON (plain objects and arrays only)', value);
  }
  for (const [key, inner] of Object.entries(value as object)) requireJson(`${name}.${key}`, inner, seen);
  seen.delete(value);
}

/**
 * The other side of {@link exposeActor}: commands to an actor in another process, and
 * its snapshots and events as Observables. Only JSON crosses: a command holding a
 * function or another non-JSON value is refused with a typed error before it is sent.
 */
export function remoteActor(options: RemoteOptions): RemoteActor {
  const opts = optionalObject<RemoteOptions>('options', options, ['connection', 'subject']);
  const connection = requireConnection('options.connection', opts.connection);
  const subject = requireSubject('options.subject', opts.subject);
  let latest: RemoteSnapshot | undefined;
  const snapshots = new ReplaySubject<RemoteSnapshot>(1);
  const events = new Subject<{ readonly type: string } & Record<string, unknown>>();
  const parse = (message: NatsMessageLike): unknown => JSON.parse(decoder.decode(message.data));
  const subscriptions = [
    connection.subscribe(`${subject}.state`, {
      callback: (error, message) => {
        if (error !== null || message.reply) return;
        latest = parse(message) as RemoteSnapshot;
        snapshots.next(latest);
      },
    }),
    connection.subscribe(`${subject}.events`, {
      callback: (error, message) => {
        if (error === null) events.next(parse(message) as { type: string });
      },
    }),
  ];
  // The snapshot as it is now, before the next change is published.
  connection.request(`${subject}.state`, '', { timeout: 5_000 }).then(
    (message) => {
      if (latest !== undefined) return;
      latest = parse(message) as RemoteSnapshot;
      snapshots.next(latest);
    },
    (error: unknown) => getLogger().debug(`no snapshot from ${subject} yet`, { error }),
  );

  const request: RemoteActor['request'] = async (event, requestOptions) => {
    requireJson('event', event);
    if (typeof (event as { type?: unknown }).type !== 'string') throw new ArgumentTypeError('event.type', 'a string', (event as { type?: unknown }).type);
    const bounds = optionalObject<{ timeoutMs: number; signal: AbortSignal }>('options', requestOptions, ['timeoutMs', 'signal']);
    const timeoutMs = optionalDuration('options.timeoutMs', bounds.timeoutMs, 30_000);
    const signal = optionalSignal('options.signal', bounds.signal);
    signal?.throwIfAborted();
    const sent = connection.request(`${subject}.cmd`, encoder.encode(JSON.stringify(event)), { timeout: Math.min(timeoutMs, 2 ** 31 - 1) }).then(
      (message) => parse(message) as { type: string } & Record<string, unknown>,
      (error: unknown) => {
        const code = (error as { code?: unknown; name?: string }).code;
        if (code === 'TIMEOUT' || code === '408' || /timeout/i.test(String((error as Error).message))) {
          throw new TimeoutError(`no reply from ${subject}.cmd within ${timeoutMs} ms`);
        }
        throw error;
      },
    );
    if (signal === undefined) return sent;
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([sent, new Promise<never>((_, reject) => signal.addEventListener('abort', (onAbort = () => reject(signal.reason)), { once: true }))]);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
      sent.catch(() => undefined);
    }
  };

  const snapshot$ = snapshots.asObservable();
  return {
    send: (event) => {
      requireJson('event', event);
      request(event).then(
        (reply) => {
          if (reply.type === 'statesmith.rejected') getLogger().warn(`${subject} refused ${event.type}: ${String(reply['reason'])}`);
        },
        (error: unknown) => getLogger().warn(`sending ${event.type} to ${subject} failed`, { error }),
      );
    },
    request,
    getSnapshot: () => latest,
    snapshot$,
    events$: events.asObservable(),
    subscribe: (observer) => snapshot$.subscribe(observer as never),
    close: () => {
      for (const subscription of subscriptions) subscription.unsubscribe();
      snapshots.complete();
      events.complete();
    },
  };
}
