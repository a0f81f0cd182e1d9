/**
 * One force of a stuck lock, as the locksmith negotiates it (asyncutils'
 * `LocksmithBase.force`, with the owner asked by message instead of interrupted):
 *
 * `idle → recognizing → releasing → requesting → awaitingAnswer → compelling`, ending in
 * the final state named after its `ForceResult` (the machine's output is that number),
 * or in `aborted` (the caller's signal) or `failed` (a hook or the owner raised).
 *
 * - `recognizing`: is the lock recognized and held, and is nobody else forcing it?
 * - `releasing`: the locksmith's own `release()`; a lock that names an owner refuses it.
 * - `requesting`: a force request is sent to the owner (or there is no way to ask it).
 * - `awaitingAnswer`: the owner releases, answers, refuses, raises, or stays silent.
 * - `compelling`: the owner did not give the lock up; it is freed over its head.
 *
 * Transitions depend only on the state and the event type (no guards, no context), so
 * the runtime steps a force through this table and starts an actor only when asked.
 *
 * `locksmithMachine` is the locksmith itself: `idle`, or `forcing` while any force is in
 * flight (the facade lists them).
 */
import { enqueueActions, fromCallback, setup, type AnyActorRef } from 'xstate';
import { answer, forgedRejection, rejectUnknownCommand, rejectAnyOther, replyToOf, type ErrorData, type Rejected, kInternal } from './protocol.ts';

/** The numbers of asyncutils' `ForceResult`, by final state. */
export const forceOutputs = {
  unforceable: 1,
  noCurrentTask: 2,
  ownerCompleted: 3,
  alreadyBeingForced: 4,
  failure: 5,
  releasedWithFalse: 6,
  success: 7,
  released: 8,
} as const;

export type ForceFinalState = keyof typeof forceOutputs;

export interface ForceContext {
  /** `<locksmith>:<lock>` */
  readonly name: string;
}

export type ForceEvent =
  | { readonly type: 'statesmith.force.start' }
  | { readonly type: 'statesmith.force.unforceable' }
  | { readonly type: 'statesmith.force.busy' }
  | { readonly type: 'statesmith.force.recognized' }
  | { readonly type: 'statesmith.force.released' }
  | { readonly type: 'statesmith.force.releasedWithFalse' }
  | { readonly type: 'statesmith.force.releaseRefused' }
  | { readonly type: 'statesmith.force.noOwner' }
  | { readonly type: 'statesmith.force.ownerCompleted' }
  | { readonly type: 'statesmith.force.sent' }
  | { readonly type: 'statesmith.force.unserved' }
  | { readonly type: 'statesmith.force.answered' }
  | { readonly type: 'statesmith.force.ownerRefused' }
  | { readonly type: 'statesmith.force.ownerFailed' }
  | { readonly type: 'statesmith.force.answerTimeout' }
  | { readonly type: 'statesmith.force.abort' }
  | { readonly type: 'statesmith.force.fail' };

/** Leaving any working state: the caller gave up, or something raised. */
const ended = {
  'statesmith.force.abort': 'aborted',
  'statesmith.force.fail': 'failed',
} as const;

const result = (state: ForceFinalState) => ({ type: 'final' as const, output: forceOutputs[state] });

/** One force's negotiation: its transitions depend only on the state and the event type, so a force steps its table until someone reads its actor. */
export const forceMachine = setup({
  types: {
    context: {} as ForceContext,
    events: {} as ForceEvent,
    input: {} as { readonly name: string },
    output: {} as number | undefined,
  },
}).createMachine({
  id: 'statesmith.force',
  context: ({ input }) => ({ name: input.name }),
  initial: 'idle',
  output: ({ event }) => (event as { output?: number }).output,
  states: {
    idle: {
      on: { 'statesmith.force.start': 'recognizing', ...ended },
    },
    recognizing: {
      on: {
        'statesmith.force.unforceable': 'unforceable',
        'statesmith.force.busy': 'alreadyBeingForced',
        'statesmith.force.recognized': 'releasing',
        ...ended,
      },
    },
    releasing: {
      on: {
        'statesmith.force.released': 'released',
        'statesmith.force.releasedWithFalse': 'releasedWithFalse',
        'statesmith.force.releaseRefused': 'requesting',
        ...ended,
      },
    },
    requesting: {
      on: {
        'statesmith.force.noOwner': 'noCurrentTask',
        'statesmith.force.ownerCompleted': 'ownerCompleted',
        'statesmith.force.sent': 'awaitingAnswer',
        'statesmith.force.unserved': 'compelling',
        // The lock came free (or to the host's own acquire) while the owner was looked up.
        'statesmith.force.released': 'released',
        ...ended,
      },
    },
    awaitingAnswer: {
      on: {
        'statesmith.force.answered': 'success',
        'statesmith.force.ownerRefused': 'failure',
        'statesmith.force.busy': 'alreadyBeingForced',
        'statesmith.force.ownerFailed': 'compelling',
        'statesmith.force.answerTimeout': 'compelling',
        ...ended,
      },
    },
    compelling: {
      on: { 'statesmith.force.released': 'released', ...ended },
    },
    unforceable: result('unforceable'),
    noCurrentTask: result('noCurrentTask'),
    ownerCompleted: result('ownerCompleted'),
    alreadyBeingForced: result('alreadyBeingForced'),
    failure: result('failure'),
    releasedWithFalse: result('releasedWithFalse'),
    success: result('success'),
    released: result('released'),
    aborted: { type: 'final' },
    failed: { type: 'final' },
  },
});

