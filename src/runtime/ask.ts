/**
 * `ask(actor, command, options)`: sends a command to any statesmith actor (or a user's own
 * that answers `replyTo`) and resolves with its final reply.
 *
 * @module
 */
import type { AnyActorRef } from 'xstate';
import { isFinalReply } from '../../machines/finalReplies.ts';
import { systemClock } from '../clock.ts';
import { ActorStoppedError, ArgumentTypeError, ArgumentValueError, NoReplyError, RejectedError } from '../errors.ts';
import { optionalDuration, optionalObject, optionalSignal } from './validate.ts';

/** Options of {@link ask}. */
export interface AskOptions {
  /** How long to wait for the final reply; default `Infinity`. Past it: `NoReplyError` (`ERR_NO_REPLY`). */
  readonly timeoutMs?: number;
  /** Gives up the wait (the command was delivered); rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** Hears each interim reply (such as `statesmith.executor.scheduled` before `done`). */
  readonly onReply?: (reply: { readonly type: string } & Record<string, unknown>) => void;
}

let asks = 0;

/**
 * Sends `command` to `actor` with a `replyTo` of this ask's own, and resolves with the final
 * reply ({@link finalReplies}): `statesmith.executor.done` for a `run`, not the
 * `scheduled` that comes first. A `done` whose outcome is `failed` is a reply, not a
 * rejection. Rejects with a `RejectedError` (its `code` and `rejection`) on
 * `statesmith.rejected`, a `NoReplyError` past `timeoutMs`, `signal.reason` on abort, and an
 * `ActorStoppedError` at once when the actor stops or fails before the final reply.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, executorLogic } from 'statesmith';
 * const executor = createActor(executorLogic, { input: { actions: { restart: async () => 'restarted' } } }).start();
 * const interim: string[] = [];
 * const done = await ask(executor, { type: 'statesmith.executor.run', action: 'restart' }, { timeoutMs: 5000, onReply: (r) => interim.push(r.type) });
 * console.log(interim, done.type, done['outcome']); // [ 'statesmith.executor.scheduled', 'statesmith.executor.started' ] statesmith.executor.done completed
 * try {
 *   await ask(executor, { type: 'statesmith.executor.frobnicate' });
 * } catch (error) {
 *   console.log((error as { code: string }).code); // ERR_UNKNOWN_COMMAND
 * }
 * executor.stop();
 * ```
 */
