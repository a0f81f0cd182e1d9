/**
 * Asking a locksmith actor: a command with an in-process token, settled by the reply that
 * carries the token back (or by the actor's end). What the facade and a hosting's own
 * force both use.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { AnyActorRef } from 'xstate';
import type { LocksmithCommand } from '../../machines/locksmith.machine.ts';
import { ActorStoppedError, ArgumentValueError, RejectedError } from '../errors.ts';

/** The value or error an operation's reply carries in-process (a symbol never crosses JSON). */
export const kValue: unique symbol = Symbol('statesmith.locksmith.value');
/** An in-process correlation token: a command may carry one, and its reply carries it back. */
export const kToken: unique symbol = Symbol('statesmith.locksmith.token');

/** Sends an operation's command to a locksmith actor and settles with its reply's value (or rejects with what it threw). */
export function locksmithOp<R>(
  actor: AnyActorRef,
  command: LocksmithCommand,
  ok: 'statesmith.locksmith.recognized' | 'statesmith.locksmith.forced' | 'statesmith.locksmith.hosted',
): Promise<R> {
  // The command carries a token in-process; its reply, or its rejection (whose `command`
  // keeps it), carries it back, also when the command waited behind another.
  const token = {};
  return new Promise<R>((resolve, reject) => {
    const mine = (reply: unknown): boolean => (reply as { [kToken]?: unknown })[kToken] === token;
    const valueOf = (reply: unknown): unknown => (reply as { [kValue]?: unknown })[kValue];
    const done = (): void => {
      for (const s of subscriptions) s.unsubscribe();
    };
    // A locksmith actor that stops or fails answers every pending call at once.
    const ended = (): void => {
      const snapshot = actor.getSnapshot() as { status: string; value: unknown };
      if (snapshot.status === 'active') return;
      done();
      reject(new ActorStoppedError(actor.id, snapshot.status, snapshot.value));
    };
    const subscriptions = [
      actor.subscribe({ next: ended, error: ended, complete: ended }),
      actor.on(ok, (reply) => {
        if (!mine(reply)) return;
        done();
        if (reply.type === 'statesmith.locksmith.hosted' && reply.outcome !== 'completed') reject(valueOf(reply));
        else resolve(valueOf(reply) as R);
      }),
      actor.on('statesmith.locksmith.failed', (reply) => {
        if (!mine(reply)) return;
        done();
        const signal = (command as { signal?: AbortSignal }).signal;
        const value = valueOf(reply);
        // The caller's own abort is answered with its reason, as every wait is.
        reject(signal?.aborted && value === signal.reason ? value : typedFailure(value, reply.lock));
      }),
      actor.on('statesmith.rejected', (reply) => {
        if (!mine(reply.command)) return;
        done();
        reject(new RejectedError(reply));
      }),
    ];
    ended();
    actor.send({ ...command, [kToken]: token } as unknown as LocksmithCommand);
  });
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
