/**
 * How `durable(executorLogic, …)` saves and restores an executor. The executor's context
 * holds its named actions, its services and a runner's function: those stay in the process.
 * What is saved is the slot (the action's name, its params, the generation and attempt),
 * the last finished task, and the lineage its idempotency keys are made from. On restore,
 * the new incarnation's input gives the actions and services again, and a task that was
 * running when the process ended:
 *
 * - is run again, as part of the restore and before any command, when it is a named action
 *   marked `idempotent()` (or `onInterrupted: 'retry'`) whose params were saved: the same
 *   idempotency key, the next attempt;
 * - else ends `interrupted` (`ERR_INTERRUPTED`): its `done` goes to the parent and to the
 *   listeners once, and the HA loop is woken, as for any finished task.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorRef, AnyActorScope, AnyStateMachine, EventObject, Snapshot } from 'xstate';
import { kAttempt, type ExecutorContext, type ExecutorOutcome, type ExecutorReply, type WakeParams } from '../../machines/executor.machine.ts';
import type { ErrorData } from '../../machines/protocol.ts';
import { isIdempotent, isPlainJson, type InterruptedPolicy, type PersistenceAdapter, type Revived, notSavedBy, tellRevived } from '../runtime/persistence.ts';

/** What is saved of an executor: plain JSON. */
interface SavedExecutor {
  readonly logic: 'statesmith.executor';
  readonly format: 1;
  /** `idle`, `waiting` (scheduled, no runner yet), or the phase of a task a runner took on. */
  readonly state: 'idle' | 'waiting' | 'starting' | 'running' | 'cancelling' | 'done';
  readonly lineage: string;
  readonly generation: number;
  readonly action: string | null;
  /** The task runs the slot's named action (not a runner's own function). */
  readonly named: boolean;
  /** The task's params, when they are plain JSON (`paramsSaved`). */
  readonly params?: unknown;
  readonly paramsSaved: boolean;
  readonly attempt: number;
  readonly cancelledBeforeStart: boolean;
  /** In `done`: how it ended, with what. */
  readonly outcome: ExecutorOutcome | null;
  readonly error: ErrorData | null;
  readonly returned: boolean;
  /** In `done`: whether its end wakes the loop (Patroni's rule, on the result as it was, saved or not). */
  readonly woke: boolean;
  readonly result?: unknown;
  readonly lastAction: string | null;
  readonly lastOutcome: ExecutorOutcome | null;
  readonly lastError: string | null;
  readonly lastWoke: boolean;
}

type MachineSnapshot = Snapshot<unknown> & { value: unknown; context: ExecutorContext; children: Record<string, AnyActorRef> };

function phaseOf(value: unknown): SavedExecutor['state'] {
  if (value === 'idle' || value === 'running' || value === 'cancelling' || value === 'done') return value;
  const scheduled = (value as { scheduled?: unknown } | null)?.scheduled;
  return scheduled === 'starting' ? 'starting' : 'waiting';
}

function persist(snapshot: Snapshot<unknown>): SavedExecutor {
  const { value, context } = snapshot as MachineSnapshot;
  const job = context.job;
  const paramsSaved = job !== null && isPlainJson(job.params);
  const resultSaved = context.returned && context.result !== undefined && isPlainJson(context.result);
  return {
    logic: 'statesmith.executor',
    format: 1,
    state: phaseOf(value),
    lineage: context.lineage,
    generation: context.generation,
    action: context.action,
    named: job?.named ?? false,
    ...(paramsSaved ? { params: job.params } : {}),
    paramsSaved,
    attempt: job?.run.attempt ?? 0,
    cancelledBeforeStart: context.cancelledBeforeStart,
    outcome: context.outcome,
    error: context.error,
    returned: context.returned,
    woke: !(context.returned && context.result === undefined),
    ...(resultSaved ? { result: context.result } : {}),
    lastAction: context.lastAction,
    lastOutcome: context.lastOutcome,
    lastError: context.lastError,
    lastWoke: context.lastWoke,
  };
}

function isSaved(saved: unknown): saved is SavedExecutor {
  const s = saved as Partial<SavedExecutor> | null;
  return typeof s === 'object' && s !== null && s.logic === 'statesmith.executor' && s.format === 1 && typeof s.lineage === 'string';
}

/**
 * The executor's adapter. `machine` is `executorLogic` (its `resolveState` makes a snapshot
 * in a given state); `wake` wakes the HA loop as a finished task does.
 */
