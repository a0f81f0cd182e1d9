/**
 * The locksmith: takes a stuck lock back from its owner by negotiation (asyncutils'
 * `LocksmithBase`), and runs an emergency task under it (`host`).
 *
 * @module
 */
import { telemetry } from '../telemetry/hooks.ts';
import type { Actor, AnyActorRef } from 'xstate';
import type { LocksmithCommand } from '../../machines/locksmith.machine.ts';
import { type Clock } from '../clock.ts';
import { ActorStoppedError, ArgumentTypeError, ArgumentValueError, CancelledError, CriticalError, RejectedError, TimeoutError, isCritical } from '../errors.ts';
import { isCancellation } from '../runtime/cancellation.ts';
import { getLogger } from '../logger.ts';
import { WorkerThread } from '../threads/WorkerThread.ts';
import { raceSignal } from '../runtime/deferred.ts';
import { startActor } from '../runtime/startActor.ts';
import { describeOwner } from '../runtime/describeOwner.ts';
import { currentOwner, runAsOwner } from '../runtime/ownerContext.ts';
import {
  optionalBoolean,
  optionalClock,
  optionalDuration,
  optionalObject,
  optionalSignal,
  requireFunction,
  requireNonEmptyString,
} from '../runtime/validate.ts';
import { OWNED, lockKindOf, type HostHold, type LockKind } from './lockKinds.ts';
import {
  LockForceRequest,
  REPLY,
  REQUEST,
  isPortLike,
  servers,
  type PortLike,
  type Reply,
  type ReplyMessage,
  type RequestMessage,
  type WireError,
} from './protocol.ts';
import { ForceResult, RecognitionResult } from './results.ts';
import { RemoteOwner } from '../coordination/lock/forcing.ts';
import { hostCancellations, kToken, kValue, locksmithLogic, type ForceRun, type ForceRunHandle, type LocksmithTable } from './locksmithLogic.ts';
import { describeAs } from '../inspect/safeJson.ts';
import { inspection } from '../inspect/capture.ts';

export type { ForceRun };

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

/** A lock-class-specific step run after an owner gave up its lock (asyncutils' `handlers`). */
export type ForceHandler = (lock: object) => unknown;

/** Who holds a lock on behalf of a task that `host()` runs. */
class HostedTask {
  readonly locksmith: string;
  readonly lock: string;
  constructor(locksmith: string, lock: string) {
    this.locksmith = locksmith;
    this.lock = lock;
  }
  toString(): string {
    return `task hosted by ${this.locksmith} under ${this.lock}`;
  }
}

/** What `host()` tells its force, so the force never releases the host's own hold (hazard H5). */
interface HostRecord {
  readonly owner: HostedTask;
  holding: boolean;
}

const kHost: unique symbol = Symbol('statesmith.locksmith.host');

/** A force's options once checked. */
interface Resolved {
  readonly hasInfo: boolean;
  readonly info: unknown;
  readonly owner: unknown;
  readonly signal: AbortSignal | undefined;
  readonly answerTimeoutMs: number;
  readonly purge: boolean;
  readonly host: HostRecord | undefined;
}

/** Locks being forced now, by any locksmith (keyed by lock identity; each entry lives for one force). */
const forcing = new Map<object, Locksmith>();

/** The hold each force in flight is about (see `LockKind.holdOf`), by lock identity. */
const holds = new Map<object, unknown>();

/** The hold the force of `lock` in flight is about; the hold in place now when none is (a subclass calling a fallback itself). */
function holdIn(kind: LockKind, lock: object): unknown {
  const key = kind.key(lock);
  return holds.has(key) ? holds.get(key) : kind.holdOf?.(lock);
}

/** The actor `Locksmith.attach` hands to the constructor it calls. */
let attaching: Actor<typeof locksmithLogic> | undefined;

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/**
 * True for a promise. Hooks' values are awaited only then: an `await` of a plain value
 * still costs a turn, and a force calls several hooks that answer synchronously by default.
 */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

function requireLockObject(name: string, lock: unknown): object {
  if ((typeof lock !== 'object' && typeof lock !== 'function') || lock === null) {
    throw new ArgumentTypeError(name, 'a lock (a Mutex, a SharedMutex, or an object with acquire(), release() and locked)', lock);
  }
  return lock;
}

/** The port to post a force request to, when the owner lives in another thread. */
function portOf(owner: unknown): PortLike | undefined {
  if (owner instanceof WorkerThread) return owner.worker;
  if (owner instanceof RemoteOwner) return owner.port;
  return isPortLike(owner) ? owner : undefined;
}

