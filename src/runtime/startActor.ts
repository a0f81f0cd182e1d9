/**
 * The one place statesmith creates its actors, so every actor is started the same way:
 * with an error observer (an XState root with none re-throws on a later macrotask and
 * would crash the process) and registered for the inspector.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { createActor, type AnyActorLogic, type AnyActorRef, type Actor, type InputFrom } from 'xstate';
import { inspection, lateReporters } from '../inspect/capture.ts';
import { systemClock } from '../clock.ts';
import { InvalidStateError } from '../errors.ts';
import { getLogger } from '../logger.ts';

/** A statesmith actor with the facade that created it, for the inspector's tree. */
export interface ActorRecord {
  readonly kind: string;
  readonly actor: Actor<AnyActorLogic>;
  readonly parent: Actor<AnyActorLogic> | undefined;
}

type Listener = (record: ActorRecord) => void;
const listeners = new Set<Listener>();
/** Actors that have not finished: what an inspector started later adopts. */
const live = new Set<ActorRecord>();

/** How many users want capture on (inspectors, NATS inspection feeds). */
let captureUsers = 0;

/**
 * Starts capturing (the inspector's switch): every live actor is reported with its
 * current snapshot and its system heard from now on (`InspectionStream.hook`); actors
 * started later are reported before they start and heard the same way. Returns the
 * function that stops capturing. Calls nest: capture stays on until every caller has
 * stopped (an inspector and a NATS inspection feed in one process), and each stop
 * function counts once.
 *
 * @internal
 */
export function startCapture(): () => void {
  if (captureUsers++ === 0) {
    inspection.enable();
    for (const { kind, actor, parent } of [...live]) {
      inspection.adopt(actor, kind, parent);
      inspection.hook(actor.system, actor);
    }
    // And what was taken before: held locks and leases, and who waits for them.
    for (const report of [...lateReporters]) {
      try {
        report();
      } catch (error) {
        getLogger().warn('reporting the locks held before the capture started failed', { error });
      }
    }
  }
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--captureUsers > 0) return;
    // The systems stay hooked, at the cost of one test per event until capture is on again.
    inspection.disable();
  };
}

/**
 * Calls `listener` with every snapshot of every actor statesmith starts, now and from now
 * on, and of their children as they appear (the telemetry's actor metrics). It subscribes
 * to the actors themselves rather than to XState's inspection, which, once anyone
 * inspects, makes an event object for every action of the whole system. Returns the
 * function that stops observing.
 *
 * @internal
 */
export function observeActors(listener: (actor: object, snapshot: { readonly status?: string; readonly value?: unknown }) => void): () => void {
  // Only the subscriptions of actors still running: an ended actor's goes, so nothing keeps it reachable.
  const subscriptions = new Set<{ unsubscribe(): void }>();
  const seen = new WeakSet<object>();
  let stopped = false;
  const watch = (actor: AnyActorRef): void => {
    if (stopped || seen.has(actor)) return;
    seen.add(actor);
    let children: unknown;
    const next = (snapshot: { readonly status?: string; readonly value?: unknown; readonly children?: Record<string, AnyActorRef | undefined> }): void => {
      listener(actor, snapshot);
      // XState keeps the children object while no child comes or goes: a scan only then.
      const kids = snapshot.children;
      if (kids !== undefined && kids !== children) {
        children = kids;
        for (const child of Object.values(kids)) if (child !== undefined) watch(child);
      }
    };
    let subscription: { unsubscribe(): void } | undefined;
    let ended = false;
    const end = (status: string): void => {
      ended = true;
      listener(actor, { status });
      if (subscription !== undefined) subscriptions.delete(subscription);
    };
    subscription = actor.subscribe({ next: next as never, error: () => end('error'), complete: () => end('stopped') });
    if (!ended) subscriptions.add(subscription);
    next(actor.getSnapshot() as never);
  };
  for (const { actor } of [...live]) watch(actor);
  const stopListening = onActorStarted(({ actor }) => watch(actor));
  return () => {
    stopped = true;
    stopListening();
    for (const subscription of subscriptions) subscription.unsubscribe();
    subscriptions.clear();
  };
}

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

/**
 * True while `actor` is handling an event (a send now would wait behind it, and its
 * answer would come after the caller returns). Read from XState's mailbox, which is not
 * public: if that ever changes, this answers false and callers behave as before.
 *
 * @internal
 */
export function actorIsBusy(actor: unknown): boolean {
  const current = (actor as { mailbox?: { _current?: unknown } } | null)?.mailbox?._current;
  return current !== undefined && current !== null;
}

/**
 * Throws an `InvalidStateError` when `actor` is busy: a facade method that needs the
 * actor's answer at once cannot have it from inside one of the actor's own steps.
 *
 * @internal
 */
export function requireIdleActor(actor: unknown, what: string): void {
  if (actorIsBusy(actor)) {
    throw new InvalidStateError(
      `${what} was called from inside one of its actor's own steps (a reply listener); call it after the step, for example in queueMicrotask()`,
    );
  }
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
    /** The clock of the actor's system: its delayed transitions run on it. */
    readonly clock?: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(handle: unknown): void };
  },
): Actor<TLogic> {
  const actor = createActor(
    logic,
    (options.snapshot === undefined
      ? { input: options.input, id: options.id, clock: options.clock ?? systemClock }
      : { snapshot: options.snapshot, id: options.id, clock: options.clock ?? systemClock }) as never,
  ) as Actor<TLogic>;
  if (inspection.enabled) {
    // Created, not started: it and its initial children are reported, then its system is heard from its first step.
    inspection.announce(actor, kind, options.parent);
    inspection.hook(actor.system, actor);
  }
  const record: ActorRecord = { kind, actor: actor as Actor<AnyActorLogic>, parent: options.parent };
  live.add(record);
  actor.subscribe({
    error: (error: unknown) => {
      live.delete(record);
      getLogger().error(`${kind} actor ${options.id} failed`, { error });
    },
    complete: () => live.delete(record),
  });
  actor.start();
  if (listeners.size > 0) for (const listener of listeners) listener(record);
  return actor;
}
