/**
 * `locksmithLogic`: the locksmith machine with its table and its operations, as actor
 * logic that `createActor`, `spawn` and `invoke` accept. The negotiation itself (and the
 * hooks a subclass overrides) is the engine's: a `Locksmith`, whose methods are the thin
 * client of this actor.
 *
 * @module
 */
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { assign, enqueueActions, fromCallback, type Actor, type AnyActorRef } from 'xstate';
import { answer, errorData, rejection, replyToOf, shown, withInProcess } from '../../machines/protocol.ts';
import {
  forceMachine,
  kFromOp,
  locksmithMachine,
  type ForceEvent,
  type LocksmithCommand,
  type LocksmithContext,
  type LocksmithEvent,
  type LocksmithReply,
  type LocksmithTableLike,
} from '../../machines/locksmith.machine.ts';
import { LazyActor, startingAt } from '../runtime/LazyActor.ts';
import { LocksmithEngine } from './engine.ts';
import { LocksmithHooks } from './hooks.ts';
import { hostCancellations } from './host.ts';
import { kValue } from './op.ts';
import { systemClock, type Clock } from '../clock.ts';
import { lockKindOf } from './lockKinds.ts';
import { describeAs } from '../inspect/safeJson.ts';

import { inspection } from '../inspect/capture.ts';

/** A force's negotiation as the engine drives it: events to its (lazy) actor. @internal */
export interface ForceRunHandle {
  send(type: ForceEvent['type']): void;
  readonly finished: boolean;
}

const forceContext = (name: string): { name: string } => ({ name });

/** One force in flight, as the inspector sees it. */
export interface ForceRun {
  /** The lock's name. */
  readonly lock: string;
  /** The negotiation state (`'awaitingAnswer'`, `'released'`...). */
  readonly state: string;
  /** The force's actor: a child of its locksmith, started on first read. */
  readonly actor: Actor<typeof forceMachine>;
}

/** A force's negotiation: steps its machine's table until someone reads its actor. @internal */
export class Run implements ForceRun, ForceRunHandle {
  readonly id: number;
  readonly lock: string;
  readonly lazy: LazyActor<typeof forceMachine>;
  /** Where its actor is once spawned: the locksmith actor's session id and the child's id (the inspector links to it). */
  readonly place: { readonly parentId: string; readonly id: string };
  constructor(smith: string, id: number, lock: string, spawn: (run: Run, at: string) => void, parentId: string) {
    this.id = id;
    this.lock = lock;
    this.place = { parentId, id: `force-${id}` };
    this.lazy = new LazyActor(forceMachine, 'force', `${smith}:force-${id}`, () => forceContext(`${smith}:${lock}`), 'idle', spawn as never, this);
  }
  get state(): string {
    return this.lazy.state;
  }
  get actor(): Actor<typeof forceMachine> {
    return this.lazy.actor;
  }
  send(type: ForceEvent['type']): void {
    this.lazy.send({ type });
  }
  get finished(): boolean {
    const state = this.state;
    return state in finals;
  }
}

const finals: Readonly<Record<string, true>> = {
  unforceable: true,
  noCurrentTask: true,
  ownerCompleted: true,
  alreadyBeingForced: true,
  failure: true,
  releasedWithFalse: true,
  success: true,
  released: true,
  aborted: true,
  failed: true,
};

type OpKind = 'recognize' | 'force' | 'host';

interface Op {
  readonly kind: OpKind;
  readonly lock: string;
  readonly replyTo: AnyActorRef | null;
  readonly run: Run | undefined;
}

/**
 * The locksmith's truth: the operations in flight and the locks it recognized. Only the
 * locksmith's actions change it.
 *
 * @internal
 */
export class LocksmithTable implements LocksmithTableLike {
  readonly recognized = new WeakSet<object>();
  readonly ops = new Map<number, Op>();
  readonly engine: LocksmithEngine;
  readonly #self: AnyActorRef;
  nextId = 1;
  forcing = 0;

  constructor(self: AnyActorRef, engine: LocksmithEngine) {
    this.#self = self;
    this.engine = engine;
  }

  /** The forces in flight. */
  get runs(): Run[] {
    const runs: Run[] = [];
    for (const op of this.ops.values()) if (op.run) runs.push(op.run);
    return runs;
  }

