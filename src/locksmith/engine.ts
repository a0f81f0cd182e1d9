/**
 * The locksmith's engine: the negotiation a force runs (recognize, release, request, await
 * the answer, compel), driven by the locksmith actor's operations. It calls the hooks of
 * its `LocksmithHooks` (the `Locksmith` facade, or a plain set for an actor started from
 * `locksmithLogic`) at each step.
 *
 * Internal to statesmith (not exported from the package).
 */
import type { AnyActorRef } from 'xstate';
import type { Clock } from '../clock.ts';
import { CriticalError, isCritical } from '../errors.ts';
import { inspection } from '../inspect/capture.ts';
import { getLogger } from '../logger.ts';
import { describeOwner } from '../runtime/describeOwner.ts';
import { currentOwner } from '../runtime/ownerContext.ts';
import { telemetry } from '../telemetry/hooks.ts';
import { hostNow, kHost, type HostRecord } from './host.ts';
import { forceHandlers, kEngine, type ForceHandler, type LocksmithHooks } from './hooks.ts';
import { forcing, holdIn, holds } from './inFlight.ts';
import { OWNED, lockKindOf, type LockKind } from './lockKinds.ts';
import type { Locksmith } from './Locksmith.ts';
import type { ForceRunHandle, LocksmithTable } from './locksmithLogic.ts';
import { RemoteOwner } from '../coordination/lock/forcing.ts';
import { WorkerThread } from '../threads/WorkerThread.ts';
import {
  LockForceRequest,
  REPLY,
  REQUEST,
  errorFromWire,
  isErrorWire,
  isPortLike,
  servers,
  type PortLike,
  type Reply,
  type ReplyMessage,
  type RequestMessage,
} from './protocol.ts';
import { ForceResult, RecognitionResult } from './results.ts';
import type { ForceOptions } from './Locksmith.ts';

/** The hooks as the engine calls them (they are protected on the class, for subclasses). */
type HookCalls = { [K in keyof LocksmithHooks]: LocksmithHooks[K] } & {
  describe(lock: object): string;
  preliminaryCheckLock(lock: object): boolean;
  recognizeLock(lock: object): boolean | Promise<boolean>;
  canForceLockHeld(lock: object): boolean | Promise<boolean>;
  getInfo(lock: object): unknown;
  findOwner(lock: object): unknown;
  patchOwner(owner: unknown, lock: object): void;
  purgeWaiters(lock: object, info: unknown): void | Promise<void>;
  throwFallback(lock: object): ForceResult | Promise<ForceResult>;
  eagerFallback(lock: object, owner: unknown, info: unknown): ForceResult | Promise<ForceResult>;
  releaseReturnedFalse(lock: object): ForceResult | Promise<ForceResult>;
  alreadyForcing(lock: object): ForceResult | Promise<ForceResult>;
  lockBusy(lock: object, other: Locksmith | string): void | Promise<void>;
  answerReceived(lock: object, answer: unknown): void | Promise<void>;
  taskReraisedRequest(lock: object, request: LockForceRequest): void | Promise<void>;
  taskRaisedOther(lock: object, error: unknown): void | Promise<void>;
  taskRaisedCritical(lock: object, error: unknown): ForceResult | Promise<ForceResult>;
  wrapTask<T>(task: (signal: AbortSignal) => T | Promise<T>, signal: AbortSignal, owner: unknown): Promise<T>;
};

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

export class LocksmithEngine {
  readonly #self: AnyActorRef;
  readonly #hooks: HookCalls;
  readonly clock: Clock;
  #requests = 0;

  constructor(self: AnyActorRef, hooks: LocksmithHooks, clock: Clock) {
    this.#self = self;
    this.#hooks = hooks as unknown as HookCalls;
    this.clock = clock;
    hooks[kEngine] = this;
  }

  get name(): string {
    return this.#hooks.name;
  }

  /** The hooks this engine runs (the `Locksmith` facade when there is one). */
  get hooks(): LocksmithHooks {
    return this.#hooks as unknown as LocksmithHooks;
  }

  #table(): LocksmithTable {
    return (this.#self.getSnapshot() as { context: { table: LocksmithTable } }).context.table;
  }

  /** True when `lock` has been recognized by this locksmith. */
  isRecognized(lock: object): boolean {
    const kind = lockKindOf(lock);
    return kind !== undefined && this.#table().recognized.has(kind.key(lock));
  }

  /** Runs the hosting (the actor's `host` operation), whose force is `run`. */
  hostNow(run: ForceRunHandle, task: (signal: AbortSignal) => unknown, lock: object, options: Readonly<Record<string, unknown>>): Promise<unknown> {
    return hostNow(this, run, task, lock, options);
  }

  /** The hooks as the hosting calls them. */
  get calls(): HookCalls {
    return this.#hooks;
  }

