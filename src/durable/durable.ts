/**
 * `durable(logic, options)`: any XState logic whose snapshot survives its process. After a
 * crash, `createActor(durable(…))` comes back where the last incarnation was: its state,
 * its context, its children, and its armed delayed events as wall-clock deadlines.
 *
 * @module
 */
import type { ActorLogic, ActorSystem, AnyActorLogic, AnyActorRef, AnyActorScope, AnyEventObject, EventObject, InputFrom, Snapshot } from 'xstate';
import { MAX_TIMER_MS, kInternal } from '../../machines/protocol.ts';
import { answerFromScope, rejectionOf } from '../runtime/scopeReply.ts';
import type { Coordinator } from '../coordination/Coordinator.ts';
import type { DistributedLockHandle } from '../coordination/types.ts';
import { ArgumentTypeError, ArgumentValueError, DurableError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { optionalObject, requireNonEmptyString } from '../runtime/validate.ts';
import { randomBytes } from 'node:crypto';
import { OWNER_MARKER, scanMarked, sendSignal } from '../subprocess/processTree.ts';
import {
  PICTURE_MARK,
  expectChildRestore,
  isPlainJson,
  isSavedPicture,
  kIdempotent,
  persistenceOf,
  setOwnerToken,
  setSaveBarrier,
  type ChildRevival,
  type InterruptedPolicy,
  type InterruptedWork,
  type Revived,
} from '../runtime/persistence.ts';
import { openStore, type SnapshotStore, type StoredSnapshot } from './store.ts';

/** Options of {@link durable}. */
export interface DurableOptions {
  /** Where the snapshots go: a store from {@link openStore}, or its URL (opened on first use, shared by the durable actors of this process that name it, closed when the last of them stops). */
  readonly store: SnapshotStore | string;
  /** The actor's id in the store: one id, one actor, across incarnations. */
  readonly id: string;
  /** The machine's version: a snapshot saved by another goes through `migrate`, or is refused (`ERR_SNAPSHOT_VERSION`). */
  readonly version: string | number;
  /** Turns a snapshot saved by `fromVersion` into one of this version's. */
  readonly migrate?: (snapshot: unknown, fromVersion: string | number) => unknown;
  /**
   * Fences the store: the actor holds the lock `durable/<id>` while it runs, restores only
   * once it holds it with a fence larger than the snapshot's, and saves under that fence, so
   * a stale incarnation (a frozen process that wakes up) can never overwrite a newer one.
   * Needs a started coordinator on a lease-based backend (Redis, etcd, `sqlite://`): a frozen
   * process keeps its PostgreSQL or MySQL session, and with it the lock.
   */
  readonly coordinator?: Coordinator;
  /**
   * What becomes of a promise child (`fromPromise`) that was running when the process ended
   * and is not marked {@link idempotent}: `'abandon'` (default) its invoker hears it ended with
   * `ERR_INTERRUPTED` (its `onError`), once; `'retry'` it runs again from the top, with the same
   * input; `'escalate'` the durable actor fails with `ERR_INTERRUPTED`, so its parent or
   * supervisor decides (at every restart, until the snapshot is migrated or deleted).
   */
  readonly onInterrupted?: 'abandon' | 'retry' | 'escalate';
}

const KEYS = ['store', 'id', 'version', 'migrate', 'coordinator', 'onInterrupted'] as const;

/** A delayed event as it is saved: who sends it to whom (paths of child ids from the durable actor), and when it is due. */
interface SavedTimer {
  readonly source: readonly string[];
  readonly target: readonly string[];
  readonly event: EventObject;
  readonly id: string;
  /** Milliseconds since 1970. */
  readonly deadline: number;
}

/** What the store holds for a durable actor. */
interface Saved {
  readonly inner: unknown;
  readonly timers: readonly SavedTimer[];
  /** The token every subprocess started under the actor carries (`STATESMITH_OWNER`): the next incarnation ends what a killed one left running. */
  readonly owner?: string;
}

/** What a durable actor's snapshot shows of its durability. */
export interface DurableContext {
  /** The actor's id in the store. */
  readonly id: string;
  /** The machine version it runs. */
  readonly version: string | number;
  /** The fence it runs under (a decimal string), or null without a coordinator. */
  readonly fence: string | null;
  /** True when it came back from a saved snapshot, false when it started fresh. */
  readonly restored: boolean;
  /** When the snapshot it came back from was saved (ms since 1970), or null. */
  readonly restoredFrom: number | null;
  /** The version of the snapshot it came back from, before any migration, or null. */
  readonly restoredVersion: string | number | null;
  /** How many delayed events it re-armed on restore. */
  readonly timersRestored: number;
}

/** The snapshot of a durable actor: its lifecycle, and the inner actor's snapshot. */
export type DurableSnapshot = Snapshot<unknown> & DurableView;

/** What a durable actor's snapshot shows besides its status. */
export interface DurableView {
  /** `recovering` (loading its snapshot, taking its fence), `running`, or `fenced` (a newer incarnation took over). */
  readonly value: 'recovering' | 'running' | 'fenced';
  /** What it restored from, and the fence it runs under. */
  readonly context: DurableContext;
  /** The inner logic's snapshot; undefined while recovering. */
  readonly inner: Snapshot<unknown> | undefined;
  /** The inner actor's children (they are the durable actor's children). */
  readonly children: Readonly<Record<string, AnyActorRef>>;
}

/** The logic `durable(logic)` returns: it takes `logic`'s input and passes any event on. */
export type DurableLogic<TLogic extends AnyActorLogic> = ActorLogic<DurableSnapshot, AnyEventObject, InputFrom<TLogic>, ActorSystem<any>, EventObject>;

interface State extends DurableView {
  readonly status: 'active' | 'done' | 'error' | 'stopped';
  readonly output: unknown;
  readonly error: unknown;
  readonly input: unknown;
}

const RESTORED = 'statesmith.durable.restored';
const RECOVERY_FAILED = 'statesmith.durable.recoveryFailed';
const FENCED = 'statesmith.durable.fenced';
const REARM = 'statesmith.durable.rearm';
const SNAPSHOT_FAILED = 'statesmith.durable.snapshotFailed';
/** Marks the durable actor's own events (statesmith's one internal mark): no message from outside can carry it. */
const kOwn: typeof kInternal = kInternal;

/**
 * Stores opened from a URL, shared by every durable actor of this process that names the
 * same URL (10,000 actors on one file are one connection), closed when the last one ends.
 */
const shared = new Map<string, { store: Promise<SnapshotStore>; users: number }>();

async function shareStore(url: string): Promise<SnapshotStore> {
  let entry = shared.get(url);
  if (entry === undefined) {
    const opening = openStore(url);
    entry = { store: opening, users: 0 };
    shared.set(url, entry);
    // A store that failed to open is not kept: the next actor tries again.
    opening.catch(() => {
      if (shared.get(url) === entry) shared.delete(url);
    });
  }
  entry.users++;
  try {
    return await entry.store;
  } catch (error) {
    entry.users--;
    throw error;
  }
}

async function releaseStore(url: string): Promise<void> {
  const entry = shared.get(url);
  if (entry === undefined || --entry.users > 0) return;
  shared.delete(url);
  await (await entry.store).close();
}

/** What one durable actor keeps outside its snapshot: its store, its fence, its pending save. */
interface Runtime {
  readonly scope: AnyActorScope;
  store: SnapshotStore | undefined;
  readonly ownsStore: boolean;
  handle: DistributedLockHandle | undefined;
  readonly abort: AbortController;
  dirty: boolean;
  scheduled: boolean;
  saving: Promise<void> | undefined;
  ended: boolean;
  /** Why the last save did not happen (cleared by the next good one): what a save barrier throws. */
  failure: unknown;
  /** Its owner token: the saved one, kept across incarnations, or a new one when it starts fresh. */
  owner: string;
  /**
   * The actors under it whose steps it hears (each child, and theirs, down to a statesmith
   * child, which saves as a picture): a step anywhere in the tree is saved, not only its own.
   */
  readonly watched: Map<AnyActorRef, { readonly subscription: { unsubscribe(): void }; children: unknown }>;
}

const runtimes = new WeakMap<AnyActorRef, Runtime>();

/** The ids from `root` down to `ref`, or undefined when `ref` is not `root` or under it. */
function pathOf(ref: AnyActorRef, root: AnyActorRef): string[] | undefined {
  const path: string[] = [];
  for (let at: AnyActorRef | undefined = ref; at !== undefined; at = (at as { _parent?: AnyActorRef })._parent) {
    if (at === root) return path.reverse();
    path.push(at.id);
  }
  return undefined;
}

/** True when `ref` is, or is under, a statesmith child saved as a picture (below `root`). */
function underPicture(ref: AnyActorRef, root: AnyActorRef): boolean {
  for (let at: AnyActorRef | undefined = ref; at !== undefined && at !== root; at = (at as { _parent?: AnyActorRef })._parent) {
    if (persistenceOf((at as { logic?: unknown }).logic) !== undefined) return true;
  }
  return false;
}

/** The actor at `path` under the durable actor, whose own children are `children`. */
function refAt(path: readonly string[], self: AnyActorRef, children: Readonly<Record<string, AnyActorRef>>): AnyActorRef | undefined {
  let at: AnyActorRef | undefined = self;
  let below: Readonly<Record<string, AnyActorRef>> | undefined = children;
  for (const id of path) {
    at = below?.[id];
    below = (at?.getSnapshot() as { children?: Record<string, AnyActorRef> } | undefined)?.children;
  }
  return at;
}

/**
 * Marks `fn` as work that may run again after a crash. Inside a durable machine, a promise
 * actor (`fromPromise(idempotent(async ({ input }) => …))`) that was running when its process
 * ended is started again on restore, with the same input; an unmarked one is not, and its
 * invoker hears it ended with `ERR_INTERRUPTED`. A durable executor's named action marked so
 * (`actions: { apply: idempotent(async (signal, params, { idempotencyKey, attempt }) => …) }`)
 * runs again with the same `idempotencyKey` and the next `attempt`; an unmarked one ends
 * `interrupted`. Returns `fn` itself.
 *
 * @example
 * ```ts
 * import { fromPromise } from 'xstate';
 * import { idempotent } from 'statesmith';
 * // Setting a replica's role twice is the same as once: safe to run again after a crash.
 * const setRole = fromPromise(idempotent(async ({ input }: { input: { role: string } }) => `role ${input.role}`));
 * console.log(typeof setRole.transition); // function
 * ```
 */
export function idempotent<F extends (...args: never[]) => unknown>(fn: F): F {
  if (typeof fn !== 'function') throw new ArgumentTypeError('fn', 'a function', fn);
  Object.defineProperty(fn, kIdempotent, { value: true });
  return fn;
}

/**
 * Where `value` holds something JSON would not give back as it was (bigints aside, which the
 * stores keep): the path and what is there, or undefined when it is plain JSON.
 */
function notJson(value: unknown, path: string): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value} (JSON has no such number)`;
    case 'function':
      return `${path} is a function (keep a name, and look the function up by it)`;
    case 'symbol':
      return `${path} is a symbol`;
  }
  if (value === null) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = notJson(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const kind = (value as { constructor?: { name?: string } }).constructor?.name ?? 'an object with a prototype';
    return `${path} is a ${kind} (JSON keeps only plain objects and arrays${kind === 'Date' ? '; keep Date.now() numbers instead' : ''})`;
  }
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    const found = notJson(child, `${path}.${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A child that was running at the crash and is not run again. */
interface Interrupted {
  /** The ids from the durable actor down to the child's parent (empty: the durable machine itself). */
  readonly parent: readonly string[];
  readonly childId: string;
  readonly src: string;
}

/** The logic a persisted child's `src` names in `machine` (XState's own rule: an inline invoke, or `setup({ actors })`). */
function logicOf(machine: AnyActorLogic, src: string): AnyActorLogic | undefined {
  const m = machine as { implementations?: { actors?: Record<string, AnyActorLogic> }; getStateNodeById?: (id: string) => { config: { invoke?: unknown } } };
  const inline = /^xstate\.invoke\.(\d+)\.(.*)$/.exec(src);
  if (inline === null) return m.implementations?.actors?.[src];
  try {
    const invoke = m.getStateNodeById?.(inline[2] as string).config.invoke;
    const config = (Array.isArray(invoke) ? invoke[Number(inline[1])] : invoke) as { src?: unknown } | undefined;
    return typeof config?.src === 'object' ? (config.src as AnyActorLogic) : undefined;
  } catch {
    return undefined;
  }
}

/** The invoke of `logic` (a machine) whose child has the id `childId`, if any: its input is computed again on restore. */
function invokeOf(logic: AnyActorLogic | undefined, childId: string): { readonly input?: unknown } | undefined {
  type Node = { readonly invoke?: ReadonlyArray<{ readonly id: string; readonly input?: unknown }>; readonly states?: Record<string, Node> };
  const root = (logic as { root?: Node } | undefined)?.root;
  if (root === undefined) return undefined;
  const stack: Node[] = [root];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    for (const def of node.invoke ?? []) if (def.id === childId) return def;
    if (node.states !== undefined) stack.push(...Object.values(node.states));
  }
  return undefined;
}

