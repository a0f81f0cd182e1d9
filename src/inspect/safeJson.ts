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
        return { name: object.name, message: cutString(object.message, limits), ...(code === undefined ? {} : { code: walk(code, depth + 1) }) };
      }
      if (object instanceof Date) return object.toISOString();
      if (object instanceof AbortSignal) return { aborted: object.aborted };
      // An actor reference: its id, not its insides (XState's own convention).
      if (typeof (object as { send?: unknown }).send === 'function' && typeof (object as { getSnapshot?: unknown }).getSnapshot === 'function') {
        return { xstate$$type: 1, id: (object as { id?: unknown }).id };
      }
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
  return JSON.stringify(toSafeJson(value, limits)) ?? 'null';
}
