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
 * @packageDocumentation
 */
// Keeps the comment above in the .d.ts, where API Extractor reads it (an import alone would drop it).
export {};
import { randomUUID } from 'node:crypto';
import { Observable, ReplaySubject, Subject, type Observer, type Subscription as RxSubscription } from 'rxjs';
import type { AnyActorRef } from 'xstate';
import { isFinalReply } from '../../machines/finalReplies.ts';
import { takeReply } from '../runtime/ask.ts';
import { MAX_TIMER_MS, errorData } from '../../machines/protocol.ts';
import { ArgumentTypeError, ArgumentValueError, NoReplyError, RejectedError } from '../errors.ts';
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

/** Options of {@link RemoteActor.request}. */
export interface RequestOptions {
  /** How long to wait for the final reply; default 30,000 ms. */
  readonly timeoutMs?: number;
  /** Gives up the wait (the command was sent); rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** Hears each interim reply. */
  readonly onReply?: (reply: { readonly type: string } & Record<string, unknown>) => void;
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
  send(event: { readonly type: string; readonly [key: string]: unknown }): void;
  /**
   * Sends a command and resolves with its final reply (`finalReplies` in `statesmith`: `done` for a
   * `run`, not the `scheduled` before it); interim replies go to `onReply`. Rejects with a
   * `RejectedError` on `statesmith.rejected`, a `NoReplyError` (`ERR_NO_REPLY`) when no final
   * reply comes within `timeoutMs` (default 30,000 ms) or nobody serves the subject, and
   * `signal.reason` on abort.
   *
   * The request carries its deadline (this host's clock plus `timeoutMs`): a command that reaches
   * the exposed actor after it, held up by a partition or a slow link, is refused there unrun
   * (`ERR_TIMEOUT`). So after `ERR_NO_REPLY` the command has run at most once, and only if it
   * arrived before its deadline (give or take the two hosts' clock difference) and its reply was
   * lost or late; it is never run after the caller stopped waiting.
   */
  request(
    event: { readonly type: string; readonly [key: string]: unknown },
    options?: RequestOptions,
  ): Promise<{ readonly type: string } & Record<string, unknown>>;
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
  try {
    return safeStringify({ type: 'statesmith.rejected', command, state, code, reason });
  } catch {
    // A command JSON can hold but not write back (nested past the stack): refused without it.
    return JSON.stringify({ type: 'statesmith.rejected', command: null, state: null, code, reason });
  }
}

/**
 * A request's reply subject carries its deadline (wall-clock ms, the sender's `Date.now()` plus
 * its `timeoutMs`) as its last token: `_INBOX.statesmith.<32 hex>.d<ms>`. The command itself
 * stays the user's JSON, and a server that does not look at it still answers.
 */
const INBOX_DEADLINE = /^_INBOX\.statesmith\.[0-9a-f]{32}\.d(\d{1,16})$/;

/** The deadline a reply subject carries, or undefined (no deadline: `timeoutMs` Infinity, or another client's inbox). */
function deadlineOf(reply: string): number | undefined {
  const match = INBOX_DEADLINE.exec(reply);
  return match === null ? undefined : Number(match[1]);
}

/** The NATS status header of a message, when it is one (`503`: no responders). */
function statusOf(message: NatsMessageLike): string | undefined {
  const headers = (message as { headers?: { code?: unknown; status?: unknown } }).headers;
  const code = headers?.code ?? headers?.status;
  return code === undefined || code === null ? undefined : String(code);
}

