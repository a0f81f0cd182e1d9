/**
 * Asking a locksmith actor: a command whose reply comes to the ask's own port (the shared
 * `askReply`), carrying the operation's value in-process. What the facade uses.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { AnyActorRef } from 'xstate';
import type { LocksmithCommand, LocksmithReply } from '../../machines/locksmith.machine.ts';
import { ArgumentValueError } from '../errors.ts';
import { askReply } from '../runtime/askReply.ts';

/** The value or error an operation's reply carries in-process (a symbol never crosses JSON). */
export const kValue: unique symbol = Symbol('statesmith.locksmith.value');

const valueOf = (reply: unknown): unknown => (reply as { [kValue]?: unknown })[kValue];

/** Sends an operation's command to a locksmith actor and settles with its reply's value (or rejects with what it threw). */
export async function locksmithOp<R>(
  actor: AnyActorRef,
  command: LocksmithCommand,
  ok: 'statesmith.locksmith.recognized' | 'statesmith.locksmith.forced' | 'statesmith.locksmith.hosted',
): Promise<R> {
  const reply = await askReply<LocksmithReply>(actor, command as never, [ok], {
    type: 'statesmith.locksmith.failed',
    error: (failed) => {
      const signal = (command as { signal?: AbortSignal }).signal;
      const value = valueOf(failed);
      // The caller's own abort is answered with its reason, as every wait is.
      return signal?.aborted && value === signal.reason ? value : typedFailure(value, (failed as { lock: string }).lock);
    },
  });
  if (reply.type === 'statesmith.locksmith.hosted' && reply.outcome !== 'completed') throw valueOf(reply);
  return valueOf(reply) as R;
}

/**
 * A failed recognize or force as a typed error: statesmith's own errors (they have a string
 * `code`) as they are; anything a user's lock threw becomes an `ArgumentValueError` naming
 * the lock, with the thrown value as its `cause`.
 */
function typedFailure(value: unknown, lock: string): unknown {
  try {
    if (value instanceof Error && (typeof (value as { code?: unknown }).code === 'string' || value.name === 'AbortError' || value.name === 'TimeoutError'))
      return value;
  } catch {
    // a hostile value: wrapped below
  }
  const error = new ArgumentValueError('lock', `a lock whose acquire(), release() and locked can be used (${lock} threw)`, value);
  Object.defineProperty(error, 'cause', { value, enumerable: false, configurable: true, writable: true });
  return error;
}