export function ask(
  actor: AnyActorRef,
  command: { readonly type: string } & Record<string, unknown>,
  options?: AskOptions,
): Promise<{ readonly type: string } & Record<string, unknown>> {
  if (actor === null || typeof actor !== 'object' || typeof (actor as { send?: unknown }).send !== 'function') {
    return Promise.reject(new ArgumentTypeError('actor', 'an XState actor', actor));
  }
  let type: unknown;
  try {
    type = command === null || typeof command !== 'object' ? undefined : (command as { type?: unknown }).type;
  } catch {
    type = undefined; // a proxy whose traps throw, or a revoked one
  }
  if (typeof type !== 'string') return Promise.reject(new ArgumentTypeError('command', 'an object with a string "type"', command));
  let opts: Partial<AskOptions>;
  let timeoutMs: number;
  let signal: AbortSignal | undefined;
  try {
    opts = optionalObject<AskOptions>('options', options, ['timeoutMs', 'signal', 'onReply']);
    timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
    signal = optionalSignal('options.signal', opts.signal);
    if (opts.onReply !== undefined && typeof opts.onReply !== 'function') throw new ArgumentTypeError('options.onReply', 'a function', opts.onReply);
  } catch (error) {
    return Promise.reject(error);
  }
  if (signal?.aborted) return Promise.reject(signal.reason);
  const onReply = opts.onReply;
  const name = actor.id;
  const stoppedError = (): ActorStoppedError | undefined => {
    const snapshot = actor.getSnapshot() as { status?: string; value?: unknown } | undefined;
    return snapshot?.status === undefined || snapshot.status === 'active' ? undefined : new ActorStoppedError(name, snapshot.status, snapshot.value);
  };
  const already = stoppedError();
  if (already !== undefined) return Promise.reject(already);

  return new Promise((resolve, reject) => {
    const id = `ask-${++asks}`;
    const interim: unknown[] = [];
    let done = false;
    let timer: unknown;
    const onAbort = (): void => finish(() => reject(signal?.reason));
    const watch = actor.subscribe({
      next: () => {
        const stopped = stoppedError();
        if (stopped !== undefined) finish(() => reject(stopped));
      },
      error: () => finish(() => reject(stoppedError() ?? new ActorStoppedError(name, 'error', undefined))),
      complete: () => finish(() => reject(stoppedError() ?? new ActorStoppedError(name, 'stopped', undefined))),
    });
    function finish(settle: () => void): void {
      if (done) return;
      done = true;
      if (timer !== undefined) systemClock.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // Unsubscribing inside XState's own notification is safe: it copies its observers.
      queueMicrotask(() => watch.unsubscribe());
      settle();
    }
    const port = {
      id,
      sessionId: id,
      send(reply: { readonly type: string } & Record<string, unknown>): void {
        if (done || reply === null || typeof reply !== 'object' || typeof reply.type !== 'string') return;
        takeReply(command.type, reply, { interim, onReply, finish, resolve, reject });
      },
      _send(reply: { readonly type: string } & Record<string, unknown>): void {
        port.send(reply);
      },
      getSnapshot: () => ({ status: done ? 'done' : 'active' }),
      toJSON: () => ({ id }),
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== Infinity) {
      timer = systemClock.setTimeout(
        () => finish(() => reject(new NoReplyError(`no final reply to ${command.type} from ${name} within ${timeoutMs} ms`, interim))),
        timeoutMs,
      );
      (timer as { unref?: () => void }).unref?.();
    }
    let sent: Record<string, unknown>;
    try {
      // Object.assign, not `{ ...command, replyTo }`: see askReply (a spread copy that adds a key survives the young generation on Node 20).
      sent = Object.assign({}, command, { replyTo: port });
    } catch (error) {
      // A field whose getter throws (or a proxy's trap): the command cannot be read, so it is never sent.
      const refused = new ArgumentValueError('command', `a command whose fields can be read (reading them threw: ${thrownMessage(error)})`, command);
      Object.defineProperty(refused, 'cause', { value: error, configurable: true, writable: true });
      finish(() => reject(refused));
      return;
    }
    try {
      actor.send(sent as never);
    } catch (error) {
      finish(() => reject(error));
    }
  });
}

/**
 * One reply to an ask, in-process or over NATS: a rejection rejects, the command's final
 * reply resolves, and anything before it is interim (kept, and passed to `onReply`; a throw
 * there ends the ask, not the actor). Internal to statesmith.
 */
export function takeReply(
  commandType: string,
  reply: { readonly type: string } & Record<string, unknown>,
  ask: {
    readonly interim: unknown[];
    readonly onReply: AskOptions['onReply'];
    readonly finish: (settle: () => void) => void;
    readonly resolve: (reply: { readonly type: string } & Record<string, unknown>) => void;
    readonly reject: (error: unknown) => void;
  },
): void {
  const { interim, onReply, finish, resolve, reject } = ask;
  if (reply.type === 'statesmith.rejected') finish(() => reject(new RejectedError(reply as never)));
  else if (isFinalReply(commandType, reply)) finish(() => resolve(reply));
  else {
    interim.push(reply);
    try {
      onReply?.(reply);
    } catch (error) {
      finish(() => reject(error));
    }
  }
}

/** What a thrown value says, without trusting it to print. */
function thrownMessage(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return 'a value that cannot be printed';
  }
}
