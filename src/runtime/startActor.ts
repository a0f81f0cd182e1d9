/**
 * The one place statesmith creates its actors, so every actor is started the same way:
 * with an error observer (an XState root with none re-throws on a later macrotask and
 * would crash the process) and registered for the inspector.
 *
 * @internal
 */
import { createActor, type AnyActorLogic, type Actor, type InputFrom } from 'xstate';
import { getLogger } from '../logger.ts';

/** A statesmith actor with the facade that created it, for the inspector's tree. */
export interface ActorRecord {
  readonly kind: string;
  readonly actor: Actor<AnyActorLogic>;
  readonly parent: Actor<AnyActorLogic> | undefined;
}

type Listener = (record: ActorRecord) => void;
const listeners = new Set<Listener>();

/**
 * Hears about every actor statesmith starts from now on (the inspector's capture hook).
 * Returns the unsubscribe function.
 *
 * @internal
 */
export function onActorStarted(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function startActor<TLogic extends AnyActorLogic>(
  kind: string,
  logic: TLogic,
  options: {
    readonly input?: InputFrom<TLogic>;
    readonly id: string;
    readonly parent?: Actor<AnyActorLogic>;
    /** Start from this snapshot instead of the initial state (an actor created on demand). */
    readonly snapshot?: unknown;
  },
): Actor<TLogic> {
  const actor = createActor(
    logic,
    (options.snapshot === undefined
      ? { input: options.input, id: options.id }
      : { snapshot: options.snapshot, id: options.id }) as never,
  ) as Actor<TLogic>;
  actor.subscribe({
    error: (error: unknown) => getLogger().error(`${kind} actor ${options.id} failed`, { error }),
  });
  actor.start();
  if (listeners.size > 0) {
    const record: ActorRecord = { kind, actor: actor as Actor<AnyActorLogic>, parent: options.parent };
    for (const listener of listeners) listener(record);
  }
  return actor;
}
