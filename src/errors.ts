/**
 * The typed errors of statesmith. Each class has a stable `name` and `code`;
 * tests and callers branch on `code`, never on message text.
 *
 * @module
 */

/** Describes a received value for an error message: its type and a short rendering. */
export function describeValue(value: unknown): string {
  try {
    return describeReadable(value);
  } catch {
    // A revoked proxy, or one whose traps throw: still described, never a throw from an error's constructor.
    return `${typeof value === 'function' ? 'a function' : 'an object'} that cannot be read (a revoked or throwing proxy)`;
  }
}

function describeReadable(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return `${typeof value} ${String(value)}`;
  }
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
    return ctor && ctor !== 'Object' ? `an instance of ${ctor}` : 'an object';
  }
  return typeof value;
}

/**
 * A bad argument type: `code` is `ERR_INVALID_ARG_TYPE`, as Node's own errors.
 *
 * @example
 * ```ts
 * import { ArgumentTypeError } from 'statesmith';
 * const err = new ArgumentTypeError('action', 'a non-empty string', 42);
 * console.log(err.code, err.message);
 * // ERR_INVALID_ARG_TYPE The "action" argument must be a non-empty string; received number 42
 * ```
 */
export class ArgumentTypeError extends TypeError {
  /** The class name, `'ArgumentTypeError'`, as Node's own errors have it. */
  override readonly name = 'ArgumentTypeError';
  /** A stable code to branch on, always `'ERR_INVALID_ARG_TYPE'`; messages may change, codes do not. */
  readonly code = 'ERR_INVALID_ARG_TYPE';
  constructor(argument: string, expected: string, received: unknown) {
    super(`The "${argument}" argument must be ${expected}; received ${describeValue(received)}`);
  }
}

/** A value of the right type but not an acceptable one: `code` is `ERR_INVALID_ARG_VALUE`. */
export class ArgumentValueError extends TypeError {
  /** The class name, `'ArgumentValueError'`, as Node's own errors have it. */
  override readonly name = 'ArgumentValueError';
  /** A stable code to branch on, always `'ERR_INVALID_ARG_VALUE'`; messages may change, codes do not. */
  readonly code = 'ERR_INVALID_ARG_VALUE';
  constructor(argument: string, expected: string, received: unknown) {
    super(`The "${argument}" argument must be ${expected}; received ${describeValue(received)}`);
  }
}

/** A number outside its allowed range: `code` is `ERR_OUT_OF_RANGE`. */
export class ArgumentRangeError extends RangeError {
  /** The class name, `'ArgumentRangeError'`, as Node's own errors have it. */
  override readonly name = 'ArgumentRangeError';
  /** A stable code to branch on, always `'ERR_OUT_OF_RANGE'`; messages may change, codes do not. */
  readonly code = 'ERR_OUT_OF_RANGE';
  constructor(argument: string, expected: string, received: unknown) {
    super(`The "${argument}" argument must be ${expected}; received ${describeValue(received)}`);
  }
}

/**
 * An options object with a key the call does not know (a typo such as `timeout` for
 * `timeoutMs` would otherwise be ignored in silence). `code` is `ERR_UNKNOWN_OPTION`;
 * `key` is the unknown key and `accepted` lists the keys the call knows.
 *
 * @example
 * ```ts
 * import { Mutex } from 'statesmith';
 * try {
 *   await new Mutex().acquire({ timeout: 100 } as never);
 * } catch (error) {
 *   console.log((error as { code: string }).code); // ERR_UNKNOWN_OPTION
 *   console.log((error as Error).message);
 *   // The "options" argument has no key "timeout"; the keys it accepts are owner, signal, timeoutMs
 * }
 * ```
 */