/** True when the owner has finished: a done task, a stopped actor, an exited worker. */
function ownerFinished(owner: unknown): boolean {
  if (owner instanceof WorkerThread) return owner.exitCode !== undefined;
  if (typeof owner !== 'object' || owner === null) return false;
  const candidate = owner as { done?: unknown; getSnapshot?: unknown; threadId?: unknown; postMessage?: unknown };
  if (candidate.done === true) return true;
  if (typeof candidate.getSnapshot === 'function') {
    const status = (candidate.getSnapshot as () => { status?: unknown } | undefined).call(owner)?.status;
    return status !== undefined && status !== 'active';
  }
  // A node:worker_threads Worker reports threadId -1 once it has exited.
  return typeof candidate.postMessage === 'function' && candidate.threadId === -1;
}

function errorFromWire(wire: WireError): Error {
  const error = new Error(wire.message);
  error.name = wire.name;
  Object.assign(error, { code: wire.code, critical: wire.critical });
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
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
export class Locksmith {
  /** Lock-class-specific steps, by exact constructor; shared by every locksmith class, as in the original. */
  static readonly handlers: Map<Function, ForceHandler> = new Map();

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
      const existing = Locksmith.handlers.get(target);
      if (!shadow && existing !== undefined && existing !== handler) {
        throw new ArgumentValueError('target', `a class without a force handler (${target.name} has another, and shadow is false)`, target);
      }
      Locksmith.handlers.set(target, handler);
      return target;
    };
  }

  /** The locksmith's name, shown to owners and in the inspector. */
  readonly name: string;
  /**
   * The locksmith's actor (`locksmithLogic`): `idle`, or `forcing` while a force is in
   * flight. It holds the operations in flight and the recognized locks; each force is its
   * child. This class is its engine (the negotiation and the hooks) and its thin client.
   */
  readonly actor: Actor<typeof locksmithLogic>;
  readonly #clock: Clock;
  #requests = 0;

  constructor(options?: LocksmithOptions) {
    const opts = optionalObject<LocksmithOptions>('options', options, ['name', 'clock']);
    this.name = opts.name === undefined ? 'locksmith' : requireNonEmptyString('options.name', opts.name);
    this.#clock = optionalClock('options.clock', opts.clock);
    const attached = attaching;
    attaching = undefined;
    this.actor =
      attached ?? startActor('locksmith', locksmithLogic, { input: { name: this.name, clock: this.#clock, engine: this }, id: `locksmith:${this.name}` });
  }

  /** A facade (and engine) for a locksmith actor that `locksmithLogic` started on its own. @internal */
  static attach(actor: AnyActorRef, name: string, clock: unknown): Locksmith {
    attaching = actor as Actor<typeof locksmithLogic>;
    return new Locksmith({ name, ...(clock === undefined ? {} : { clock: clock as Clock }) });
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

  /** Sends an operation's command and settles with its reply's value (or rejects with what it threw). */
  #op<R>(command: LocksmithCommand, ok: 'statesmith.locksmith.recognized' | 'statesmith.locksmith.forced' | 'statesmith.locksmith.hosted'): Promise<R> {
    // The command carries a token in-process; its reply, or its rejection (whose `command`
    // keeps it), carries it back, also when the command waited behind another.
    const token = {};
    return new Promise<R>((resolve, reject) => {
      const mine = (reply: unknown): boolean => (reply as { [kToken]?: unknown })[kToken] === token;
      const valueOf = (reply: unknown): unknown => (reply as { [kValue]?: unknown })[kValue];
      const done = (): void => {
        for (const s of subscriptions) s.unsubscribe();
      };
      // A locksmith actor that stops or fails answers every pending call at once.
      const ended = (): void => {
        const snapshot = this.actor.getSnapshot() as { status: string; value: unknown };
        if (snapshot.status === 'active') return;
        done();
        reject(new ActorStoppedError(this.actor.id, snapshot.status, snapshot.value));
      };
      const subscriptions = [
        this.actor.subscribe({ next: ended, error: ended, complete: ended }),
        this.actor.on(ok, (reply) => {
          if (!mine(reply)) return;
          done();
          if (reply.type === 'statesmith.locksmith.hosted' && reply.outcome !== 'completed') reject(valueOf(reply));
          else resolve(valueOf(reply) as R);
        }),
        this.actor.on('statesmith.locksmith.failed', (reply) => {
          if (!mine(reply)) return;
          done();
          const signal = (command as { signal?: AbortSignal }).signal;
          const value = valueOf(reply);
          // The caller's own abort is answered with its reason, as every wait is.
          reject(signal?.aborted && value === signal.reason ? value : typedFailure(value, reply.lock));
        }),
        this.actor.on('statesmith.rejected', (reply) => {
          if (!mine(reply.command)) return;
          done();
          reject(new RejectedError(reply));
        }),
      ];
      ended();
      this.actor.send({ ...command, [kToken]: token } as unknown as LocksmithCommand);
    });
  }

  /**
   * Lets this locksmith force `lock`: checks it is a lock (`FAILED_PRELIM`), asks a lock
   * with `acknowledgeLocksmith()` for its consent (`FAILED_ACK` when it says no or
   * throws), and remembers it (weakly). Unlike the original, a lock that consents is
   * recognized.
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
  async recognize(lock: object): Promise<RecognitionResult> {
    requireLockObject('lock', lock);
    return this.#op<RecognitionResult>({ type: 'statesmith.locksmith.recognize', lockRef: lock }, 'statesmith.locksmith.recognized');
  }

  /** The recognition itself, run by the actor's operation child. @internal */
  async recognizeNow(lock: object): Promise<RecognitionResult> {
    if (!this.preliminaryCheckLock(lock)) return RecognitionResult.FAILED_PRELIM;
    const key = (lockKindOf(lock) as LockKind).key(lock);
    const recognized = this.#table.recognized;
    if (recognized.has(key)) return RecognitionResult.ALREADY_RECOGNIZED;
    let consent: boolean;
    try {
      consent = await this.recognizeLock(lock);
    } catch (error) {
      if (isCritical(error)) throw new CriticalError(`${this.describe(lock)} raised a critical error when asked to be recognized`, { cause: error });
      getLogger().warn(`${this.describe(lock)} refused recognition by ${this.name}`, { error });
      return RecognitionResult.FAILED_ACK;
    }
    if (!consent) return RecognitionResult.FAILED_ACK;
    if (recognized.has(key)) return RecognitionResult.ALREADY_RECOGNIZED;
    recognized.add(key);
    return RecognitionResult.SUCCESS;
  }

  /**
   * Takes `lock` back from its holder; resolves with how (see {@link (ForceResult:variable)}).
   * Rejects with `signal.reason` when aborted, with a `CriticalError` when the owner
   * raised one, and with whatever a registered handler throws.
   */
  async force(lock: object, options?: ForceOptions): Promise<ForceResult> {
    requireLockObject('lock', lock);
    const opts = optionalObject<ForceOptions & { [kHost]: HostRecord }>('options', options, ['info', 'purgeWaiters', 'signal', 'answerTimeoutMs', 'owner']);
    const signal = optionalSignal('options.signal', opts.signal);
    const answerTimeoutMs = optionalDuration('options.answerTimeoutMs', opts.answerTimeoutMs, 1000);
    const purgeWaiters = optionalBoolean('options.purgeWaiters', opts.purgeWaiters, true);
    throwIfAborted(signal);
    return this.#op<ForceResult>(
      {
        type: 'statesmith.locksmith.force',
        lockRef: lock,
        answerTimeoutMs,
        purgeWaiters,
        ...('info' in opts ? { info: opts.info } : {}),
        ...(signal === undefined ? {} : { signal }),
        ...('owner' in opts ? { owner: opts.owner } : {}),
        ...(opts[kHost] === undefined ? {} : { [kHost]: opts[kHost] }),
      } as LocksmithCommand,
      'statesmith.locksmith.forced',
    );
  }

  /** The force itself, run by the actor's operation child; `run` is the force's (lazy) actor. @internal */
  async forceNow(run: ForceRunHandle, lock: object, options: Readonly<Record<string, unknown>>): Promise<ForceResult> {
    const opts = options as ForceOptions & { [kHost]?: HostRecord };
    const signal = opts.signal;
    const kind = lockKindOf(lock);
    const span = telemetry.enabled ? telemetry.sink.force(String((lock as { name?: unknown }).name ?? kind)) : undefined;
    try {
      throwIfAborted(signal);
      run.send('statesmith.force.start');
      const result = await this.#force(run, lock, kind, {
        hasInfo: 'info' in opts,
        info: opts.info,
        owner: opts.owner,
        signal,
        answerTimeoutMs: opts.answerTimeoutMs ?? 1000,
        purge: opts.purgeWaiters ?? true,
        host: opts[kHost],
      });
      span?.end(result.name);
      return result;
    } catch (error) {
      span?.end(isCritical(error) ? 'critical' : 'error', error);
      if (!run.finished) run.send(signal?.aborted && error === signal.reason ? 'statesmith.force.abort' : 'statesmith.force.fail');
      throw error;
    }
  }

  async #force(run: ForceRunHandle, lock: object, kind: LockKind | undefined, opts: Resolved): Promise<ForceResult> {
    const { signal } = opts;
    // A distributed lock asks its server who holds it, once, before the questions below.
    if (kind?.prepare !== undefined) await kind.prepare(lock);
    let forceable = kind !== undefined && this.canForceLockHeld(lock);
    if (isThenable(forceable)) forceable = await forceable;
    if (!forceable || kind === undefined) {
      run.send('statesmith.force.unforceable');
      return ForceResult.UNFORCEABLE;
    }
    throwIfAborted(signal);
    // Check and claim in one step: two forces of one lock can never both pass.
    const key = kind.key(lock);
    const other = forcing.get(key);
    if (other !== undefined) {
      run.send('statesmith.force.busy');
      if (other === this) return this.alreadyForcing(lock);
      await this.lockBusy(lock, other);
      return ForceResult.ALREADY_BEING_FORCED;
    }
    forcing.set(key, this);
    holds.set(key, kind.holdOf?.(lock));
    try {
      run.send('statesmith.force.recognized');
      let info = opts.hasInfo ? opts.info : this.getInfo(lock);
      if (isThenable(info)) info = await info;
      throwIfAborted(signal);
      try {
        return await this.#release(run, lock, kind, info, opts);
      } finally {
        // A compel on a server is done before the force answers.
        if (kind.flush !== undefined) await kind.flush(lock);
        const purged = opts.purge ? this.purgeWaiters(lock, info) : undefined;
        if (isThenable(purged)) await purged;
      }
    } finally {
      if (forcing.get(key) === this) {
        forcing.delete(key);
        holds.delete(key);
      }
    }
  }

  /** The `releasing` step: the locksmith's own release, which a lock with an owner refuses. */
  async #release(run: ForceRunHandle, lock: object, kind: LockKind, info: unknown, opts: Resolved): Promise<ForceResult> {
    const host = opts.host;
    // The lock came free, or passed to the host's own acquire, while the info was made.
    if (!kind.isLocked(lock) || this.#heldByHost(kind, lock, host)) {
      run.send('statesmith.force.released');
      return ForceResult.RELEASED;
    }
    const owner = opts.owner ?? this.findOwner(lock);
    let released: unknown;
    try {
      released = inspection.forcing(forceRunId(run), () => kind.release(lock, owner, this.name, info, holdIn(kind, lock)));
      if (isThenable(released)) released = await released;
    } catch (error) {
      if (isCritical(error)) throw new CriticalError(`releasing ${kind.describe(lock)} raised a critical error`, { cause: error });
      released = OWNED;
    }
    if (released === OWNED) {
      run.send('statesmith.force.releaseRefused');
      return this.#negotiate(run, lock, kind, info, owner, opts);
    }
    if (released === false) {
      run.send('statesmith.force.releasedWithFalse');
      return this.releaseReturnedFalse(lock);
    }
    run.send('statesmith.force.released');
    return ForceResult.RELEASED;
  }

  /** The `requesting` and `awaitingAnswer` steps, and `compelling` when the owner will not let go. */
  async #negotiate(run: ForceRunHandle, lock: object, kind: LockKind, info: unknown, knownOwner: unknown, opts: Resolved): Promise<ForceResult> {
    const host = opts.host;
    // As in the original, a lock that names no owner is presumed held by the caller's own actor or task.
    const owner = knownOwner ?? currentOwner();
    if (owner === undefined) {
      run.send('statesmith.force.noOwner');
      return this.throwFallback(lock);
    }
    if (ownerFinished(owner)) {
      run.send('statesmith.force.ownerCompleted');
      return this.eagerFallback(lock, owner, info);
    }
    const compel = (): ForceResult => {
      this.#compel(kind, lock, owner, info, host, run);
      run.send('statesmith.force.released');
      return ForceResult.RELEASED;
    };
    const respond = servers.get(owner);
    const port = respond ? undefined : portOf(owner);
    if (respond === undefined && port === undefined) {
      getLogger().info(`${describeOwner(owner)} does not serve force requests; ${this.name} takes ${kind.describe(lock)}`);
      run.send('statesmith.force.unserved');
      return compel();
    }
    const request = new LockForceRequest({
      requestId: `${this.name}#${++this.#requests}`,
      requester: this.name,
      lock,
      lockName: kind.describe(lock),
      info,
    });
    const asked = respond ? { reply: respond(request), cancel: () => undefined } : this.#ask(port as PortLike, request, kind);
    run.send('statesmith.force.sent');
    let reply: Reply | 'timeout';
    try {
      reply = await this.#awaitReply(asked.reply, opts.answerTimeoutMs, opts.signal);
    } finally {
      asked.cancel();
    }
    switch (reply) {
      case 'timeout':
        getLogger().warn(`${describeOwner(owner)} did not answer ${this.name} within ${opts.answerTimeoutMs} ms; taking ${kind.describe(lock)}`);
        run.send('statesmith.force.answerTimeout');
        return this.#afterOwner(lock, compel());
      default:
        break;
    }
    switch (reply.kind) {
      case 'release':
      case 'answer':
        // The owner consented: free the lock for it (a late answer never gets here).
        this.#compel(kind, lock, owner, info, host, run);
        const heard = this.answerReceived(lock, reply.kind === 'answer' ? reply.answer : undefined);
        if (isThenable(heard)) await heard;
        run.send('statesmith.force.answered');
        return this.#afterOwner(lock, ForceResult.SUCCESS);
      case 'refuse':
        run.send('statesmith.force.ownerRefused');
        return ForceResult.FAILURE;
      case 'busy':
        run.send('statesmith.force.busy');
        await this.lockBusy(lock, reply.other);
        return ForceResult.ALREADY_BEING_FORCED;
      case 'propagated':
        await this.taskReraisedRequest(lock, request);
        run.send('statesmith.force.ownerFailed');
        return this.#afterOwner(lock, compel());
      case 'error': {
        const error = isErrorWire(reply.error) ? errorFromWire(reply.error) : reply.error;
        if (reply.critical) {
          const result = await this.taskRaisedCritical(lock, error);
          run.send('statesmith.force.ownerRefused');
          return result;
        }
        await this.taskRaisedOther(lock, error);
        run.send('statesmith.force.ownerFailed');
        return this.#afterOwner(lock, compel());
      }
    }
  }

  /** The handler step of the original: a lock class's registered handler, after its owner let go. */
  #afterOwner(lock: object, result: ForceResult): ForceResult | Promise<ForceResult> {
    const handler = Locksmith.handlers.get(lock.constructor);
    if (typeof handler !== 'function') return result;
    return this.#runHandler(handler, lock, result);
  }

  async #runHandler(handler: ForceHandler, lock: object, result: ForceResult): Promise<ForceResult> {
    try {
      await handler(lock);
    } catch (error) {
      if (isCritical(error)) throw new CriticalError(`the force handler of ${this.describe(lock)} raised a critical error`, { cause: error });
      throw error;
    }
    return result;
  }

  #heldByHost(kind: LockKind, lock: object, host: HostRecord | undefined): boolean {
    return host !== undefined && (host.holding || kind.ownerOf(lock) === host.owner);
  }

  /** Frees the lock over its owner's head, unless it has meanwhile passed to someone else. */
  #compel(kind: LockKind, lock: object, owner: unknown, info: unknown, host: HostRecord | undefined, run?: ForceRunHandle): void {
    if (!kind.isLocked(lock) || this.#heldByHost(kind, lock, host)) return;
    const holder = kind.ownerOf(lock);
    if (holder !== undefined && holder !== owner) return;
    inspection.forcing(forceRunId(run), () => kind.compel(lock, this.name, info, holdIn(kind, lock)));
  }

  #ask(port: PortLike, request: LockForceRequest, kind: LockKind): { reply: Promise<Reply>; cancel(): void } {
    let listener: ((message: unknown) => void) | undefined;
    const reply = new Promise<Reply>((resolve) => {
      listener = (message: unknown): void => {
        const m = message as Partial<ReplyMessage> | null;
        if (m?.type === REPLY && m.requestId === request.requestId && m.reply) resolve(m.reply);
      };
      port.on('message', listener);
    });
    const message: RequestMessage = {
      type: REQUEST,
      requestId: request.requestId,
      requester: this.name,
      lock: kind.toWire(request.lock as object),
      lockName: kind.describe(request.lock as object),
      info: request.info,
    };
    try {
      port.postMessage(message);
    } catch {
      // An info that cannot be cloned travels as text.
      port.postMessage({ ...message, info: String(request.info) });
    }
    return { reply, cancel: () => void (listener && port.off('message', listener)) };
  }

  #awaitReply(reply: Promise<Reply>, ms: number, signal: AbortSignal | undefined): Promise<Reply | 'timeout'> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (): boolean => {
        if (done) return false;
        done = true;
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const onAbort = (): void => void (finish() && reject(signal?.reason));
      const timer = Number.isFinite(ms) ? this.#clock.setTimeout(() => finish() && resolve('timeout'), ms) : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      reply.then(
        (value) => finish() && resolve(value),
        (error: unknown) => finish() && reject(error),
      );
    });
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
    return this.#op<T>(
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

  /** The hosting itself, run by the actor's operation child (its force is a command of its own). @internal */
  async hostNow(task: (signal: AbortSignal) => unknown, lock: object, options: Readonly<Record<string, unknown>>): Promise<unknown> {
    const opts = options as HostOptions;
    const kind = lockKindOf(lock) as LockKind;
    const signal = opts.signal;
    const forceTimeoutMs = opts.forceTimeoutMs ?? 1000;
    const acquireTimeoutMs = opts.acquireTimeoutMs ?? 100;
    const taskTimeoutMs = opts.taskTimeoutMs ?? Infinity;
    const answerTimeoutMs = opts.answerTimeoutMs ?? forceTimeoutMs / 2;
    const purgeWaiters = opts.purgeWaiters ?? false;
    throwIfAborted(signal);
    const clock = this.#clock;
    const name = kind.describe(lock);
    const record: HostRecord = { owner: new HostedTask(this.name, name), holding: false };

    // One controller for the force and the acquire: aborting it (a deadline, the caller's
    // signal, a failure) ends the force and withdraws the acquire, which then can never
    // take the lock (H4).
    const stage = new AbortController();
    const onAbort = (): void => stage.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const bound = (ms: number, message: () => string): unknown =>
      Number.isFinite(ms) ? clock.setTimeout(() => stage.abort(new TimeoutError(message())), ms) : undefined;
    const unbound = (timer: unknown): void => void (timer !== undefined && clock.clearTimeout(timer));

    // Queue first (at the front of a Mutex's line), so the freed lock comes straight here.
    let hold: HostHold | undefined;
    const acquiring = kind.acquire(lock, record.owner, stage.signal).then((taken): HostHold => {
      hold = taken;
      record.holding = true;
      // A lock kind that grants after the withdrawal: give it straight back.
      if (stage.signal.aborted) {
        taken.release();
        throw stage.signal.reason;
      }
      return taken;
    });
    acquiring.catch(() => undefined);

    let taken: HostHold;
    try {
      let result: ForceResult;
      let timer = bound(forceTimeoutMs, () => `${this.name}.host: forcing ${name} took longer than ${forceTimeoutMs} ms`);
      try {
        result = await this.force(lock, {
          purgeWaiters,
          signal: stage.signal,
          answerTimeoutMs,
          [kHost]: record,
          ...('owner' in opts ? { owner: opts.owner } : {}),
          ...('info' in opts ? { info: opts.info } : {}),
        } as ForceOptions);
      } finally {
        unbound(timer);
      }
      if (hold !== undefined && !stage.signal.aborted) {
        // The force handed the lock straight to the host's acquire.
        taken = hold;
      } else {
        timer = bound(acquireTimeoutMs, () => `${this.name}.host: failed to acquire ${name} within ${acquireTimeoutMs} ms (force result: ${result.name})`);
        try {
          taken = await raceSignal(acquiring, stage.signal);
        } finally {
          unbound(timer);
        }
      }
    } catch (error) {
      stage.abort(error);
      (hold as HostHold | undefined)?.release();
      signal?.removeEventListener('abort', onAbort);
      throw error;
    }

    this.patchOwner(record.owner, lock);
    // The task's signal is the stage's: it aborts with the caller's signal, at the task
    // deadline, or when the lock is taken from the task in turn (the hold adopts it).
    let timedOut = false;
    let relayed: AbortSignal | undefined;
    const relay = (): void => stage.abort(relayed?.reason);
    if (taken.adopt?.(stage) !== true) {
      relayed = taken.signal;
      relayed?.addEventListener('abort', relay, { once: true });
    }
    const timer = Number.isFinite(taskTimeoutMs)
      ? clock.setTimeout(() => {
          timedOut = true;
          stage.abort(new TimeoutError(`${this.name}.host: the task under ${name} ran longer than ${taskTimeoutMs} ms`));
        }, taskTimeoutMs)
      : undefined;
    const taskSignal = stage.signal;
    const cleanup = (): void => {
      unbound(timer);
      relayed?.removeEventListener('abort', relay);
      signal?.removeEventListener('abort', onAbort);
    };
    try {
      return await this.wrapTask(task, taskSignal, record.owner);
    } catch (error) {
      if (timedOut && error !== taskSignal.reason) {
        throw new TimeoutError(`${this.name}.host: the task under ${name} ran longer than ${taskTimeoutMs} ms`, { cause: error });
      }
      if (!timedOut && isCancellation(error, taskSignal)) {
        // Cancelled (the caller's signal, or the lock taken from the task): the caller hears why, as every wait does.
        const reason: unknown = taskSignal.reason;
        const thrown =
          reason !== null && typeof reason === 'object'
            ? reason
            : new CancelledError(`${this.name}.host: the task under ${name} was cancelled (${String(reason)})`, { cause: error });
        hostCancellations.add(thrown);
        throw thrown;
      }
      throw error;
    } finally {
      cleanup();
      taken.release();
    }
  }

  /** `String(lock)` for messages. */
  protected describe(lock: object): string {
    return lockKindOf(lock)?.describe(lock) ?? describeObject(lock);
  }

  // ---- The hooks of asyncutils' LocksmithBase, overridable by subclasses ----

  /** Is `lock` a lock at all? Default: a `Mutex`, a `SharedMutex`, or an object with `acquire`, `release` and `locked`. */
  protected preliminaryCheckLock(lock: object): boolean {
    return lockKindOf(lock) !== undefined;
  }

  /** Does the lock consent? Default: its `acknowledgeLocksmith(this)` if it has one, otherwise yes. */
  protected recognizeLock(lock: object): boolean | Promise<boolean> {
    const acknowledge = (lock as { acknowledgeLocksmith?: unknown }).acknowledgeLocksmith;
    if (typeof acknowledge !== 'function') return true;
    return Promise.resolve(acknowledge.call(lock, this)).then((answer) => answer === true);
  }

  /** May the lock be forced now? Default: recognized and held. */
  protected canForceLockHeld(lock: object): boolean | Promise<boolean> {
    const kind = lockKindOf(lock);
    return kind !== undefined && this.#table.recognized.has(kind.key(lock)) && kind.isLocked(lock);
  }

  /** The info when the caller gives none. */
  protected getInfo(lock: object): unknown {
    return `potential deadlock involving ${lock.constructor?.name ?? 'lock'} ${this.describe(lock)}`;
  }

  /** Who holds the lock. Default: the `owner` the lock reports. */
  protected findOwner(lock: object): unknown {
    return lockKindOf(lock)?.ownerOf(lock);
  }

  /** Records the hosted task as the holder, for locks that keep an owner field of their own. Default: nothing (the acquire named it). */
  protected patchOwner(_owner: unknown, _lock: object): void {}

  /** Rejects the lock's waiters after a force (`purgeWaiters: true`). */
  protected purgeWaiters(lock: object, info: unknown): void | Promise<void> {
    const reason = new LockForcedWaiterError(`${this.describe(lock)} was forced by ${this.name}; its waiters were dropped`, info);
    lockKindOf(lock)?.purge(lock, reason);
  }

  /** The lock refused the locksmith's release and no owner is known. */
  protected throwFallback(_lock: object): ForceResult | Promise<ForceResult> {
    return ForceResult.NO_CURRENT_TASK;
  }

  /**
   * The owner finished without releasing. Default: free the lock (nobody else ever
   * could) and say so with `OWNER_COMPLETED`.
   */
  protected eagerFallback(lock: object, owner: unknown, info: unknown): ForceResult | Promise<ForceResult> {
    const kind = lockKindOf(lock);
    if (kind && kind.isLocked(lock) && (kind.ownerOf(lock) === undefined || kind.ownerOf(lock) === owner))
      kind.compel(lock, this.name, info, holdIn(kind, lock));
    return ForceResult.OWNER_COMPLETED;
  }

  /** `release()` returned `false`. */
  protected releaseReturnedFalse(_lock: object): ForceResult | Promise<ForceResult> {
    return ForceResult.RELEASED_WITH_FALSE;
  }

  /** This locksmith is already forcing the lock. */
  protected alreadyForcing(_lock: object): ForceResult | Promise<ForceResult> {
    return ForceResult.ALREADY_BEING_FORCED;
  }

  /** Another locksmith is forcing the lock (or the owner is answering one). Default: log at info. */
  protected lockBusy(lock: object, other: Locksmith | string): void | Promise<void> {
    const by = typeof other === 'string' ? other : other.name;
    getLogger().info(`${this.name} found ${this.describe(lock)} already being forced by ${by}`);
  }

  /** The owner answered. Default: log at info. */
  protected answerReceived(lock: object, answer: unknown): void | Promise<void> {
    getLogger().info(`the owner of ${this.describe(lock)} answered ${this.name}`, { answer });
  }

  /** The owner threw the request back. Default: log a warning (the lock is then compelled). */
  protected taskReraisedRequest(lock: object, _request: LockForceRequest): void | Promise<void> {
    getLogger().warn(`the owner of ${this.describe(lock)} threw ${this.name}'s force request back; taking the lock`);
  }

  /** The owner raised an ordinary error. Default: log it (the lock is then compelled). */
  protected taskRaisedOther(lock: object, error: unknown): void | Promise<void> {
    getLogger().error(`the owner of ${this.describe(lock)} raised while answering ${this.name}; taking the lock`, { error });
  }

  /**
   * The owner raised a critical error. Default: reject the force with a `CriticalError`
   * (the cause is the owner's); a subclass may return `FAILURE` instead.
   */
  protected taskRaisedCritical(lock: object, error: unknown): ForceResult | Promise<ForceResult> {
    throw new CriticalError(`the owner of ${this.describe(lock)} raised a critical error while answering ${this.name}`, { cause: error });
  }

  /** Runs the hosted task as the lock's owner. */
  protected wrapTask<T>(task: (signal: AbortSignal) => T | Promise<T>, signal: AbortSignal, owner: unknown): Promise<T> {
    return runAsOwner(owner, async () => task(signal));
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(Locksmith, (locksmith) => `[Locksmith ${locksmith.name}]`);

/** What the waiters of a forced lock are rejected with (when the force purges them). `code` is `ERR_LOCK_FORCED`. */
export class LockForcedWaiterError extends Error {
  /** The class name, `'LockForcedWaiterError'`, as Node's own errors have it. */
  override readonly name = 'LockForcedWaiterError';
  /** A stable code to branch on, always `'ERR_LOCK_FORCED'`; messages may change, codes do not. */
  readonly code = 'ERR_LOCK_FORCED';
  /** The force's info: why the lock was forced. */
  readonly info: unknown;
  constructor(message: string, info: unknown) {
    super(message);
    this.info = info;
  }
}

function isErrorWire(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && !(value instanceof Error) && typeof (value as WireError).message === 'string' && 'critical' in value;
}

function describeObject(value: object): string {
  return value.constructor?.name ?? 'object';
}

/**
 * Where a force run's actor is (its locksmith's session id and its child id), while
 * capture is on: the lock timeline links to it. Read without starting the actor, which
 * from inside the locksmith's own step could only start on its own, outside the tree.
 */
function forceRunId(run: ForceRunHandle | undefined): { readonly parentId: string; readonly id: string } | undefined {
  if (run === undefined || !inspection.enabled) return undefined;
  return (run as { readonly place?: { readonly parentId: string; readonly id: string } }).place;
}

/**
 * A failed recognize or force as a typed error: statesmith's own errors (they have a string
 * `code`) as they are; anything a user's lock threw becomes an `ArgumentValueError` naming
 * the lock, with the thrown value as its `cause`.
 */
function typedFailure(value: unknown, lock: string): unknown {
  try {
    if (value instanceof Error && (typeof (value as { code?: unknown }).code === 'string' || value.name === 'AbortError' || value.name === 'TimeoutError'))
      return value;
  } catch {
    // a hostile value: wrapped below
  }
  const error = new ArgumentValueError('lock', `a lock whose acquire(), release() and locked can be used (${lock} threw)`, value);
  Object.defineProperty(error, 'cause', { value, enumerable: false, configurable: true, writable: true });
  return error;
}