  /** The recognition itself, run by the actor's operation child. */
  async recognizeNow(lock: object): Promise<RecognitionResult> {
    if (!this.#hooks.preliminaryCheckLock(lock)) return RecognitionResult.FAILED_PRELIM;
    const key = (lockKindOf(lock) as LockKind).key(lock);
    const recognized = this.#table().recognized;
    if (recognized.has(key)) return RecognitionResult.ALREADY_RECOGNIZED;
    let consent: boolean;
    try {
      consent = await this.#hooks.recognizeLock(lock);
    } catch (error) {
      if (isCritical(error)) throw new CriticalError(`${this.#hooks.describe(lock)} raised a critical error when asked to be recognized`, { cause: error });
      getLogger().warn(`${this.#hooks.describe(lock)} refused recognition by ${this.name}`, { error });
      return RecognitionResult.FAILED_ACK;
    }
    if (!consent) return RecognitionResult.FAILED_ACK;
    if (recognized.has(key)) return RecognitionResult.ALREADY_RECOGNIZED;
    recognized.add(key);
    return RecognitionResult.SUCCESS;
  }

  /** The force itself, run by the actor's operation child; `run` is the force's (lazy) actor. */
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
    let forceable = kind !== undefined && this.#hooks.canForceLockHeld(lock);
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
      if (other === this.#hooks) return this.#hooks.alreadyForcing(lock);
      await this.#hooks.lockBusy(lock, other as Locksmith);
      return ForceResult.ALREADY_BEING_FORCED;
    }
    forcing.set(key, this.#hooks);
    holds.set(key, kind.holdOf?.(lock));
    try {
      run.send('statesmith.force.recognized');
      let info = opts.hasInfo ? opts.info : this.#hooks.getInfo(lock);
      if (isThenable(info)) info = await info;
      throwIfAborted(signal);
      try {
        return await this.#release(run, lock, kind, info, opts);
      } finally {
        // A compel on a server is done before the force answers.
        if (kind.flush !== undefined) await kind.flush(lock);
        const purged = opts.purge ? this.#hooks.purgeWaiters(lock, info) : undefined;
        if (isThenable(purged)) await purged;
      }
    } finally {
      if (forcing.get(key) === this.#hooks) {
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
    const owner = opts.owner ?? this.#hooks.findOwner(lock);
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
      return this.#hooks.releaseReturnedFalse(lock);
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
      return this.#hooks.throwFallback(lock);
    }
    if (ownerFinished(owner)) {
      run.send('statesmith.force.ownerCompleted');
      return this.#hooks.eagerFallback(lock, owner, info);
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
        const heard = this.#hooks.answerReceived(lock, reply.kind === 'answer' ? reply.answer : undefined);
        if (isThenable(heard)) await heard;
        run.send('statesmith.force.answered');
        return this.#afterOwner(lock, ForceResult.SUCCESS);
      case 'refuse':
        run.send('statesmith.force.ownerRefused');
        return ForceResult.FAILURE;
      case 'busy':
        run.send('statesmith.force.busy');
        await this.#hooks.lockBusy(lock, reply.other);
        return ForceResult.ALREADY_BEING_FORCED;
      case 'propagated':
        await this.#hooks.taskReraisedRequest(lock, request);
        run.send('statesmith.force.ownerFailed');
        return this.#afterOwner(lock, compel());
      case 'error': {
        const error = isErrorWire(reply.error) ? errorFromWire(reply.error) : reply.error;
        if (reply.critical) {
          const result = await this.#hooks.taskRaisedCritical(lock, error);
          run.send('statesmith.force.ownerRefused');
          return result;
        }
        await this.#hooks.taskRaisedOther(lock, error);
        run.send('statesmith.force.ownerFailed');
        return this.#afterOwner(lock, compel());
      }
    }
  }

  /** The handler step of the original: a lock class's registered handler, after its owner let go. */
  #afterOwner(lock: object, result: ForceResult): ForceResult | Promise<ForceResult> {
    const handler = forceHandlers.get(lock.constructor);
    if (typeof handler !== 'function') return result;
    return this.#runHandler(handler, lock, result);
  }

  async #runHandler(handler: ForceHandler, lock: object, result: ForceResult): Promise<ForceResult> {
    try {
      await handler(lock);
    } catch (error) {
      if (isCritical(error)) throw new CriticalError(`the force handler of ${this.#hooks.describe(lock)} raised a critical error`, { cause: error });
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
        if (timer !== undefined) this.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const onAbort = (): void => void (finish() && reject(signal?.reason));
      const timer = Number.isFinite(ms) ? this.clock.setTimeout(() => finish() && resolve('timeout'), ms) : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      reply.then(
        (value) => finish() && resolve(value),
        (error: unknown) => finish() && reject(error),
      );
    });
  }
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

/**
 * Where a force run's actor is (its locksmith's session id and its child id), while
 * capture is on: the lock timeline links to it. Read without starting the actor, which
 * from inside the locksmith's own step could only start on its own, outside the tree.
 */
function forceRunId(run: ForceRunHandle | undefined): { readonly parentId: string; readonly id: string } | undefined {
  if (run === undefined || !inspection.enabled) return undefined;
  return (run as { readonly place?: { readonly parentId: string; readonly id: string } }).place;
}
