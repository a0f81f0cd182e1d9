/**
 * Turns any value into something safe to serialise and show: cycles, functions, symbols,
 * bigints, errors, maps and sets become plain JSON; deep or huge values are cut; values
 * under secret-looking keys and passwords in URLs are redacted.
 *
 * @internal
 */

export interface SafeJsonLimits {
  readonly depth: number;
  readonly stringLength: number;
  readonly items: number;
}

export const defaultLimits: SafeJsonLimits = Object.freeze({ depth: 6, stringLength: 2_000, items: 100 });

const SECRET_KEY = /pass(word|phrase)?|secret|token|authorization|cookie|api[-_]?key|credential|private[-_]?key/i;
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]*:)[^@/\s]+@/gi;

export const REDACTED = '[redacted]';

/**
 * The method by which statesmith's own long-lived objects (buses, locks) describe
 * themselves to the inspector: a fixed description (class and name), never their
 * changing insides, so a context holding one can be kept by reference and shown later.
 */
export const inspectAs: unique symbol = Symbol.for('statesmith.inspectAs');

/** An object that describes itself by {@link inspectAs}. */
export interface InspectsAs {
  [inspectAs](): unknown;
}

/**
 * Gives `type`'s instances a fixed description for the inspector (on the prototype, not
 * enumerable): `describe` must read only what never changes (a name), because capture
 * keeps such an object by reference and describes it when a viewer asks.
 */
export function describeAs<T extends object>(type: { readonly prototype: T }, describe: (self: T) => string): void {
  Object.defineProperty(type.prototype, inspectAs, {
    value(this: T): string {
      return describe(this);
    },
    enumerable: false,
    writable: false,
    configurable: false,
  });
}

function describesItself(object: object): object is InspectsAs {
  return typeof (object as Partial<InspectsAs>)[inspectAs] === 'function';
}

/** An actor reference: shown by its id, not its insides (XState's own convention). */
function isActorRef(object: object): boolean {
  return typeof (object as { send?: unknown }).send === 'function' && typeof (object as { getSnapshot?: unknown }).getSnapshot === 'function';
}

/** An RxJS observable or subject: a live stream, shown by what it is. */
function isObservable(object: object): boolean {
  return typeof (object as { subscribe?: unknown }).subscribe === 'function' && typeof (object as { pipe?: unknown }).pipe === 'function';
}

function cutString(value: string, limits: SafeJsonLimits): string {
  const redacted = value.includes('://') ? value.replace(URL_PASSWORD, '$1***@') : value;
  if (redacted.length <= limits.stringLength) return redacted;
  return `${redacted.slice(0, limits.stringLength)}…(${redacted.length} chars)`;
}

/** A JSON-safe copy of `value` within `limits`. */
export function toSafeJson(value: unknown, limits: SafeJsonLimits = defaultLimits): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, depth: number): unknown => {
    switch (typeof v) {
      case 'string':
        return cutString(v, limits);
      case 'number':
        return Number.isFinite(v) ? v : String(v);
      case 'boolean':
        return v;
      case 'undefined':
        return undefined;
      case 'bigint':
        return `${v}n`;
      case 'symbol':
        return v.toString();
      case 'function':
        return `[Function ${v.name || 'anonymous'}]`;
    }
    if (v === null) return null;
    const object = v as object;
    if (seen.has(object)) return '[Circular]';
    if (depth >= limits.depth) return Array.isArray(object) ? `[Array(${object.length})]` : `[${object.constructor?.name ?? 'Object'}]`;
    seen.add(object);
    try {
      if (object instanceof Error) {
        const code = (object as { code?: unknown }).code;
        return {
          name: walk(object.name, depth + 1),
          message: cutString(String(object.message), limits),
          ...(code === undefined ? {} : { code: walk(code, depth + 1) }),
        };
      }
      if (object instanceof Date) return Number.isNaN(object.getTime()) ? 'Invalid Date' : object.toISOString();
      if (object instanceof AbortSignal) return { aborted: object.aborted };
      if (describesItself(object)) return walk(object[inspectAs](), depth);
      if (isActorRef(object)) return { xstate$$type: 1, id: (object as { id?: unknown }).id };
      if (isObservable(object)) return `[${object.constructor?.name ?? 'Observable'}]`;
      if (object instanceof Promise) return '[Promise]';
      if (object instanceof Map) return walk(Object.fromEntries([...object.entries()].slice(0, limits.items).map(([k, x]) => [String(k), x])), depth);
      if (object instanceof Set) return walk([...object].slice(0, limits.items), depth);
      if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer || object instanceof SharedArrayBuffer) {
        return `[${object.constructor.name}(${(object as ArrayBuffer).byteLength} bytes)]`;
      }
      if (Array.isArray(object)) {
        const out = object.slice(0, limits.items).map((x) => walk(x, depth + 1) ?? null);
        if (object.length > limits.items) out.push(`…(${object.length - limits.items} more)`);
        return out;
      }
      const out: Record<string, unknown> = {};
      let count = 0;
      for (const key of Object.keys(object)) {
        if (count++ >= limits.items) {
          out['…'] = `${Object.keys(object).length - limits.items} more keys`;
          break;
        }
        const field = (object as Record<string, unknown>)[key];
        out[key] = secretKey(key) && field !== undefined && field !== null ? REDACTED : walk(field, depth + 1);
      }
      return out;
    } finally {
      seen.delete(object);
    }
  };
  return walk(value, 0);
}

