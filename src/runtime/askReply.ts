/**
 * Sends a command to an actor and resolves with its reply: the thin clients' one way of
 * asking. The reply comes to a port of this request's own (what XState's `sendTo` and a
 * user's `send` both call), so replies to other askers never mix in.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorRef } from 'xstate';
import { ActorStoppedError, RejectedError } from '../errors.ts';

let asks = 0;

type Failure<TReply> = { readonly type: string; readonly error: (reply: TReply) => unknown };

/**
 * The port one ask's reply comes to. Its methods live on the prototype, so an ask costs one
 * object and one promise, not a closure per method.
 */
class AskPort<TReply extends { readonly type: string }> {
  readonly #n: number;
  #resolve: ((reply: TReply) => void) | undefined;
  #reject: ((error: unknown) => void) | undefined;
  readonly #accept: readonly string[];
  readonly #failure: Failure<TReply> | undefined;
  readonly #pending: Set<AskPort<never>>;

  constructor(
    resolve: (reply: TReply) => void,
    reject: (error: unknown) => void,
    accept: readonly string[],
    failure: Failure<TReply> | undefined,
    pending: Set<AskPort<never>>,
  ) {
    this.#n = ++asks;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#accept = accept;
    this.#failure = failure;
    this.#pending = pending;
  }

  get id(): string {
    return `ask-${this.#n}`;
  }

  get sessionId(): string {
    return this.id;
  }

  send(reply: TReply): void {
    if (this.#resolve === undefined) return;
    if (reply.type === 'statesmith.rejected') this.fail(new RejectedError(reply as never));
    else if (this.#failure !== undefined && reply.type === this.#failure.type) this.fail(this.#failure.error(reply));
    else if (this.#accept.includes(reply.type)) {
      const resolve = this.#resolve;
      this.#settle();
      resolve(reply);
    }
  }

  _send(reply: TReply): void {
    this.send(reply);
  }

  fail(error: unknown): void {
    const reject = this.#reject;
    if (reject === undefined) return;
    this.#settle();
    reject(error);
  }

  getSnapshot(): { status: string } {
    return { status: this.#resolve === undefined ? 'done' : 'active' };
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  #settle(): void {
    this.#resolve = undefined;
    this.#reject = undefined;
    this.#pending.delete(this as never);
  }
}

/** The asks waiting on each actor: one subscription per actor rejects them all when it ends. */
const waiting = new WeakMap<AnyActorRef, Set<AskPort<never>>>();

function endedError(actor: AnyActorRef): ActorStoppedError | undefined {
  const snapshot = actor.getSnapshot() as { status?: string; value?: unknown } | undefined;
  if (snapshot?.status === undefined || snapshot.status === 'active') return undefined;
  return new ActorStoppedError(actor.id, snapshot.status as never, snapshot.value);
}

function pendingOn(actor: AnyActorRef): Set<AskPort<never>> {
  let pending = waiting.get(actor);
  if (pending !== undefined) return pending;
  const asks = new Set<AskPort<never>>();
  waiting.set(actor, asks);
  // An actor that stops or fails before it answers rejects every ask still waiting on it, at once.
  const ended = (): void => {
    const error = endedError(actor);
    if (error === undefined) return;
    waiting.delete(actor);
    for (const ask of [...asks]) ask.fail(error);
  };
  actor.subscribe({ error: ended, complete: ended });
  return asks;
}

/**
 * Resolves the first reply whose type is in `accept`; rejects with a `RejectedError` on
 * `statesmith.rejected`, and with `failed(reply)` on a reply whose type is `failedType`.
 */
export function askReply<TReply extends { readonly type: string }>(
  actor: AnyActorRef,
  command: { readonly type: string } & Record<string, unknown>,
  accept: readonly string[],
  failure?: Failure<TReply>,
): Promise<TReply> {
  return new Promise<TReply>((resolve, reject) => {
    const stopped = endedError(actor);
    if (stopped !== undefined) return reject(stopped);
    const pending = pendingOn(actor);
    const port = new AskPort<TReply>(resolve, reject, accept, failure, pending);
    pending.add(port as never);
    // Object.assign, not a spread: measured on Node 20, a spread copy of the caller's literal
    // survived the young generation (about 500 B an ask promoted, then a full GC to free it).
    actor.send(Object.assign({}, command, { replyTo: port }) as never);
    // Answered in the send, or the actor ended in it (its subscription has already fired).
    const after = endedError(actor);
    if (after !== undefined) port.fail(after);
  });
}
