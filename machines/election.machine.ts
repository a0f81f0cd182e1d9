/**
 * One coordinator's part in the leader election of a group (tooz's and etcd's
 * elections), as a statechart. `electionLogic` (src/coordination/) gives it its engine,
 * the backend I/O, with `.provide()`; this file stays pure.
 *
 * `follower → candidate → leader → resigning → follower`
 *
 * - `follower`: not campaigning. `campaign` makes it a `candidate`.
 * - `candidate`: the `campaign` child waits for the group's election lock. Elected, it is
 *   the `leader` with the lock's fence as its `term`; `withdraw` stops the wait.
 * - `leader`: the `hold` child watches the leadership; when it is lost (its lease ran
 *   out, the connection was lost, the lock was broken) the election emits `lost` and is
 *   a `follower` again. `proclaim` publishes a new value; `resign` gives leadership up.
 *
 * Every command is answered: with its reply, or with `statesmith.rejected` (campaigning
 * while a candidate or the leader is `ERR_ALREADY_CAMPAIGNING`; resigning or proclaiming
 * when not the leader is `ERR_NOT_LEADER`).
 */
import { assign, enqueueActions, fromCallback, fromPromise, setup, type AnyActorRef } from 'xstate';
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
} from './protocol.ts';

/** The error itself that a `failed` reply carries in-process. (Internal: not part of the API.) */
export const kElectionError: unique symbol = Symbol('statesmith.election.error');
/** Marks the election's own events. (Internal: not part of the API.) */
export const kFromElection: typeof kInternal = kInternal;

/** What the election's children do: the runtime provides it. */
export interface ElectionEngine {
  readonly group: string;
  readonly memberId: string;
}

export interface ElectionContext {
  readonly group: string;
  readonly memberId: string;
  /** The leader's term (the election lock's fence, as a decimal string) while leading; the last one after. */
  readonly term: string | null;
  /** The value this member campaigns with or proclaimed last (JSON). */
  readonly value: unknown;
  /** Who waits for the campaign's answer. */
  readonly campaigner: AnyActorRef | null;
  readonly timeoutMs: number | undefined;
  readonly engine: ElectionEngine;
}

/** The input of `electionLogic`. */
export interface ElectionInput {
  readonly engine: ElectionEngine;
}

/** The commands an election accepts: plain data, plus `replyTo` in-process. */
export type ElectionCommand =
  | { readonly type: 'statesmith.election.campaign'; readonly value?: unknown; readonly timeoutMs?: number; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.election.withdraw'; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.election.proclaim'; readonly value: unknown; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.election.resign'; readonly replyTo?: AnyActorRef };

/** What the election's children tell it. (Internal: not part of the API.) */
export type ElectionInternalEvent =
  | { readonly type: 'statesmith.election.lost'; readonly [kFromElection]: true; readonly term: string; readonly reason: ErrorData }
  | { readonly type: 'statesmith.election.proclaimDone'; readonly [kFromElection]: true; readonly replyTo: AnyActorRef | null; readonly error?: unknown };

export type ElectionEvent = ElectionCommand | ElectionInternalEvent;

/** The replies and news of an election (to `replyTo`, to its parent, and emitted). */
export type ElectionReply =
  | { readonly type: 'statesmith.election.elected'; readonly group: string; readonly memberId: string; readonly term: string }
  | { readonly type: 'statesmith.election.failed'; readonly command: string; readonly error: ErrorData }
  | { readonly type: 'statesmith.election.withdrawn'; readonly group: string }
  | { readonly type: 'statesmith.election.proclaimed'; readonly group: string; readonly term: string }
  | { readonly type: 'statesmith.election.resigned'; readonly group: string; readonly term: string }
  | { readonly type: 'statesmith.election.leadershipLost'; readonly group: string; readonly term: string; readonly reason: ErrorData }
  | Rejected;

const fromElection = (event: ElectionEvent): boolean => (event as { [kFromElection]?: true })[kFromElection] === true;

/** Why a command cannot be accepted at all. (Internal: not part of the API.) */
export function malformedElectionCommand(event: ElectionEvent): { code: string; reason: string } | undefined {
  if (event.type === 'statesmith.election.campaign') {
    const { timeoutMs } = event;
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0)) {
      return {
        code: typeof timeoutMs === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE',
        reason: `"timeoutMs" must be a number of ms >= 0 (Infinity allowed); received ${shown(timeoutMs)}`,
      };
    }
  }
  if (event.type === 'statesmith.election.proclaim' && !('value' in event)) return { code: 'ERR_INVALID_ARG_VALUE', reason: 'proclaim needs a "value"' };
  return undefined;
}

