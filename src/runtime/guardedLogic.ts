/**
 * The safety net under every statesmith actor's command handling: a step that throws on
 * a command (a guard or an action that read a user-supplied value whose getters or proxy
 * traps throw, or one nested past the stack) is answered with `statesmith.rejected`
 * (`ERR_INVALID_ARG_VALUE`, the thrown message in its reason) and leaves the actor's
 * state as it was, instead of putting the actor in XState's `error` status for good.
 *
 * XState evaluates every guard of a step before it runs any action, so a throwing guard
 * changes nothing; the step is simply not taken. XState's own events (`xstate.*`) and the
 * actor's own internal events are not covered: a throw there is a defect, and fails the
 * actor as before.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorLogic, AnyActorRef, AnyActorScope, EventObject } from 'xstate';
import { errorData } from '../../machines/protocol.ts';
import { getLogger } from '../logger.ts';
import { telemetry } from '../telemetry/hooks.ts';

/** statesmith's internal events carry a symbol-keyed mark that no message can. */
function markedInternal(event: EventObject): boolean {
  return Object.getOwnPropertySymbols(event).length > 0;
}

/** Marks logic already guarded, so wrapping twice is a no-op. */
const kGuarded: unique symbol = Symbol('statesmith.guarded');

/**
 * Wraps `logic.transition` (in place, on this logic object) so a throw while handling a
 * command is answered, not fatal. `isInternal` says which events are the actor's own.
 */
export function guardedLogic<TLogic extends AnyActorLogic>(
  logic: TLogic,
  facility: string,
  options: { readonly isInternal?: (event: EventObject) => boolean; readonly checkInput?: (input: unknown) => void } = {},
): TLogic {
  const isInternal = options.isInternal ?? markedInternal;
  const checkInput = options.checkInput;
  const target = logic as TLogic & { [kGuarded]?: true };
  if (target[kGuarded]) return logic;
  const original = logic.transition.bind(logic);
  const initial = logic.getInitialSnapshot.bind(logic);
  // Every actor of this logic, however it was made (createActor, spawned, invoked, or a
  // facade's), reports its states to the telemetry from here.
  const getInitialSnapshot = (scope: AnyActorScope, input: unknown): unknown => {
    // A bad input is refused with a typed error (the actor starts in XState's error status with it).
    checkInput?.(input);
    const first = initial(scope as never, input as never);
    if (telemetry.enabled) telemetry.sink.snapshot(scope.self, first as { status?: string; value?: unknown });
    return first;
  };
  const transition = (snapshot: unknown, event: EventObject, scope: AnyActorScope): unknown => {
    try {
      const next = original(snapshot as never, event as never, scope as never);
      if (telemetry.enabled) telemetry.sink.snapshot(scope.self, next as { status?: string; value?: unknown });
      return next;
    } catch (error) {
      let type: string;
      try {
        type = String(event.type);
      } catch {
        throw error;
      }
      if (type.startsWith('xstate.') || isInternal(event)) throw error;
      const reason = `${type} could not be handled: ${errorData(error).message}`;
      getLogger().warn(`${facility} refused a command it could not handle`, { type, error: reason });
      let to: AnyActorRef | undefined;
      try {
        to = (event as { replyTo?: AnyActorRef }).replyTo;
      } catch {
        to = undefined;
      }
      const rejection = {
        type: 'statesmith.rejected',
        command: { type },
        state: (snapshot as { value?: unknown } | undefined)?.value ?? null,
        code: 'ERR_INVALID_ARG_VALUE',
        reason: reason.length > 300 ? `${reason.slice(0, 297)}...` : reason,
      };
      scope.defer(() => {
        if (to !== undefined && typeof to.send === 'function') to.send(rejection);
        scope.emit(rejection);
        const parent = (scope.self as { _parent?: AnyActorRef })._parent;
        if (parent !== undefined && parent !== to) parent.send(rejection);
      });
      return snapshot;
    }
  };
  Object.defineProperty(target, 'transition', { value: transition, configurable: true, writable: true });
  Object.defineProperty(target, 'getInitialSnapshot', { value: getInitialSnapshot, configurable: true, writable: true });
  Object.defineProperty(target, kGuarded, { value: true });
  return logic;
}
