/**
 * Restart policies for persistent tasks: Erlang/OTP's restart intensity (at most
 * `maxRestarts` failures within `withinMs`, then give up) with Akka's exponential
 * back-off between attempts (`initialMs · factor^(n-1)`, capped at `maxMs`, stretched by
 * up to `jitter` at random so a crowd of restarts does not stampede).
 *
 * @module
 */
import { ArgumentRangeError, ArgumentTypeError, ArgumentValueError } from '../errors.ts';
import { optionalObject } from '../runtime/validate.ts';
import { backoffDelay, type RestartSettings } from '../../machines/restart.ts';

/** Back-off between restarts. */
export interface BackoffOptions {
  /** The first delay; default 100 ms. */
  readonly initialMs?: number;
  /** The longest delay; default 30,000 ms (or `initialMs` if larger). */
  readonly maxMs?: number;
  /** Each further restart within the window multiplies the delay by this (1 to 1000); default 2. */
  readonly factor?: number;
  /** Adds up to this fraction of the delay at random (0 to 1); default 0.2. */
  readonly jitter?: number;
}

/**
 * When a task is restarted, as OTP's restart types: `'permanent'` after any exit (a
 * return included), `'transient'` only after a failure, `'temporary'` never. A task
 * cancelled on purpose (`task.cancel()`, the group's `cancel` or `stop`) is never restarted.
 */
export type RestartType = 'permanent' | 'transient' | 'temporary';

/** How a task is restarted when it exits. */
export interface RestartPolicy {
  /** Which exits restart the task; default `'transient'` (failures only). */
  readonly type?: RestartType;
  /** How many restarts are allowed within `withinMs` before the task fails for good; default 3. */
  readonly maxRestarts?: number;
  /** The sliding window for `maxRestarts`, in ms, greater than 0; default 60,000 ms. */
  readonly withinMs?: number;
  /** The delay before each restart; see {@link BackoffOptions}. */
  readonly backoff?: BackoffOptions;
  /**
   * A run that lasted this long (ms) before it exited clears the task's restart history:
   * the back-off starts again from `initialMs` and the `maxRestarts` count from zero, as
   * Akka's `resetBackoffAfter`. Default `Infinity` (only `withinMs` forgets).
   */
  readonly resetAfterMs?: number;
}

/** A checked policy with every default filled in. @internal */
export type ResolvedRestartPolicy = RestartSettings & {
  /**
   * True when the policy set `maxRestarts` or `withinMs` itself. In a group with a restart
   * intensity only such a task budget counts besides the group's (OTP has only the supervisor's).
   */
  readonly ownBudget: boolean;
};

const RESTART_TYPES: readonly RestartType[] = ['permanent', 'transient', 'temporary'];

function number(name: string, value: unknown, fallback: number, min: number, max = Infinity, integer = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value)) throw new ArgumentTypeError(name, 'a number', value);
  if (value < min || value > max || (integer && !Number.isInteger(value))) {
    const kind = integer ? 'an integer' : 'a number';
    throw new ArgumentRangeError(name, max === Infinity ? `${kind} >= ${min}` : `${kind} from ${min} to ${max}`, value);
  }
  return value;
}

/** Checks a policy and fills in its defaults. @internal */
export function resolveRestartPolicy(value: unknown, where = 'options.restart'): ResolvedRestartPolicy {
  const policy = optionalObject<RestartPolicy>(where, value, ['type', 'maxRestarts', 'withinMs', 'backoff', 'resetAfterMs']);
  const type = policy.type ?? 'transient';
  if (!RESTART_TYPES.includes(type)) throw new ArgumentValueError(`${where}.type`, `one of ${RESTART_TYPES.map((t) => `'${t}'`).join(', ')}`, type);
  const backoff = optionalObject<BackoffOptions>(`${where}.backoff`, policy.backoff, ['initialMs', 'maxMs', 'factor', 'jitter']);
  const initialMs = number(`${where}.backoff.initialMs`, backoff.initialMs, 100, 0, Number.MAX_SAFE_INTEGER);
  const maxMs = number(`${where}.backoff.maxMs`, backoff.maxMs, Math.max(30_000, initialMs), initialMs, Number.MAX_SAFE_INTEGER);
  return {
    type,
    resetAfterMs: number(`${where}.resetAfterMs`, policy.resetAfterMs, Infinity, Number.MIN_VALUE),
    maxRestarts: number(`${where}.maxRestarts`, policy.maxRestarts, 3, 0, Number.MAX_SAFE_INTEGER, true),
    withinMs: number(`${where}.withinMs`, policy.withinMs, 60_000, Number.MIN_VALUE),
    initialMs,
    maxMs,
    factor: number(`${where}.backoff.factor`, backoff.factor, 2, 1, 1000),
    jitter: number(`${where}.backoff.jitter`, backoff.jitter, 0.2, 0, 1),
    ownBudget: policy.maxRestarts !== undefined || policy.withinMs !== undefined,
  };
}

export { backoffDelay };