/** Whether each machine invokes a child of each id: asked at every save, so walked once per machine and id. */
const invoked = new WeakMap<object, Map<string, boolean>>();

function isInvoked(logic: AnyActorLogic | undefined, childId: string): boolean {
  if (logic === undefined) return false;
  let ids = invoked.get(logic);
  if (ids === undefined) invoked.set(logic, (ids = new Map()));
  let known = ids.get(childId);
  if (known === undefined) ids.set(childId, (known = invokeOf(logic, childId) !== undefined));
  return known;
}

/**
 * `saved` (what XState's getPersistedSnapshot made of `live`) with each statesmith child's
 * snapshot replaced by its adapter's picture: XState would keep its context with its
 * functions. Such a child must be invoked (a restore computes its input again); a spawned one
 * cannot be given its input back, and is refused here, at the first save.
 */
function withPictures(logic: AnyActorLogic | undefined, live: unknown, saved: unknown, path: readonly string[]): unknown {
  const children = (live as { children?: Record<string, AnyActorRef | undefined> } | null | undefined)?.children;
  const savedChildren = (saved as { children?: Record<string, { snapshot?: unknown } | undefined> } | null | undefined)?.children;
  if (children === undefined || savedChildren === undefined || savedChildren === null) return saved;
  for (const [childId, ref] of Object.entries(children)) {
    const entry = savedChildren[childId];
    if (entry === undefined || ref === undefined) continue;
    const childLogic = (ref as { logic?: AnyActorLogic }).logic;
    const adapter = persistenceOf(childLogic);
    const at = [...path, childId];
    if (adapter === undefined) {
      withPictures(childLogic, ref.getSnapshot(), entry.snapshot, at);
      continue;
    }
    if (!isInvoked(logic, childId)) {
      throw new DurableError(
        'ERR_SNAPSHOT_JSON',
        `${JSON.stringify(at.join('/'))} is statesmith logic that was spawned, and a restore could not give it its input again: invoke it (its invoke's input is computed again on restore), or make it a durable actor of its own`,
      );
    }
    entry.snapshot = { [PICTURE_MARK]: 1, picture: adapter.persist(ref.getSnapshot() as Snapshot<unknown>) };
  }
  return saved;
}

