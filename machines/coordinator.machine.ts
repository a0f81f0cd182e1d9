/**
 * A coordinator (OpenStack coordination over tooz) as a statechart that owns its
 * connection and its held locks. `coordinatorLogic` (src/coordination/) gives it its
 * engine (the backend I/O) with `.provide()`; this file stays pure.
 *
 * `disconnected → connecting → connected → reconnecting → stopping → stopped`
 *
 * - `connecting`: the `connect` child makes the first connection. If it fails, `start`
 *   is answered with `failed` and the coordinator is `disconnected` again (tooz: `started`
 *   stays false).
 * - `connected`: a heartbeat every `heartbeatMs` (a delayed transition); a failed one, or
 *   the backend reporting its connection lost, moves to `reconnecting`, and every held
 *   lock is lost (nothing can vouch for it any more).
 * - `reconnecting`: attempts with exponential back-off and jitter (`attempt`,
 *   `backoffMs`); success goes back to `connected`.
 * - `stopping`: held locks are released and the backend closed; then `stopped`, final
 *   until started again.
 * - Every grant is in `grants` (its lock and fence), from its grant until it is released
 *   or lost. One renewal loop of the engine keeps all their leases: there is no child per
 *   grant. The one `backend` child runs the commands that need the backend.
 *
 * The delays are cut into slices of at most 2^31 - 1 ms, and `Infinity` never fires.
 * Every command is answered: with its reply, or with `statesmith.rejected`.
 */
import { assign, enqueueActions, fromCallback, fromPromise, setup, type AnyActorRef } from 'xstate';
import { electionMachine, type ElectionEngine } from './election.machine.ts';
import {
  answer,
  errorData,
  forgedRejection,
  rejection,
  rejectUnknownCommand,
  rejectAnyOther,
  replyToOf,
  shown,
  type ErrorData,
  type Rejected,
  kInternal,
  MAX_TIMER_MS,
} from './protocol.ts';

/** Node's longest timer (2^31 - 1 ms); see `src/clock.ts`. */

/** The error itself that a `failed` reply carries in-process. (Internal: not part of the API.) */
export const kError: unique symbol = Symbol('statesmith.coordinator.error');
/** Who an `opSettled` is for (in-process). (Internal: not part of the API.) */
export const kReplyTo: unique symbol = Symbol('statesmith.coordinator.replyTo');

/** What the coordinator's children do: the runtime provides it. */
export interface CoordinatorEngine {
  readonly memberId: string;
  readonly heartbeatMs: number;
  /** The reconnect delay for attempt `n` (exponential, capped, with jitter). */
  backoffDelay(attempt: number): number;
  /** The engine of the election of `group` (one per group). */
  electionEngine?(group: string): ElectionEngine;
}

export interface CoordinatorContext {
  readonly memberId: string;
  /** Reconnect attempts since the connection was lost (0 while connected). */
  readonly attempt: number;
  /** The delay before the next reconnect attempt. */
  readonly backoffMs: number;
  /** Heartbeats answered since the last connection. */
  readonly beats: number;
  /** What is left of the current heartbeat or back-off delay (the delays come in slices). */
  readonly waitLeft: number;
  /** Who waits for `start` and `stop` to be answered. */
  readonly startWaiters: readonly (AnyActorRef | null)[];
  readonly stopWaiters: readonly (AnyActorRef | null)[];
  /** The grants held through this coordinator, by grant id (`grant-<n>`): the lock (prefix included) and its fence. */
  readonly grants: Readonly<Record<string, { readonly lock: string; readonly fence: string }>>;
  readonly nextOp: number;
  /** The runtime's engine (in-process), made from `options` as the actor starts when the input gives none. */
  readonly engine: CoordinatorEngine;
  readonly options: Readonly<Record<string, unknown>> | undefined;
}

/** The input of `coordinatorLogic`. */
export interface CoordinatorInput {
  /** In-process: the engine (a `Coordinator`); `coordinatorLogic` makes one from `options` when absent. */
  readonly engine?: CoordinatorEngine;
  /** The options of `createCoordinator` (`url`, `prefix`, `agentId`, `heartbeatMs`, ...), when no engine is given. */
  readonly options?: Readonly<Record<string, unknown>>;
}