/**
 * The locksmith itself, which owns its forces: `idle`, or `forcing` while any force is in
 * flight. `locksmithLogic` (src/locksmith/) gives it its engine (the negotiation code and
 * the hooks of asyncutils' `LocksmithBase`) and its actions with `.provide()`.
 *
 * - Each `recognize`, `force` and `host` runs in the one `ops` child (invoked for the
 *   actor's life), which answers `opSettled`. A force's negotiation is a record in the
 *   table (a `forceMachine` stepped through its table); it becomes the `force-<n>` child
 *   only while an inspector captures or when someone reads its actor, spawned here in the
 *   state it has reached, and leaves once the operation is answered.
 * - The table of operations in flight and the set of recognized locks are the
 *   locksmith's truth; only its own actions change them.
 *
 * Every command is answered: with its reply, or with `statesmith.rejected` when it is
 * malformed. A rejection changes nothing.
 */

/** A named task of the registry, for `host`: gets the task's signal and the command's `params`. */
export type LocksmithTask = (signal: AbortSignal, params: unknown) => unknown;

/** What the runtime keeps of the operations in flight. */
export interface LocksmithTableLike {
  /** How many forces are in flight (a host's force included). */
  readonly forcing: number;
}

export interface LocksmithContext {
  readonly name: string;
  /** Locks a command may name (the only way across a process). */
  readonly locks: Readonly<Record<string, object>>;
  /** Tasks a `host` command may name. */
  readonly tasks: Readonly<Record<string, LocksmithTask>>;
  /** The runtime's table of operations in flight and recognized locks, made as the actor starts. */
  readonly table: LocksmithTableLike | null;
  readonly options: LocksmithInput;
}

/** The input of `locksmithLogic`. */
export interface LocksmithInput {
  /** Shown to owners (`LockLostError.by`) and in the inspector; default `'locksmith'`. */
  readonly name?: string;
  /** Locks a command may name. */
  readonly locks?: Readonly<Record<string, object>>;
  /** Tasks a `host` command may name. */
  readonly tasks?: Readonly<Record<string, LocksmithTask>>;
  /** The clock for answer, force, acquire and task deadlines; default the system clock. */
  readonly clock?: unknown;
  /** In-process: the `Locksmith` (or subclass) whose hooks the forces run; default a plain one. */
  readonly engine?: unknown;
}

/** The lock a command is about: a name from `input.locks`, or the lock itself in-process (`lockRef`). */
export interface LockTarget {
  /** The lock's name: a key of the locksmith's `input.locks`. */
  readonly lock?: string;
  /** In-process only: the lock object itself. */
  readonly lockRef?: object;
}

/**
 * The commands a locksmith accepts: plain data, plus `lockRef`, `fn`, `signal`, `owner` and `replyTo` in-process.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, locksmithLogic, Mutex, type LocksmithCommand } from 'statesmith';
 * const volumes = new Mutex({ name: 'volumes' });
 * const smith = createActor(locksmithLogic, { input: { name: 'doc', locks: { volumes } } }).start();
 * const recognize: LocksmithCommand = { type: 'statesmith.locksmith.recognize', lock: 'volumes' };
 * const answer = await ask(smith, recognize, { timeoutMs: 5000 });
 * console.log(answer.type, answer['result']); // statesmith.locksmith.recognized SUCCESS
 * smith.stop();
 * ```
 */
export type LocksmithCommand =
  | ({ readonly type: 'statesmith.locksmith.recognize'; readonly replyTo?: AnyActorRef } & LockTarget)
  | ({
      readonly type: 'statesmith.locksmith.force';
      readonly info?: unknown;
      readonly answerTimeoutMs?: number;
      readonly purgeWaiters?: boolean;
      /** In-process only: abandons the force. */
      readonly signal?: AbortSignal;
      /** In-process only: who holds the lock when the lock cannot say. */
      readonly owner?: unknown;
      readonly replyTo?: AnyActorRef;
    } & LockTarget)
  | ({
      readonly type: 'statesmith.locksmith.host';
      /** The registry name of the task to run under the lock. */
      readonly task?: string;
      readonly params?: unknown;
      /** In-process only: the task itself. */
      readonly fn?: (signal: AbortSignal) => unknown;
      readonly info?: unknown;
      readonly forceTimeoutMs?: number;
      readonly acquireTimeoutMs?: number;
      readonly taskTimeoutMs?: number;
      readonly answerTimeoutMs?: number;
      readonly purgeWaiters?: boolean;
      readonly signal?: AbortSignal;
      readonly owner?: unknown;
      readonly replyTo?: AnyActorRef;
    } & LockTarget);

/** Marks the locksmith's own events, so no message from outside can settle an operation. (Internal: not part of the API.) */
export const kFromOp: typeof kInternal = kInternal;