/**
 * Before XState restores `saved` (a machine's saved snapshot): tells each statesmith child
 * saved as a picture the input its invoke computes from the restored context (the event is
 * `statesmith.durable.restore`), so that its logic revives it. What each revival finds is
 * pushed to `found`.
 */
function expectChildren(
  logic: AnyActorLogic | undefined,
  saved: unknown,
  path: readonly string[],
  policy: InterruptedPolicy,
  self: AnyActorRef,
  found: ChildRevival[],
): void {
  const children = (saved as { children?: Record<string, { snapshot?: unknown; src?: unknown } | null> } | null | undefined)?.children;
  if (children === undefined || children === null || typeof children !== 'object' || logic === undefined) return;
  const context = (saved as { context?: unknown }).context;
  for (const [childId, entry] of Object.entries(children)) {
    const at = [...path, childId];
    const snapshot = entry?.snapshot;
    if (isSavedPicture(snapshot)) {
      const def = invokeOf(logic, childId);
      if (def === undefined) {
        throw new DurableError(
          'ERR_SNAPSHOT_VERSION',
          `${JSON.stringify(at.join('/'))} was saved as statesmith logic, and this machine invokes nothing with that id (migrate the snapshot, or change the version)`,
        );
      }
      let input: unknown = def.input;
      if (typeof def.input === 'function') {
        try {
          input = (def.input as (args: unknown) => unknown)({ context, event: { type: 'statesmith.durable.restore' }, self });
        } catch (error) {
          throw new DurableError(
            'ERR_SNAPSHOT_VERSION',
            `the input of ${JSON.stringify(at.join('/'))} could not be computed again from the restored context: ${(error as Error)?.message ?? String(error)}`,
            { cause: error },
          );
        }
      }
      expectChildRestore(snapshot, { input, policy, path: at.join('/'), src: typeof entry?.src === 'string' ? entry.src : childId, found });
    } else if (typeof entry?.src === 'string') {
      expectChildren(logicOf(logic, entry.src), snapshot, at, policy, self, found);
    }
  }
}

/** True for `fromPromise` logic: the one kind whose work a restore would start again from the top. */
function isPromiseLogic(logic: AnyActorLogic): boolean {
  if (typeof (logic as { config?: unknown }).config !== 'function') return false;
  try {
    const probe = logic.transition(
      { status: 'active', output: undefined, error: undefined, input: undefined } as never,
      { type: 'xstate.promise.resolve', data: 1 } as never,
      {} as never,
    ) as { status?: unknown };
    return probe.status === 'done';
  } catch {
    return false;
  }
}

/**
 * The persisted snapshot without the promise actors that were running and are not
 * idempotent, at any depth (children of children machines too), and those actors.
 */
function withholdInterrupted(machine: AnyActorLogic, snapshot: unknown, parent: readonly string[] = []): { snapshot: unknown; interrupted: Interrupted[] } {
  const children = (snapshot as { children?: Record<string, { snapshot?: { status?: unknown }; src?: unknown }> } | null)?.children;
  if (children === undefined || children === null || typeof children !== 'object') return { snapshot, interrupted: [] };
  const interrupted: Interrupted[] = [];
  const kept: Record<string, unknown> = {};
  let changed = false;
  for (const [childId, child] of Object.entries(children)) {
    const logic = typeof child?.src === 'string' ? logicOf(machine, child.src) : undefined;
    const running = child?.snapshot?.status === 'active';
    if (running && logic !== undefined && isPromiseLogic(logic) && (logic as { config?: { [kIdempotent]?: true } }).config?.[kIdempotent] !== true) {
      interrupted.push({ parent, childId, src: child.src as string });
      changed = true;
      continue;
    }
    // A child machine's own promise children, the same way.
    const below = running && logic !== undefined ? withholdInterrupted(logic, child.snapshot, [...parent, childId]) : undefined;
    if (below !== undefined && below.interrupted.length > 0) {
      interrupted.push(...below.interrupted);
      kept[childId] = { ...child, snapshot: below.snapshot };
      changed = true;
    } else {
      kept[childId] = child;
    }
  }
  return changed ? { snapshot: { ...(snapshot as object), children: kept }, interrupted } : { snapshot, interrupted };
}

