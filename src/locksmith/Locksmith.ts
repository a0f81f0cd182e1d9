/**
 * The locksmith: takes a stuck lock back from its owner by negotiation (asyncutils'
 * `LocksmithBase`), and runs an emergency task under it (`host`).
 *
 * `Locksmith` is the thin client of its actor (`locksmithLogic`), and the set of hooks a
 * subclass overrides (`LocksmithHooks`). The negotiation is the actor's engine
 * (`engine.ts`), the hosting `host.ts`, the wire protocol `protocol.ts`.
 *
 * @module
 */
import type { Actor } from 'xstate';
import type { LocksmithCommand } from '../../machines/locksmith.machine.ts';
import type { Clock } from '../clock.ts';
import { ArgumentTypeError, ArgumentValueError } from '../errors.ts';
import { describeAs } from '../inspect/safeJson.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { startActor } from '../runtime/startActor.ts';
import {
  optionalBoolean,
  optionalClock,
  optionalDuration,
  optionalObject,
  optionalSignal,
  requireFunction,
  requireNonEmptyString,
} from '../runtime/validate.ts';
import { forceHandlers, LocksmithHooks, type ForceHandler } from './hooks.ts';
import { lockKindOf } from './lockKinds.ts';
import { locksmithLogic, type ForceRun, type LocksmithTable } from './locksmithLogic.ts';
import { locksmithOp } from './op.ts';
import { ForceResult, RecognitionResult } from './results.ts';

export type { ForceRun };
export { LockForcedWaiterError, type ForceHandler } from './hooks.ts';

/** Options of the {@link Locksmith} constructor. */
export interface LocksmithOptions {
  /** Shown to owners (`LockLostError.by`, `LockForceRequest.requester`) and in the inspector. Default `'locksmith'`. */
  readonly name?: string;
  /** The clock for answer, force, acquire and task deadlines; default the system clock. */
  readonly clock?: Clock;
}

/** Options of {@link Locksmith.force}. */
export interface ForceOptions {
  /** Why the lock is forced; told to the owner and carried by its `LockLostError`. Default from `getInfo()`. */
  readonly info?: unknown;
  /** Reject the lock's waiters once the force is over (default true), as the original does. */
  readonly purgeWaiters?: boolean;
  /** Abandon the force; it rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
  /** How long the owner has to answer before it is compelled; default 1000 ms, `Infinity` to wait for ever. */
  readonly answerTimeoutMs?: number;
  /**
   * Who holds the lock, when the lock cannot say (a `SharedMutex` held in a worker: pass
   * the `WorkerThread`, its `Worker` or a `MessagePort` that serves requests).
   */
  readonly owner?: unknown;
}

/** Options of {@link Locksmith.host}. */
export interface HostOptions {
  /** As in {@link ForceOptions.info}. */
  readonly info?: unknown;
  /** Bound on the force; past it, host rejects with a `TimeoutError`. Default 1000 ms. */
  readonly forceTimeoutMs?: number;
  /** Bound on getting the lock once the force is over. Default 100 ms. */
  readonly acquireTimeoutMs?: number;
  /** When the task's signal aborts with a `TimeoutError`. Default `Infinity`. */
  readonly taskTimeoutMs?: number;
  /** The owner's time to answer; default half of `forceTimeoutMs`, so an owner that stays silent is compelled in time. */
  readonly answerTimeoutMs?: number;
  /** As in {@link ForceOptions.owner}. */
  readonly owner?: unknown;
  /** Reject the lock's other waiters (default false: they keep their places after the task). */
  readonly purgeWaiters?: boolean;
  /** Abandon hosting: rejects with `signal.reason`, and the task's signal aborts. */
  readonly signal?: AbortSignal;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

function requireLockObject(name: string, lock: unknown): object {
  if ((typeof lock !== 'object' && typeof lock !== 'function') || lock === null) {
    throw new ArgumentTypeError(name, 'a lock (a Mutex, a SharedMutex, or an object with acquire(), release() and locked)', lock);
  }
  return lock;
}

/**
 * Forces stuck locks by negotiating with their owners, and runs emergency work under
 * them. Subclass it to change any step: the protected methods are asyncutils' hooks.
 *
 * A force goes `recognizing → releasing → requesting → awaitingAnswer → compelling`:
 * the lock must be recognized and held; a lock that names no owner is released by the
 * locksmith at once; otherwise its owner gets a {@link LockForceRequest} (through
 * `serveLockForceRequests`) and may release, answer, or refuse. An owner that does not
 * answer within `answerTimeoutMs`, raises, or has no way to be asked is compelled: the
 * lock is freed and the owner's handle `signal` aborts with a `LockLostError` naming the
 * locksmith and the info.
 *
 * @example
 * ```ts
 * import { ForceResult, Locksmith, Mutex, runAsOwner } from 'statesmith';
 * const mutex = new Mutex({ name: 'volume-7' });
 * // A job takes the lock and wedges (it never serves force requests).
 * const handle = await runAsOwner('wedged job', () => mutex.acquire());
 * const smith = new Locksmith({ name: 'watchdog' });
 * await smith.recognize(mutex);
 * const cleaned = await smith.host(async () => 'cleaned up', mutex, { forceTimeoutMs: 50 });
 * console.log(cleaned, handle.signal.reason.message); // cleaned up volume-7 was taken away by watchdog: potential deadlock involving Mutex volume-7
 * ```
 */
export class Locksmith extends LocksmithHooks {
  /** Lock-class-specific steps, by exact constructor; shared by every locksmith class, as in the original. */
  static readonly handlers: Map<Function, ForceHandler> = forceHandlers;

