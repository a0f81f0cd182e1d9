/**
 * A coordinator's options, checked once: what `createCoordinator` and `coordinatorLogic`
 * both take, resolved to the settings its engine runs on.
 *
 * Internal to statesmith (not exported from the package).
 */
import { randomUUID } from 'node:crypto';
import { MAX_TIMER_MS, type Clock } from '../clock.ts';
import { ArgumentRangeError, ArgumentTypeError } from '../errors.ts';
import { optionalClock, optionalDuration, optionalObject, optionalRandom, requireNonEmptyString } from '../runtime/validate.ts';
import { parseUrl } from './backends/registry.ts';
import type { Backend, BackendCapabilities, BackendKind, CoordinatorOptions } from './types.ts';

const COORDINATOR_OPTIONS: (keyof CoordinatorOptions & string)[] = [
  'url',
  'prefix',
  'agentId',
  'heartbeatMs',
  'initialReconnectBackoffMs',
  'maxReconnectBackoffMs',
  'lockTtlMs',
  'require',
  'clock',
  'random',
  'pollIntervalMs',
];

/** Test seam: build the backend yourself. @internal */
export const kBackendFactory: unique symbol = Symbol('statesmith.coordinator.backendFactory');

/** What a coordinator runs on, its options checked and defaulted. */
export interface CoordinatorSettings {
  readonly url: string;
  readonly parsed: URL;
  readonly kind: BackendKind;
  readonly prefix: string;
  readonly memberId: string;
  readonly heartbeatMs: number;
  readonly initialReconnectBackoffMs: number;
  readonly maxReconnectBackoffMs: number;
  readonly lockTtlMs: number;
  readonly pollIntervalMs: number;
  readonly require: Partial<BackendCapabilities>;
  readonly clock: Clock;
  readonly random: () => number;
  readonly factory: (() => Backend) | undefined;
}

/** Checks `options` (an unknown key, a bad duration or URL throws a typed error) and fills in the defaults. */
export function resolveOptions(options: unknown): CoordinatorSettings {
  const opts = optionalObject<CoordinatorOptions & { readonly [kBackendFactory]?: () => Backend }>('options', options, COORDINATOR_OPTIONS);
  const url = opts.url === undefined ? 'memory://' : requireNonEmptyString('options.url', opts.url);
  const { url: parsed, kind } = parseUrl(url);
  const prefix = opts.prefix === undefined ? '' : requireString('options.prefix', opts.prefix);
  const agentId = opts.agentId === undefined ? randomUUID() : requireNonEmptyString('options.agentId', opts.agentId);
  const initialReconnectBackoffMs = positive('options.initialReconnectBackoffMs', opts.initialReconnectBackoffMs, 100, Infinity);
  const maxReconnectBackoffMs = positive('options.maxReconnectBackoffMs', opts.maxReconnectBackoffMs, 60_000, Infinity);
  if (maxReconnectBackoffMs < initialReconnectBackoffMs) {
    throw new ArgumentRangeError(
      'options.maxReconnectBackoffMs',
      `a number >= initialReconnectBackoffMs (${initialReconnectBackoffMs})`,
      maxReconnectBackoffMs,
    );
  }
  return {
    url,
    parsed,
    kind,
    prefix,
    memberId: prefix + agentId,
    heartbeatMs: positive('options.heartbeatMs', opts.heartbeatMs, 1_000, Infinity),
    initialReconnectBackoffMs,
    maxReconnectBackoffMs,
    // A lease must end: Redis takes it as an integer PX.
    lockTtlMs: positive('options.lockTtlMs', opts.lockTtlMs, 30_000, Number.MAX_SAFE_INTEGER),
    pollIntervalMs: positive('options.pollIntervalMs', opts.pollIntervalMs, 250, Infinity),
    require: optionalObject<BackendCapabilities>('options.require', opts.require, [
      'distributed',
      'sessionBased',
      'fencing',
      'locks',
      'fences',
      'election',
      'membership',
      'breakLock',
      'forcing',
      'watch',
    ]),
    clock: optionalClock('options.clock', opts.clock),
    random: optionalRandom('options.random', opts.random),
    factory: opts[kBackendFactory],
  };
}

/**
 * A bound on how long one command may take, from the heartbeat and the TTL. The clients
 * time commands with Node's own timers (pg doubles it for its read timeout), which fire
 * after 1 ms past 2^31 ms, so the bound stays under half of that.
 */
export function commandTimeout(heartbeatMs: number, ttlMs: number): number {
  return Math.min(Math.max(50, Math.min(heartbeatMs, ttlMs / 3)), Math.floor(MAX_TIMER_MS / 2));
}

/** The URL as the user gave it, without its password, for messages. */
export function shownUrl(url: string): string {
  // Several etcd hosts (etcd://h1:2379,h2:2379) are no WHATWG URL: mask the password by hand.
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

/** An error's message, with gRPC's (etcd's) boilerplate cut down to the one fact that matters. */
export function messageOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED h:p. Resolution note: '
  // says 'unavailable (connect ECONNREFUSED h:p)'.
  const grpc = /^\d+ ([A-Z_]+): (?:.*?Last error: (?:Error: )?)?(.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(message);
  if (grpc !== null) return `${(grpc[1] as string).toLowerCase().replaceAll('_', ' ')} (${(grpc[2] as string).trim()})`;
  return message;
}

function positive(name: string, value: unknown, fallback: number, max: number): number {
  const ms = optionalDuration(name, value, fallback);
  if (ms <= 0 || ms > max) throw new ArgumentRangeError(name, max === Infinity ? 'a number > 0 (or Infinity)' : `a number > 0 and <= ${max}`, ms);
  return ms;
}

function requireString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw new ArgumentTypeError(name, 'a string', value);
  return value;
}