/** The locksmith's own events. (Internal: not part of the API.) */
export type LocksmithInternalEvent =
  | {
      readonly type: 'statesmith.locksmith.opSettled';
      readonly [kFromOp]: true;
      readonly id: number;
      readonly ok: boolean;
      /** The operation's value, or what it threw, in-process. */
      readonly value: unknown;
    }
  | { readonly type: 'statesmith.locksmith.materialise'; readonly [kFromOp]: true; readonly id: number; readonly at: string };

export type LocksmithEvent = LocksmithCommand | LocksmithInternalEvent;

/**
 * The replies of a locksmith (to `replyTo`, to its parent, and emitted).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, locksmithLogic, type LocksmithReply } from 'statesmith';
 * const smith = createActor(locksmithLogic, { input: { name: 'doc-2' } }).start();
 * // A lock it was not given is refused by name, never guessed.
 * const refused = await ask(smith, { type: 'statesmith.locksmith.recognize', lock: 'nowhere' }, { timeoutMs: 5000 }).catch((error: { rejection: LocksmithReply }) => error.rejection);
 * console.log(refused.type, refused.type === 'statesmith.rejected' ? refused.code : null); // statesmith.rejected ERR_UNKNOWN_LOCK
 * smith.stop();
 * ```
 */
export type LocksmithReply =
  | { readonly type: 'statesmith.locksmith.recognized'; readonly id: number; readonly lock: string; readonly result: string }
  | { readonly type: 'statesmith.locksmith.forced'; readonly id: number; readonly lock: string; readonly result: string }
  | {
      readonly type: 'statesmith.locksmith.hosted';
      readonly id: number;
      readonly lock: string;
      readonly outcome: 'completed' | 'failed' | 'cancelled';
      readonly result?: unknown;
      readonly error?: ErrorData;
    }
  /** A recognize or a force that threw (a critical error, a handler's error, an abort). */
  | { readonly type: 'statesmith.locksmith.failed'; readonly id: number; readonly lock: string; readonly command: string; readonly error: ErrorData }
  | Rejected;

/** The pure locksmith machine; `locksmithLogic` is it with its table, engine and operation children. */
export const locksmithMachine = setup({
  types: {
    context: {} as LocksmithContext,
    events: {} as LocksmithEvent,
    input: {} as LocksmithInput,
    emitted: {} as LocksmithReply,
  },
  actors: {
    /** A force's negotiation, spawned when someone reads it (the runtime starts it in the state it has reached). */
    force: forceMachine,
    /** For the actor's whole life: runs each operation (the runtime's engine) and answers `opSettled`. */
    ops: fromCallback<{ readonly type: string }>(() => undefined),
  },
  actions: {
    /** Makes the table and the engine (an `assign`, provided by the runtime). */
    open: () => undefined,
    /** Starts the operation in the `ops` child (provided by the runtime). */
    startOp: () => undefined,
    /** Answers a settled operation and lets its children go (provided by the runtime). */
    settle: () => undefined,
    /** Spawns a force's actor (provided by the runtime). */
    materialise: () => undefined,
    rejectMalformed: () => undefined,
    rejectForged: enqueueActions(({ enqueue, event, self }) =>
      answer<LocksmithReply>(enqueue as never, self, replyToOf(event), forgedRejection(event, self, 'locksmith')),
    ),
  },
  guards: {
    malformed: () => false,
    internal: ({ event }) => (event as { [kFromOp]?: true })[kFromOp] === true,
    forcing: ({ context }) => (context.table?.forcing ?? 0) > 0,
  },
}).createMachine({
  id: 'statesmith.locksmith',
  context: ({ input }) => ({ name: input.name ?? 'locksmith', locks: input.locks ?? {}, tasks: input.tasks ?? {}, table: null, options: input }),
  entry: 'open',
  invoke: { id: 'ops', src: 'ops' },
  initial: 'idle',
  on: {
    // A verb the locksmith does not know is answered, never dropped (known commands outrank the wildcard).
    'statesmith.locksmith.*': { actions: rejectUnknownCommand('locksmith', ['recognize', 'force', 'host']) as never },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('locksmith', ['recognize', 'force', 'host']) as never,
    'statesmith.locksmith.recognize': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
    'statesmith.locksmith.force': [
      { guard: 'malformed', actions: 'rejectMalformed' },
      { target: '.forcing', actions: 'startOp' },
    ],
    'statesmith.locksmith.host': [
      { guard: 'malformed', actions: 'rejectMalformed' },
      { target: '.forcing', actions: 'startOp' },
    ],
    'statesmith.locksmith.opSettled': [{ guard: 'internal', actions: 'settle', target: '.settling' }, { actions: 'rejectForged' }],
    'statesmith.locksmith.materialise': [{ guard: 'internal', actions: 'materialise' }, { actions: 'rejectForged' }],
  },
  states: {
    idle: {},
    forcing: {},
    // Where an operation's end leads: still forcing, or idle.
    settling: { always: [{ guard: 'forcing', target: 'forcing' }, { target: 'idle' }] },
  },
});