  /**
   * Registers `handler` for a lock class; returns a class decorator (usable as
   * `@Locksmith.registerHandler(h)` or called with the class). With `shadow: false` an
   * existing, different handler for that class is an error instead of being replaced.
   */
  static registerHandler(handler: ForceHandler, options?: { readonly shadow?: boolean }) {
    requireFunction('handler', handler);
    const opts = optionalObject<{ shadow: boolean }>('options', options, ['shadow']);
    const shadow = optionalBoolean('options.shadow', opts.shadow, true);
    return <C extends Function>(target: C, _context?: unknown): C => {
      if (typeof target !== 'function') throw new ArgumentTypeError('target', 'a class', target);
      const existing = forceHandlers.get(target);
      if (!shadow && existing !== undefined && existing !== handler) {
        throw new ArgumentValueError('target', `a class without a force handler (${target.name} has another, and shadow is false)`, target);
      }
      forceHandlers.set(target, handler);
      return target;
    };
  }

  /**
   * The locksmith's actor (`locksmithLogic`): `idle`, or `forcing` while a force is in
   * flight. It holds the operations in flight and the recognized locks. Its engine runs the
   * negotiation and calls this object's hooks; this object is its thin client.
   */
  readonly actor: Actor<typeof locksmithLogic>;
  readonly #clock: Clock;

  constructor(options?: LocksmithOptions) {
    const opts = optionalObject<LocksmithOptions>('options', options, ['name', 'clock']);
    super(opts.name === undefined ? 'locksmith' : requireNonEmptyString('options.name', opts.name));
    const clock: Clock = optionalClock('options.clock', opts.clock);
    this.#clock = clock;
    this.actor = startActor('locksmith', locksmithLogic, { input: { name: this.name, clock, engine: this }, id: `locksmith:${this.name}` });
  }

  get #table(): LocksmithTable {
    return this.actor.getSnapshot().context.table as LocksmithTable;
  }

  /** The forces in flight, each with its negotiation state and actor (a child of this locksmith's). */
  get forces(): readonly ForceRun[] {
    return this.#table.runs;
  }

  /** True when `lock` has been recognized by this locksmith. */
  isRecognized(lock: object): boolean {
    const kind = lockKindOf(lock);
    return kind !== undefined && this.#table.recognized.has(kind.key(lock));
  }