/**
 * The processes that carry each owner token, from one pass over `/proc` shared by every
 * restore of the same turn of the event loop (made anew at the next turn).
 */
let ownerScan: Map<string, number[]> | undefined;

function orphansOf(owner: string): number[] {
  if (ownerScan === undefined) {
    ownerScan = scanMarked(OWNER_MARKER);
    setImmediate(() => (ownerScan = undefined)).unref();
  }
  return ownerScan.get(owner) ?? [];
}

/** SIGKILLs every process that carries `owner` in its environment: left by a dead incarnation, nobody waits for them. */
function endOrphans(id: string, owner: string): void {
  const orphans = orphansOf(owner);
  if (orphans.length === 0) return;
  for (const pid of orphans) sendSignal(pid, 'SIGKILL');
  getLogger().warn(`durable actor ${JSON.stringify(id)}: ended ${orphans.length} processes its last incarnation left running (pids ${orphans.join(', ')})`);
}

/** The name the durable actor's `interrupted` event gives its own logic: a machine's id, else `logic`. */
function logicName(logic: AnyActorLogic): string {
  const machineId = (logic as { id?: unknown }).id;
  return typeof machineId === 'string' ? machineId : 'logic';
}

function durableLogic<TLogic extends AnyActorLogic>(
  inner: TLogic,
  options: Required<Pick<DurableOptions, 'store' | 'id' | 'version'>> & DurableOptions,
): DurableLogic<TLogic> {
  const { id, version } = options;
  // statesmith's own logic saves a picture of its snapshot, and revives it on the new incarnation's input.
  const adapter = persistenceOf(inner);
  const persisted = (snapshot: Snapshot<unknown>): unknown =>
    adapter === undefined ? withPictures(inner, snapshot, inner.getPersistedSnapshot(snapshot as never), []) : adapter.persist(snapshot);

  const runtimeOf = (scope: AnyActorScope): Runtime => {
    let runtime = runtimes.get(scope.self);
    if (runtime === undefined) {
      runtime = {
        scope,
        store: typeof options.store === 'string' ? undefined : options.store,
        ownsStore: typeof options.store === 'string',
        handle: undefined,
        abort: new AbortController(),
        dirty: false,
        scheduled: false,
        saving: undefined,
        ended: false,
        failure: undefined,
        owner: randomBytes(12).toString('base64url'),
        watched: new Map(),
      };
      runtimes.set(scope.self, runtime);
      const self = runtime;
      setSaveBarrier(scope.self, () => saveNow(self));
    }
    return runtime;
  };

  /** The armed delayed events of the durable actor and everything under it, with their wall-clock deadlines. */
  const timersOf = (scope: AnyActorScope): SavedTimer[] => {
    const scheduled = (scope.system as { getSnapshot?: () => { _scheduledEvents?: Record<string, unknown> } }).getSnapshot?.()._scheduledEvents ?? {};
    const timers: SavedTimer[] = [];
    for (const entry of Object.values(scheduled)) {
      const {
        source,
        target,
        event,
        delay,
        id: timerId,
        startedAt,
      } = entry as {
        source: AnyActorRef;
        target: AnyActorRef;
        event: EventObject;
        delay: number;
        id: string;
        startedAt: number;
      };
      const from = pathOf(source, scope.self);
      const to = pathOf(target, scope.self);
      if (from === undefined || to === undefined) continue;
      // A statesmith child rebuilds its own timers from its picture (a delayed event sent to it is kept).
      if (underPicture(source, scope.self)) continue;
      timers.push({ source: from, target: to, event, id: timerId, deadline: startedAt + delay });
    }
    return timers;
  };

  /** Arms `timer` again: at once when its deadline passed, else at its deadline (in slices past Node's longest timer). */
  const arm = (scope: AnyActorScope, children: Readonly<Record<string, AnyActorRef>>, timer: SavedTimer): boolean => {
    const source = refAt(timer.source, scope.self, children);
    const target = refAt(timer.target, scope.self, children);
    if (source === undefined || target === undefined) return false;
    const left = Math.max(0, timer.deadline - Date.now());
    if (left > MAX_TIMER_MS) {
      scope.system.scheduler.schedule(scope.self, scope.self, { type: REARM, timer } as EventObject, MAX_TIMER_MS, `statesmith.durable.rearm.${timer.id}`);
    } else {
      scope.system.scheduler.schedule(source, target, timer.event, left, timer.id);
    }
    return true;
  };

  /** Saves the latest snapshot once per turn of the event loop, one save at a time. */
  const markDirty = (runtime: Runtime): void => {
    runtime.dirty = true;
    if (runtime.scheduled || runtime.saving !== undefined || runtime.ended) return;
    runtime.scheduled = true;
    setImmediate(() => {
      runtime.scheduled = false;
      void flush(runtime);
    });
  };

  /**
   * Hears the steps of `children` and of everything under them (a statesmith child's insides
   * are its picture's business): each marks the actor dirty, so a grandchild's step is saved
   * as the actor's own are. A child's new children are heard from its first step that has them.
   */
  const watch = (runtime: Runtime, children: unknown): void => {
    if (adapter !== undefined || runtime.ended || children === null || typeof children !== 'object') return;
    for (const child of Object.values(children as Record<string, AnyActorRef | undefined>)) {
      if (child === undefined || runtime.watched.has(child)) continue;
      const below = persistenceOf((child as { logic?: unknown }).logic) === undefined;
      const entry = { subscription: { unsubscribe: (): void => undefined }, children: undefined as unknown };
      runtime.watched.set(child, entry);
      const heard = (): void => {
        markDirty(runtime);
        if (!below) return;
        const now = (child.getSnapshot() as { children?: unknown } | undefined)?.children;
        if (now !== entry.children) {
          entry.children = now;
          watch(runtime, now);
        }
      };
      const gone = (): void => {
        markDirty(runtime);
        entry.subscription.unsubscribe();
        runtime.watched.delete(child);
      };
      entry.subscription = child.subscribe({ next: heard, error: gone, complete: gone });
      heard();
    }
  };

  const unwatch = (runtime: Runtime): void => {
    for (const { subscription } of runtime.watched.values()) subscription.unsubscribe();
    runtime.watched.clear();
  };

  const flush = (runtime: Runtime): Promise<void> => {
    if (runtime.saving !== undefined) return runtime.saving;
    if (!runtime.dirty) return Promise.resolve();
    const saving = (async () => {
      while (runtime.dirty) {
        runtime.dirty = false;
        const state = runtime.scope.self.getSnapshot() as State;
        const store = runtime.store;
        if (store === undefined || state.inner === undefined || (state.value !== 'running' && state.status !== 'done')) return;
        let saved: Saved | undefined;
        let unfaithful: string | undefined;
        try {
          // A logic with its own persistence rebuilds its children on restore: their timers are its own business.
          saved = {
            inner: persisted(state.inner),
            timers: state.status === 'active' && adapter === undefined ? timersOf(runtime.scope) : [],
            owner: runtime.owner,
          };
          unfaithful = isPlainJson(saved) ? undefined : notJson(saved, 'snapshot');
        } catch (error) {
          unfaithful = `getPersistedSnapshot threw: ${(error as Error)?.message ?? String(error)}`;
        }
        if (unfaithful !== undefined || saved === undefined) {
          runtime.failure = new DurableError('ERR_SNAPSHOT_JSON', `durable actor ${JSON.stringify(id)}: its snapshot cannot be saved as it is`);
          // A snapshot that JSON would change (a function dropped, a Date turned into a string) would restore as something else: fail now, not at the restore.
          if (!runtime.ended) {
            runtime.scope.self.send({
              type: SNAPSHOT_FAILED,
              [kOwn]: new DurableError(
                'ERR_SNAPSHOT_JSON',
                `durable actor ${JSON.stringify(id)}: its snapshot cannot be saved as it is: ${unfaithful ?? 'no snapshot'}`,
              ),
            } as EventObject);
          }
          return;
        }
        const fence = runtime.handle?.fence;
        let ok: boolean;
        try {
          ok = await store.save(id, { snapshot: saved, version, ...(fence === undefined ? {} : { fence }) });
        } catch (error) {
          runtime.failure = error;
          getLogger().error(`durable actor ${JSON.stringify(id)}: saving its snapshot failed`, { error });
          // The next step tries again; nothing is lost but the steps since the last good save, until then.
          return;
        }
        runtime.failure = ok
          ? undefined
          : new DurableError('ERR_FENCED', `durable actor ${JSON.stringify(id)}: a newer incarnation saved under a larger fence`);
        if (!ok && !runtime.ended) {
          runtime.scope.self.send({
            type: FENCED,
            [kOwn]: new DurableError(
              'ERR_FENCED',
              `durable actor ${JSON.stringify(id)}: a newer incarnation saved under a larger fence than ${fence ?? 'none'}; this one stops acting`,
            ),
          } as EventObject);
          return;
        }
      }
    })().finally(() => {
      runtime.saving = undefined;
    });
    runtime.saving = saving;
    return saving;
  };

  /**
   * Saves the snapshot as it is now, and resolves once it is in the store: what work with side
   * effects waits for before it starts (the executor's task), so that a crash after the start
   * always finds the work recorded as started. Rejects when it could not be saved, or the actor
   * no longer runs: the work must not start.
   */
  const saveNow = async (runtime: Runtime): Promise<void> => {
    runtime.dirty = true;
    // A save in flight saves the newest snapshot too before it ends: it loops while dirty.
    await flush(runtime);
    if (runtime.failure !== undefined) throw runtime.failure;
    const state = runtime.scope.self.getSnapshot() as State;
    if (runtime.ended || state.value !== 'running' || runtime.handle?.signal.aborted === true) {
      throw new DurableError('ERR_FENCED', `durable actor ${JSON.stringify(id)} no longer runs (${state.value}, ${state.status}): its work does not start`);
    }
  };

  /** The actor ended (stopped, failed, fenced, done): the last save, then the fence and the store go. */
  const end = (runtime: Runtime, save: boolean): void => {
    if (runtime.ended) return;
    unwatch(runtime);
    runtime.abort.abort(new DurableError('ERR_FENCED', `durable actor ${JSON.stringify(id)} stopped`));
    const last = save ? flush(runtime) : Promise.resolve();
    runtime.ended = true;
    void last
      .then(async () => {
        await runtime.handle?.release();
        if (runtime.ownsStore && runtime.store !== undefined) await releaseStore(options.store as string);
      })
      .catch((error: unknown) => getLogger().warn(`durable actor ${JSON.stringify(id)}: closing it failed`, { error }));
  };

  const recover = async (runtime: Runtime): Promise<{ record: StoredSnapshot | null }> => {
    const signal = runtime.abort.signal;
    if (runtime.store === undefined) {
      const store = await shareStore(options.store as string);
      if (signal.aborted) {
        // It ended while the store opened: its share goes back at once.
        await releaseStore(options.store as string);
        throw signal.reason;
      }
      runtime.store = store;
    }
    if (signal.aborted) throw signal.reason;
    if (options.coordinator !== undefined) {
      const handle = await options.coordinator.getLock(`durable/${id}`).acquire({ signal });
      if (handle === null) throw new DurableError('ERR_FENCED', `durable actor ${JSON.stringify(id)}: its lock durable/${id} was not granted`);
      runtime.handle = handle;
      handle.signal.addEventListener(
        'abort',
        () => {
          if (!runtime.ended) runtime.scope.self.send({ type: FENCED, [kOwn]: handle.signal.reason } as EventObject);
        },
        { once: true },
      );
    }
    const record = await runtime.store.load(id);
    const fence = runtime.handle?.fence;
    if (fence !== undefined && record?.fence !== undefined && fence <= record.fence) {
      throw new DurableError(
        'ERR_FENCED',
        `durable actor ${JSON.stringify(id)}: its fence ${fence} is not larger than the ${record.fence} its snapshot was saved under (did the coordinator's backend lose its fences?)`,
      );
    }
    return { record };
  };

  /** The snapshot is loaded and the fence held: the inner actor starts from the snapshot, or fresh. */
  const begin = (state: State, scope: AnyActorScope, record: StoredSnapshot | null): State => {
    const runtime = runtimeOf(scope);
    let innerSnapshot: Snapshot<unknown> & { children?: Record<string, AnyActorRef> };
    let timers: readonly SavedTimer[] = [];
    let interrupted: Interrupted[] = [];
    let revived: Revived | undefined;
    const childRevivals: ChildRevival[] = [];
    try {
      if (record === null) {
        innerSnapshot = inner.getInitialSnapshot(scope as never, state.input as never) as typeof innerSnapshot;
      } else {
        const saved = record.snapshot as Partial<Saved>;
        let snapshot = saved.inner;
        if (typeof saved.owner === 'string') {
          runtime.owner = saved.owner;
          // Before anything of this incarnation runs: the processes the last one started, and left behind when it died.
          endOrphans(id, saved.owner);
        }
        if (record.version !== version) {
          if (options.migrate === undefined) {
            throw new DurableError(
              'ERR_SNAPSHOT_VERSION',
              `durable actor ${JSON.stringify(id)}: its snapshot was saved by version ${JSON.stringify(record.version)}, and this machine is version ${JSON.stringify(version)} with no migrate`,
            );
          }
          snapshot = options.migrate(snapshot, record.version);
        }
        if (adapter !== undefined) {
          // Laid over a fresh snapshot from this incarnation's input: its functions and services.
          const fresh = inner.getInitialSnapshot(scope as never, state.input as never) as Snapshot<unknown>;
          revived = adapter.revive(snapshot, fresh, options.onInterrupted ?? 'abandon');
          const lost = revived.interrupted.filter((work) => !work.rerun);
          if (options.onInterrupted === 'escalate' && lost.length > 0) {
            throw new DurableError(
              'ERR_INTERRUPTED',
              `durable actor ${JSON.stringify(id)}: ${lost.map((work) => work.what).join('; ')} (onInterrupted: 'escalate')`,
            );
          }
          innerSnapshot = revived.snapshot as typeof innerSnapshot;
        } else {
          const withheld = options.onInterrupted === 'retry' ? { snapshot, interrupted: [] } : withholdInterrupted(inner, snapshot);
          if (options.onInterrupted === 'escalate' && withheld.interrupted.length > 0) {
            throw new DurableError(
              'ERR_INTERRUPTED',
              `durable actor ${JSON.stringify(id)}: ${withheld.interrupted.map(({ childId, src }) => `${JSON.stringify(childId)} (${src})`).join(', ')} was running when its process ended (onInterrupted: 'escalate')`,
            );
          }
          interrupted = withheld.interrupted;
          // Its statesmith children (saved as pictures) are revived as XState restores them, on their invoke's input.
          expectChildren(inner, withheld.snapshot, [], options.onInterrupted ?? 'abandon', scope.self, childRevivals);
          innerSnapshot = inner.restoreSnapshot!(withheld.snapshot as never, scope as never) as typeof innerSnapshot;
          const lost = childRevivals.flatMap(({ path, revived: found }) =>
            found.interrupted.filter((work) => !work.rerun).map((work) => `${path}: ${work.what}`),
          );
          if (options.onInterrupted === 'escalate' && lost.length > 0) {
            throw new DurableError('ERR_INTERRUPTED', `durable actor ${JSON.stringify(id)}: ${lost.join('; ')} (onInterrupted: 'escalate')`);
          }
        }
        timers = Array.isArray(saved.timers) ? saved.timers : [];
      }
    } catch (error) {
      end(runtime, false);
      return { ...state, status: 'error', error };
    }
    // Every subprocess started under it from now on carries the token.
    setOwnerToken(scope.self, runtime.owner);
    let children = innerSnapshot.children ?? {};
    let armed = 0;
    scope.defer(() => {
      inner.start?.(innerSnapshot as never, scope as never);
      watch(runtime, innerSnapshot.children);
      for (const timer of timers) if (arm(scope, children, timer)) armed++;
      // Work that was running at the crash cannot resume mid-function: its invoker hears it ended interrupted, once.
      for (const { parent, childId, src } of interrupted) {
        const where = [...parent, childId].join('/');
        const error = new DurableError(
          'ERR_INTERRUPTED',
          `durable actor ${JSON.stringify(id)}: ${JSON.stringify(where)} (${src}) was running when its process ended; it is not run again (mark it idempotent() to re-run it)`,
        );
        getLogger().warn(error.message);
        scope.emit({ type: 'statesmith.durable.interrupted', id, child: where, src, error: { name: error.name, code: error.code, message: error.message } });
        // Its invoker hears it as a failed child: the durable machine itself, or the child machine that invoked it.
        const invoker = refAt(parent, scope.self, children);
        invoker?.send({ type: `xstate.error.actor.${childId}`, error, actorId: childId } as EventObject);
      }
      if (armed < timers.length)
        getLogger().warn(`durable actor ${JSON.stringify(id)}: ${timers.length - armed} delayed events had no sender or receiver left to restore`);
      getLogger().info(
        record === null
          ? `durable actor ${JSON.stringify(id)} started fresh${runtime.handle === undefined ? '' : ` under fence ${runtime.handle.fence}`}`
          : `durable actor ${JSON.stringify(id)} restored the snapshot saved at ${new Date(record.savedAt).toISOString()}${runtime.handle === undefined ? '' : ` under fence ${runtime.handle.fence}`}, with ${armed} delayed events`,
      );
      // Once the state it came back with is in the store, what a revive found is told: a crash before that
      // tells it again at the next restore, and no restore after that save tells it again. Then it says it runs.
      const found = revived;
      saveNow(runtime).then(
        () => {
          if (found !== undefined) reportRevived(scope, found);
          for (const child of childRevivals) {
            for (const work of child.revived.interrupted) reportWork(scope, work, child.path, child.src);
            child.revived.report(child.scope);
          }
          const told =
            (found === undefined ? interrupted.length : found.interrupted.filter((work) => !work.rerun).length) +
            childRevivals.reduce((sum, child) => sum + child.revived.interrupted.filter((work) => !work.rerun).length, 0);
          scope.emit({
            type: 'statesmith.durable.restored',
            id,
            restored: record !== null,
            savedAt: record?.savedAt ?? null,
            fence: runtime.handle === undefined ? null : String(runtime.handle.fence),
            interrupted: told,
          });
        },
        (error: unknown) => {
          if (!runtime.ended)
            getLogger().warn(
              `durable actor ${JSON.stringify(id)}: the state it came back with could not be saved; what it found interrupted is told at the next restore`,
              {
                error,
              },
            );
        },
      );
    });
    // Idempotent work that was running is run again in this very step: no command comes before it.
    if (revived !== undefined && revived.first.length > 0) {
      try {
        for (const event of revived.first) innerSnapshot = inner.transition(innerSnapshot as never, event as never, scope as never) as typeof innerSnapshot;
      } catch (error) {
        end(runtime, false);
        return { ...state, status: 'error', error };
      }
      children = innerSnapshot.children ?? {};
    }
    markDirty(runtime);
    return {
      ...state,
      status: innerSnapshot.status === 'active' ? 'active' : (innerSnapshot.status as State['status']),
      output: (innerSnapshot as { output?: unknown }).output,
      error: (innerSnapshot as { error?: unknown }).error,
      value: 'running',
      inner: innerSnapshot,
      children,
      context: {
        ...state.context,
        fence: runtime.handle === undefined ? null : String(runtime.handle.fence),
        restored: record !== null,
        restoredFrom: record?.savedAt ?? null,
        restoredVersion: record?.version ?? null,
        // Counted when armed (after this step); the saved list is what it arms.
        timersRestored: timers.length,
      },
    };
  };

  /** What a revive found running at the crash: the log, the `interrupted` event, and the logic's own `done`. */
  const reportRevived = (scope: AnyActorScope, revived: Revived): void => {
    for (const work of revived.interrupted) reportWork(scope, work);
    revived.report(scope);
  };
  const reportWork = (scope: AnyActorScope, work: InterruptedWork, child = '', src = logicName(inner)): void => {
    const where = child === '' ? '' : ` ${JSON.stringify(child)}:`;
    if (work.rerun) {
      getLogger().info(`durable actor ${JSON.stringify(id)}:${where} ${work.what} was running when its process ended; it is idempotent, and runs again`);
      return;
    }
    const error = new DurableError('ERR_INTERRUPTED', `durable actor ${JSON.stringify(id)}:${where} ${work.what}`);
    getLogger().warn(error.message);
    scope.emit({
      type: 'statesmith.durable.interrupted',
      id,
      child,
      src,
      error: { name: error.name, code: error.code, message: error.message },
    });
  };

  const fenced = (state: State, scope: AnyActorScope, reason: unknown): State => {
    const runtime = runtimeOf(scope);
    end(runtime, false);
    const stopped =
      state.inner !== undefined && state.value === 'running'
        ? inner.transition(state.inner as never, { type: 'xstate.stop' } as never, scope as never)
        : state.inner;
    scope.defer(() => scope.system.scheduler.cancelAll(scope.self));
    const error =
      reason instanceof DurableError
        ? reason
        : new DurableError('ERR_FENCED', `durable actor ${JSON.stringify(id)} lost its lock durable/${id}: ${(reason as Error)?.message ?? String(reason)}`, {
            cause: reason,
          });
    return { ...state, status: 'error', error, value: 'fenced', inner: stopped as Snapshot<unknown> | undefined, children: {} };
  };

  const logic = {
    getInitialSnapshot(_scope: AnyActorScope, input: unknown): State {
      return {
        status: 'active',
        output: undefined,
        error: undefined,
        value: 'recovering',
        context: { id, version, fence: null, restored: false, restoredFrom: null, restoredVersion: null, timersRestored: 0 },
        inner: undefined,
        children: {},
        input,
      };
    },

    start(snapshot: State, scope: AnyActorScope): void {
      if (snapshot.value !== 'recovering') return;
      const runtime = runtimeOf(scope);
      recover(runtime).then(
        ({ record }) => {
          if (!runtime.ended) scope.self.send({ type: RESTORED, [kOwn]: record } as EventObject);
        },
        (error: unknown) => {
          if (!runtime.ended) scope.self.send({ type: RECOVERY_FAILED, [kOwn]: error } as EventObject);
        },
      );
    },

    transition(snapshot: State, event: EventObject, scope: AnyActorScope): State {
      const state = snapshot;
      const runtime = runtimeOf(scope);
      const own = kOwn in event;
      if (event.type === 'xstate.stop') {
        end(runtime, state.value === 'running');
        const stopped =
          state.value === 'running' && state.inner !== undefined ? inner.transition(state.inner as never, event as never, scope as never) : state.inner;
        return { ...state, status: 'stopped', inner: stopped as Snapshot<unknown> | undefined };
      }
      if (own && event.type === RESTORED && state.value === 'recovering')
        return begin(state, scope, (event as unknown as { [kOwn]: StoredSnapshot | null })[kOwn]);
      if (own && event.type === RECOVERY_FAILED && state.value === 'recovering') {
        end(runtime, false);
        return { ...state, status: 'error', error: (event as unknown as { [kOwn]: unknown })[kOwn] };
      }
      if (own && event.type === SNAPSHOT_FAILED && state.status === 'active') {
        end(runtime, false);
        const stopped =
          state.inner !== undefined && state.value === 'running'
            ? inner.transition(state.inner as never, { type: 'xstate.stop' } as never, scope as never)
            : state.inner;
        return {
          ...state,
          status: 'error',
          error: (event as unknown as { [kOwn]: unknown })[kOwn],
          inner: stopped as Snapshot<unknown> | undefined,
          children: {},
        };
      }
      if (own && event.type === FENCED) return state.value === 'fenced' ? state : fenced(state, scope, (event as unknown as { [kOwn]: unknown })[kOwn]);
      if (event.type === REARM && state.value === 'running') {
        const timer = (event as { timer?: SavedTimer }).timer;
        if (timer !== undefined) arm(scope, state.children, timer);
        return state;
      }
      switch (state.value) {
        case 'recovering':
          if (!event.type.startsWith('xstate.')) {
            answerFromScope(
              scope,
              event,
              rejectionOf(
                event,
                state.value,
                'ERR_RECOVERING',
                `durable actor ${JSON.stringify(id)} is restoring its snapshot${options.coordinator === undefined ? '' : ' and taking its fence'}`,
              ),
            );
          }
          return state;
        case 'fenced':
          if (!event.type.startsWith('xstate.'))
            answerFromScope(
              scope,
              event,
              rejectionOf(event, state.value, 'ERR_FENCED', `durable actor ${JSON.stringify(id)} was replaced by a newer incarnation`),
            );
          return state;
        default: {
          // A lost fence is seen by the first step after it, before the step acts (the handle checks its deadline as it is read).
          if (runtime.handle?.signal.aborted === true) return fenced(state, scope, runtime.handle.signal.reason);
          let next: Snapshot<unknown> & { children?: Record<string, AnyActorRef>; output?: unknown; error?: unknown };
          try {
            next = inner.transition(state.inner as never, event as never, scope as never) as typeof next;
          } catch (error) {
            end(runtime, false);
            return { ...state, status: 'error', error };
          }
          markDirty(runtime);
          if (next.children !== state.children) watch(runtime, next.children);
          if (next.status === 'done' || next.status === 'error') {
            const settled: State = { ...state, status: next.status, output: next.output, error: next.error, inner: next, children: next.children ?? {} };
            // The final snapshot is saved (a restore then finds the actor done), then the fence goes.
            if (next.status === 'done') setImmediate(() => end(runtime, true));
            else end(runtime, false);
            return settled;
          }
          return { ...state, inner: next, children: next.children ?? {} };
        }
      }
    },

    getPersistedSnapshot(snapshot: State): Snapshot<unknown> {
      return (snapshot.inner === undefined ? snapshot.inner : persisted(snapshot.inner)) as Snapshot<unknown>;
    },
  };
  // The inspector shows it as a durable actor, with what it restored from (Symbol.for: no import of the inspector here).
  Object.defineProperty(logic, Symbol.for('statesmith.logicKind'), { value: 'durable' });
  return logic as unknown as DurableLogic<TLogic>;
}

