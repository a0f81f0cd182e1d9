/**
 * `supervise(logic, options)`: any XState actor logic under an OTP-style supervisor that
 * restarts it when it fails, after an Akka-style back-off, within a restart intensity.
 *
 * @module
 */
import {
  initialTransition,
  transition,
  type ActorLogic,
  type ActorSystem,
  type AnyActorLogic,
  type AnyActorRef,
  type AnyActorScope,
  type AnyEventObject,
  type EventObject,
  type InputFrom,
  type Snapshot,
  type SnapshotFrom,
} from 'xstate';
import { MAX_TIMER_MS, errorData } from '../../machines/protocol.ts';
import { supervisorMachine, type SupervisorContext, type SupervisorEvent, type SupervisorSettings } from '../../machines/supervisor.machine.ts';
import { ArgumentRangeError, ArgumentTypeError } from '../errors.ts';
import { answerFromScope, rejectionOf } from '../runtime/scopeReply.ts';
import { optionalBoolean, optionalName, optionalObject, optionalRandom } from '../runtime/validate.ts';
import { resolveRestartPolicy, type BackoffOptions, type RestartType } from './restartPolicy.ts';

/** Options of {@link supervise}. */
export interface SuperviseOptions {
  /** A name for logs and rejections; default `'supervisor'`. */
  readonly name?: string;
  /**
   * Which ends of the inner actor restart it: `'transient'` (default) an error;
   * `'permanent'` an error or reaching its final state; `'temporary'` never (the
   * supervisor then only passes events on and fails with it).
   */
  readonly type?: RestartType;
  /** The restart intensity: at most this many restarts within `withinMs`; default 3. */
  readonly maxRestarts?: number;
  /** The window of `maxRestarts`, in ms; default 60,000. */
  readonly withinMs?: number;
  /** The delay before each restart (exponential, capped, with jitter). */
  readonly backoff?: BackoffOptions;
  /** A run that lasted this long (ms) clears the restart history, as Akka's `resetBackoffAfter`; default `Infinity`. */
  readonly resetAfterMs?: number;
  /**
   * Where a restart starts from: `'initial'` (default) the logic's initial state, with the
   * same input; `'snapshot'` the last snapshot the inner actor reached before the failing
   * event (`getPersistedSnapshot`, taken after every event it handled; costs one persist
   * per event).
   */
  readonly restartFrom?: 'initial' | 'snapshot';
  /** How many events a back-off keeps for the next inner actor; the rest get `statesmith.rejected` (`ERR_BUFFER_FULL`). Default 100. */
  readonly bufferSize?: number;
  /**
   * When the intensity is exceeded: `true` (default) the supervisor fails with the inner
   * actor's last error, so its own parent sees the failure (OTP's escalation); `false` it
   * stays in `failed` and refuses events.
   */
  readonly escalate?: boolean;
  /** The source of back-off jitter, in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

const KEYS = ['name', 'type', 'maxRestarts', 'withinMs', 'backoff', 'resetAfterMs', 'restartFrom', 'bufferSize', 'escalate', 'random'] as const;

/** The snapshot of a supervised actor: the supervisor's lifecycle, and the inner actor's snapshot. */
export type SupervisedSnapshot = Snapshot<unknown> & SupervisedView;

/** What a supervised actor's snapshot shows besides its status. */
export interface SupervisedView {
  /** The supervisor's state: `running`, `backingOff`, `failed` or `done`. */
  readonly value: string;
  /** The supervisor's context: `restarts`, `until` (the end of a back-off), `lastError`, the kept events. */
  readonly context: SupervisorContext;
  /** The inner actor's snapshot; its last one while backing off or failed. */
  readonly inner: Snapshot<unknown> | undefined;
  /** The inner actor's children (they are the supervisor actor's children). */
  readonly children: Readonly<Record<string, AnyActorRef>>;
}

/**
 * The logic `supervise(logic)` returns: it takes `logic`'s input, accepts any event (it
 * passes them on), and its snapshot is a {@link SupervisedSnapshot}.
 */
export type SupervisedLogic<TLogic extends AnyActorLogic> = ActorLogic<SupervisedSnapshot, AnyEventObject, InputFrom<TLogic>, ActorSystem<any>, EventObject>;

/** The runtime's whole snapshot: what users see, plus what it needs to go on. */
interface State extends SupervisedView {
  readonly status: 'active' | 'done' | 'error' | 'stopped';
  readonly output: unknown;
  readonly error: unknown;
  readonly lifecycle: SnapshotFrom<typeof supervisorMachine>;
  /** The supervisor's input: the inner actor's input, for each restart. */
  readonly input: unknown;
  /** Counts the back-offs, so a timer of an earlier one is ignored. */
  readonly generation: number;
  /** The inner actor's last good snapshot, persisted (`restartFrom: 'snapshot'`). */
  readonly last: unknown;
}

/** The event the back-off timer sends the supervisor. */
const DUE = 'statesmith.supervisor.restartDue';

/** What the supervisor tells itself when an entry action of a run that began before it started throws. */
const START_FAILED = 'statesmith.supervisor.startFailed';
/** Carries the thrown value of a {@link START_FAILED}; no message from outside can have it. */
const kStartFailed: unique symbol = Symbol('statesmith.supervisor.startFailed');

/**
 * `now()` of the actor system's clock when it has one (statesmith's clocks and XState's
 * `SimulatedClock` do), else of the process's monotonic clock.
 */
function now(scope: AnyActorScope): number {
  const clock = (scope.system as { _clock?: { now?: () => number } })._clock;
  return typeof clock?.now === 'function' ? clock.now() : performance.now();
}

function supervisedLogic<TLogic extends AnyActorLogic>(inner: TLogic, settings: SupervisorSettings, random: () => number): SupervisedLogic<TLogic> {
  const tracks = settings.restartFrom === 'snapshot';
  const persisted = (snapshot: unknown): unknown => (tracks ? inner.getPersistedSnapshot(snapshot as never) : undefined);

  const withLifecycle = (state: State, lifecycle: State['lifecycle'], extra: Partial<State> = {}): State => ({
    ...state,
    value: lifecycle.value as string,
    context: lifecycle.context,
    lifecycle,
    ...extra,
  });

  const schedule = (scope: AnyActorScope, generation: number, ms: number): void => {
    scope.defer(() =>
      scope.system.scheduler.schedule(
        scope.self,
        scope.self,
        { type: DUE, generation } as EventObject,
        Math.min(ms, MAX_TIMER_MS),
        `statesmith.supervisor.${generation}`,
      ),
    );
  };

  /** The inner actor failed (or finished and is restarted): clean up after it and back off, fail, or end. */
  const exited = (state: State, scope: AnyActorScope, how: { error: unknown } | { output: unknown }, lastInner: Snapshot<unknown> | undefined): State => {
    // The failed inner actor's children and delayed events go with it.
    const children = Object.values(((lastInner ?? state.inner) as { children?: Record<string, AnyActorRef> } | undefined)?.children ?? {});
    scope.defer(() => {
      for (const child of children) if (child.getSnapshot().status === 'active') scope.stopChild(child);
      scope.system.scheduler.cancelAll(scope.self);
    });
    const at = now(scope);
    const event: SupervisorEvent =
      'error' in how
        ? { type: 'statesmith.supervisor.failed', at, random: random(), error: errorData(how.error) }
        : { type: 'statesmith.supervisor.finished', at, random: random(), output: how.output };
    const [lifecycle] = transition(supervisorMachine, state.lifecycle, event);
    const inner = lastInner ?? state.inner;
    switch (lifecycle.value) {
      case 'backingOff': {
        const generation = state.generation + 1;
        schedule(scope, generation, lifecycle.context.delayMs);
        return withLifecycle(state, lifecycle, { inner, children: {}, generation });
      }
      case 'failed':
        if (settings.escalate) return withLifecycle(state, lifecycle, { status: 'error', error: (how as { error: unknown }).error, inner, children: {} });
        return withLifecycle(state, lifecycle, { inner, children: {} });
      default:
        return withLifecycle(state, lifecycle, { status: 'done', output: lifecycle.output, inner, children: {} });
    }
  };

  /** One event through the inner actor, in `running`. */
  const step = (state: State, event: EventObject, scope: AnyActorScope): State => {
    let next: Snapshot<unknown> & { children?: Record<string, AnyActorRef> };
    try {
      next = inner.transition(state.inner as never, event as never, scope as never);
    } catch (error) {
      return exited(state, scope, { error }, undefined);
    }
    if (next.status === 'error') return exited(state, scope, { error: next.error }, next);
    if (next.status === 'done') return exited(state, scope, { output: next.output }, next);
    return { ...state, inner: next, children: next.children ?? {}, last: tracks ? persisted(next) : undefined };
  };

  /**
   * Starts an inner actor: from the initial state with the input, or from the last good snapshot.
   * Its entry actions run now when the supervisor runs (a restart), or when the supervisor's
   * actor starts (the first run): either way a throw is a failure of this run, restarted and
   * counted like any other, never an error of the supervisor itself.
   */
  const begin = (state: State, scope: AnyActorScope): State => {
    let first: Snapshot<unknown> & { children?: Record<string, AnyActorRef> };
    let failure: { error: unknown } | undefined;
    let synchronous = true;
    const generation = state.generation;
    const guarded: AnyActorScope = {
      ...scope,
      actionExecutor: (action) => {
        const exec = action.exec;
        scope.actionExecutor(
          exec === undefined
            ? action
            : {
                ...action,
                exec: (info, params) => {
                  if (failure !== undefined) return; // the rest of a failed start is not run
                  try {
                    exec(info, params);
                  } catch (error) {
                    failure = { error };
                    if (!synchronous) scope.self.send({ type: START_FAILED, generation, [kStartFailed]: error } as EventObject);
                  }
                },
              },
        );
      },
    };
    try {
      first =
        tracks && state.last !== undefined && typeof inner.restoreSnapshot === 'function'
          ? (inner.restoreSnapshot(state.last as never, guarded as never) as typeof first)
          : (inner.getInitialSnapshot(guarded as never, state.input as never) as typeof first);
    } catch (error) {
      return exited(state, scope, { error }, undefined);
    } finally {
      synchronous = false;
    }
    if (failure !== undefined) return exited(state, scope, failure, first);
    if (first.status === 'error') return exited(state, scope, { error: first.error }, first);
    scope.defer(() => inner.start?.(first as never, scope as never));
    return { ...state, inner: first, children: first.children ?? {}, last: tracks ? persisted(first) : undefined };
  };

  const logic = {
    getInitialSnapshot(scope: AnyActorScope, input: unknown): State {
      const [lifecycle] = initialTransition(supervisorMachine, { settings, at: now(scope) });
      const state: State = {
        status: 'active',
        output: undefined,
        error: undefined,
        value: lifecycle.value as string,
        context: lifecycle.context,
        lifecycle,
        inner: undefined,
        children: {},
        input,
        generation: 0,
        last: undefined,
      };
      return begin(state, scope);
    },

    transition(snapshot: State, event: EventObject, scope: AnyActorScope): State {
      const state = snapshot as State;
      if (event.type === 'xstate.stop') {
        scope.system.scheduler.cancelAll(scope.self);
        const stopped =
          state.value === 'running' && state.inner !== undefined ? inner.transition(state.inner as never, event as never, scope as never) : state.inner;
        return { ...state, status: 'stopped', inner: stopped as Snapshot<unknown> | undefined };
      }
      if (event.type === START_FAILED) {
        const failed = event as { generation?: number; [kStartFailed]?: unknown };
        // Only the supervisor's own report of its current run counts; from outside it is refused.
        if (!(kStartFailed in failed)) {
          answerFromScope(
            scope,
            event,
            rejectionOf(event, state.value, 'ERR_INVALID_ARG_VALUE', `${START_FAILED} is the supervisor's own event; it cannot be sent`),
          );
          return state;
        }
        if (state.value !== 'running' || failed.generation !== state.generation) return state;
        return exited(state, scope, { error: failed[kStartFailed] }, undefined);
      }
      switch (state.value) {
        case 'running':
          return step(state, event, scope);
        case 'backingOff': {
          if (event.type === DUE) {
            if ((event as { generation?: number }).generation !== state.generation) return state;
            const left = (state.context.until as number) - now(scope);
            if (left > 0) {
              // A back-off longer than one Node timer: the next slice.
              schedule(scope, state.generation, left);
              return state;
            }
            const [lifecycle] = transition(supervisorMachine, state.lifecycle, { type: 'statesmith.supervisor.due', at: now(scope) });
            let next = begin(withLifecycle(state, lifecycle), scope);
            const kept = next.context.buffer;
            if (kept.length > 0 && next.value === 'running') {
              const [flushed] = transition(supervisorMachine, next.lifecycle, { type: 'statesmith.supervisor.flushed' });
              next = withLifecycle(next, flushed);
              for (const [i, keptEvent] of kept.entries()) {
                next = step(next, keptEvent, scope);
                if (next.value !== 'running') {
                  // The new inner actor failed on a kept event: the rest wait for the next one.
                  for (const rest of kept.slice(i + 1)) next = keep(next, rest, scope);
                  break;
                }
              }
            }
            return next;
          }
          return keep(state, event, scope);
        }
        case 'failed':
          answerFromScope(
            scope,
            event,
            rejectionOf(
              event,
              state.value,
              'ERR_INVALID_STATE',
              `${settings.name} failed: its restart intensity was exceeded (${state.context.lastError?.message ?? 'no error'})`,
            ),
          );
          return state;
        default:
          return state;
      }
    },

    start(snapshot: State, scope: AnyActorScope): void {
      const state = snapshot as State;
      if (state.value === 'backingOff') schedule(scope, state.generation, Math.max(0, (state.context.until as number) - now(scope)));
    },

    getPersistedSnapshot(snapshot: State): Snapshot<unknown> {
      const state = snapshot as State;
      const { status, output, error, value, context } = state;
      const innerPersisted = state.inner === undefined || state.value !== 'running' ? undefined : inner.getPersistedSnapshot(state.inner as never);
      return { status, output, error, value, context: { ...context, buffer: [] }, inner: innerPersisted } as never;
    },
  };
  return logic as unknown as SupervisedLogic<TLogic>;

  /** An event during a back-off: kept for the next inner actor, or refused when the buffer is full. */
  function keep(state: State, event: EventObject, scope: AnyActorScope): State {
    if (event.type.startsWith('xstate.')) return state;
    const [lifecycle] = transition(supervisorMachine, state.lifecycle, { type: 'statesmith.supervisor.keep', event });
    if (lifecycle.context.buffer.length === state.context.buffer.length) {
      answerFromScope(
        scope,
        event,
        rejectionOf(
          event,
          state.value,
          'ERR_BUFFER_FULL',
          `${settings.name} is backing off until ${state.context.until} and already keeps ${settings.bufferSize} events`,
        ),
      );
      return state;
    }
    return withLifecycle(state, lifecycle);
  }
}

/**
 * Wraps any actor logic in a supervisor: spawn or invoke what it returns in place of the
 * original. When the inner actor fails (an error thrown in an action, a failed invoke it
 * does not handle, a rejected promise), it is started again after a back-off: from its
 * initial state with the same input, or from its last snapshot (`restartFrom: 'snapshot'`).
 * More than `maxRestarts` restarts within `withinMs` fail the supervisor with the inner
 * actor's error, so its own parent sees the failure.
 *
 * The inner logic runs inside the supervisor's own actor, not as a child: an event sent
 * to the supervisor is one step of the inner logic (no second actor, no forwarding), what
 * the inner logic sends its parent reaches the supervisor's parent, what it emits the
 * supervisor emits, and its children are the supervisor's children. A failed run's
 * children and delayed events are stopped with it. During a back-off, events are kept
 * (up to `bufferSize`, then refused with `statesmith.rejected`) and delivered in order to
 * the next run. The snapshot ({@link SupervisedSnapshot}) shows the supervisor's state
 * (`running`, `backingOff` with `context.until`, `failed`, `done`), `context.restarts`,
 * and the inner logic's own snapshot in `inner`. Inside the inner logic, `self` is the
 * supervisor's actor, so `self.getSnapshot()` is that snapshot too.
 *
 * @example
 * ```ts
 * import { createActor, setup, assign } from 'xstate';
 * import { supervise } from 'statesmith';
 * const counter = setup({
 *   types: { context: {} as { n: number }, events: {} as { type: 'inc' } | { type: 'crash' } },
 *   actions: { crash: () => { throw new Error('boom'); } },
 * }).createMachine({
 *   context: { n: 0 },
 *   on: { inc: { actions: assign({ n: ({ context }) => context.n + 1 }) }, crash: { actions: 'crash' } },
 * });
 * const actor = createActor(supervise(counter, { backoff: { initialMs: 10 } })).start();
 * actor.send({ type: 'inc' });
 * actor.send({ type: 'crash' });
 * console.log(actor.getSnapshot().value, actor.getSnapshot().context.restarts); // backingOff 1
 * actor.send({ type: 'inc' });
 * await new Promise((resolve) => setTimeout(resolve, 30));
 * // The inc sent during the back-off was kept, and delivered after the restart:
 * console.log(actor.getSnapshot().value, (actor.getSnapshot().inner as { context?: object }).context); // running { n: 1 }
 * actor.stop();
 * ```
 */
export function supervise<TLogic extends AnyActorLogic>(logic: TLogic, options?: SuperviseOptions): SupervisedLogic<TLogic> {
  if (logic === null || typeof logic !== 'object' || typeof logic.transition !== 'function' || typeof logic.getInitialSnapshot !== 'function') {
    throw new ArgumentTypeError('logic', 'XState actor logic (a machine, or fromPromise, fromCallback, ...)', logic);
  }
  const opts = optionalObject<SuperviseOptions>('options', options, KEYS);
  const policy = resolveRestartPolicy(
    Object.fromEntries(
      Object.entries({
        type: opts.type,
        maxRestarts: opts.maxRestarts,
        withinMs: opts.withinMs,
        backoff: opts.backoff,
        resetAfterMs: opts.resetAfterMs,
      }).filter(([, v]) => v !== undefined),
    ),
    'options',
  );
  const restartFrom = opts.restartFrom ?? 'initial';
  if (restartFrom !== 'initial' && restartFrom !== 'snapshot') throw new ArgumentTypeError('options.restartFrom', "'initial' or 'snapshot'", restartFrom);
  if (restartFrom === 'snapshot' && typeof logic.restoreSnapshot !== 'function') {
    throw new ArgumentTypeError('logic', "logic with restoreSnapshot(), for restartFrom: 'snapshot'", logic);
  }
  const bufferSize = opts.bufferSize ?? 100;
  if (typeof bufferSize !== 'number' || !Number.isInteger(bufferSize) || bufferSize < 0) {
    throw new ArgumentRangeError('options.bufferSize', 'an integer >= 0', bufferSize);
  }
  const settings: SupervisorSettings = {
    name: optionalName('options.name', opts.name, () => 'supervisor'),
    type: policy.type,
    maxRestarts: policy.maxRestarts,
    withinMs: policy.withinMs,
    initialMs: policy.initialMs,
    maxMs: policy.maxMs,
    factor: policy.factor,
    jitter: policy.jitter,
    resetAfterMs: policy.resetAfterMs,
    restartFrom,
    bufferSize,
    escalate: optionalBoolean('options.escalate', opts.escalate, true),
  };
  return supervisedLogic(logic, settings, optionalRandom('options.random', opts.random));
}