export class UnknownOptionError extends TypeError {
  /** The class name, `'UnknownOptionError'`, as Node's own errors have it. */
  override readonly name = 'UnknownOptionError';
  /** A stable code to branch on, always `'ERR_UNKNOWN_OPTION'`; messages may change, codes do not. */
  readonly code = 'ERR_UNKNOWN_OPTION';
  /** The option key that was not recognised. */
  readonly key: string;
  /** The keys that argument does accept. */
  readonly accepted: readonly string[];
  constructor(argument: string, key: string, accepted: readonly string[]) {
    super(
      `The "${argument}" argument has no key ${JSON.stringify(key)}; the keys it accepts are ${accepted.length === 0 ? '(none)' : [...accepted].sort().join(', ')}`,
    );
    this.key = key;
    this.accepted = accepted;
  }
}

/**
 * What a cancelled task, wait or call rejects with. `code` is `ERR_CANCELLED`.
 *
 * @example
 * ```ts
 * import { CancelledError } from 'statesmith';
 * const err = new CancelledError('shutting down');
 * console.log(err.code, err.message); // ERR_CANCELLED shutting down
 * ```
 */
export class CancelledError extends Error {
  /** The class name, `'CancelledError'`, as Node's own errors have it. */
  override readonly name = 'CancelledError';
  /** A stable code to branch on, always `'ERR_CANCELLED'`; messages may change, codes do not. */
  readonly code = 'ERR_CANCELLED';
  constructor(message = 'cancelled', options?: ErrorOptions) {
    super(message, options);
  }
}

/** A wait whose time ran out: `code` is `ERR_TIMEOUT`. */
export class TimeoutError extends Error {
  /** The class name, `'TimeoutError'`, as Node's own errors have it. */
  override readonly name = 'TimeoutError';
  /** A stable code to branch on, always `'ERR_TIMEOUT'`; messages may change, codes do not. */
  readonly code = 'ERR_TIMEOUT';
}

/**
 * A call that would wait forever on something its own caller holds (for example
 * `AsyncExecutor.cancel()` from inside `executor.withLock()` while a task runs).
 * `code` is `ERR_DEADLOCK`. Raised instead of hanging.
 */
export class DeadlockError extends Error {
  /** The class name, `'DeadlockError'`, as Node's own errors have it. */
  override readonly name = 'DeadlockError';
  /** A stable code to branch on, always `'ERR_DEADLOCK'`; messages may change, codes do not. */
  readonly code = 'ERR_DEADLOCK';
}

/**
 * A call made in a state that does not allow it (for example `CriticalTask.cancel()`
 * without holding the task's lock). `code` is `ERR_INVALID_STATE`.
 */
export class InvalidStateError extends Error {
  /** The class name, `'InvalidStateError'`, as Node's own errors have it. */
  override readonly name = 'InvalidStateError';
  /** A stable code to branch on, always `'ERR_INVALID_STATE'`; messages may change, codes do not. */
  readonly code = 'ERR_INVALID_STATE';
}

/**
 * A one-at-a-time facility asked to do a second thing at once (a second `run()` of an
 * executor whose slot is already running, a second `call()` of a subprocess runner).
 * `code` is `ERR_BUSY`.
 */
export class BusyError extends Error {
  /** The class name, `'BusyError'`, as Node's own errors have it. */
  override readonly name = 'BusyError';
  /** A stable code to branch on, always `'ERR_BUSY'`; messages may change, codes do not. */
  readonly code = 'ERR_BUSY';
}

/**
 * What a lock handle's `signal` aborts with when the lock is taken away from its holder
 * (forced by a locksmith, or a lease lost). `code` is `ERR_LOCK_LOST`; `lock` names the
 * lock, `by` who took it, `info` why.
 *
 * @example
 * ```ts
 * import { Mutex } from 'statesmith';
 * const mutex = new Mutex({ name: 'volume-7' });
 * const handle = await mutex.acquire();
 * mutex.forceRelease({ by: 'watchdog', info: 'holder stuck for 60 s' });
 * console.log(handle.signal.reason.code); // ERR_LOCK_LOST
 * console.log(handle.signal.reason.message); // volume-7 was taken away by watchdog: holder stuck for 60 s
 * ```
 */
