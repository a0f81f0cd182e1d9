/**
 * How a statesmith logic that is not a machine (`supervise`, `durable`) answers a command:
 * as every statesmith actor does, from inside its transition.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorRef, AnyActorScope, EventObject } from 'xstate';
import { commandData, type Rejected } from '../../machines/protocol.ts';

/** Sends `reply` once the step is done: to the command's `replyTo`, emitted, and to the parent unless it asked. */
export function answerFromScope(scope: AnyActorScope, event: EventObject, reply: EventObject): void {
  const to = (event as { replyTo?: AnyActorRef }).replyTo;
  scope.defer(() => {
    if (to !== undefined && typeof to.send === 'function') to.send(reply);
    scope.emit(reply);
    const parent = (scope.self as { _parent?: AnyActorRef })._parent;
    if (parent !== undefined && parent !== to) parent.send(reply);
  });
}

/** The `statesmith.rejected` answer to `event`, in the state named `state`. */
export function rejectionOf(event: EventObject, state: string, code: string, reason: string): Rejected {
  return { type: 'statesmith.rejected', command: commandData(event), state, code, reason };
}
