/**
 * Cinder's `Lock` and `synchronized`: lock names made from templates, several locks taken
 * in a fixed order, and a function that never runs without its locks.
 *
 * @module
 */
import { isCancellation } from '../../runtime/cancellation.ts';
import { ArgumentTypeError, ArgumentValueError, LockAcquireFailed } from '../../errors.ts';
import { getLogger } from '../../logger.ts';
import { optionalDuration, optionalObject, optionalSignal, requireFunction } from '../../runtime/validate.ts';
import { Coordinator, getDefaultCoordinator } from '../Coordinator.ts';
import type { DistributedLockHandle } from '../types.ts';
import { DistributedLock } from './DistributedLock.ts';

/** A template field that the data does not have: `code` is `ERR_LOCK_NAME_FIELD`. */
export class LockNameError extends TypeError {
  /** The class name, `'LockNameError'`, as Node's own errors have it. */
  override readonly name = 'LockNameError';
  /** A stable code to branch on, always `'ERR_LOCK_NAME_FIELD'`; messages may change, codes do not. */
  readonly code = 'ERR_LOCK_NAME_FIELD';
  /** The field as written in the template (`volume.id`). */
  readonly field: string;
  constructor(template: string, field: string, detail: string) {
    super(`the lock name template ${JSON.stringify(template)} needs {${field}}, but ${detail}`);
    this.field = field;
  }
}

/**
 * Renders a template as Python's `str.format` does for lock names: `{volume.id}` reads an
 * attribute, `{snap[name]}` an item (the key is the literal text; digits index arrays),
 * `{{` and `}}` are braces. `lookup` gives the value of a field's first part.
 *
 * @internal
 */
export function renderTemplate(template: string, lookup: (head: string) => { found: boolean; value: unknown }): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i] as string;
    if (ch === '}') {
      if (template[i + 1] !== '}') throw new ArgumentValueError('template', "a template whose single '}' is written '}}'", template);
      out += '}';
      i++;
      continue;
    }
    if (ch !== '{') {
      out += ch;
      continue;
    }
    if (template[i + 1] === '{') {
      out += '{';
      i++;
      continue;
    }
    const end = template.indexOf('}', i);
    if (end < 0) throw new ArgumentValueError('template', "a template whose '{' fields are closed by '}'", template);
    const field = template.slice(i + 1, end);
    out += String(resolveField(template, field, lookup));
    i = end;
  }
  return out;
}

function resolveField(template: string, field: string, lookup: (head: string) => { found: boolean; value: unknown }): unknown {
  const match = /^([^.[\]]+)((?:\.[^.[\]]+|\[[^\]]+\])*)$/.exec(field);
  if (match === null) throw new ArgumentValueError('template', 'fields such as {name}, {volume.id} or {snap[name]}', template);
  const head = match[1] as string;
  const first = lookup(head);
  if (!first.found) throw new LockNameError(template, field, `there is no "${head}" in the lock data`);
  let value = first.value;
  let path = head;
  for (const part of (match[2] as string).match(/\.[^.[\]]+|\[[^\]]+\]/g) ?? []) {
    const key = part.startsWith('.') ? part.slice(1) : part.slice(1, -1);
    if (value === null || value === undefined || !(key in Object(value))) {
      throw new LockNameError(
        template,
        field,
        `${path} ${value === null || value === undefined ? `is ${String(value)}` : `has no ${part.startsWith('.') ? 'attribute' : 'item'} "${key}"`}`,
      );
    }
    value = (value as Record<string, unknown>)[key];
    path += part;
  }
  return value;
}

/**
 * A distributed lock whose name is rendered once, at construction, from `nameTemplate` and
 * `lockData` (Cinder's `Lock`): `'volume-{volume.id}'`, `'{snap[name]}-delete'`. A field
 * the data lacks is a `LockNameError` (a `TypeError`) naming it. Without `coordinator`, the
 * default one is used (see `setDefaultCoordinator`).
 *
 * @example
 * ```ts
 * import { Lock } from 'statesmith';
 * const volume = { id: 'vol-7', size: 10 };
 * const lock = new Lock('volume-{volume.id}-{snap[name]}', { volume, snap: { name: 'nightly' } });
 * console.log(lock.name); // volume-vol-7-nightly
 * const handle = await lock.acquire();
 * console.log(handle?.fence, await lock.release()); // 1n true
 * ```
 */
export class Lock extends DistributedLock {
  constructor(nameTemplate: string, lockData?: object, options?: { readonly coordinator?: Coordinator }) {
    if (typeof nameTemplate !== 'string') throw new ArgumentTypeError('nameTemplate', 'a string', nameTemplate);
    if (lockData !== undefined && (typeof lockData !== 'object' || lockData === null)) throw new ArgumentTypeError('lockData', 'an object', lockData);
    const opts = optionalObject<{ coordinator: Coordinator }>('options', options, ['coordinator']);
    const data = (lockData ?? {}) as Record<string, unknown>;
    const name = renderTemplate(nameTemplate, (head) => ({ found: head in data, value: data[head] }));
    super(name, opts.coordinator ?? getDefaultCoordinator);
  }
}

/** Options of {@link synchronized}. */
export interface SynchronizedOptions {
  /** As for `DistributedLock.acquire` (default `true`); when the lock is not acquired the call rejects with `LockAcquireFailed`. */
  readonly blocking?: boolean | number;
  /** Waits at most this many ms for each lock (with `blocking`, the earlier bound wins); then `LockAcquireFailed` (`reason` `'timeout'`). */
  readonly timeoutMs?: number;
  /** Abandons the wait for the locks (an agent's shutdown): the call rejects with `signal.reason` and the function does not run. */
  readonly signal?: AbortSignal;
  /** The coordinator; default the default one. */
  readonly coordinator?: Coordinator;
}