const keyIsSecret = new Map<string, boolean>();

function secretKey(key: string): boolean {
  let secret = keyIsSecret.get(key);
  if (secret === undefined) {
    secret = SECRET_KEY.test(key);
    if (keyIsSecret.size < 10_000) keyIsSecret.set(key, secret);
  }
  return secret;
}

function plainPrimitive(value: unknown, limits: SafeJsonLimits): boolean {
  switch (typeof value) {
    case 'string':
      return value.length <= limits.stringLength && !value.includes('://');
    case 'number':
      return Number.isFinite(value);
    case 'boolean':
    case 'undefined':
      return true;
    default:
      return value === null;
  }
}

/**
 * `JSON.stringify(toSafeJson(value))`, with a fast path for what most snapshots hold:
 * primitives, and flat plain objects or arrays of short primitives under keys that are
 * not secrets. Those are stringified natively, without the walk.
 */
export function safeStringify(value: unknown, limits: SafeJsonLimits = defaultLimits): string {
  if (plainPrimitive(value, limits)) return value === undefined ? 'null' : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) {
    const proto = Object.getPrototypeOf(value);
    if (Array.isArray(value)) {
      if (value.length <= limits.items && value.every((item) => plainPrimitive(item, limits))) return JSON.stringify(value);
    } else if (proto === Object.prototype || proto === null) {
      let flat = true;
      let count = 0;
      for (const key in value) {
        if (++count > limits.items || secretKey(key) || !plainPrimitive((value as Record<string, unknown>)[key], limits)) {
          flat = false;
          break;
        }
      }
      if (flat) return JSON.stringify(value);
    }
  }
  return write(value, 0, limits, []) ?? 'null';
}

/**
 * The JSON of nested plain objects judged stable, by object, with the depth it was made
 * at (a value deeper down is cut sooner): a context's unchanged parts are written once.
 */
const stableJson = new WeakMap<object, { readonly depth: number; readonly json: string }>();

/**
 * `JSON.stringify(toSafeJson(value))` written in one pass, without the copy: the same
 * rules in the same order (a test holds the two equal). `ancestors` are the objects open
 * above `value` (a reference to one is a cycle); `undefined` is what `JSON.stringify`
 * leaves out.
 */
function write(v: unknown, depth: number, limits: SafeJsonLimits, ancestors: object[]): string | undefined {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(cutString(v, limits));
    case 'number':
      return Number.isFinite(v) ? JSON.stringify(v) : `"${String(v)}"`;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
      return undefined;
    case 'bigint':
      return `"${v}n"`;
    case 'symbol':
      return JSON.stringify(v.toString());
    case 'function':
      return JSON.stringify(`[Function ${v.name || 'anonymous'}]`);
  }
  if (v === null) return 'null';
  const object = v as object;
  if (ancestors.includes(object)) return '"[Circular]"';
  if (depth >= limits.depth) return JSON.stringify(Array.isArray(object) ? `[Array(${object.length})]` : `[${object.constructor?.name ?? 'Object'}]`);
  const proto = Object.getPrototypeOf(object);
  const plain = Array.isArray(object) || proto === Object.prototype || proto === null;
  if (plain && depth > 0) {
    const cached = stableJson.get(object);
    if (cached !== undefined && cached.depth === depth) return cached.json;
  }
  ancestors.push(object);
  try {
    const json = writeObject(object, depth, limits, ancestors);
    if (plain && depth > 0 && json !== undefined && stableVerdicts.get(object) === true) stableJson.set(object, { depth, json });
    return json;
  } finally {
    ancestors.pop();
  }
}

