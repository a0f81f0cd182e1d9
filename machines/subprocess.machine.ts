/**
 * One cancellable subprocess runner (Patroni's `CancellableSubprocess`) as a statechart
 * that owns its state. `subprocessLogic` (src/subprocess/) gives it the child that does
 * the I/O with `.provide()`; this file stays pure.
 *
 * `idle → scheduled → running → done`, and on cancel (or an aborted or timed-out call)
 * `running → cancelling.terminating (SIGTERM sent) → cancelling.killing (SIGKILL to the
 * process tree) → done`.
 *
 * - `call` takes the runner and spawns the `process` child, which answers `spawned`
 *   (→ `running`) or `exited` with a spawn failure (→ `done`). One call at a time.
 * - `cancelled` is the sticky flag: `cancel` sets it (and stops a running process); a
 *   `call` is refused while it is set, until `resetCancelled`. A `terminate` (the call's
 *   own abort) stops the process without it.
 * - The time limits are delayed transitions on the actor system's clock: the call's
 *   `timeoutMs` in `running`, and `terminateTimeoutMs` from SIGTERM to SIGKILL. Each is
 *   cut into slices of at most 2^31 - 1 ms (a longer timer fires at once in Node), and
 *   `Infinity` never fires.
 * - `done` comes once the process and what it left behind are gone; its `exited` reply
 *   goes to the call's `replyTo`, and every `cancel` is answered with `cancelled` then.
 *
 * Every command is answered: with its reply, or with `statesmith.rejected` when the state
 * does not accept it or it is malformed. A rejection changes nothing.
 */