export function executorPersistence(machine: AnyStateMachine, wake: (context: ExecutorContext, params: WakeParams) => void): PersistenceAdapter {
  return {
    persist,
    revive(saved: unknown, fresh: Snapshot<unknown>, policy: InterruptedPolicy): Revived {
      if (!isSaved(saved)) {
        throw notSavedBy("an executor's", saved);
      }
      const base = (fresh as MachineSnapshot).context;
      const context: ExecutorContext = {
        ...base,
        lineage: saved.lineage,
        generation: saved.generation,
        cancelledBeforeStart: saved.cancelledBeforeStart,
        lastAction: saved.lastAction,
        lastOutcome: saved.lastOutcome,
        lastError: saved.lastError,
        lastWoke: saved.lastWoke,
      };
      const at = (value: unknown, ctx: ExecutorContext): Snapshot<unknown> =>
        ({ ...machine.resolveState({ value: value as never, context: ctx }), children: (fresh as MachineSnapshot).children }) as unknown as Snapshot<unknown>;
      const nothing = (): void => undefined;
      const action = saved.action ?? 'anonymous task';
      const what = `executor action ${JSON.stringify(action)} (generation ${saved.generation}, attempt ${Math.max(1, saved.attempt)})`;

      switch (saved.state) {
        case 'idle':
          return { snapshot: at('idle', context), interrupted: [], first: [], report: nothing };
        case 'waiting':
          // Scheduled, and no runner had come: the slot is still taken, for a runner of the new incarnation.
          return { snapshot: at({ scheduled: 'waiting' }, { ...context, action: saved.action }), interrupted: [], first: [], report: nothing };
        case 'done': {
          // Its function had ended, and the cleanup had not: it ends now, as it did.
          const outcome = saved.outcome ?? 'interrupted';
          const ended: ExecutorContext = {
            ...context,
            lastAction: action,
            lastOutcome: outcome,
            lastError: saved.error === null ? null : `${saved.error.name}: ${saved.error.message}`,
            lastWoke: saved.woke,
          };
          const reply: ExecutorReply = {
            type: 'statesmith.executor.done',
            action,
            generation: saved.generation,
            outcome,
            ...(saved.result !== undefined ? { result: saved.result } : {}),
            ...(saved.error !== null ? { error: saved.error } : {}),
            woke: ended.lastWoke,
          };
          return {
            snapshot: at('idle', ended),
            interrupted: [],
            first: [],
            report: (scope) => tell(scope, reply, ended, wake),
          };
        }
        default: {
          // A runner had taken the task on: its function may have started (the last save can be a step behind), and cannot go on mid-way.
          const actionFn = saved.action === null ? undefined : base.actions[saved.action];
          const again =
            saved.state !== 'cancelling' && saved.named && saved.paramsSaved && actionFn !== undefined && (isIdempotent(actionFn) || policy === 'retry');
          if (again) {
            const first: EventObject = Object.assign(
              { type: 'statesmith.executor.run', action: saved.action as string, ...(saved.params === undefined ? {} : { params: saved.params }) },
              { [kAttempt]: Math.max(1, saved.attempt) + 1 },
            );
            return {
              snapshot: at({ scheduled: 'waiting' }, { ...context, action: saved.action }),
              interrupted: [{ what, rerun: true }],
              first: [first],
              report: nothing,
            };
          }
          const why =
            saved.state === 'cancelling'
              ? 'it was being cancelled'
              : !saved.named
                ? "it ran a runner's own function, which only that process had"
                : actionFn === undefined
                  ? `this incarnation has no action named ${JSON.stringify(action)}`
                  : !saved.paramsSaved
                    ? 'its params were not plain JSON, so they were not saved'
                    : 'it is not marked idempotent()';
          const message = `${what} was running when its process ended; it is not run again: ${why}`;
          const error: ErrorData = { name: 'DurableError', code: 'ERR_INTERRUPTED', message };
          const ended: ExecutorContext = { ...context, lastAction: action, lastOutcome: 'interrupted', lastError: `DurableError: ${message}`, lastWoke: true };
          const reply: ExecutorReply = { type: 'statesmith.executor.done', action, generation: saved.generation, outcome: 'interrupted', error, woke: true };
          return {
            snapshot: at('idle', ended),
            interrupted: [{ what: message, rerun: false }],
            first: [],
            report: (scope) => tell(scope, reply, ended, wake),
          };
        }
      }
    },
  };
}

/** A task's `done`, as `finish` tells it: to the parent and the listeners, then the wake-up. */
function tell(scope: AnyActorScope, reply: ExecutorReply, context: ExecutorContext, wake: (context: ExecutorContext, params: WakeParams) => void): void {
  tellRevived(scope, reply);
  if (reply.type === 'statesmith.executor.done' && reply.woke) wake(context, { action: reply.action, outcome: reply.outcome });
}
