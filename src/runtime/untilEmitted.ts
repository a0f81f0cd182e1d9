/**
 * How a facade waits for a reply that its actor emits, possibly much later (a group's
 * `finished`, a service's `stopped`): it sends the command, and settles once.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorRef, EventObject } from 'xstate';
import { ActorStoppedError, RejectedError } from '../errors.ts';

type Emitter = AnyActorRef & { on(type: string, handler: (event: EventObject) => void): { unsubscribe(): void } };

/**
 * Sends `command` to `actor` and resolves the next `replyType` event it emits. Rejects with
 * a `RejectedError` when the actor refuses the command in that step (a refusal is answered
 * at once), and with an `ActorStoppedError` at once when the actor stops or fails before
 * the reply: nobody waits for a reply that cannot come.
 */
export function untilEmitted<TReply extends EventObject>(actor: AnyActorRef, command: EventObject, replyType: string): Promise<TReply> {
  const emitter = actor as Emitter;
  return new Promise<TReply>((resolve, reject) => {
    let watch: { unsubscribe(): void } | undefined;
    let settled = false;
    const done = (): void => {
      settled = true;
      reply.unsubscribe();
      refused.unsubscribe();
      const stop = watch;
      // XState copies its observers before it notifies them: unsubscribing after the turn is safe.
      if (stop !== undefined) queueMicrotask(() => stop.unsubscribe());
    };
    const reply = emitter.on(replyType, (event) => {
      done();
      resolve(event as TReply);
    });
    const refused = emitter.on('statesmith.rejected', (event) => {
      if ((event as { command?: { type?: unknown } }).command?.type !== command.type) return;
      done();
      reject(new RejectedError(event as never));
    });
    const ended = (): void => {
      const snapshot = actor.getSnapshot() as { status: string; value?: unknown };
      if (snapshot.status === 'active') return;
      done();
      reject(new ActorStoppedError(actor.id, snapshot.status, snapshot.value));
    };
    ended();
    if (settled) return;
    actor.send(command);
    // Only a refusal of this step concerns this command; later ones are someone else's.
    refused.unsubscribe();
    if (!settled) watch = actor.subscribe({ error: ended, complete: ended });
  });
}
