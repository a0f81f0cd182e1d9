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
import { setup } from 'xstate';

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

export interface LocksmithContext {
  readonly name: string;
}

/** Sent when the first force starts and when the last one ends. */
export type LocksmithEvent = { readonly type: 'statesmith.locksmith.forceStarted' } | { readonly type: 'statesmith.locksmith.forceEnded' };

export const locksmithMachine = setup({
  types: {
    context: {} as LocksmithContext,
    events: {} as LocksmithEvent,
    input: {} as { readonly name: string },
  },
}).createMachine({
  id: 'statesmith.locksmith',
  context: ({ input }) => ({ name: input.name }),
  initial: 'idle',
  states: {
    idle: { on: { 'statesmith.locksmith.forceStarted': 'forcing' } },
    forcing: { on: { 'statesmith.locksmith.forceEnded': 'idle' } },
  },
});