/**
 * The commands a coordinator accepts: plain data, plus `replyTo` in-process.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, coordinatorLogic, type CoordinatorCommand } from 'statesmith';
 * const coordinator = createActor(coordinatorLogic, { input: { options: { agentId: 'doc' } } }).start();
 * await ask(coordinator, { type: 'statesmith.coordinator.start' }, { timeoutMs: 5000 });
 * const acquire: CoordinatorCommand = { type: 'statesmith.coordinator.acquire', lock: 'volume-7', blocking: false };
 * const acquired = await ask(coordinator, acquire, { timeoutMs: 5000 });
 * console.log(acquired.type, acquired['fence']); // statesmith.coordinator.acquired 1
 * await ask(coordinator, { type: 'statesmith.coordinator.stop' }, { timeoutMs: 5000 });
 * ```
 */
export type CoordinatorCommand =
  | { readonly type: 'statesmith.coordinator.start'; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.coordinator.stop'; readonly replyTo?: AnyActorRef }
  /** Takes a lock (the coordinator's prefix is added); `blocking` as `DistributedLock.acquire`. */
  | {
      readonly type: 'statesmith.coordinator.acquire';
      readonly lock: string;
      readonly blocking?: boolean | number;
      readonly timeoutMs?: number;
      readonly replyTo?: AnyActorRef;
    }
  | { readonly type: 'statesmith.coordinator.release'; readonly lock: string; readonly replyTo?: AnyActorRef }
  /** Opens the election of `group` as the child `election:<group>` (once; later calls answer the same). */
  | { readonly type: 'statesmith.coordinator.election'; readonly group: string; readonly replyTo?: AnyActorRef }
  /** Joins `group` with `capabilities` (JSON), for as long as the heartbeat keeps this member alive. */
  | { readonly type: 'statesmith.coordinator.join'; readonly group: string; readonly capabilities?: unknown; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.coordinator.leave'; readonly group: string; readonly replyTo?: AnyActorRef }
  /** Frees `lock` (without the prefix) whoever holds it: an operator's break. */
  | { readonly type: 'statesmith.coordinator.breakLock'; readonly lock: string; readonly replyTo?: AnyActorRef }
  /** Lists the live members of `group`. */
  | { readonly type: 'statesmith.coordinator.members'; readonly group: string; readonly replyTo?: AnyActorRef };

/** Marks the coordinator's own events, so no message from outside can fake a connection or a lease. (Internal: not part of the API.) */
export const kFromEngine: typeof kInternal = kInternal;

/** What the runtime tells the coordinator. (Internal: not part of the API.) */
export type CoordinatorInternalEvent =
  | { readonly type: 'statesmith.coordinator.lost'; readonly [kFromEngine]: true; readonly error: ErrorData }
  | { readonly type: 'statesmith.coordinator.granted'; readonly [kFromEngine]: true; readonly id: string; readonly lock: string; readonly fence: string }
  | { readonly type: 'statesmith.coordinator.grantEnded'; readonly [kFromEngine]: true; readonly id: string }
  | {
      readonly type: 'statesmith.coordinator.opSettled';
      readonly [kFromEngine]: true;
      readonly opId: string;
      readonly reply: CoordinatorReply;
      /** The grant an `acquired` reply hands out: kept in `grants` in the same step as the answer. */
      readonly grant?: { readonly id: string; readonly lock: string; readonly fence: string };
    };

export type CoordinatorEvent = CoordinatorCommand | CoordinatorInternalEvent;

/**
 * The replies of a coordinator (to `replyTo`, to its parent, and emitted).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, coordinatorLogic, type CoordinatorReply } from 'statesmith';
 * const coordinator = createActor(coordinatorLogic, { input: { options: { agentId: 'doc-2' } } }).start();
 * // Before it is started, a lock command is refused with the state it is in.
 * const refused = await ask(coordinator, { type: 'statesmith.coordinator.acquire', lock: 'volume-7' }, { timeoutMs: 5000 }).catch((error: { rejection: CoordinatorReply }) => error.rejection);
 * console.log(refused.type, refused.type === 'statesmith.rejected' ? refused.state : null); // statesmith.rejected disconnected
 * coordinator.stop();
 * ```
 */
export type CoordinatorReply =
  | { readonly type: 'statesmith.coordinator.started'; readonly memberId: string }
  | { readonly type: 'statesmith.coordinator.failed'; readonly command: string; readonly error: ErrorData }
  | { readonly type: 'statesmith.coordinator.stopped'; readonly memberId: string }
  | { readonly type: 'statesmith.coordinator.acquired'; readonly lock: string; readonly fence: string }
  | { readonly type: 'statesmith.coordinator.notAcquired'; readonly lock: string }
  | { readonly type: 'statesmith.coordinator.released'; readonly lock: string; readonly freed: boolean }
  | { readonly type: 'statesmith.coordinator.broken'; readonly lock: string; readonly broken: boolean }
  | { readonly type: 'statesmith.coordinator.electionOpened'; readonly group: string; readonly id: string }
  | { readonly type: 'statesmith.coordinator.joined'; readonly group: string; readonly memberId: string }
  | { readonly type: 'statesmith.coordinator.left'; readonly group: string; readonly memberId: string; readonly wasMember: boolean }
  | {
      readonly type: 'statesmith.coordinator.members';
      readonly group: string;
      readonly members: ReadonlyArray<{ readonly memberId: string; readonly capabilities: unknown }>;
    }
  | Rejected;

type GrantsRecord = CoordinatorContext['grants'];

/**
 * A copy of `grants` with `id` set to `value` (or left out when `value` is undefined). The copy
 * has no prototype, which V8 keeps as a dictionary: every grant has an id of its own, and a
 * plain object literal would make a new hidden class for each one (measured: about 1.8 KB a
 * grant, promoted to the old generation and collected only by a full GC).
 */
function withGrant(grants: GrantsRecord, id: string, value: GrantsRecord[string] | undefined): GrantsRecord {
  const next = Object.create(null) as Record<string, GrantsRecord[string]>;
  for (const key in grants) if (key !== id) next[key] = grants[key] as GrantsRecord[string];
  if (value !== undefined) next[id] = value;
  return next;
}

const internal = (event: CoordinatorEvent): boolean => (event as { [kFromEngine]?: true })[kFromEngine] === true;

/** Why a command cannot be accepted at all. (Internal: not part of the API.) */
export function malformedCoordinatorCommand(event: CoordinatorEvent): { code: string; reason: string } | undefined {
  if (
    event.type === 'statesmith.coordinator.election' ||
    event.type === 'statesmith.coordinator.join' ||
    event.type === 'statesmith.coordinator.leave' ||
    event.type === 'statesmith.coordinator.members'
  ) {
    const { group } = event;
    if (typeof group !== 'string' || group.length === 0)
      return { code: 'ERR_INVALID_ARG_TYPE', reason: `"group" must be a non-empty string; received ${shown(group)}` };
    if (Buffer.byteLength(group, 'utf8') > 256)
      return { code: 'ERR_OUT_OF_RANGE', reason: `"group" may have at most 256 bytes of UTF-8; it has ${Buffer.byteLength(group, 'utf8')}` };
    return undefined;
  }
  if (event.type !== 'statesmith.coordinator.acquire' && event.type !== 'statesmith.coordinator.release' && event.type !== 'statesmith.coordinator.breakLock')
    return undefined;
  if (typeof event.lock !== 'string' || event.lock.length === 0)
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"lock" must be a non-empty string; received ${shown(event.lock)}` };
  if (event.type === 'statesmith.coordinator.acquire') {
    const { blocking, timeoutMs } = event;
    if (blocking !== undefined && typeof blocking !== 'boolean' && (typeof blocking !== 'number' || Number.isNaN(blocking) || blocking < 0)) {
      return {
        code: typeof blocking === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE',
        reason: `"blocking" must be true, false or a number of ms >= 0; received ${shown(blocking)}`,
      };
    }
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0)) {
      return {
        code: typeof timeoutMs === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE',
        reason: `"timeoutMs" must be a number of ms >= 0 (Infinity allowed); received ${shown(timeoutMs)}`,
      };
    }
  }
  return undefined;
}

/** The pure coordinator machine (see the file's comment); `coordinatorLogic` is it with its engine. */
export const coordinatorMachine = setup({
  types: {
    context: {} as CoordinatorContext,
    events: {} as CoordinatorEvent,
    input: {} as CoordinatorInput,
    emitted: {} as CoordinatorReply,
  },
  actors: {
    /** The first connection (and the capability check). */
    connect: fromPromise<void, { readonly engine: CoordinatorEngine }>(async () => undefined),
    /** One heartbeat, bounded by its own timeout. */
    ping: fromPromise<void, { readonly engine: CoordinatorEngine }>(async () => undefined),
    /** One reconnect attempt. */
    reconnect: fromPromise<void, { readonly engine: CoordinatorEngine }>(async () => undefined),
    /** Releases every held lock, then closes the backend. */
    shutdown: fromPromise<void, { readonly engine: CoordinatorEngine }>(async () => undefined),
    /** One group's election (`election:<group>`). */
    election: electionMachine,
    /** For the actor's whole life: runs each command that needs the backend and answers `opSettled`. */
    backend: fromCallback<{ readonly type: string }, { readonly engine: CoordinatorEngine }>(() => undefined),
  },
  delays: {
    slice: ({ context }) => Math.min(context.waitLeft, MAX_TIMER_MS),
  },
  actions: {
    /** Makes the engine from `options` when the input gives none (an `assign`, provided by the runtime). */
    open: () => undefined,
    /** Logs, and loses every held lock (provided by the runtime). */
    connectionLost: () => undefined,
    /** After a reconnect: wakes the waiting acquires (provided by the runtime). */
    reconnected: () => undefined,
    reset: assign({ attempt: 0, backoffMs: 0, beats: 0 }),
    beat: assign({ beats: ({ context }) => context.beats + 1 }),
    armHeartbeat: assign({ waitLeft: ({ context }) => context.engine.heartbeatMs }),
    spendSlice: assign({ waitLeft: ({ context }) => context.waitLeft - MAX_TIMER_MS }),
    nextAttempt: assign(({ context }) => {
      const attempt = context.attempt + 1;
      const backoffMs = context.engine.backoffDelay(attempt);
      return { attempt, backoffMs, waitLeft: backoffMs };
    }),
    addStartWaiter: assign({ startWaiters: ({ context, event }) => [...context.startWaiters, replyToOf(event) ?? null] }),
    addStopWaiter: assign({ stopWaiters: ({ context, event }) => [...context.stopWaiters, replyToOf(event) ?? null] }),
    replyStarted: enqueueActions(({ enqueue, context, event, self }) => {
      const reply: CoordinatorReply = { type: 'statesmith.coordinator.started', memberId: context.memberId };
      const waiters = event.type === 'statesmith.coordinator.start' ? [replyToOf(event) ?? null] : context.startWaiters;
      for (const waiter of waiters) answer<CoordinatorReply>(enqueue as never, self, waiter, reply);
      if (event.type !== 'statesmith.coordinator.start') enqueue.assign({ startWaiters: [] });
    }),
    replyStartFailed: enqueueActions(({ enqueue, context, event, self }) => {
      const error = (event as { error?: unknown }).error;
      const data = errorData(error);
      for (const waiter of context.startWaiters)
        answer(
          enqueue as never,
          self,
          waiter,
          Object.defineProperty({ type: 'statesmith.coordinator.failed', command: 'statesmith.coordinator.start', error: data }, kError, { value: error }),
        );
      enqueue.assign({ startWaiters: [] });
    }),
    replyStopped: enqueueActions(({ enqueue, context, event, self }) => {
      const reply: CoordinatorReply = { type: 'statesmith.coordinator.stopped', memberId: context.memberId };
      const waiters = event.type === 'statesmith.coordinator.stop' ? [replyToOf(event) ?? null] : context.stopWaiters;
      for (const waiter of waiters) answer<CoordinatorReply>(enqueue as never, self, waiter, reply);
      if (event.type !== 'statesmith.coordinator.stop') enqueue.assign({ stopWaiters: [] });
    }),
    addGrant: assign({
      grants: ({ context, event }) => {
        const { id, lock, fence } = event as Extract<CoordinatorInternalEvent, { type: 'statesmith.coordinator.granted' }>;
        return withGrant(context.grants, id, { lock, fence });
      },
    }),
    dropGrant: assign(({ context, event }) => {
      const { id } = event as Extract<CoordinatorInternalEvent, { type: 'statesmith.coordinator.grantEnded' }>;
      if (context.grants[id] === undefined) return {};
      return { grants: withGrant(context.grants, id, undefined) };
    }),
    startOp: enqueueActions(({ enqueue, context, event }) => {
      const opId = `op-${context.nextOp}`;
      enqueue.sendTo('backend' as never, { type: 'statesmith.coordinator.run', opId, command: event as CoordinatorCommand } as never);
      enqueue.assign({ nextOp: context.nextOp + 1 });
    }),
    answerOp: enqueueActions(({ enqueue, event, self }) => {
      const settled = event as Extract<CoordinatorInternalEvent, { type: 'statesmith.coordinator.opSettled' }>;
      const to = (settled as { [kReplyTo]?: AnyActorRef | null })[kReplyTo] ?? null;
      const { grant } = settled;
      if (grant !== undefined) enqueue.assign(({ context }) => ({ grants: withGrant(context.grants, grant.id, { lock: grant.lock, fence: grant.fence }) }));
      answer<CoordinatorReply>(enqueue as never, self, to, settled.reply);
    }),
    openElection: enqueueActions(({ enqueue, context, event, self }) => {
      const { group } = event as Extract<CoordinatorCommand, { type: 'statesmith.coordinator.election' }>;
      const id = `election:${group}`;
      const children = (self.getSnapshot() as { children: Record<string, unknown> }).children;
      if (context.engine.electionEngine === undefined) {
        answer<CoordinatorReply>(
          enqueue as never,
          self,
          replyToOf(event),
          rejection(event, self, 'ERR_COORDINATION_STATE', 'this coordinator has no election engine'),
        );
        return;
      }
      if (children[id] === undefined) enqueue.spawnChild('election', { id, input: { engine: context.engine.electionEngine(group) } });
      answer<CoordinatorReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.coordinator.electionOpened', group, id });
    }),
    rejectMalformed: enqueueActions(({ enqueue, event, self }) => {
      const why = malformedCoordinatorCommand(event) ?? { code: 'ERR_INVALID_ARG_VALUE', reason: 'malformed command' };
      answer<CoordinatorReply>(enqueue as never, self, replyToOf(event), rejection(event, self, why.code, why.reason));
    }),
    rejectNotConnected: enqueueActions(({ enqueue, event, self }) =>
      answer<CoordinatorReply>(
        enqueue as never,
        self,
        replyToOf(event),
        rejection(event, self, 'ERR_COORDINATION_STATE', 'the coordinator is not connected; start it first'),
      ),
    ),
    rejectForged: enqueueActions(({ enqueue, event, self }) =>
      answer<CoordinatorReply>(enqueue as never, self, replyToOf(event), forgedRejection(event, self, 'coordinator')),
    ),
  },
  guards: {
    internal: ({ event }) => internal(event),
    malformed: ({ event }) => malformedCoordinatorCommand(event) !== undefined,
    due: ({ context }) => context.waitLeft <= MAX_TIMER_MS,
    stopPending: ({ context }) => context.stopWaiters.length > 0,
  },
}).createMachine({
  id: 'statesmith.coordinator',
  context: ({ input }) => ({
    memberId: (input.engine as CoordinatorEngine | undefined)?.memberId ?? '',
    attempt: 0,
    backoffMs: 0,
    beats: 0,
    waitLeft: Infinity,
    startWaiters: [],
    stopWaiters: [],
    grants: {},
    nextOp: 1,
    engine: input.engine as CoordinatorEngine,
    options: input.options,
  }),
  entry: 'open',
  // Lives as long as the actor: the engine's command runner.
  invoke: { id: 'backend', src: 'backend', input: ({ context }) => ({ engine: context.engine }) },
  initial: 'disconnected',
  on: {
    // A verb the coordinator does not know is answered, never dropped (known commands outrank the wildcard).
    'statesmith.coordinator.*': {
      actions: rejectUnknownCommand('coordinator', ['start', 'stop', 'acquire', 'release', 'breakLock', 'election', 'join', 'leave', 'members']) as never,
    },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('coordinator', ['start', 'stop', 'acquire', 'release', 'breakLock', 'election', 'join', 'leave', 'members']) as never,
    'statesmith.coordinator.election': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'openElection' }],
    'statesmith.coordinator.join': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'rejectNotConnected' }],
    'statesmith.coordinator.leave': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
    'statesmith.coordinator.members': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'rejectNotConnected' }],
    'statesmith.coordinator.breakLock': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'rejectNotConnected' }],
    'statesmith.coordinator.granted': [{ guard: 'internal', actions: 'addGrant' }, { actions: 'rejectForged' }],
    'statesmith.coordinator.grantEnded': [{ guard: 'internal', actions: 'dropGrant' }, { actions: 'rejectForged' }],
    'statesmith.coordinator.opSettled': [{ guard: 'internal', actions: 'answerOp' }, { actions: 'rejectForged' }],
    'statesmith.coordinator.lost': [{ guard: 'internal' }, { actions: 'rejectForged' }],
    'statesmith.coordinator.acquire': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'rejectNotConnected' }],
    'statesmith.coordinator.release': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
  },
  states: {
    disconnected: {
      on: {
        'statesmith.coordinator.start': { target: 'connecting', actions: ['reset', 'addStartWaiter'] },
        'statesmith.coordinator.stop': { actions: 'replyStopped' },
      },
    },
    connecting: {
      invoke: {
        id: 'connect',
        src: 'connect',
        input: ({ context }) => ({ engine: context.engine }),
        onDone: [
          // A stop came while connecting: start is answered, then the coordinator stops.
          { guard: 'stopPending', target: 'stopping', actions: 'replyStarted' },
          { target: 'connected', actions: ['reset', 'replyStarted'] },
        ],
        onError: [
          { guard: 'stopPending', target: 'stopped', actions: ['replyStartFailed', 'replyStopped'] },
          { target: 'disconnected', actions: 'replyStartFailed' },
        ],
      },
      on: {
        'statesmith.coordinator.start': { actions: 'addStartWaiter' },
        'statesmith.coordinator.stop': { actions: 'addStopWaiter' },
      },
    },
    connected: {
      initial: 'waiting',
      on: {
        'statesmith.coordinator.start': { actions: 'replyStarted' },
        'statesmith.coordinator.stop': { target: 'stopping', actions: 'addStopWaiter' },
        'statesmith.coordinator.lost': [{ guard: 'internal', target: 'reconnecting', actions: 'connectionLost' }, { actions: 'rejectForged' }],
        'statesmith.coordinator.acquire': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
        'statesmith.coordinator.join': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
        'statesmith.coordinator.members': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
        'statesmith.coordinator.breakLock': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
      },
      states: {
        waiting: {
          entry: 'armHeartbeat',
          after: {
            slice: [
              { guard: 'due', target: 'beating' },
              { target: 'waiting', reenter: true, actions: 'spendSlice' },
            ],
          },
        },
        beating: {
          invoke: {
            id: 'ping',
            src: 'ping',
            input: ({ context }) => ({ engine: context.engine }),
            onDone: { target: 'waiting', actions: 'beat' },
            onError: { target: '#statesmith\\.coordinator.reconnecting', actions: 'connectionLost' },
          },
        },
      },
    },
    reconnecting: {
      entry: 'nextAttempt',
      initial: 'waiting',
      on: {
        'statesmith.coordinator.start': { actions: 'replyStarted' },
        'statesmith.coordinator.stop': { target: 'stopping', actions: 'addStopWaiter' },
        // A blocked acquire waits through a reconnect, as it waits for a release.
        'statesmith.coordinator.acquire': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'startOp' }],
      },
      states: {
        waiting: {
          after: {
            slice: [
              { guard: 'due', target: 'trying' },
              { target: 'waiting', reenter: true, actions: 'spendSlice' },
            ],
          },
        },
        trying: {
          invoke: {
            id: 'reconnect',
            src: 'reconnect',
            input: ({ context }) => ({ engine: context.engine }),
            onDone: { target: '#statesmith\\.coordinator.connected', actions: ['reset', 'reconnected'] },
            onError: { target: '#statesmith\\.coordinator.reconnecting', reenter: true },
          },
        },
      },
    },
    stopping: {
      invoke: {
        id: 'shutdown',
        src: 'shutdown',
        input: ({ context }) => ({ engine: context.engine }),
        onDone: { target: 'stopped', actions: 'replyStopped' },
        onError: { target: 'stopped', actions: 'replyStopped' },
      },
      on: {
        'statesmith.coordinator.stop': { actions: 'addStopWaiter' },
        'statesmith.coordinator.start': { actions: 'addStartWaiter' },
      },
    },
    stopped: {
      // A start that came while stopping connects anew once stopped.
      always: { guard: ({ context }) => context.startWaiters.length > 0, target: 'connecting', actions: 'reset' },
      on: {
        'statesmith.coordinator.start': { target: 'connecting', actions: ['reset', 'addStartWaiter'] },
        'statesmith.coordinator.stop': { actions: 'replyStopped' },
      },
    },
  },
});