/** A reply's JSON, or undefined for a payload that is not a JSON object with a string `type`. */
function parseReply(data: Uint8Array): ({ readonly type: string } & Record<string, unknown>) | undefined {
  try {
    const value = JSON.parse(decoder.decode(data)) as unknown;
    return value !== null && typeof value === 'object' && typeof (value as { type?: unknown }).type === 'string' ? (value as { type: string }) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Serves `actor` (a statesmith actor or any XState actor) on `<subject>.cmd`,
 * `<subject>.state` and `<subject>.events`. Every command gets exactly one answer: its
 * reply, or a `statesmith.rejected` (`ERR_MALFORMED_JSON`, `ERR_MESSAGE_TOO_LARGE`,
 * `ERR_INVALID_COMMAND`, `ERR_ACTOR_STOPPED`, `ERR_NO_REPLY`, and `ERR_TIMEOUT` for a
 * command from `remoteActor` that arrives after its request's deadline); the actor itself
 * never sees a malformed or a late message. A command sent without a reply subject cannot be answered:
 * its refusal (`ERR_NO_REPLY_SUBJECT`) is published on `<subject>.events`.
 */
export async function exposeActor(actor: AnyActorRef, options: ExposeOptions): Promise<Exposed> {
  if (actor === null || typeof actor !== 'object' || typeof (actor as { send?: unknown }).send !== 'function')
    throw new ArgumentTypeError('actor', 'an XState actor', actor);
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

  // One message, from anyone on the subject space, must never stop the server: whatever it
  // makes throw is answered, and the subscription goes on.
  const onCommand = (error: Error | null, message: NatsMessageLike): void => {
    if (error !== null) return;
    try {
      serveCommand(message);
    } catch (thrown) {
      getLogger().warn(`${subject}.cmd: a command could not be handled`, { error: thrown });
      try {
        if (message.reply) message.respond(rejected(null, null, 'ERR_INVALID_COMMAND', `the command could not be handled: ${errorData(thrown).message}`));
      } catch {
        // The connection itself refused: nothing more to answer with.
      }
    }
  };
  const serveCommand = (message: NatsMessageLike): void => {
    const answer = (payload: string): void => {
      if (message.reply) message.respond(payload);
      else connection.publish(events, payload);
    };
    if (!message.reply) {
      answer(
        rejected(
          null,
          (actor.getSnapshot() as { value?: unknown }).value ?? null,
          'ERR_NO_REPLY_SUBJECT',
          `a command on ${subject}.cmd needs a reply subject (send it as a request)`,
        ),
      );
      return;
    }
    // Arrived after its sender stopped waiting (held by a partition, a slow link, a paused process):
    // refused unrun, so a caller told ERR_NO_REPLY is not overtaken by the command it gave up on.
    const deadline = deadlineOf(message.reply);
    const now = Date.now();
    if (deadline !== undefined && now > deadline) {
      answer(
        rejected(
          null,
          null,
          'ERR_TIMEOUT',
          `the command arrived ${now - deadline} ms after its request's timeoutMs had passed; it was not delivered to the actor`,
        ),
      );
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
      answer(
        rejected(
          command,
          null,
          'ERR_INVALID_COMMAND',
          `${type.startsWith('xstate.') ? `${type} is an internal XState event` : '"replyTo" is set by the bridge'}; it cannot be sent`,
        ),
      );
      return;
    }
    if ((actor.getSnapshot() as { status?: string }).status !== 'active') {
      answer(rejected(command, null, 'ERR_ACTOR_STOPPED', `the actor on ${subject} is not running`));
      return;
    }
    // The replies come to a port of this request's own: each is sent on (interim ones too),
    // until the command's final reply (finalReplies), or a rejection, ends the request.
    const port = new ReplyPort(
      `${subject}.cmd#${++requests}`,
      command as { type: string },
      (payload) => message.respond(payload),
      () => pending.delete(port),
    );
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
      try {
        if ('event' in item) {
          connection.publish(events, safeStringify(item.event));
          continue;
        }
        const state = stateOf(item.snapshot);
        if (state === lastState) continue;
        lastState = state;
        connection.publish(`${subject}.state`, state);
      } catch (error) {
        // A closed connection, or a value that cannot be written: this item is lost, the process is not.
        getLogger().debug(`${subject}: could not publish`, { error });
      }
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
  // An actor that stops or fails answers every request still waiting for its final reply, at once.
  const answerStopped = (): void => {
    const snapshot = actor.getSnapshot() as Snapshot;
    if (snapshot.status === 'active' || pending.size === 0) return;
    for (const port of [...pending])
      port.refuse(
        rejected(
          port.command,
          snapshot.value ?? null,
          'ERR_ACTOR_STOPPED',
          `the actor on ${subject} ${snapshot.status === 'error' ? 'failed' : 'stopped'} before its final reply`,
        ),
      );
  };
  const stopWatch = actor.subscribe({ next: answerStopped, error: answerStopped, complete: answerStopped });
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
      stopWatch.unsubscribe();
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
  /** The command as received, for a refusal. */
  readonly command: { readonly type: string };
  readonly #respond: (payload: string) => void;
  readonly #ended: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done = false;

  constructor(id: string, command: { readonly type: string }, respond: (payload: string) => void, ended: () => void) {
    this.id = id;
    this.sessionId = id;
    this.command = command;
    this.#respond = respond;
    this.#ended = ended;
  }

  /** Refuses the request with `refusal()` unless the actor answers within `timeoutMs`. */
  arm(timeoutMs: number, refusal: () => string): void {
    if (timeoutMs === Infinity) return;
    this.#timer = setTimeout(() => this.refuse(refusal()), Math.min(timeoutMs, MAX_TIMER_MS));
    this.#timer.unref();
  }

  send(event: unknown): void {
    if (this.#done) return;
    let payload: string;
    try {
      payload = safeStringify(event);
    } catch (error) {
      payload = rejected(null, null, 'ERR_INVALID_REPLY', `the actor's reply could not be written as JSON: ${errorData(error).message}`);
    }
    const type = (event as { type?: unknown } | null)?.type;
    const final = typeof type !== 'string' || type === 'statesmith.rejected' || isFinalReply(this.command.type, { type });
    if (final) this.close();
    // The actor answered: the refusal for silence no longer applies, whatever comes next.
    else this.#clearTimer();
    this.#respond(payload);
  }

  _send(event: unknown): void {
    this.send(event);
  }

  /** Ends the request with `payload`, a refusal. */
  refuse(payload: string): void {
    if (this.#done) return;
    this.close();
    this.#respond(payload);
  }

  getSnapshot(): { status: string } {
    return { status: this.#done ? 'done' : 'active' };
  }

  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    this.#ended();
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
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
  let entries: Array<[string, unknown]>;
  try {
    const proto = Object.getPrototypeOf(value);
    if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) {
      throw new ArgumentValueError(name, 'JSON (plain objects and arrays only)', value);
    }
    // Reads every property: a getter (or a proxy's trap) that throws is a typed refusal, never its raw error.
    entries = Object.entries(value as object);
  } catch (error) {
    if (error instanceof ArgumentValueError) throw error;
    throw new ArgumentValueError(name, `JSON whose properties can be read (reading them threw: ${errorData(error).message})`, value);
  }
  for (const [key, inner] of entries) requireJson(`${name}.${key}`, inner, seen);
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
  // A payload that is not what the bridge publishes (anyone may publish on these subjects) is
  // dropped with a debug line: it must never end this process's NATS reader.
  const parse = (message: NatsMessageLike, what: string): Record<string, unknown> | undefined => {
    const value = parseReply(message.data);
    if (value === undefined && what !== 'state') getLogger().debug(`${subject}.${what}: dropped a message that is not a JSON event`);
    if (what === 'state') {
      try {
        const state = JSON.parse(decoder.decode(message.data)) as unknown;
        if (state !== null && typeof state === 'object' && typeof (state as { status?: unknown }).status === 'string') return state as Record<string, unknown>;
      } catch {
        // fall through
      }
      getLogger().debug(`${subject}.state: dropped a message that is not a snapshot`);
      return undefined;
    }
    return value;
  };
  const subscriptions = [
    connection.subscribe(`${subject}.state`, {
      callback: (error, message) => {
        if (error !== null || message.reply) return;
        const state = parse(message, 'state');
        if (state === undefined) return;
        latest = state as unknown as RemoteSnapshot;
        snapshots.next(latest);
      },
    }),
    connection.subscribe(`${subject}.events`, {
      callback: (error, message) => {
        if (error !== null) return;
        const event = parse(message, 'events');
        if (event !== undefined) events.next(event as { type: string });
      },
    }),
  ];
  // The snapshot as it is now, before the next change is published.
  connection.request(`${subject}.state`, '', { timeout: 5_000 }).then(
    (message) => {
      if (latest !== undefined) return;
      const state = parse(message, 'state');
      if (state === undefined) return;
      latest = state as unknown as RemoteSnapshot;
      snapshots.next(latest);
    },
    (error: unknown) => getLogger().debug(`no snapshot from ${subject} yet`, { error }),
  );

  const request: RemoteActor['request'] = async (event, requestOptions) => {
    requireJson('event', event);
    if (typeof (event as { type?: unknown }).type !== 'string') throw new ArgumentTypeError('event.type', 'a string', (event as { type?: unknown }).type);
    const bounds = optionalObject<RequestOptions>('options', requestOptions, ['timeoutMs', 'signal', 'onReply']);
    const timeoutMs = optionalDuration('options.timeoutMs', bounds.timeoutMs, 30_000);
    const signal = optionalSignal('options.signal', bounds.signal);
    const onReply = bounds.onReply;
    if (onReply !== undefined && typeof onReply !== 'function') throw new ArgumentTypeError('options.onReply', 'a function', onReply);
    signal?.throwIfAborted();
    const type = event.type;
    // The replies of one request come to an inbox of its own: interim ones, then the final one. Its
    // last token is the deadline, so that a command held past it is refused unrun (see deadlineOf).
    const deadline = timeoutMs === Infinity ? '' : `.d${Date.now() + Math.ceil(timeoutMs)}`;
    const inbox = `_INBOX.statesmith.${randomUUID().replaceAll('-', '')}${deadline}`;
    return new Promise((resolve, reject) => {
      const interim: unknown[] = [];
      let done = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => finish(() => reject(signal?.reason));
      function finish(settle: () => void): void {
        if (done) return;
        done = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        replies.unsubscribe();
        settle();
      }
      const replies = connection.subscribe(inbox, {
        callback: (error, message) => {
          try {
            onInboxMessage(error, message);
          } catch (thrown) {
            // Nothing a reply holds may end this process's NATS reader.
            finish(() => reject(thrown));
          }
        },
      });
      function onInboxMessage(error: Error | null, message: NatsMessageLike): void {
        if (done) return;
        if (error !== null) {
          finish(() => reject(noReply(error)));
          return;
        }
        const status = statusOf(message);
        if (status === '503' || (message.data.length === 0 && status !== undefined)) {
          finish(() => reject(new NoReplyError(`nobody serves ${subject}.cmd (NATS answered ${status}: no responders)`, interim)));
          return;
        }
        const reply = parseReply(message.data);
        if (reply === undefined) return; // not a reply of the bridge's: ignored
        takeReply(type, reply, { interim, onReply, finish, resolve, reject });
      }
      const noReply = (cause?: unknown): NoReplyError =>
        new NoReplyError(`no final reply to ${type} from ${subject}.cmd within ${timeoutMs} ms`, interim, cause === undefined ? undefined : { cause });
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== Infinity) {
        timer = setTimeout(() => finish(() => reject(noReply())), Math.min(timeoutMs, MAX_TIMER_MS));
        timer.unref();
      }
      try {
        connection.publish(`${subject}.cmd`, encoder.encode(JSON.stringify(event)), { reply: inbox });
      } catch (error) {
        finish(() => reject(error));
      }
    });
  };

  const snapshot$ = snapshots.asObservable();
  return {
    send: (event) => {
      requireJson('event', event);
      request(event).then(
        () => undefined,
        (error: unknown) =>
          error instanceof RejectedError
            ? getLogger().warn(`${subject} refused ${event.type}: ${error.rejection.reason}`)
            : getLogger().warn(`sending ${event.type} to ${subject} failed`, { error }),
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