/** The pure election machine (see the file's comment); `electionLogic` is it with its engine. */
export const electionMachine = setup({
  types: {
    context: {} as ElectionContext,
    events: {} as ElectionEvent,
    input: {} as ElectionInput,
    emitted: {} as ElectionReply,
  },
  actors: {
    /** Waits for the election lock and publishes this member as the leader; resolves the term. */
    /** Elected: the term. Not elected within `timeoutMs` (routine for a follower): `{ notElected }`, the TimeoutError. */
    campaign: fromPromise<
      string | { readonly notElected: unknown },
      { readonly engine: ElectionEngine; readonly value: unknown; readonly timeoutMs: number | undefined }
    >(async () => '0'),
    /** Watches the leadership until it is lost (sends `lost`). */
    hold: fromCallback<{ readonly type: string }, { readonly engine: ElectionEngine }>(() => undefined),
    /** Publishes a new value as the leader's. */
    proclaim: fromCallback<{ readonly type: string }, { readonly engine: ElectionEngine; readonly value: unknown; readonly replyTo: AnyActorRef | null }>(
      () => undefined,
    ),
    /** Withdraws the leader record and frees the election lock. */
    resign: fromPromise<void, { readonly engine: ElectionEngine }>(async () => undefined),
  },
  actions: {
    startCampaign: assign(({ event }) => {
      const command = event as Extract<ElectionCommand, { type: 'statesmith.election.campaign' }>;
      return { campaigner: replyToOf(command) ?? null, value: command.value ?? null, timeoutMs: command.timeoutMs };
    }),
    replyElected: enqueueActions(({ enqueue, context, event, self }) => {
      const term = (event as unknown as { output: string }).output;
      enqueue.assign({ term });
      answer<ElectionReply>(enqueue as never, self, context.campaigner, {
        type: 'statesmith.election.elected',
        group: context.group,
        memberId: context.memberId,
        term,
      });
      enqueue.assign({ campaigner: null });
    }),
    replyCampaignFailed: enqueueActions(({ enqueue, context, event, self }) => {
      // A campaign that failed, or ended without an election (its output says why): the campaigner hears `failed`.
      const output = (event as { output?: { notElected?: unknown } }).output;
      const error = output !== undefined && typeof output === 'object' ? output.notElected : (event as { error?: unknown }).error;
      answer(
        enqueue as never,
        self,
        context.campaigner,
        Object.defineProperty({ type: 'statesmith.election.failed', command: 'statesmith.election.campaign', error: errorData(error) }, kElectionError, {
          value: error,
        }),
      );
      enqueue.assign({ campaigner: null });
    }),
    replyWithdrawn: enqueueActions(({ enqueue, context, event, self }) => {
      // The campaign's own waiter hears that it was withdrawn too.
      const reply: ElectionReply = { type: 'statesmith.election.withdrawn', group: context.group };
      answer<ElectionReply>(enqueue as never, self, replyToOf(event) ?? null, reply);
      if (context.campaigner !== null && context.campaigner !== replyToOf(event))
        (enqueue.sendTo as (ref: AnyActorRef, e: unknown) => void)(context.campaigner, reply);
      enqueue.assign({ campaigner: null });
    }),
    replyResigned: enqueueActions(({ enqueue, context, self }) => {
      answer<ElectionReply>(enqueue as never, self, context.campaigner, {
        type: 'statesmith.election.resigned',
        group: context.group,
        term: context.term ?? '0',
      });
      enqueue.assign({ campaigner: null });
    }),
    keepResigner: assign({ campaigner: ({ event }) => replyToOf(event) ?? null }),
    replyLost: enqueueActions(({ enqueue, context, event, self }) => {
      const lost = event as Extract<ElectionInternalEvent, { type: 'statesmith.election.lost' }>;
      answer<ElectionReply>(enqueue as never, self, null, {
        type: 'statesmith.election.leadershipLost',
        group: context.group,
        term: lost.term,
        reason: lost.reason,
      });
    }),
    keepValue: assign({ value: ({ event }) => (event as { value?: unknown }).value ?? null }),
    answerProclaim: enqueueActions(({ enqueue, context, event, self }) => {
      const done = event as Extract<ElectionInternalEvent, { type: 'statesmith.election.proclaimDone' }>;
      enqueue.stopChild('proclaim');
      if (done.error !== undefined) {
        answer(
          enqueue as never,
          self,
          done.replyTo,
          Object.defineProperty({ type: 'statesmith.election.failed', command: 'statesmith.election.proclaim', error: errorData(done.error) }, kElectionError, {
            value: done.error,
          }),
        );
      } else {
        answer<ElectionReply>(enqueue as never, self, done.replyTo, {
          type: 'statesmith.election.proclaimed',
          group: context.group,
          term: context.term ?? '0',
        });
      }
    }),
    rejectMalformed: enqueueActions(({ enqueue, event, self }) => {
      const why = malformedElectionCommand(event) ?? { code: 'ERR_INVALID_ARG_VALUE', reason: 'malformed command' };
      answer<ElectionReply>(enqueue as never, self, replyToOf(event), rejection(event, self, why.code, why.reason));
    }),
    rejectCampaigning: enqueueActions(({ enqueue, event, self, context }) =>
      answer<ElectionReply>(
        enqueue as never,
        self,
        replyToOf(event),
        rejection(
          event,
          self,
          'ERR_ALREADY_CAMPAIGNING',
          `${context.memberId} already campaigns in group ${shown(context.group)} (one campaign per coordinator and group)`,
        ),
      ),
    ),
    rejectNotLeader: enqueueActions(({ enqueue, event, self, context }) =>
      answer<ElectionReply>(
        enqueue as never,
        self,
        replyToOf(event),
        rejection(event, self, 'ERR_NOT_LEADER', `${context.memberId} is not the leader of group ${shown(context.group)}`),
      ),
    ),
    rejectNotCandidate: enqueueActions(({ enqueue, event, self }) =>
      answer<ElectionReply>(
        enqueue as never,
        self,
        replyToOf(event),
        rejection(event, self, 'ERR_NOT_CAMPAIGNING', 'there is no campaign waiting to withdraw'),
      ),
    ),
    rejectBusy: enqueueActions(({ enqueue, event, self }) =>
      answer<ElectionReply>(
        enqueue as never,
        self,
        replyToOf(event),
        rejection(event, self, 'ERR_INVALID_STATE', 'a proclaim is in flight; send the next when it is answered'),
      ),
    ),
    rejectForged: enqueueActions(({ enqueue, event, self }) =>
      answer<ElectionReply>(enqueue as never, self, replyToOf(event), forgedRejection(event, self, 'election')),
    ),
  },
  guards: {
    internal: ({ event }) => fromElection(event),
    malformed: ({ event }) => malformedElectionCommand(event) !== undefined,
    notElected: ({ event }) => {
      const output = (event as { output?: unknown }).output;
      return typeof output === 'object' && output !== null && 'notElected' in output;
    },
  },
}).createMachine({
  id: 'statesmith.election',
  context: ({ input }) => ({
    group: input.engine.group,
    memberId: input.engine.memberId,
    term: null,
    value: null,
    campaigner: null,
    timeoutMs: undefined,
    engine: input.engine,
  }),
  initial: 'follower',
  on: {
    'statesmith.election.*': { actions: rejectUnknownCommand('election', ['campaign', 'withdraw', 'proclaim', 'resign']) as never },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('election', ['campaign', 'withdraw', 'proclaim', 'resign']) as never,
    'statesmith.election.lost': [{ guard: 'internal' }, { actions: 'rejectForged' }],
    'statesmith.election.proclaimDone': [{ guard: 'internal' }, { actions: 'rejectForged' }],
    'statesmith.election.campaign': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'rejectCampaigning' }],
    'statesmith.election.proclaim': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: 'rejectNotLeader' }],
    'statesmith.election.resign': { actions: 'rejectNotLeader' },
    'statesmith.election.withdraw': { actions: 'rejectNotCandidate' },
  },
  states: {
    follower: {
      on: {
        'statesmith.election.campaign': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { target: 'candidate', actions: 'startCampaign' },
        ],
      },
    },
    candidate: {
      invoke: {
        id: 'campaign',
        src: 'campaign',
        input: ({ context }) => ({ engine: context.engine, value: context.value, timeoutMs: context.timeoutMs }),
        onDone: [
          // Not elected in time: a routine end, not a failed child.
          { guard: 'notElected', target: 'follower', actions: 'replyCampaignFailed' },
          { target: 'leader', actions: 'replyElected' },
        ],
        onError: { target: 'follower', actions: 'replyCampaignFailed' },
      },
      on: {
        'statesmith.election.withdraw': { target: 'follower', actions: 'replyWithdrawn' },
      },
    },
    leader: {
      invoke: { id: 'hold', src: 'hold', input: ({ context }) => ({ engine: context.engine }) },
      initial: 'serving',
      on: {
        'statesmith.election.lost': [{ guard: 'internal', target: 'follower', actions: 'replyLost' }, { actions: 'rejectForged' }],
        'statesmith.election.resign': { target: 'resigning', actions: 'keepResigner' },
      },
      states: {
        serving: {
          on: {
            'statesmith.election.proclaim': [
              { guard: 'malformed', actions: 'rejectMalformed' },
              { target: 'proclaiming', actions: 'keepValue' },
            ],
          },
        },
        proclaiming: {
          invoke: {
            id: 'proclaim',
            src: 'proclaim',
            input: ({ context, event }) => ({ engine: context.engine, value: context.value, replyTo: replyToOf(event) ?? null }),
          },
          on: {
            'statesmith.election.proclaimDone': [{ guard: 'internal', target: 'serving', actions: 'answerProclaim' }, { actions: 'rejectForged' }],
            'statesmith.election.proclaim': { actions: 'rejectBusy' },
          },
        },
      },
    },
    resigning: {
      invoke: {
        id: 'resign',
        src: 'resign',
        input: ({ context }) => ({ engine: context.engine }),
        onDone: { target: 'follower', actions: 'replyResigned' },
        onError: { target: 'follower', actions: 'replyResigned' },
      },
    },
  },
});
