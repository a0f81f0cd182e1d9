/**
 * How statesmith's own actor logic is persisted by `durable()`. XState's own
 * `getPersistedSnapshot` keeps a context as it is, and a statesmith actor's context holds
 * what only its process has: the functions of its input, the services it was given, the
 * function a runner brought. Such logic carries an adapter under {@link kPersistence}: it
 * saves a plain-JSON picture of the snapshot, and revives one from that picture on top of
 * a fresh snapshot made from the new incarnation's input.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorLogic, AnyActorRef, AnyActorScope, EventObject, Snapshot } from 'xstate';
import { DurableError } from '../errors.ts';

/** Where logic keeps its adapter (Symbol.for: one key across copies of the package). */
export const kPersistence: unique symbol = Symbol.for('statesmith.persistence') as never;

/** Marks a function that may run again after a crash (see `idempotent()`). */
export const kIdempotent: unique symbol = Symbol.for('statesmith.idempotent') as never;

/** True when `fn` was marked with `idempotent()`. */
export function isIdempotent(fn: unknown): boolean {
  return typeof fn === 'function' && (fn as { [kIdempotent]?: true })[kIdempotent] === true;
}

/** What becomes of work that was running when the process ended (`durable()`'s `onInterrupted`). */
export type InterruptedPolicy = 'abandon' | 'retry' | 'escalate';

/** Work that was running when the process ended, as a revive found it. */
export interface InterruptedWork {
  /** What it was, for the log and the error: `executor action "promote" (generation 7)`. */
  readonly what: string;
  /** True when it is run again (idempotent, or `onInterrupted: 'retry'`); false when it ends `interrupted`. */
  readonly rerun: boolean;
}

/** What a revive gives back. */
export interface Revived {
  /** The snapshot the actor runs from. */
  readonly snapshot: Snapshot<unknown>;
  /** Work that was running at the crash. */
  readonly interrupted: readonly InterruptedWork[];
  /**
   * Events the actor takes first, in the restore's own step, before any command: the
   * re-run of idempotent work.
   */
  readonly first: readonly EventObject[];
  /**
   * Runs once the actor is started (its listeners and parent can hear it): reports the
   * work that ended interrupted.
   */
  readonly report: (scope: AnyActorScope) => void;
}

/** The adapter a statesmith logic carries under {@link kPersistence}. */
export interface PersistenceAdapter {
  /** A plain-JSON picture of `snapshot` (functions by name, never by value). */
  persist(snapshot: Snapshot<unknown>): unknown;
  /**
   * The snapshot to run from: `saved` (what `persist` made) laid over `fresh` (the logic's
   * initial snapshot from this incarnation's input, with its children).
   */
  revive(saved: unknown, fresh: Snapshot<unknown>, policy: InterruptedPolicy): Revived;
}

/** True when `value` is plain JSON (bigints allowed): the fast walk of every save, with no path built. */
export function isPlainJson(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (!isPlainJson(item)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) if (!isPlainJson((value as Record<string, unknown>)[key])) return false;
  return true;
}

/** The adapter `logic` carries, if any. */
export function persistenceOf(logic: unknown): PersistenceAdapter | undefined {
  return (logic as { [kPersistence]?: PersistenceAdapter } | null)?.[kPersistence];
}

/** The save barrier of each durable actor (see {@link saveBarrierOf}). */
const barriers = new WeakMap<object, () => Promise<void>>();

/** Sets the save barrier of the durable actor `ref`. */
export function setSaveBarrier(ref: object, barrier: () => Promise<void>): void {
  barriers.set(ref, barrier);
}

/**
 * The save barrier of `ref` when it is a durable actor: resolves once its snapshot as it is
 * now is in its store, and rejects when it cannot be saved or the actor no longer runs.
 * Work with side effects under a durable actor awaits it before it starts.
 */
export function saveBarrierOf(ref: unknown): (() => Promise<void>) | undefined {
  return ref !== null && typeof ref === 'object' ? barriers.get(ref) : undefined;
}

/**
 * The save barrier of the nearest durable actor at or above `ref` (its parents, up to the
 * root): a task group's tasks wait for it whether the group is the durable actor's own logic
 * or a durable service's child.
 */
export function saveBarrierAbove(ref: unknown): (() => Promise<void>) | undefined {
  for (let at = ref as { _parent?: unknown } | undefined; at !== undefined && at !== null; at = at._parent as typeof at) {
    const barrier = barriers.get(at);
    if (barrier !== undefined) return barrier;
  }
  return undefined;
}

/** The owner token of each durable actor (see {@link ownerTokenOf}). */
const owners = new WeakMap<object, string>();

/** Sets the owner token of the durable actor `ref`. */
export function setOwnerToken(ref: object, token: string): void {
  owners.set(ref, token);
}

