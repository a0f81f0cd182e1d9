/**
 * What statesmith needs of a NATS client, and the checks of subjects and connections that
 * the bridge, the inspection feed and the inspector share. No NATS package is imported.
 *
 * Internal to statesmith except for the two interfaces (exported from `statesmith/nats`).
 * A file header says so in words: the TSDoc tag for internal would attach to the first
 * import, and `stripInternal` would drop it.
 */
import { ArgumentTypeError, ArgumentValueError } from '../errors.ts';

/** The part of a NATS connection (`@nats-io/transport-node`'s `NatsConnection`) that statesmith uses. */
export interface NatsConnectionLike {
  /** Publishes `payload` on `subject`, with a subject for the replies when `options.reply` is set. */
  publish(subject: string, payload?: string | Uint8Array, options?: { reply?: string }): void;
  /** Calls `callback` with each message on `subject` until unsubscribed. */
  subscribe(subject: string, options?: { callback?: (error: Error | null, message: NatsMessageLike) => void }): { unsubscribe(): void };
  /** Publishes with a reply subject and resolves with the first reply, or rejects after `timeout` ms. */
  request(subject: string, payload?: string | Uint8Array, options?: { timeout: number }): Promise<NatsMessageLike>;
  /** Resolves once the server has processed everything sent so far (its subscriptions included). */
  flush?(): Promise<void>;
}

/** The part of a NATS message that statesmith uses. */
export interface NatsMessageLike {
  /** The subject it was published on. */
  readonly subject?: string;
  /** The payload. */
  readonly data: Uint8Array;
  /** Where to answer, for a request. */
  readonly reply?: string;
  /** Publishes `payload` on the reply subject. */
  respond(payload?: string | Uint8Array): boolean;
}

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Checks a subject prefix: dot-separated tokens, no wildcards, no spaces. */
export function requireSubject(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new ArgumentTypeError(name, 'a string', value);
  if (value.length === 0 || !value.split('.').every((token) => TOKEN.test(token))) {
    throw new ArgumentValueError(name, 'a NATS subject of tokens (letters, digits, "-", "_") joined by dots, without wildcards', value);
  }
  return value;
}

export function requireConnection(name: string, value: unknown): NatsConnectionLike {
  const c = value as Partial<NatsConnectionLike> | null;
  if (c === null || typeof c !== 'object' || typeof c.publish !== 'function' || typeof c.subscribe !== 'function' || typeof c.request !== 'function') {
    throw new ArgumentTypeError(name, 'a NATS connection (from @nats-io/transport-node connect())', value);
  }
  return c as NatsConnectionLike;
}

/**
 * Checks subject patterns to listen on: tokens as in {@link requireSubject}, or `*`, and
 * `>` only as the last token.
 *
 * @internal
 */
export function requireSubjectPatterns(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new ArgumentTypeError(name, 'a non-empty array of NATS subjects', value);
  return value.map((pattern: unknown, i) => {
    if (typeof pattern !== 'string') throw new ArgumentTypeError(`${name}[${i}]`, 'a string', pattern);
    const tokens = pattern.split('.');
    const ok = pattern.length > 0 && tokens.every((token, j) => TOKEN.test(token) || token === '*' || (token === '>' && j === tokens.length - 1));
    if (!ok)
      throw new ArgumentValueError(`${name}[${i}]`, 'a NATS subject of tokens joined by dots, where a token may be "*", and ">" may be the last', pattern);
    return pattern;
  });
}
