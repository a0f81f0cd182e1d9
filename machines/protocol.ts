/**
 * What every statesmith actor's command protocol shares: how a reply travels (to the
 * command's `replyTo`, emitted for `actor.on(...)`, and to the parent when there is one),
 * the `statesmith.rejected` answer, and errors as plain data.
 */
import { enqueueActions, type AnyActorRef } from 'xstate';
import { replyTypes } from './finalReplies.ts';

/**
 * The longest delay Node's timers honour: a larger one (2^31 ms and up) fires after 1 ms,
 * with only a warning (Node's `TIMEOUT_MAX`; see `lib/internal/timers.js`). Every delay of
 * every machine is cut into slices of at most this; `src/clock.ts` re-exports it.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The one mark of an actor's own internal events (what its engine and children tell it), so
 * that no message from outside can fake one: a command carrying it is refused as forged.
 * A symbol never crosses a process. (Internal: not part of the API.)
 */
export const kInternal: unique symbol = Symbol('statesmith.internal');

/** An error as it travels in a reply: plain data. */
export interface ErrorData {
  /** The error's `name`, such as `'TypeError'` or `'CancelledError'`. */
  readonly name: string;
  /** The error's `message`. */
  readonly message: string;
  /** The error's `code`, when it had a string one. */
  readonly code?: string;
}

/** The answer to a command the current state does not accept, or a malformed one. */
export interface Rejected {
  /** Always `'statesmith.rejected'`. */
  readonly type: 'statesmith.rejected';
  /** The command as received, without in-process fields (`fn`, `replyTo`). */
  readonly command: Readonly<Record<string, unknown>>;
  /** The state that refused it. */
  readonly state: unknown;
  /** Why, as a stable code: `ERR_INVALID_STATE`, `ERR_UNKNOWN_COMMAND`, `ERR_INVALID_ARG_VALUE`, and so on. */
  readonly code: string;
  /** Why, in words for a person. */
  readonly reason: string;
}

/** A command without its in-process fields, for a rejection. */
export function commandData(event: { readonly type: string }): Record<string, unknown> {
  const { replyTo: _replyTo, fn, ...rest } = event as Record<string, unknown>;
  return fn === undefined ? rest : { ...rest, fn: '[function]' };
}

/** The `replyTo` a command carries, if any. */
export const replyToOf = (event: { readonly type: string }): AnyActorRef | undefined => (event as { replyTo?: AnyActorRef }).replyTo;

/** The part of XState's `enqueueActions` helpers a reply uses. */
export interface ReplyEnqueue {
  sendTo(...args: never[]): void;
  emit(event: never): void;
  sendParent(event: never): void;
}

/** Sends `reply` to `to` (when given) and to the parent (once, when the parent is `to`), and emits it. */
export function answer<TReply extends { readonly type: string }>(
  enqueue: ReplyEnqueue,
  self: AnyActorRef,
  to: AnyActorRef | null | undefined,
  reply: TReply,
): void {
  if (to) (enqueue.sendTo as (ref: AnyActorRef, e: unknown) => void)(to, reply);
  (enqueue.emit as (e: unknown) => void)(reply);
  const parent = (self as { _parent?: unknown })._parent;
  // A parent that asked (replyTo is the parent) hears the reply once.
  if (parent !== undefined && parent !== to) (enqueue.sendParent as (e: unknown) => void)(reply);
}

/** The `statesmith.rejected` answer to `event` in the actor's current state. */
export function rejection(event: { readonly type: string }, self: AnyActorRef, code: string, reason: string): Rejected {
  return { type: 'statesmith.rejected', command: commandData(event), state: (self.getSnapshot() as { value: unknown }).value, code, reason };
}

/** The answer to a message that only the actor's own children may send (it carries none of their marks). */
export function forgedRejection(event: { readonly type: string }, self: AnyActorRef, owner: string): Rejected {
  return {
    type: 'statesmith.rejected',
    command: { type: event.type },
    state: (self.getSnapshot() as { value?: unknown } | undefined)?.value,
    code: 'ERR_INVALID_ARG_VALUE',
    reason: `${event.type} is the ${owner}'s own event; it cannot be sent`,
  };
}

/** `JSON.stringify` for a reason text, safe for values JSON cannot write (functions, bigints, cycles). */
export function shown(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // A cycle, a bigint, nesting past the stack, or a hostile proxy: String() may throw the same way.
    try {
      text = String(value);
    } catch {
      let array = false;
      try {
        array = Array.isArray(value);
      } catch {
        // a revoked proxy
      }
      text = array ? 'an array that cannot be written' : `${typeof value === 'object' ? 'an object' : typeof value} that cannot be written`;
    }
  }
  // A reason is for a person: a long value is cut.
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/**
 * `reply` with an in-process field under `key`: not enumerable, so it is never copied,
 * compared or serialised as part of the data; only a holder of `key` reads it.
 */
export function withInProcess<TReply extends object>(reply: TReply, key: symbol, value: unknown): TReply {
  return Object.defineProperty(reply, key, { value, enumerable: false });
}

/** An error as plain data, for a reply that may cross a process. */
export function errorData(error: unknown): ErrorData {
  try {
    if (error instanceof Error) {
      const code = (error as { code?: unknown }).code;
      return { name: String(error.name), message: String(error.message), ...(typeof code === 'string' ? { code } : {}) };
    }
    return { name: 'Error', message: String(error) };
  } catch {
    // A value whose getters or traps throw (a hostile or revoked proxy) still becomes data.
    return { name: 'Error', message: 'a thrown value that could not be read (its getters or proxy traps throw)' };
  }
}

/**
 * The action that answers a `statesmith.<facility>.<verb>` the facility does not know with
 * `statesmith.rejected` (`ERR_UNKNOWN_COMMAND`): a machine puts it on its root under the
 * wildcard `statesmith.<facility>.*`, which every known command outranks.
 */
export function rejectUnknownCommand(facility: string, commands: readonly string[]) {
  return enqueueActions(({ enqueue, event, self }) =>
    answer(
      enqueue as never,
      self,
      replyToOf(event),
      rejection(
        event,
        self,
        'ERR_UNKNOWN_COMMAND',
        `${event.type} is not a command of the ${facility}; it takes ${commands.map((verb) => `statesmith.${facility}.${verb}`).join(', ')}`,
      ),
    ),
  );
}

/**
 * Whether an event that no state took is a message someone sent this actor and expects an
 * answer to: not XState's own (`xstate.*`), and not a statesmith reply or notice (a child's
 * reply to its parent, a `statesmith.rejected`), which is heard, never answered.
 */
export function expectsAnswer(type: string): boolean {
  return !type.startsWith('xstate.') && !replyTypes.has(type);
}

/**
 * The root transition that answers every other event, misspelled facility or bare word,
 * with `statesmith.rejected` (`ERR_UNKNOWN_COMMAND`), naming the facility's prefix and
 * verbs: nothing sent to a statesmith actor goes unanswered. Every more specific
 * descriptor, `statesmith.<facility>.*` included, outranks `*`.
 */
export function rejectAnyOther(facility: string, commands: readonly string[]) {
  return {
    guard: ({ event }: { event: { readonly type: string } }) => expectsAnswer(event.type),
    actions: rejectUnknownCommand(facility, commands),
  };
}