/**
 * The owner token of the nearest durable actor at or above `ref` (its parents, up to the
 * root), or undefined. Every subprocess started under that actor carries it in its
 * environment, so the next incarnation finds what a killed one left running.
 */
export function ownerTokenOf(ref: unknown): string | undefined {
  for (let at = ref as { _parent?: unknown } | undefined; at !== undefined && at !== null; at = at._parent as typeof at) {
    const token = owners.get(at);
    if (token !== undefined) return token;
  }
  return undefined;
}

/** What a revive throws for a saved picture that is not `what`'s (another logic saved under that id and version). */
export function notSavedBy(what: string, saved: unknown): DurableError {
  const field = (key: string): string => JSON.stringify((saved as Record<string, unknown> | null)?.[key] ?? null);
  return new DurableError(
    'ERR_SNAPSHOT_VERSION',
    `the saved snapshot is not ${what} (${field('logic')} format ${field('format')}); was another logic saved under this id and version?`,
  );
}

/** Tells what a revive found as the logic's own answers go: emitted to the listeners, and sent to the parent. */
export function tellRevived(scope: AnyActorScope, reply: EventObject): void {
  scope.emit(reply as never);
  (scope.self as { _parent?: AnyActorRef })._parent?.send(reply);
}

/**
 * How a statesmith child of a durable machine is saved: in place of its snapshot (which
 * XState would keep with its functions), its adapter's picture under this mark.
 */
export const PICTURE_MARK = '$statesmith.picture';

/** A saved child's picture, as it stands in its parent's saved `children`. */
export interface SavedPicture {
  readonly [PICTURE_MARK]: 1;
  readonly picture: unknown;
}

/** True when `value` is a picture saved in place of a statesmith child's snapshot. */
export function isSavedPicture(value: unknown): value is SavedPicture {
  return value !== null && typeof value === 'object' && (value as Record<string, unknown>)[PICTURE_MARK] === 1;
}

/** A statesmith child of a durable machine, revived in the restore: what it found, on its own scope. */
export interface ChildRevival {
  /** Where it is under the durable actor: `agent/executor`. */
  readonly path: string;
  /** Its source, as its parent's saved snapshot names it. */
  readonly src: string;
  readonly scope: AnyActorScope;
  readonly revived: Revived;
}

/** What the restore of a durable machine gives a statesmith child it is about to revive. */
export interface ChildRestore {
  /** The input its parent's `invoke` computes from the restored context. */
  readonly input: unknown;
  readonly policy: InterruptedPolicy;
  readonly path: string;
  readonly src: string;
  /** Where its revival is told, for the durable actor to report once its state is saved. */
  readonly found: ChildRevival[];
}

/** The pictures a restore is about to hand to XState, each with what its child needs (keyed by the picture object). */
const childRestores = new WeakMap<object, ChildRestore>();

/** Registers what the child whose saved snapshot is `picture` is revived with, as XState restores it. */
export function expectChildRestore(picture: SavedPicture, restore: ChildRestore): void {
  childRestores.set(picture, restore);
}

/**
 * Gives `logic` its adapter: `durable(logic)` saves and revives it through it, and so does a
 * durable machine that invokes it. XState restores a child from its saved snapshot alone;
 * for a picture the restore registered ({@link expectChildRestore}), this logic's
 * `restoreSnapshot` makes a fresh snapshot from the input the parent's `invoke` computes,
 * lays the picture over it, and runs again, in the same step, the work it re-runs.
 */
export function persistWith(logic: AnyActorLogic, adapter: PersistenceAdapter): void {
  Object.defineProperty(logic, kPersistence, { value: adapter });
  const restore = logic.restoreSnapshot?.bind(logic);
  const revive = (snapshot: unknown, scope: AnyActorScope): unknown => {
    const pending = isSavedPicture(snapshot) ? childRestores.get(snapshot) : undefined;
    if (pending === undefined) {
      if (isSavedPicture(snapshot))
        throw new DurableError('ERR_SNAPSHOT_VERSION', 'a statesmith actor saved as a picture can only be restored by the durable machine that saved it');
      return restore === undefined ? snapshot : restore(snapshot as never, scope as never);
    }
    childRestores.delete(snapshot as SavedPicture);
    const fresh = logic.getInitialSnapshot(scope as never, pending.input as never) as Snapshot<unknown>;
    const revived = adapter.revive((snapshot as SavedPicture).picture, fresh, pending.policy);
    let next = revived.snapshot;
    for (const event of revived.first) next = logic.transition(next as never, event as never, scope as never) as Snapshot<unknown>;
    pending.found.push({ path: pending.path, src: pending.src, scope, revived });
    return next;
  };
  Object.defineProperty(logic, 'restoreSnapshot', { value: revive, configurable: true, writable: true });
}