  /**
   * Lets this locksmith force `lock`: checks it is a lock (`FAILED_PRELIM`), asks a lock
   * with `acknowledgeLocksmith()` for its consent (`FAILED_ACK` when it says no or
   * throws), and remembers it (weakly). Unlike the original, a lock that consents is
   * recognized. `options` bound the wait (`signal`, `timeoutMs`), on the locksmith's
   * clock; the recognition goes on.
   *
   * @example
   * ```ts
   * import { Locksmith, Mutex, RecognitionResult } from 'statesmith';
   * const smith = new Locksmith();
   * const mutex = new Mutex();
   * console.log(await smith.recognize(mutex) === RecognitionResult.SUCCESS); // true
   * console.log(String(await smith.recognize(mutex))); // RecognitionResult.ALREADY_RECOGNIZED
   * console.log(String(await smith.recognize({}))); // RecognitionResult.FAILED_PRELIM
   * ```
   */
  async recognize(lock: object, options?: WaitOptions): Promise<RecognitionResult> {
    requireLockObject('lock', lock);
    const wait = waitOptions('options', options);
    wait.signal?.throwIfAborted();
    const asked = locksmithOp<RecognitionResult>(this.actor, { type: 'statesmith.locksmith.recognize', lockRef: lock }, 'statesmith.locksmith.recognized');
    // The lock is not read here: a hostile one is the recognition's to refuse, with a typed error.
    return boundedWait(asked, wait, this.#clock, `${this.name} recognizing a lock`);
  }

  /**
   * Takes `lock` back from its holder; resolves with how (see {@link (ForceResult:variable)}).
   * Rejects with `signal.reason` when aborted, with a `CriticalError` when the owner
   * raised one, and with whatever a registered handler throws.
   */
  async force(lock: object, options?: ForceOptions): Promise<ForceResult> {
    requireLockObject('lock', lock);
    const opts = optionalObject<ForceOptions>('options', options, ['info', 'purgeWaiters', 'signal', 'answerTimeoutMs', 'owner']);
    const signal = optionalSignal('options.signal', opts.signal);
    const answerTimeoutMs = optionalDuration('options.answerTimeoutMs', opts.answerTimeoutMs, 1000);
    const purgeWaiters = optionalBoolean('options.purgeWaiters', opts.purgeWaiters, true);
    throwIfAborted(signal);
    return locksmithOp<ForceResult>(
      this.actor,
      {
        type: 'statesmith.locksmith.force',
        lockRef: lock,
        answerTimeoutMs,
        purgeWaiters,
        ...('info' in opts ? { info: opts.info } : {}),
        ...(signal === undefined ? {} : { signal }),
        ...('owner' in opts ? { owner: opts.owner } : {}),
      } as LocksmithCommand,
      'statesmith.locksmith.forced',
    );
  }

  /**
   * Forces `lock`, takes it, runs `task` holding it, and always releases it. The task's
   * signal aborts at `taskTimeoutMs` (with a `TimeoutError`), when `signal` aborts, or if
   * the lock is taken from the task in turn. The lock is released only once the task has
   * settled, so the task never runs without it.
   *
   * Unlike the original: the host's acquire waits at the front of the line (the emergency
   * task runs next, not after every queued waiter); it is withdrawn when the force times
   * out, so it can never take the lock later and keep it (H4); the force never releases a
   * lock the host's acquire already holds (H5); and the acquire is always bounded by
   * `acquireTimeoutMs`, whatever the force result.
   */
  async host<T>(task: (signal: AbortSignal) => T | Promise<T>, lock: object, options?: HostOptions): Promise<T> {
    requireFunction('task', task);
    requireLockObject('lock', lock);
    let kind: ReturnType<typeof lockKindOf>;
    try {
      kind = lockKindOf(lock);
    } catch (error) {
      throw Object.assign(new ArgumentTypeError('lock', 'a lock whose acquire(), release() and locked can be read', lock), { cause: error });
    }
    if (kind === undefined) {
      throw new ArgumentTypeError('lock', 'a lock (a Mutex, a SharedMutex, or an object with acquire(), release() and locked)', lock);
    }
    const opts = optionalObject<HostOptions>('options', options, [
      'info',
      'forceTimeoutMs',
      'acquireTimeoutMs',
      'taskTimeoutMs',
      'answerTimeoutMs',
      'owner',
      'purgeWaiters',
      'signal',
    ]);
    const signal = optionalSignal('options.signal', opts.signal);
    const forceTimeoutMs = optionalDuration('options.forceTimeoutMs', opts.forceTimeoutMs, 1000);
    const acquireTimeoutMs = optionalDuration('options.acquireTimeoutMs', opts.acquireTimeoutMs, 100);
    const taskTimeoutMs = optionalDuration('options.taskTimeoutMs', opts.taskTimeoutMs, Infinity);
    const answerTimeoutMs = optionalDuration('options.answerTimeoutMs', opts.answerTimeoutMs, forceTimeoutMs / 2);
    const purgeWaiters = optionalBoolean('options.purgeWaiters', opts.purgeWaiters, false);
    throwIfAborted(signal);
    return locksmithOp<T>(
      this.actor,
      {
        type: 'statesmith.locksmith.host',
        lockRef: lock,
        fn: task,
        forceTimeoutMs,
        acquireTimeoutMs,
        taskTimeoutMs,
        answerTimeoutMs,
        purgeWaiters,
        ...('info' in opts ? { info: opts.info } : {}),
        ...(signal === undefined ? {} : { signal }),
        ...('owner' in opts ? { owner: opts.owner } : {}),
      },
      'statesmith.locksmith.hosted',
    );
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(Locksmith, (locksmith) => `[Locksmith ${locksmith.name}]`);