export class LockLostError extends Error {
  /** The class name, `'LockLostError'`, as Node's own errors have it. */
  override readonly name = 'LockLostError';
  /** A stable code to branch on, always `'ERR_LOCK_LOST'`; messages may change, codes do not. */
  readonly code = 'ERR_LOCK_LOST';
  /** The name of the lock that was lost. */
  readonly lock: string;
  /** Who took it: the `by` of the force, or the backend for a lost lease. */
  readonly by: unknown;
  /** Why it was taken, as the taker said; `undefined` when nothing was said. */
  readonly info: unknown;
  constructor(lock: string, by: unknown, info?: unknown) {
    const suffix = info === undefined ? '' : `: ${typeof info === 'string' ? info : JSON.stringify(info)}`;
    super(`${lock} was taken away by ${String(by)}${suffix}`);
    this.lock = lock;
    this.by = by;
    this.info = info;
  }
}

/**
 * The failures of a task group or service, collected when it is awaited or stopped:
 * `errors` holds them in the order the tasks finished. The message is
 * `Error while stopping <group or service>`. `code` is `ERR_TASK_GROUP`.
 *
 * @example
 * ```ts
 * import { TaskGroupError } from 'statesmith';
 * const err = new TaskGroupError([new Error('disk full')], 'Error while stopping TaskGroup:io');
 * console.log(err.code, err.message, err.errors.length); // ERR_TASK_GROUP Error while stopping TaskGroup:io 1
 * ```
 */
export class TaskGroupError extends AggregateError {
  /** The class name, `'TaskGroupError'`, as Node's own errors have it. */
  override readonly name = 'TaskGroupError';
  /** A stable code to branch on, always `'ERR_TASK_GROUP'`; messages may change, codes do not. */
  readonly code = 'ERR_TASK_GROUP';
  /** When the group failed because a task exceeded its restart intensity: that task's full name. */
  readonly task: string | undefined;
  /** When the group failed because a task exceeded its restart intensity: the budget that was exceeded. */
  readonly budget: TaskGroupBudget | undefined;
  constructor(errors: Iterable<unknown>, message?: string, options?: ErrorOptions & { readonly task?: string; readonly budget?: TaskGroupBudget }) {
    super(errors, message, options);
    this.task = options?.task;
    this.budget = options?.budget;
  }
}

/** A restart budget that a task exceeded: whose it was, and its intensity. */
export interface TaskGroupBudget {
  /** `'group'`: the group's `maxRestarts`/`withinMs`. */
  readonly of: 'group';
  /** At most this many restarts... */
  readonly maxRestarts: number;
  /** ...within this many milliseconds. */
  readonly withinMs: number;
}

/**
 * A task that ignored its cancel past its group's shutdown budget (`shutdownMs`): the
 * group stopped waiting for it, and `stop()` reports it with this error instead of hanging.
 * The task's body may still be running. `code` is `ERR_TASK_ABANDONED`.
 *
 * @example
 * ```ts
 * import { TaskAbandonedError } from 'statesmith';
 * const err = new TaskAbandonedError('TaskGroup:io:flush', 5000);
 * console.log(err.code, err.message); // ERR_TASK_ABANDONED TaskGroup:io:flush ignored its cancel for 5000 ms and was abandoned
 * ```
 */
export class TaskAbandonedError extends Error {
  /** The class name, `'TaskAbandonedError'`, as Node's own errors have it. */
  override readonly name = 'TaskAbandonedError';
  /** A stable code to branch on, always `'ERR_TASK_ABANDONED'`; messages may change, codes do not. */
  readonly code = 'ERR_TASK_ABANDONED';
  /** The abandoned task's full name. */
  readonly task: string;
  constructor(task: string, shutdownMs: number) {
    super(`${task} ignored its cancel for ${shutdownMs} ms and was abandoned`);
    this.task = task;
  }
}

/**
 * An error the locksmith must not absorb: when a lock's owner raises one while answering a
 * force request (or a hook does), the force rejects with a `CriticalError` whose `cause`
 * is the original, as asyncutils raises `Critical`. Throw one, or any error with a
 * `critical: true` field, from a force handler to have it treated so. `code` is
 * `ERR_CRITICAL`.
 *
 * @example
 * ```ts
 * import { CriticalError } from 'statesmith';
 * const err = new CriticalError('replica lost its data directory');
 * console.log(err.code, err.message); // ERR_CRITICAL replica lost its data directory
 * ```
 */