/**
 * Wraps your XState logic so that its snapshot survives the process: spawn, invoke or
 * `createActor` what it returns in place of the original. Its snapshot must be plain JSON
 * (bigints allowed): a function, a `Date` or a `Map` in it fails the actor at its first save
 * with `ERR_SNAPSHOT_JSON`, naming the path. statesmith's executor, task group, service and
 * subprocess runner (`durable(executorLogic)`, or invoked by your durable machine) are saved by
 * name, never their functions, and revived on the new incarnation's input: for one your machine
 * invokes, the input its `invoke` computes again from the restored context (the event it sees
 * is `statesmith.durable.restore`); one it spawns is refused at the first save, since its input
 * could not be given back (see {@link idempotent} for the work they run again). It starts in
 * `recovering`: it opens the store, takes its fence (with
 * `coordinator`), and loads the snapshot saved under `id`; meanwhile commands are answered
 * `statesmith.rejected` with `ERR_RECOVERING`. Then it runs the inner logic from that
 * snapshot, with its whole tree (children spawned and invoked, as the logic's
 * `restoreSnapshot` brings them back) and its armed delayed events: a deadline that passed
 * while the process was down fires at once, a later one keeps its deadline (XState's own
 * `getPersistedSnapshot` drops them, statelyai/xstate#5331). With no snapshot it starts fresh.
 *
 * It saves after every settled step of the actor or of any actor under it, coalesced to one
 * write per turn of the event loop, and
 * never writes under a fence smaller than the stored one: an incarnation replaced by a newer
 * one ends with `ERR_FENCED` at its first step or save, before it acts. Stopping it saves
 * what it last reached, releases its fence, and keeps the snapshot for the next incarnation.
 *
 * @example
 * ```ts
 * import { createActor, setup } from 'xstate';
 * import { durable, openStore } from 'statesmith';
 * import { mkdtempSync } from 'node:fs';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 *
 * const door = setup({}).createMachine({ initial: 'closed', states: { closed: { on: { open: 'open' } }, open: { after: { 60_000: 'closed' } } } });
 * const store = await openStore(`sqlite://${join(mkdtempSync(join(tmpdir(), 'doc-')), 'state.db')}`);
 *
 * const first = createActor(durable(door, { store, id: 'door-1', version: 1 })).start();
 * // It starts in recovering, and runs once its snapshot is loaded; each step is saved within a turn.
 * await new Promise((resolve) => setTimeout(resolve, 10));
 * first.send({ type: 'open' });
 * await new Promise((resolve) => setTimeout(resolve, 10));
 * // The process could as well have been killed here.
 * first.stop();
 *
 * const second = createActor(durable(door, { store, id: 'door-1', version: 1 })).start();
 * await new Promise((resolve) => setTimeout(resolve, 10));
 * console.log(second.getSnapshot().value, second.getSnapshot().inner?.value, second.getSnapshot().context.timersRestored); // running open 1
 * second.stop();
 * await new Promise((resolve) => setTimeout(resolve, 10));
 * await store.close();
 * ```
 */