/**
 * The lock names `synchronized` takes: a name or template, several (taken in sorted order),
 * or a function of the call's arguments that returns them.
 */
export type LockNames = string | readonly string[] | ((...args: never[]) => string | readonly string[]);

/**
 * Runs a function holding distributed locks (Cinder's `synchronized`), as a standard
 * method decorator or as a wrapper: `synchronized(name, opts)(fn)`.
 *
 * `name` is a template (or several, or a function of the call's arguments returning one
 * or several names). Templates know `{f_name}` (the function's name) and positional
 * fields: `{0}`, `{1.id}`, `{0[name]}`. The rendered names are de-duplicated and sorted,
 * and taken in that order, so two callers can never take two locks in opposite orders.
 * When a lock is not acquired the call rejects with `LockAcquireFailed` and the function
 * does not run (upstream runs it unlocked when a non-blocking acquire fails). Locks are
 * released in the order they were taken; release errors are logged.
 *
 * @example
 * ```ts
 * import { createCoordinator, synchronized } from 'statesmith';
 * await using coordinator = createCoordinator({ prefix: 'cinder-' });
 * await coordinator.start();
 * const deleteVolume = synchronized('{f_name}-{0.id}', { coordinator })(async function deleteVolume(volume: { id: string }) {
 *   return coordinator.getLock('deleteVolume-' + volume.id).acquire({ blocking: false });
 * });
 * console.log(await deleteVolume({ id: 'vol-7' })); // null
 * ```
 */
export function synchronized(names: LockNames, options?: SynchronizedOptions) {
  const render = nameRenderer(names);
  const opts = optionalObject<SynchronizedOptions>('options', options, ['blocking', 'timeoutMs', 'signal', 'coordinator']);
  if (opts.coordinator !== undefined && !(opts.coordinator instanceof Coordinator))
    throw new ArgumentTypeError('options.coordinator', 'a Coordinator', opts.coordinator);
  const blocking = opts.blocking ?? true;
  if (typeof blocking !== 'boolean' && (typeof blocking !== 'number' || Number.isNaN(blocking) || blocking < 0)) {
    throw new ArgumentTypeError('options.blocking', 'true, false or a number of milliseconds >= 0', blocking);
  }
  const timeoutMs = optionalDuration('options.timeoutMs', opts.timeoutMs, Infinity);
  const signal = optionalSignal('options.signal', opts.signal);
  const acquireOptions = { blocking, timeoutMs, ...(signal ? { signal } : {}) };
  return function decorate<F extends (this: never, ...args: never[]) => unknown>(
    target: F,
    context?: unknown,
  ): (this: ThisParameterType<F>, ...args: Parameters<F>) => Promise<Awaited<ReturnType<F>>> {
    requireFunction('target', target);
    const functionName = isMethodContext(context) ? String(context.name) : target.name;
    const wrapped = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
      const lockNames = [...new Set(render(args, functionName))].sort();
      const coordinator = opts.coordinator ?? getDefaultCoordinator();
      if (opts.coordinator === undefined) await coordinator.start();
      const handles: DistributedLockHandle[] = [];
      try {
        for (const name of lockNames) {
          const lock = new DistributedLock(name, coordinator);
          let handle: DistributedLockHandle | null;
          try {
            handle = await lock.acquire(acquireOptions);
          } catch (error) {
            // The caller's own abort (its reason, or an AbortError raised for it) is a cancellation, not a failed acquire.
            if (signal?.aborted && isCancellation(error, signal)) throw signal.reason;
            throw new LockAcquireFailed(lock.name, 'error', { cause: error });
          }
          if (handle === null) throw new LockAcquireFailed(lock.name, blocking === false ? 'busy' : 'timeout');
          handles.push(handle);
        }
        return await (target as unknown as (...a: unknown[]) => unknown).apply(this, args);
      } finally {
        for (const handle of handles) {
          const released = await handle.release();
          if (!released) getLogger().error(`lock ${handle.name} was no longer held when ${functionName} finished`);
        }
      }
    };
    Object.defineProperty(wrapped, 'name', { value: target.name });
    Object.defineProperty(wrapped, 'length', { value: target.length });
    return wrapped as never;
  };
}

function isMethodContext(context: unknown): context is { kind: 'method'; name: string | symbol } {
  return typeof context === 'object' && context !== null && (context as { kind?: unknown }).kind === 'method';
}

function nameRenderer(names: LockNames): (args: readonly unknown[], functionName: string) => string[] {
  if (typeof names === 'function') {
    return (args) => {
      const produced = (names as (...a: unknown[]) => unknown)(...args);
      const list = typeof produced === 'string' ? [produced] : produced;
      if (!Array.isArray(list) || list.length === 0 || list.some((n) => typeof n !== 'string' || n.length === 0)) {
        throw new ArgumentValueError('name function result', 'a non-empty string or a non-empty array of them', produced);
      }
      return list as string[];
    };
  }
  const templates = typeof names === 'string' ? [names] : names;
  if (!Array.isArray(templates) || templates.length === 0 || templates.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw new ArgumentTypeError('name', 'a template string, a non-empty array of them, or a function', names);
  }
  return (args, functionName) =>
    templates.map((template) =>
      renderTemplate(template, (head) => {
        if (head === 'f_name') return { found: true, value: functionName };
        if (/^\d+$/.test(head)) {
          const index = Number(head);
          return { found: index < args.length, value: args[index] };
        }
        return { found: false, value: undefined };
      }),
    );
}