function writeObject(object: object, depth: number, limits: SafeJsonLimits, ancestors: object[]): string | undefined {
  if (object instanceof Error) {
    const code = (object as { code?: unknown }).code;
    const codeJson = code === undefined ? undefined : write(code, depth + 1, limits, ancestors);
    const name = write(object.name, depth + 1, limits, ancestors);
    return `{${name === undefined ? '' : `"name":${name},`}"message":${JSON.stringify(cutString(String(object.message), limits))}${codeJson === undefined ? '' : `,"code":${codeJson}`}}`;
  }
  if (object instanceof Date) return JSON.stringify(Number.isNaN(object.getTime()) ? 'Invalid Date' : object.toISOString());
  if (object instanceof AbortSignal) return `{"aborted":${object.aborted}}`;
  if (describesItself(object)) return write(object[inspectAs](), depth, limits, ancestors);
  if (isActorRef(object)) {
    const id = JSON.stringify((object as { id?: unknown }).id);
    return id === undefined ? '{"xstate$$type":1}' : `{"xstate$$type":1,"id":${id}}`;
  }
  if (isObservable(object)) return JSON.stringify(`[${object.constructor?.name ?? 'Observable'}]`);
  if (object instanceof Promise) return '"[Promise]"';
  if (object instanceof Map)
    return write(Object.fromEntries([...object.entries()].slice(0, limits.items).map(([k, x]) => [String(k), x])), depth, limits, ancestors);
  if (object instanceof Set) return write([...object].slice(0, limits.items), depth, limits, ancestors);
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer || object instanceof SharedArrayBuffer) {
    return JSON.stringify(`[${object.constructor.name}(${(object as ArrayBuffer).byteLength} bytes)]`);
  }
  if (Array.isArray(object)) {
    const n = Math.min(object.length, limits.items);
    let json = '[';
    for (let i = 0; i < n; i++) json += (i === 0 ? '' : ',') + (write(object[i], depth + 1, limits, ancestors) ?? 'null');
    if (object.length > limits.items) json += `${n === 0 ? '' : ','}${JSON.stringify(`…(${object.length - limits.items} more)`)}`;
    return `${json}]`;
  }
  const keys = Object.keys(object);
  let json = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    let field: string | undefined;
    if (i >= limits.items) {
      json += `${first ? '' : ','}"…":${JSON.stringify(`${keys.length - limits.items} more keys`)}`;
      break;
    }
    const value = (object as Record<string, unknown>)[key];
    if (secretKey(key) && value !== undefined && value !== null) field = JSON.stringify(REDACTED);
    else field = write(value, depth + 1, limits, ancestors);
    if (field === undefined) continue;
    json += `${first ? '' : ','}${JSON.stringify(key)}:${field}`;
    first = false;
  }
  return `${json}}`;
}

/** Verdicts of {@link isStable} on plain objects and arrays, which XState's contract makes immutable. */
const stableVerdicts = new WeakMap<object, boolean>();

/**
 * True when `value` will serialise the same later as now, so capture may keep it by
 * reference and serialise it only if a viewer asks: primitives and functions; plain
 * objects and arrays of stable values (immutable by XState's contract for snapshots and
 * events, so a verdict is kept per object); actor references, observables, promises and
 * objects that describe themselves by {@link inspectAs}. Anything else (a class
 * instance, a map, an error, a date, a signal) may change under the reference and must
 * be copied at once.
 */
export function isStable(value: unknown, limits: SafeJsonLimits = defaultLimits): boolean {
  return typeof value !== 'object' || value === null || stableAt(value, 0, limits);
}

/**
 * A cycle, or nesting deeper than any plain snapshot has, is not judged: it is copied at
 * once, and the copy handles it ("[Circular]", cut at the depth limit).
 */
const STABLE_DEPTH = 16;

function stableAt(v: object, depth: number, limits: SafeJsonLimits): boolean {
  const known = stableVerdicts.get(v);
  if (known !== undefined) return known;
  if (depth >= STABLE_DEPTH) return false;
  const proto = Object.getPrototypeOf(v);
  let verdict = true;
  if (Array.isArray(v)) {
    const n = Math.min(v.length, limits.items);
    for (let i = 0; i < n && verdict; i++) {
      const item: unknown = v[i];
      if (typeof item === 'object' && item !== null) verdict = stableAt(item, depth + 1, limits);
    }
  } else if (proto === Object.prototype || proto === null) {
    let count = 0;
    for (const key in v) {
      if (++count > limits.items) break;
      const field = (v as Record<string, unknown>)[key];
      if (typeof field === 'object' && field !== null && !stableAt(field, depth + 1, limits)) {
        verdict = false;
        break;
      }
    }
  } else if (describesItself(v) || isActorRef(v) || isObservable(v) || v instanceof Promise) {
    return true;
  } else if (Object.isFrozen(v) && !(v instanceof Map || v instanceof Set || v instanceof Date || ArrayBuffer.isView(v))) {
    // A frozen class instance (a result member) is shown by its own fields, which cannot change.
    for (const key of Object.keys(v)) {
      const field = (v as Record<string, unknown>)[key];
      if (typeof field === 'object' && field !== null && !stableAt(field, depth + 1, limits)) {
        verdict = false;
        break;
      }
    }
  } else {
    return false;
  }
  // Not the outermost object: a context or an event is new on every step, and a verdict
  // kept on each would cost more than judging it (a weak map grows on every set).
  if (depth > 0) stableVerdicts.set(v, verdict);
  return verdict;
}