export class CriticalError extends Error {
  /** The class name, `'CriticalError'`, as Node's own errors have it. */
  override readonly name = 'CriticalError';
  /** A stable code to branch on, always `'ERR_CRITICAL'`; messages may change, codes do not. */
  readonly code = 'ERR_CRITICAL';
  /** Marks the error as one the locksmith must pass on rather than absorb. */
  readonly critical = true;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** True for a `CriticalError` or any error object carrying `critical: true`. @internal */
export function isCritical(error: unknown): boolean {
  return error instanceof CriticalError || (typeof error === 'object' && error !== null && (error as { critical?: unknown }).critical === true);
}

/**
 * A distributed lock that was not acquired where the caller needed it: `synchronized` (and
 * `DistributedLock.acquireOrThrow`) reject with it instead of running unlocked. `reason`
 * says why: `'busy'` (non-blocking and held elsewhere), `'timeout'` (the blocking budget ran
 * out), or `'error'` (the backend failed; see `cause`). `code` is `ERR_LOCK_ACQUIRE_FAILED`.
 *
 * @example
 * ```ts
 * import { LockAcquireFailed } from 'statesmith';
 * const err = new LockAcquireFailed('volume-7', 'busy');
 * console.log(err.code, err.message); // ERR_LOCK_ACQUIRE_FAILED Acquiring lock volume-7 failed: it is held elsewhere
 * ```
 */
export class LockAcquireFailed extends Error {
  /** The class name, `'LockAcquireFailed'`, as Node's own errors have it. */
  override readonly name = 'LockAcquireFailed';
  /** A stable code to branch on, always `'ERR_LOCK_ACQUIRE_FAILED'`; messages may change, codes do not. */
  readonly code = 'ERR_LOCK_ACQUIRE_FAILED';
  /** The name of the lock that was not acquired. */
  readonly lock: string;
  /** Why: held elsewhere, out of time, or a backend failure (see `cause`). */
  readonly reason: 'busy' | 'timeout' | 'error';
  constructor(lock: string, reason: 'busy' | 'timeout' | 'error', options?: ErrorOptions) {
    const why = reason === 'busy' ? 'it is held elsewhere' : reason === 'timeout' ? 'timed out waiting for it' : 'the backend failed';
    super(`Acquiring lock ${lock} failed: ${why}`, options);
    this.lock = lock;
    this.reason = reason;
  }
}

/**
 * A leadership that ended: the election lock's lease ran out, the connection was lost,
 * the lock was broken, or the leader resigned. A `Leadership`'s `signal` aborts with it.
 *
 * @example
 * ```ts
 * import { LeadershipLostError } from 'statesmith';
 * const err = new LeadershipLostError('db-primary', 7n, 'the lease ran out');
 * console.log(err.code, err.term, err.message); // ERR_LEADERSHIP_LOST 7n Leadership of group db-primary (term 7) lost: the lease ran out
 * ```
 */
export class LeadershipLostError extends Error {
  /** The class name, `'LeadershipLostError'`, as Node's own errors have it. */
  override readonly name = 'LeadershipLostError';
  /** A stable code to branch on, always `'ERR_LEADERSHIP_LOST'`. */
  readonly code = 'ERR_LEADERSHIP_LOST';
  /** The election group. */
  readonly group: string;
  /** The term that ended. */
  readonly term: bigint;
  /** Why it ended; one that starts with `'resigned'` is a clean resign or coordinator stop (nothing went wrong). */
  readonly why: string;
  constructor(group: string, term: bigint, why: string, options?: ErrorOptions) {
    super(`Leadership of group ${group} (term ${term}) lost: ${why}`, options);
    this.group = group;
    this.term = term;
    this.why = why;
  }
}

/**
 * A coordination backend that cannot be used: `code` is `ERR_COORDINATION_URL` (a malformed
 * URL or an unknown scheme), `ERR_COORDINATION_CLIENT_MISSING` (the URL names a backend
 * whose client package, such as `ioredis` or `pg`, is not installed), `ERR_COORDINATION_BACKEND`
 * (the server failed or is unreachable; `cause` has the client's error),
 * `ERR_COORDINATION_STATE` (the coordinator is not started), `ERR_COORDINATION_BUSY` (a
 * `sqlite://` file stayed locked by another process's transaction past the command bound)
 * or `ERR_COORDINATION_STORE_GONE` (the `sqlite://` file was deleted or replaced under a
 * running coordinator).
 */
export class CoordinationError extends Error {
  /** The class name, `'CoordinationError'`, as Node's own errors have it. */
  override readonly name = 'CoordinationError';
  /** Which of the failures this is; see the class description. */
  readonly code:
    | 'ERR_COORDINATION_URL'
    | 'ERR_COORDINATION_CLIENT_MISSING'
    | 'ERR_COORDINATION_BACKEND'
    | 'ERR_COORDINATION_STATE'
    | 'ERR_COORDINATION_BUSY'
    | 'ERR_COORDINATION_STORE_GONE';
  constructor(code: CoordinationError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A durable actor or its snapshot store failed: `code` is `ERR_STORE_URL` (a malformed store
 * URL or an unknown scheme), `ERR_STORE_CLIENT_MISSING` (the URL's client package,
 * `better-sqlite3` or `pg`, is not installed), `ERR_STORE` (the store failed; `cause` has the
 * client's error), `ERR_SNAPSHOT_VERSION` (a snapshot saved by another machine version and no
 * `migrate`), `ERR_SNAPSHOT_JSON` (a snapshot that is not JSON), `ERR_FENCED` (a newer
 * incarnation holds the actor's fence: this one stopped acting), `ERR_RECOVERING` (a command
 * sent while the actor restores) or `ERR_INTERRUPTED` (work that was running when its process
 * ended, and is not run again).
 *
 * @example
 * ```ts
 * import { DurableError } from 'statesmith';
 * const err = new DurableError('ERR_SNAPSHOT_VERSION', 'the snapshot of "agent" was saved by version 1; this machine is version 2 and has no migrate');
 * console.log(err.code); // ERR_SNAPSHOT_VERSION
 * ```
 */
export class DurableError extends Error {
  /** The class name, `'DurableError'`, as Node's own errors have it. */
  override readonly name = 'DurableError';
  /** Which of the failures this is; see the class description. */
  readonly code:
    | 'ERR_STORE_URL'
    | 'ERR_STORE_CLIENT_MISSING'
    | 'ERR_STORE'
    | 'ERR_SNAPSHOT_VERSION'
    | 'ERR_SNAPSHOT_JSON'
    | 'ERR_FENCED'
    | 'ERR_RECOVERING'
    | 'ERR_INTERRUPTED';
  constructor(code: DurableError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A command that a statesmith actor answered with `statesmith.rejected`, thrown by the
 * facade that sent it. `code` is the rejection's own (`ERR_DUPLICATE_TASK`,
 * `ERR_UNKNOWN_TASK`, `ERR_INVALID_STATE`, ...), and `rejection` is the reply as data.
 *
 * @example
 * ```ts
 * import { RejectedError } from 'statesmith';
 * const err = new RejectedError({ type: 'statesmith.rejected', command: { type: 'statesmith.taskGroup.cancelTask', name: 'scrub' }, state: 'idle', code: 'ERR_UNKNOWN_TASK', reason: 'no running task is named "scrub"' });
 * console.log(err.code, err.message); // ERR_UNKNOWN_TASK statesmith.taskGroup.cancelTask rejected in state "idle": no running task is named "scrub"
 * ```
 */
export class RejectedError extends Error {
  /** The class name, `'RejectedError'`, as Node's own errors have it. */
  override readonly name = 'RejectedError';
  /** The rejection's code, copied from {@link RejectedError.rejection} for `catch` blocks. */
  readonly code: string;
  /** The actor's `statesmith.rejected` reply, as plain data. */
  readonly rejection: {
    readonly type: 'statesmith.rejected';
    readonly command: Readonly<Record<string, unknown>>;
    readonly state: unknown;
    readonly code: string;
    readonly reason: string;
  };

  constructor(rejection: RejectedError['rejection']) {
    // A rejection that crossed a process may lack its command (a refusal of a message that was not one).
    const command = (rejection.command as { type?: unknown } | null | undefined)?.type;
    let state: string;
    try {
      state = JSON.stringify(rejection.state) ?? 'undefined';
    } catch {
      state = String(rejection.state);
    }
    super(`${command === undefined ? 'the command' : String(command)} rejected in state ${state}: ${rejection.reason}`);
    this.code = rejection.code;
    this.rejection = rejection;
  }
}

/**
 * An ask whose command got no final reply in time: the actor received it, or nobody serves
 * the subject. `code` is `ERR_NO_REPLY`. Interim replies that came are in `replies`.
 *
 * @example
 * ```ts
 * import { NoReplyError } from 'statesmith';
 * const err = new NoReplyError('no final reply to statesmith.executor.run from executor within 5000 ms', []);
 * console.log(err.code); // ERR_NO_REPLY
 * ```
 */
export class NoReplyError extends Error {
  /** The class name, `'NoReplyError'`, as Node's own errors have it. */
  override readonly name = 'NoReplyError';
  /** A stable code to branch on, always `'ERR_NO_REPLY'`; messages may change, codes do not. */
  readonly code = 'ERR_NO_REPLY';
  /** The interim replies that came before the time ran out. */
  readonly replies: readonly unknown[];
  constructor(message: string, replies: readonly unknown[] = [], options?: ErrorOptions) {
    super(message, options);
    this.replies = replies;
  }
}

/**
 * A call, ask or remote request on an actor that stopped or failed before it answered.
 * `code` is `ERR_ACTOR_STOPPED`; `actor` names it and `status` says how it ended.
 *
 * @example
 * ```ts
 * import { ActorStoppedError } from 'statesmith';
 * const err = new ActorStoppedError('executor', 'stopped', 'running');
 * console.log(err.code, err.message); // ERR_ACTOR_STOPPED the actor executor stopped (in state "running") before it answered
 * ```
 */
export class ActorStoppedError extends Error {
  /** The class name, `'ActorStoppedError'`, as Node's own errors have it. */
  override readonly name = 'ActorStoppedError';
  /** A stable code to branch on, always `'ERR_ACTOR_STOPPED'`; messages may change, codes do not. */
  readonly code = 'ERR_ACTOR_STOPPED';
  /** The actor's id. */
  readonly actor: string;
  /** How it ended: `'stopped'`, `'error'` or `'done'`. */
  readonly status: string;
  /** Its state value when it ended, as JSON. */
  readonly state: string;
  constructor(actor: string, status: string, state: unknown, options?: ErrorOptions) {
    let shown: string;
    try {
      shown = JSON.stringify(state) ?? 'undefined';
    } catch {
      shown = String(state);
    }
    super(`the actor ${actor} ${status === 'error' ? 'failed' : status} (in state ${shown}) before it answered`, options);
    this.actor = actor;
    this.status = status;
    this.state = shown;
  }
}

/**
 * `error` as statesmith reports a backend's failure: one of statesmith's own errors (a
 * string `code` starting `ERR_`) as it is; anything else, a client's raw error (gRPC
 * `14 UNAVAILABLE`, ioredis `Command timed out`), as a `CoordinationError`
 * `ERR_COORDINATION_BACKEND` saying what failed, with the raw error as its `cause`.
 *
 * @internal
 */
export function asBackendError(what: string, error: unknown): Error {
  try {
    const code = (error as { code?: unknown } | null)?.code;
    if (error instanceof Error && typeof code === 'string' && code.startsWith('ERR_')) return error;
  } catch {
    // a hostile value: wrapped below
  }
  let message: string;
  try {
    message = error instanceof Error ? error.message : String(error);
  } catch {
    message = 'an error that could not be read';
  }
  return new CoordinationError('ERR_COORDINATION_BACKEND', `${what} failed: ${message}`, { cause: error });
}