import { assign, enqueueActions, fromCallback, setup, type AnyActorRef } from 'xstate';
import {
  answer,
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

/**
 * How a call ended: the process exited, it could not be spawned (or its pipes failed), or it was
 * stopped. `interrupted`: a durable runner's call was running when its process ended; it is never
 * run again.
 */
export type SubprocessOutcome = 'completed' | 'failed' | 'cancelled' | 'interrupted';

/** Why a process was stopped: a `cancel`, the call's own abort, or its time limit. */
export type SubprocessStopReason = 'cancel' | 'abort' | 'timeout';

/** The options of a call that the `process` child uses. */
export interface SubprocessCallData {
  readonly argv: readonly string[];
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Written to stdin (a newline is added when missing), then stdin is closed. */
  readonly input?: string | Uint8Array;
  /** In-process only: gets each output line. */
  readonly onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** The subprocess actor's context: the sticky cancel flag and the current or last call. */
export interface SubprocessContext {
  /** The runner's name. */
  readonly name: string;
  /** The sticky flag: set by `cancel`, cleared by `resetCancelled`. */
  readonly cancelled: boolean;
  /** Increases with every call; identifies the call in the slot. */
  readonly call: number;
  /** The current or last call's command line. */
  readonly argv: readonly string[] | null;
  /** The process id while the process runs, and after it exited; null before a spawn. */
  readonly pid: number | null;
  /** The exit code (`-N` for a death by signal N), or null. */
  readonly exitCode: number | null;
  /** The name of the signal that killed the process (`'SIGTERM'`), or null. */
  readonly signal: string | null;
  /** How the last call ended, or null while one runs. */
  readonly outcome: SubprocessOutcome | null;
  /** Why the last call failed, as data. */
  readonly error: ErrorData | null;
  /** Why the running process is being stopped. */
  readonly stopReason: SubprocessStopReason | null;
  /** Who gets the call's `exited`. */
  readonly caller: AnyActorRef | null;
  /** The `replyTo` of every `cancel` waiting for the process to be gone. */
  readonly cancelWaiters: readonly AnyActorRef[];
  /** True once a `cancel` reached the current call: `cancelled` is answered when it is over. */
  readonly cancelRequested: boolean;
  /** The call's options, for the child. */
  readonly options: SubprocessCallData | null;
  /** What is left of the call's time limit, and of the wait from SIGTERM to SIGKILL. */
  readonly timeLeft: number;
  /** What is left of the wait from SIGTERM to SIGKILL, in ms. */
  readonly terminateLeft: number;
  /** How long a cancel waits after SIGTERM before SIGKILL, in ms. */
  readonly terminateTimeoutMs: number;
  /** How long a finished call waits for output pipes held open by leftover descendants. */
  readonly pipeGraceMs: number;
}

/** The input of `subprocessLogic`. */
export interface SubprocessInput {
  /** The runner's name; default `subprocess`. */
  readonly name?: string;
  /** How long a cancel waits after SIGTERM before SIGKILL; default 10,000 ms (Patroni's ten 1 s checks). */
  readonly terminateTimeoutMs?: number;
  /** How long a finished call waits for output pipes held open by leftover descendants; default 1,000 ms. */
  readonly pipeGraceMs?: number;
}

/**
 * The commands a subprocess runner accepts: plain data, plus `onOutput` and `replyTo` in-process.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, subprocessLogic, type SubprocessCommand } from 'statesmith';
 * const runner = createActor(subprocessLogic, { input: { name: 'doc' } }).start();
 * const call: SubprocessCommand = { type: 'statesmith.subprocess.call', argv: ['sh', '-c', 'exit 3'] };
 * const exited = await ask(runner, call, { timeoutMs: 5000 });
 * console.log(exited.type, exited['outcome'], exited['exitCode']); // statesmith.subprocess.exited completed 3
 * runner.stop();
 * ```
 */
export type SubprocessCommand =
  | ({ readonly type: 'statesmith.subprocess.call'; readonly timeoutMs?: number; readonly replyTo?: AnyActorRef } & SubprocessCallData)
  | { readonly type: 'statesmith.subprocess.cancel'; readonly kill?: boolean; readonly replyTo?: AnyActorRef }
  /** Stops the running call's process without the sticky flag (the call's own abort). */
  | { readonly type: 'statesmith.subprocess.terminate'; readonly call?: number; readonly kill?: boolean; readonly replyTo?: AnyActorRef }
  | { readonly type: 'statesmith.subprocess.resetCancelled'; readonly replyTo?: AnyActorRef };

/** Marks the process child's own events, so no message from outside can end a call. (Internal: not part of the API.) */
export const kFromProcess: typeof kInternal = kInternal;

/** What the process child tells the runner. (Internal: not part of the API.) */
export type SubprocessInternalEvent =
  | { readonly type: 'statesmith.subprocess.spawned'; readonly [kFromProcess]: true; readonly call: number; readonly pid: number }
  | {
      readonly type: 'statesmith.subprocess.ended';
      readonly [kFromProcess]: true;
      readonly call: number;
      /** Null with `error` when the spawn failed. */
      readonly exitCode: number | null;
      readonly signal: string | null;
      readonly error?: ErrorData;
    };

/** What the runner asks of its process child. (Internal: not part of the API.) */
export type SubprocessProcessCommand = { readonly type: 'terminate' } | { readonly type: 'kill' };

/** What the process child is started with. (Internal: not part of the API.) */
export interface SubprocessProcessInput {
  readonly name: string;
  readonly call: number;
  readonly options: SubprocessCallData;
  readonly pipeGraceMs: number;
}

export type SubprocessEvent = SubprocessCommand | SubprocessInternalEvent;

/**
 * The replies and notices of a subprocess runner (to `replyTo`, to its parent, and emitted).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { ask, subprocessLogic, type SubprocessReply } from 'statesmith';
 * const runner = createActor(subprocessLogic, { input: { name: 'doc' } }).start();
 * const answer = (await ask(runner, { type: 'statesmith.subprocess.cancel' }, { timeoutMs: 5000 })) as SubprocessReply;
 * console.log(answer.type, runner.getSnapshot().context.cancelled); // statesmith.subprocess.cancelled true
 * runner.stop();
 * ```
 */
export type SubprocessReply =
  | { readonly type: 'statesmith.subprocess.started'; readonly call: number; readonly pid: number }
  | {
      readonly type: 'statesmith.subprocess.exited';
      readonly call: number;
      readonly outcome: SubprocessOutcome;
      /** The exit code, `-N` for a death by signal N, or null when the spawn failed. */
      readonly exitCode: number | null;
      readonly signal: string | null;
      /** Why it was stopped, when it was. */
      readonly stopReason: SubprocessStopReason | null;
      readonly error?: ErrorData;
    }
  | { readonly type: 'statesmith.subprocess.terminating'; readonly call: number | null }
  /** To `cancel`: the flag is set and nothing runs any more. */
  | { readonly type: 'statesmith.subprocess.cancelled' }
  | { readonly type: 'statesmith.subprocess.rearmed' }
  | Rejected;

const CALL_KEYS = new Set(['type', 'argv', 'cwd', 'env', 'input', 'onOutput', 'timeoutMs', 'replyTo']);

const isDuration = (value: unknown): boolean => typeof value === 'number' && !Number.isNaN(value) && value >= 0;

/** Why a command cannot be accepted at all: a code and a reason. (Internal: not part of the API.) */
export function malformedSubprocessCommand(event: SubprocessEvent): { code: string; reason: string } | undefined {
  switch (event.type) {
    case 'statesmith.subprocess.call': {
      for (const key of Object.keys(event)) {
        if (!CALL_KEYS.has(key)) return { code: 'ERR_UNKNOWN_OPTION', reason: `call has no field "${key}"; it takes ${[...CALL_KEYS].slice(1).join(', ')}` };
      }
      const argv = event.argv as unknown;
      if (!Array.isArray(argv) || argv.length === 0 || argv.some((item) => typeof item !== 'string') || argv[0] === '') {
        return { code: 'ERR_INVALID_ARG_TYPE', reason: `"argv" must be a non-empty array of strings, the command first; received ${shown(argv)}` };
      }
      if (event.cwd !== undefined && typeof event.cwd !== 'string')
        return { code: 'ERR_INVALID_ARG_TYPE', reason: `"cwd" must be a string; received ${shown(event.cwd)}` };
      if (event.env !== undefined) {
        if (typeof event.env !== 'object' || event.env === null || Array.isArray(event.env)) {
          return { code: 'ERR_INVALID_ARG_TYPE', reason: `"env" must be an object of strings; received ${shown(event.env)}` };
        }
        for (const [key, value] of Object.entries(event.env)) {
          if (value !== undefined && typeof value !== 'string')
            return { code: 'ERR_INVALID_ARG_TYPE', reason: `"env.${key}" must be a string; received ${shown(value)}` };
        }
      }
      if (event.input !== undefined && typeof event.input !== 'string' && !(event.input instanceof Uint8Array)) {
        return { code: 'ERR_INVALID_ARG_TYPE', reason: `"input" must be a string or bytes; received ${shown(event.input)}` };
      }
      if (event.onOutput !== undefined && typeof event.onOutput !== 'function')
        return { code: 'ERR_INVALID_ARG_TYPE', reason: '"onOutput" must be a function' };
      if (event.timeoutMs !== undefined && !isDuration(event.timeoutMs)) {
        return {
          code: typeof event.timeoutMs === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE',
          reason: `"timeoutMs" must be a number of ms >= 0 (Infinity allowed); received ${shown(event.timeoutMs)}`,
        };
      }
      return undefined;
    }
    case 'statesmith.subprocess.cancel':
    case 'statesmith.subprocess.terminate':
      if (event.kill !== undefined && typeof event.kill !== 'boolean')
        return { code: 'ERR_INVALID_ARG_TYPE', reason: `"kill" must be a boolean; received ${shown(event.kill)}` };
      if (event.type === 'statesmith.subprocess.terminate' && event.call !== undefined && typeof event.call !== 'number') {
        return { code: 'ERR_INVALID_ARG_TYPE', reason: `"call" must be a number; received ${shown(event.call)}` };
      }
      return undefined;
    default:
      return undefined;
  }
}

const fromCurrentProcess = (context: SubprocessContext, event: SubprocessEvent): boolean =>
  (event as { [kFromProcess]?: true })[kFromProcess] === true && (event as { call?: number }).call === context.call;

/** Exit code, or `-N` for a death by signal N (Python's convention); the runtime knows the signal numbers. */
export type ExitCodeOf = (code: number | null, signal: string | null) => number | null;

/** The per-call part of the context, as it is before a call has done anything. */
const noCall = {
  argv: null,
  pid: null,
  exitCode: null,
  signal: null,
  outcome: null,
  error: null,
  stopReason: null,
} as const satisfies Partial<SubprocessContext>;

/** How `idle` and `done` take a call. */
const callHandlers = [
  { guard: 'malformed', actions: 'rejectMalformed' },
  { guard: 'isCancelled', actions: { type: 'reject', params: { code: 'ERR_CANCELLED', reason: 'the runner was cancelled; resetCancelled re-arms it' } } },
  { target: '#statesmith\\.subprocess.scheduled', actions: ['takeCall', 'spawnProcess'] },
] as const;

/** The pure subprocess runner machine (see the file's comment); `subprocessLogic` is it with its process child. */
export const subprocessMachine = setup({
  types: {
    context: {} as SubprocessContext,
    events: {} as SubprocessEvent,
    input: {} as SubprocessInput,
    emitted: {} as SubprocessReply,
  },
  actors: {
    /** Spawns the process, streams its output, answers `spawned` and `ended`; `terminate` and `kill` stop its tree. */
    process: fromCallback<SubprocessProcessCommand, SubprocessProcessInput>(() => undefined),
  },
  delays: {
    callSlice: ({ context }) => Math.min(context.timeLeft, MAX_TIMER_MS),
    terminateSlice: ({ context }) => Math.min(context.terminateLeft, MAX_TIMER_MS),
  },
  actions: {
    rejectForged: enqueueActions(({ enqueue, event, self }) =>
      answer<SubprocessReply>(enqueue as never, self, replyToOf(event), forgedRejection(event, self, 'subprocess')),
    ),
    recordEnded: assign(({ event }) => {
      const ended = event as Extract<SubprocessInternalEvent, { type: 'statesmith.subprocess.ended' }>;
      return { exitCode: ended.exitCode, signal: ended.signal, error: ended.error ?? null };
    }),
    takeCall: assign(({ context, event }) => {
      const call = event as Extract<SubprocessCommand, { type: 'statesmith.subprocess.call' }>;
      const { type: _type, replyTo, timeoutMs, ...options } = call;
      // Object.assign, not `{ ...noCall, ... }`: on Node 20 a literal that starts with a spread and adds keys survives the young generation (bench/PROFILE.md, the executor's second pass).
      return Object.assign({}, noCall, {
        call: context.call + 1,
        argv: [...call.argv],
        caller: replyTo ?? null,
        options,
        timeLeft: timeoutMs ?? Infinity,
        terminateLeft: context.terminateTimeoutMs,
      });
    }),
    spawnProcess: enqueueActions(({ enqueue, context }) => {
      enqueue.spawnChild('process', {
        id: 'process',
        input: { name: context.name, call: context.call, options: context.options as SubprocessCallData, pipeGraceMs: context.pipeGraceMs },
      });
    }),
    replyStarted: enqueueActions(({ enqueue, context, event, self }) => {
      const pid = (event as { pid: number }).pid;
      enqueue.assign({ pid });
      answer<SubprocessReply>(enqueue as never, self, context.caller, { type: 'statesmith.subprocess.started', call: context.call, pid });
    }),
    setCancelled: assign({ cancelled: true }),
    clearCancelled: assign({ cancelled: false }),
    /** params `{ reason }`: why the process is stopped. */
    markStopping: assign((_, params: { reason: SubprocessStopReason }) => ({ stopReason: params.reason })),
    // The process child logs what it does with them.
    sendTerminate: enqueueActions(({ enqueue }) => enqueue.sendTo('process', { type: 'terminate' })),
    sendKill: enqueueActions(({ enqueue }) => enqueue.sendTo('process', { type: 'kill' })),
    spendCallSlice: assign(({ context }) => ({ timeLeft: context.timeLeft - MAX_TIMER_MS })),
    spendTerminateSlice: assign(({ context }) => ({ terminateLeft: context.terminateLeft - MAX_TIMER_MS })),
    addCancelWaiter: assign(({ context, event }) => {
      const waiter = replyToOf(event);
      return { cancelRequested: true, cancelWaiters: waiter ? [...context.cancelWaiters, waiter] : context.cancelWaiters };
    }),
    replyCancelledNow: enqueueActions(({ enqueue, event, self }) =>
      answer<SubprocessReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.subprocess.cancelled' }),
    ),
    replyTerminating: enqueueActions(({ enqueue, context, event, self }) =>
      answer<SubprocessReply>(enqueue as never, self, replyToOf(event), {
        type: 'statesmith.subprocess.terminating',
        call: context.pid === null ? null : context.call,
      }),
    ),
    replyRearmed: enqueueActions(({ enqueue, event, self }) =>
      answer<SubprocessReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.subprocess.rearmed' }),
    ),
    /** The call is over and its process gone: tell the caller, and every waiting cancel. */
    finish: enqueueActions(({ enqueue, context, self }) => {
      const outcome: SubprocessOutcome = context.error !== null ? 'failed' : context.stopReason !== null ? 'cancelled' : 'completed';
      enqueue.assign({ outcome, caller: null, cancelWaiters: [], cancelRequested: false, options: null });
      enqueue.stopChild('process');
      answer<SubprocessReply>(enqueue as never, self, context.caller, {
        type: 'statesmith.subprocess.exited',
        call: context.call,
        outcome,
        exitCode: context.exitCode,
        signal: context.signal,
        stopReason: context.stopReason,
        ...(context.error === null ? {} : { error: context.error }),
      });
      if (context.cancelRequested) {
        for (const waiter of context.cancelWaiters) enqueue.sendTo(waiter, { type: 'statesmith.subprocess.cancelled' });
        answer<SubprocessReply>(enqueue as never, self, null, { type: 'statesmith.subprocess.cancelled' });
      }
    }),
    rejectMalformed: enqueueActions(({ enqueue, event, self }) => {
      const why = malformedSubprocessCommand(event) ?? { code: 'ERR_INVALID_ARG_VALUE', reason: 'malformed command' };
      answer<SubprocessReply>(enqueue as never, self, replyToOf(event), rejection(event, self, why.code, why.reason));
    }),
    reject: enqueueActions(({ enqueue, event, self }, params: { code: string; reason: string }) =>
      answer<SubprocessReply>(enqueue as never, self, replyToOf(event), rejection(event, self, params.code, params.reason)),
    ),
  },
  guards: {
    markedByProcess: ({ event }) => (event as { [kFromProcess]?: true })[kFromProcess] === true,
    malformed: ({ event }) => malformedSubprocessCommand(event) !== undefined,
    isCancelled: ({ context }) => context.cancelled,
    fromProcess: ({ context, event }) => fromCurrentProcess(context, event),
    stopPending: ({ context, event }) => fromCurrentProcess(context, event) && context.stopReason !== null,
    killNow: ({ event }) => (event as { kill?: boolean }).kill === true,
    callDue: ({ context }) => context.timeLeft <= MAX_TIMER_MS,
    terminateDue: ({ context }) => context.terminateLeft <= MAX_TIMER_MS,
    forOtherCall: ({ context, event }) => {
      const call = (event as { call?: number }).call;
      return call !== undefined && call !== context.call;
    },
  },
}).createMachine({
  id: 'statesmith.subprocess',
  context: ({ input }) => ({
    name: input.name ?? 'subprocess',
    cancelled: false,
    call: 0,
    ...noCall,
    caller: null,
    cancelWaiters: [],
    cancelRequested: false,
    options: null,
    timeLeft: Infinity,
    terminateLeft: Infinity,
    terminateTimeoutMs: input.terminateTimeoutMs ?? 10_000,
    pipeGraceMs: input.pipeGraceMs ?? 1_000,
  }),
  initial: 'idle',
  on: {
    // A verb the subprocess does not know is answered, never dropped (known commands outrank the wildcard).
    'statesmith.subprocess.*': { actions: rejectUnknownCommand('subprocess', ['call', 'cancel', 'terminate', 'resetCancelled']) as never },
    // Any other event (another facility's command, a bare word) is answered too; XState's own and replies are not.
    '*': rejectAnyOther('subprocess', ['call', 'cancel', 'terminate', 'resetCancelled']) as never,
    // Its own events when no state takes them (an older call's): nothing to do. From outside: refused.
    'statesmith.subprocess.spawned': [{ guard: 'markedByProcess' }, { actions: 'rejectForged' }],
    'statesmith.subprocess.ended': [{ guard: 'markedByProcess' }, { actions: 'rejectForged' }],
    'statesmith.subprocess.resetCancelled': { actions: ['clearCancelled', 'replyRearmed'] },
    'statesmith.subprocess.cancel': [{ guard: 'malformed', actions: 'rejectMalformed' }, { actions: ['setCancelled', 'replyCancelledNow'] }],
    'statesmith.subprocess.terminate': [
      { guard: 'malformed', actions: 'rejectMalformed' },
      { actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'no process runs' } } },
    ],
    'statesmith.subprocess.call': [
      { guard: 'malformed', actions: 'rejectMalformed' },
      { actions: { type: 'reject', params: { code: 'ERR_BUSY', reason: 'a process is still running; one process at a time' } } },
    ],
  },
  states: {
    idle: { on: { 'statesmith.subprocess.call': callHandlers } },
    scheduled: {
      on: {
        // A stop that came while the spawn was on its way is carried out as soon as there is a pid.
        'statesmith.subprocess.spawned': [
          { guard: 'stopPending', target: 'cancelling', actions: ['replyStarted', 'sendTerminate'] },
          { guard: 'fromProcess', target: 'running', actions: 'replyStarted' },
        ],
        'statesmith.subprocess.ended': { guard: 'fromProcess', target: 'done', actions: 'recordEnded' },
        'statesmith.subprocess.cancel': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { actions: ['setCancelled', 'addCancelWaiter', { type: 'markStopping', params: { reason: 'cancel' } }] },
        ],
        'statesmith.subprocess.terminate': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { guard: 'forOtherCall', actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'that call has ended' } } },
          { actions: [{ type: 'markStopping', params: { reason: 'abort' } }, 'replyTerminating'] },
        ],
      },
    },
    running: {
      after: {
        callSlice: [
          { guard: 'callDue', target: 'cancelling', actions: [{ type: 'markStopping', params: { reason: 'timeout' } }, 'sendTerminate'] },
          { target: 'running', reenter: true, actions: 'spendCallSlice' },
        ],
      },
      on: {
        'statesmith.subprocess.ended': { guard: 'fromProcess', target: 'done', actions: 'recordEnded' },
        'statesmith.subprocess.cancel': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          {
            guard: 'killNow',
            target: 'cancelling.killing',
            actions: ['setCancelled', 'addCancelWaiter', { type: 'markStopping', params: { reason: 'cancel' } }],
          },
          { target: 'cancelling', actions: ['setCancelled', 'addCancelWaiter', { type: 'markStopping', params: { reason: 'cancel' } }, 'sendTerminate'] },
        ],
        'statesmith.subprocess.terminate': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { guard: 'forOtherCall', actions: { type: 'reject', params: { code: 'ERR_INVALID_STATE', reason: 'that call has ended' } } },
          { guard: 'killNow', target: 'cancelling.killing', actions: [{ type: 'markStopping', params: { reason: 'abort' } }, 'replyTerminating'] },
          { target: 'cancelling', actions: [{ type: 'markStopping', params: { reason: 'abort' } }, 'replyTerminating', 'sendTerminate'] },
        ],
      },
    },
    cancelling: {
      initial: 'terminating',
      on: {
        'statesmith.subprocess.ended': { guard: 'fromProcess', target: 'done', actions: 'recordEnded' },
        'statesmith.subprocess.cancel': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { guard: 'killNow', target: '.killing', actions: ['setCancelled', 'addCancelWaiter'] },
          { actions: ['setCancelled', 'addCancelWaiter'] },
        ],
        'statesmith.subprocess.terminate': [
          { guard: 'malformed', actions: 'rejectMalformed' },
          { guard: 'killNow', target: '.killing', actions: 'replyTerminating' },
          { actions: 'replyTerminating' },
        ],
      },
      states: {
        // SIGTERM went with the transition that came here (a slice re-entering must not send it again).
        terminating: {
          after: {
            terminateSlice: [
              { guard: 'terminateDue', target: 'killing' },
              { target: 'terminating', reenter: true, actions: 'spendTerminateSlice' },
            ],
          },
        },
        killing: { entry: 'sendKill' },
      },
    },
    // Until the next call: the last call's outcome stays readable.
    done: {
      entry: 'finish',
      on: { 'statesmith.subprocess.call': callHandlers },
    },
  },
});