export function durable<TLogic extends AnyActorLogic>(logic: TLogic, options: DurableOptions): DurableLogic<TLogic> {
  if (logic === null || typeof logic !== 'object' || typeof logic.transition !== 'function' || typeof logic.getInitialSnapshot !== 'function') {
    throw new ArgumentTypeError('logic', 'XState actor logic (a machine, or fromPromise, fromCallback, ...)', logic);
  }
  if (typeof logic.restoreSnapshot !== 'function' || typeof logic.getPersistedSnapshot !== 'function') {
    throw new ArgumentTypeError('logic', 'actor logic with getPersistedSnapshot() and restoreSnapshot()', logic);
  }
  const given = optionalObject<DurableOptions>('options', options, KEYS);
  // Read once, here: a getter that throws (or changes its answer later) is refused now, with a typed error.
  let opts: Partial<DurableOptions>;
  let storeShape: { load: unknown; save: unknown } | undefined;
  let coordinatorShape: unknown;
  try {
    opts = Object.fromEntries(KEYS.filter((key) => given[key] !== undefined).map((key) => [key, given[key]])) as Partial<DurableOptions>;
    const store = opts.store as { load?: unknown; save?: unknown } | string | null | undefined;
    storeShape = typeof store === 'object' && store !== null ? { load: store.load, save: store.save } : undefined;
    coordinatorShape = (opts.coordinator as { getLock?: unknown } | null | undefined)?.getLock;
  } catch (error) {
    throw Object.assign(new ArgumentTypeError('options', 'an options object whose values can be read', options), { cause: error });
  }
  const store = opts.store;
  if (typeof store !== 'string' && (storeShape === undefined || typeof storeShape.load !== 'function' || typeof storeShape.save !== 'function')) {
    throw new ArgumentTypeError('options.store', 'a snapshot store (openStore) or its URL', store);
  }
  const id = requireNonEmptyString('options.id', opts.id);
  if (typeof opts.version !== 'string' && typeof opts.version !== 'number')
    throw new ArgumentTypeError('options.version', 'a string or a number', opts.version);
  if (opts.migrate !== undefined && typeof opts.migrate !== 'function')
    throw new ArgumentTypeError('options.migrate', 'a function (snapshot, fromVersion) => snapshot', opts.migrate);
  if (opts.onInterrupted !== undefined && !['abandon', 'retry', 'escalate'].includes(opts.onInterrupted as string)) {
    throw new ArgumentValueError('options.onInterrupted', "'abandon', 'retry' or 'escalate'", opts.onInterrupted);
  }
  if (opts.coordinator !== undefined && typeof coordinatorShape !== 'function') {
    throw new ArgumentTypeError('options.coordinator', 'a Coordinator (createCoordinator)', opts.coordinator);
  }
  return durableLogic(logic, { ...opts, store: store as SnapshotStore | string, id, version: opts.version });
}
