/**
 * The forces in flight in this process, by lock identity: which locksmith forces each lock,
 * and the hold each force is about.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { LockKind } from './lockKinds.ts';

/** Locks being forced now, by any locksmith (keyed by lock identity; each entry lives for one force). */
export const forcing = new Map<object, object>();

/** The hold each force in flight is about (see `LockKind.holdOf`), by lock identity. */
export const holds = new Map<object, unknown>();

/** The hold the force of `lock` in flight is about; the hold in place now when none is (a subclass calling a fallback itself). */
export function holdIn(kind: LockKind, lock: object): unknown {
  const key = kind.key(lock);
  return holds.has(key) ? holds.get(key) : kind.holdOf?.(lock);
}
