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

/**
 * Resolves the first reply whose type is in `accept`; rejects with a `RejectedError` on
 * `statesmith.rejected`, and with `failed(reply)` on a reply whose type is `failedType`.
 */
export function askReply<TReply extends { readonly type: string }>(
  actor: AnyActorRef,
  command: { readonly type: string } & Record<string, unknown>,
  accept: readonly string[],
  failure?: { readonly type: string; readonly error: (reply: TReply) => unknown },
): Promise<TReply> {
  return new Promise<TReply>((resolve, reject) => {
    const id = `ask-${++asks}`;
    let done = false;
    // An actor that stops or fails before it answers rejects this ask at once.
    const ended = (): void => {
      const snapshot = actor.getSnapshot() as { status?: string; value?: unknown } | undefined;
      if (done || snapshot?.status === undefined || snapshot.status === 'active') return;
      settle();
      reject(new ActorStoppedError(actor.id, snapshot.status, snapshot.value));
    };
    let watch: { unsubscribe(): void } | undefined;
    const settle = (): void => {
      done = true;
      const stop = watch;
      if (stop !== undefined) queueMicrotask(() => stop.unsubscribe());
    };
    const port = {
      id,
      sessionId: id,
      send(reply: TReply): void {
        if (done) return;
        if (reply.type === 'statesmith.rejected') {
          settle();
          reject(new RejectedError(reply as never));
        } else if (failure !== undefined && reply.type === failure.type) {
          settle();
          reject(failure.error(reply));
        } else if (accept.includes(reply.type)) {
          settle();
          resolve(reply);
        }
      },
      _send(reply: TReply): void {
        port.send(reply);
      },
      getSnapshot: () => ({ status: done ? 'done' : 'active' }),
      toJSON: () => ({ id }),
    };
    ended();
    if (done) return;
    actor.send({ ...command, replyTo: port } as never);
    if (!done) watch = actor.subscribe({ error: ended, complete: ended });
  });
}