  /** Reading a force's actor: the locksmith spawns it as its child, in the state it has reached. */
  readonly spawn = (run: Run, at: string): void => {
    if (this.#self.getSnapshot().status === 'active') this.#self.send({ type: 'statesmith.locksmith.materialise', [kFromOp]: true, id: run.id, at });
  };
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(LocksmithTable, () => '[LocksmithTable]');

const LOCKSMITH_KEYS: Readonly<Record<LocksmithCommand['type'], ReadonlySet<string>>> = {
  'statesmith.locksmith.recognize': new Set(['type', 'lock', 'lockRef', 'replyTo']),
  'statesmith.locksmith.force': new Set(['type', 'lock', 'lockRef', 'info', 'answerTimeoutMs', 'purgeWaiters', 'signal', 'owner', 'replyTo']),
  'statesmith.locksmith.host': new Set([
    'type',
    'lock',
    'lockRef',
    'task',
    'params',
    'fn',
    'info',
    'forceTimeoutMs',
    'acquireTimeoutMs',
    'taskTimeoutMs',
    'answerTimeoutMs',
    'purgeWaiters',
    'signal',
    'owner',
    'replyTo',
  ]),
};

/** The lock a command is about, or why it names none. */
function targetOf(context: LocksmithContext, event: LocksmithCommand): { lock: object } | { code: string; reason: string } {
  if (event.lockRef !== undefined) {
    if ((typeof event.lockRef !== 'object' && typeof event.lockRef !== 'function') || event.lockRef === null) {
      return { code: 'ERR_INVALID_ARG_TYPE', reason: '"lockRef" must be a lock object' };
    }
    return { lock: event.lockRef };
  }
  if (typeof event.lock !== 'string' || event.lock.length === 0) {
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"lock" must be the name of one of the locksmith's locks; received ${shown(event.lock)}` };
  }
  if (!Object.hasOwn(context.locks, event.lock)) {
    const known = Object.keys(context.locks);
    return {
      code: 'ERR_UNKNOWN_LOCK',
      reason: `no lock named ${JSON.stringify(event.lock)}; the locksmith knows ${known.length ? known.join(', ') : 'no named locks'}`,
    };
  }
  return { lock: context.locks[event.lock] as object };
}

const isDuration = (value: unknown): boolean => typeof value === 'number' && !Number.isNaN(value) && value >= 0;

/** Why a command cannot be accepted at all: a code and a reason. */
function malformed(context: LocksmithContext, event: LocksmithEvent): { code: string; reason: string } | undefined {
  try {
    return malformedCommand(context, event);
  } catch (error) {
    // The command's lock (a user's object) threw when it was read: refused, and the locksmith stays usable.
    return { code: 'ERR_INVALID_ARG_VALUE', reason: `reading the command's lock threw: ${errorData(error).message}` };
  }
}

function malformedCommand(context: LocksmithContext, event: LocksmithEvent): { code: string; reason: string } | undefined {
  const keys = LOCKSMITH_KEYS[event.type as LocksmithCommand['type']];
  if (keys === undefined) return undefined;
  const command = event as LocksmithCommand;
  for (const key of Object.keys(command)) {
    if (!keys.has(key)) return { code: 'ERR_UNKNOWN_OPTION', reason: `${command.type} has no field "${key}"; it takes ${[...keys].slice(1).join(', ')}` };
  }
  const target = targetOf(context, command);
  if ('code' in target) return target;
  for (const field of ['answerTimeoutMs', 'forceTimeoutMs', 'acquireTimeoutMs', 'taskTimeoutMs'] as const) {
    const value = (command as unknown as Record<string, unknown>)[field];
    if (value !== undefined && !isDuration(value)) {
      return {
        code: typeof value === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE',
        reason: `"${field}" must be a number of ms >= 0 (Infinity allowed); received ${shown(value)}`,
      };
    }
  }
  const purge = (command as { purgeWaiters?: unknown }).purgeWaiters;
  if (purge !== undefined && typeof purge !== 'boolean')
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"purgeWaiters" must be a boolean; received ${shown(purge)}` };
  if (command.type === 'statesmith.locksmith.host') {
    if (command.fn !== undefined && typeof command.fn !== 'function') return { code: 'ERR_INVALID_ARG_TYPE', reason: '"fn" must be a function' };
    if ((command.fn === undefined) === (command.task === undefined)) {
      return { code: 'ERR_INVALID_ARG_VALUE', reason: 'host needs exactly one of "task" (a name from the locksmith\'s tasks) and "fn"' };
    }
    if (command.task !== undefined && !Object.hasOwn(context.tasks, command.task)) {
      const known = Object.keys(context.tasks);
      return {
        code: 'ERR_UNKNOWN_TASK',
        reason: `no task named ${JSON.stringify(command.task)}; the locksmith knows ${known.length ? known.join(', ') : 'no named tasks'}`,
      };
    }
    if (lockKindOf((target as { lock: object }).lock) === undefined) {
      return { code: 'ERR_INVALID_ARG_TYPE', reason: 'host needs a lock (a Mutex, a SharedMutex, or an object with acquire(), release() and locked)' };
    }
  }
  return undefined;
}

/** A lock's name for replies. */
function lockName(command: LocksmithCommand, lock: object): string {
  try {
    return command.lock ?? lockKindOf(lock)?.describe(lock) ?? 'not a lock';
  } catch {
    return 'a lock that throws when read';
  }
}

/** The options a command hands the engine: its own fields, without the routing ones. */
function engineOptions(command: LocksmithCommand): Record<string, unknown> {
  const {
    type: _type,
    lock: _lock,
    lockRef: _lockRef,
    replyTo: _replyTo,
    task: _task,
    params: _params,
    fn: _fn,
    ...rest
  } = command as unknown as Record<string, unknown>;
  return rest;
}

const providedLocksmith = locksmithMachine.provide({
  actors: {
    force: startingAt(forceMachine),
    ops: fromCallback<{ readonly type: string }>(({ receive, sendBack }) => {
      let active = true;
      receive((event) => {
        const { id, start } = event as unknown as { readonly id: number; readonly start: () => Promise<unknown> };
        let started: Promise<unknown>;
        try {
          started = start();
        } catch (error) {
          // A user's lock or task that throws at once is the op's failure, never the locksmith's.
          started = Promise.reject(error);
        }
        started.then(
          (value) => active && sendBack({ type: 'statesmith.locksmith.opSettled', [kFromOp]: true, id, ok: true, value }),
          (value: unknown) => active && sendBack({ type: 'statesmith.locksmith.opSettled', [kFromOp]: true, id, ok: false, value }),
        );
      });
      return () => {
        active = false;
      };
    }),
  },
  guards: {
    malformed: ({ context, event }) => malformed(context, event) !== undefined,
  },
  actions: {
    open: assign(({ context, self }) => {
      // The engine runs the hooks of the Locksmith that started this actor, or (spawned on its own) a plain set.
      const hooks = (context.options.engine as LocksmithHooks | undefined) ?? new LocksmithHooks(context.name);
      const engine = new LocksmithEngine(self, hooks, (context.options.clock as Clock | undefined) ?? systemClock);
      return { table: new LocksmithTable(self, engine) };
    }),
    rejectMalformed: enqueueActions(({ enqueue, context, event, self }) => {
      const why = malformed(context, event) ?? { code: 'ERR_INVALID_ARG_VALUE', reason: 'malformed command' };
      answer<LocksmithReply>(enqueue as never, self, replyToOf(event), rejection(event, self, why.code, why.reason));
    }),
    startOp: enqueueActions(({ enqueue, context, event, self }) => {
      const table = context.table as LocksmithTable;
      const command = event as LocksmithCommand;
      const lock = (targetOf(context, command) as { lock: object }).lock;
      const id = table.nextId++;
      const name = lockName(command, lock);
      const engine = table.engine;
      let run: Run | undefined;
      let start: () => Promise<unknown>;
      switch (command.type) {
        case 'statesmith.locksmith.recognize':
          start = () => engine.recognizeNow(lock);
          break;
        case 'statesmith.locksmith.force': {
          const forceRun = new Run(context.name, id, name, table.spawn, self.sessionId);
          run = forceRun;
          // While an inspector captures, the force is its child from the start, so it shows (after this step).
          if (inspection.enabled) table.spawn(forceRun, forceRun.lazy.key);
          table.forcing++;
          const options = engineOptions(command);
          start = () => engine.forceNow(forceRun, lock, options);
          break;
        }
        case 'statesmith.locksmith.host': {
          // The hosting's force is this operation's own run, as a force command's is.
          const forceRun = new Run(context.name, id, name, table.spawn, self.sessionId);
          run = forceRun;
          if (inspection.enabled) table.spawn(forceRun, forceRun.lazy.key);
          table.forcing++;
          const task =
            command.fn ??
            ((signal: AbortSignal) => (context.tasks[command.task as string] as NonNullable<LocksmithContext['tasks'][string]>)(signal, command.params));
          const options = engineOptions(command);
          start = () => engine.hostNow(forceRun, task, lock, options);
          break;
        }
      }
      table.ops.set(id, { kind: command.type.slice('statesmith.locksmith.'.length) as OpKind, lock: name, replyTo: replyToOf(event) ?? null, run });
      enqueue.sendTo('ops' as never, { type: 'statesmith.locksmith.run', id, start } as never);
    }),
    settle: enqueueActions(({ enqueue, context, event, self }) => {
      const table = context.table as LocksmithTable;
      const settled = event as Extract<LocksmithEvent, { type: 'statesmith.locksmith.opSettled' }>;
      const op = table.ops.get(settled.id);
      if (op === undefined) return;
      table.ops.delete(settled.id);
      if (op.kind !== 'recognize') table.forcing--;
      if (op.run?.lazy.materialised) enqueue.stopChild(`force-${settled.id}`);
      const { id } = settled;
      let reply: LocksmithReply;
      if (op.kind === 'host') {
        reply = settled.ok
          ? { type: 'statesmith.locksmith.hosted', id, lock: op.lock, outcome: 'completed', ...(settled.value === undefined ? {} : { result: settled.value }) }
          : {
              type: 'statesmith.locksmith.hosted',
              id,
              lock: op.lock,
              outcome: hostCancellations.has(settled.value as object) ? 'cancelled' : 'failed',
              error: errorData(settled.value),
            };
      } else if (settled.ok) {
        const result = (settled.value as { name: string }).name;
        reply = { type: op.kind === 'force' ? 'statesmith.locksmith.forced' : 'statesmith.locksmith.recognized', id, lock: op.lock, result };
      } else {
        reply = { type: 'statesmith.locksmith.failed', id, lock: op.lock, command: `statesmith.locksmith.${op.kind}`, error: errorData(settled.value) };
      }
      answer<LocksmithReply>(enqueue as never, self, op.replyTo, withInProcess(reply, kValue, settled.value));
    }),
    materialise: assign(({ context, event, spawn }) => {
      const { id } = event as Extract<LocksmithEvent, { type: 'statesmith.locksmith.materialise' }>;
      const run = (context.table as LocksmithTable).ops.get(id)?.run;
      if (run === undefined || run.lazy.materialised) return {};
      const child = spawn('force', { id: run.place.id, input: { at: run.lazy.key, context: forceContext(`${context.name}:${run.lock}`) } as never });
      run.lazy.adopt(child as never);
      return {};
    }),
  },
});

/** The machine type XState infers for locksmithLogic (long: every action and child spelled out). */
type ProvidedLocksmith = typeof providedLocksmith;

/**
 * The type of {@link locksmithLogic}: XState logic for the locksmith: its commands recognize
 * locks, force them and host work under them. `createActor`, `spawn` and `invoke` take it; its
 * commands, replies, input and context are typed as the README's table of its commands says.
 */
export interface LocksmithLogic extends ProvidedLocksmith {}

/**
 * The locksmith as actor logic: spawn it in your machine with its locks (and tasks), and
 * drive it with `recognize`, `force` and `host` commands (see the README's table of
 * locksmith commands). Each force is its child while it runs.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { locksmithLogic, Mutex, runAsOwner } from 'statesmith';
 * const volumes = new Mutex({ name: 'volumes' });
 * await runAsOwner('wedged job', () => volumes.acquire());
 * const smith = createActor(locksmithLogic, { input: { name: 'watchdog', locks: { volumes } } }).start();
 * const heard = (type: string) => new Promise<{ result: string }>((resolve) => smith.on(type as never, resolve as never));
 * const recognized = heard('statesmith.locksmith.recognized');
 * smith.send({ type: 'statesmith.locksmith.recognize', lock: 'volumes' });
 * console.log((await recognized).result); // SUCCESS
 * // The owner serves no force requests: the lock is taken over its head.
 * const forced = heard('statesmith.locksmith.forced');
 * smith.send({ type: 'statesmith.locksmith.force', lock: 'volumes', answerTimeoutMs: 10 });
 * console.log((await forced).result); // RELEASED
 * console.log(volumes.locked); // false
 * ```
 */
export const locksmithLogic: LocksmithLogic = providedLocksmith;
guardedLogic(locksmithLogic, 'locksmith');
