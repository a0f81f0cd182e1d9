/**
 * How an owner (of a lock, of a force request) reads in messages and in the inspector:
 * its name or id when it has one (tasks, actors, workers), else its text.
 *
 * @internal
 */
export function describeOwner(owner: unknown): string {
  if (typeof owner !== 'object' || owner === null) return String(owner);
  const named = owner as { name?: unknown; id?: unknown };
  if (typeof named.name === 'string') return named.name;
  if (typeof named.id === 'string') return named.id;
  const text = String(owner);
  return text === '[object Object]' ? (owner.constructor?.name ?? 'object') : text;
}
