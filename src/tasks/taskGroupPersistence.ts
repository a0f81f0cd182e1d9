/**
 * How `durable(taskGroupLogic, …)` saves and restores a task group. The group's context
 * holds its registry of named tasks, its table of task records and its clock: those stay
 * in the process. What is saved, per task, is what names it: its name in the group, the
 * registry name it runs, its params (when plain JSON), its restart policy, its number (so
 * its idempotency key) and attempt, and the ages of its restarts; and per group, the
 * lineage its keys are made from and the ages of its restarts (its intensity budget).
 * Finished tasks not yet acknowledged are saved with how they ended.
 *
 * On restore, the new incarnation's input gives the registry again, and a task that was
 * running when the process ended:
 *
 * - is run again, as part of the restore and before any command, when it runs a named
 *   task marked `idempotent()` (or `onInterrupted: 'retry'`) whose params were saved: the
 *   same idempotency key, the next attempt, its restart budget as it was;
 * - else ends `interrupted` (`ERR_INTERRUPTED`): its `taskDone` goes to the parent and to
 *   the listeners once, and it waits for acknowledgement like any finished task.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorRef, AnyActorScope, AnyStateMachine, EventObject, Snapshot } from 'xstate';
import type { TaskGroupContext, TaskGroupReply, TaskOutcome } from '../../machines/taskGroup.machine.ts';
import { errorData, type ErrorData } from '../../machines/protocol.ts';
import { DurableError } from '../errors.ts';
import {
  isIdempotent,
  isPlainJson,
  type InterruptedPolicy,
  type InterruptedWork,
  type PersistenceAdapter,
  type Revived,
  notSavedBy,
  tellRevived,
} from '../runtime/persistence.ts';
import type { ResolvedRestartPolicy, RestartPolicy } from './restartPolicy.ts';
import type { TaskBody, TaskOrigin, TaskRecord } from './Task.ts';

/** On a restore's `createTask`: the number the task had (its idempotency key). */
export const kSeq: unique symbol = Symbol('statesmith.taskGroup.seq');
/** On a restore's `createTask`: the attempt its run is. */
export const kAttempt: unique symbol = Symbol('statesmith.taskGroup.attempt');
/** On a restore's `createTask`: its restarts, as clock times of this incarnation. */
export const kRestarts: unique symbol = Symbol('statesmith.taskGroup.restarts');

/** True for the failure of a task a crash cut short (its outcome is `interrupted`). */
export function isInterruption(error: unknown): boolean {
  try {
    return error instanceof DurableError && error.code === 'ERR_INTERRUPTED';
  } catch {
    // A revoked proxy, or one whose traps throw (a task may fail with anything): not ours.
    return false;
  }
}

/** What the adapter needs of the group's table (the class lives with the logic). */
export interface PersistedTable {
  readonly running: Map<string, TaskRecord<unknown>>;
  readonly waitingAck: Set<TaskRecord<unknown>>;
  readonly prefix: string;
  readonly clock: { now(): number };
  lineage: string;
  nextSeq: number;
  readonly supervisor: { restartTimes(): readonly number[]; restoreRestartTimes(times: readonly number[]): void };
  makeRecord(fn: TaskBody<unknown>, origin: TaskOrigin, logException: boolean, restart: ResolvedRestartPolicy | undefined): TaskRecord<unknown>;
}

interface SavedTask {
  readonly name: string;
  readonly task: string | null;
  readonly params?: unknown;
  readonly paramsSaved: boolean;
  readonly restart?: RestartPolicy;
  readonly logException: boolean;
  readonly seq: number | null;
  readonly attempt: number;
  /** How long before the save each of its restarts was, in ms. */
  readonly restartsAgoMs: readonly number[];
}

interface SavedEnded {
  readonly name: string;
  readonly task: string | null;
  readonly outcome: TaskOutcome;
  readonly error?: ErrorData;
  readonly result?: unknown;
  readonly seq: number | null;
  /** Ended, and its `taskDone` not told yet when saved: the restore tells it. */
  readonly untold: boolean;
}

/** What is saved of a task group: plain JSON. */
interface SavedGroup {
  readonly logic: 'statesmith.taskGroup';
  readonly format: 1;
  readonly state: 'idle' | 'running' | 'stopping';
  readonly lineage: string;
  readonly nextSeq: number;
  readonly running: readonly SavedTask[];
  readonly ended: readonly SavedEnded[];
  /** How long before the save each of the group's counted restarts was, in ms. */
  readonly restartsAgoMs: readonly number[];
  /** `Date.now()` at the save: the time the process was down counts towards the restarts' ages. */
  readonly savedAt: number;
}

type GroupSnapshot = Snapshot<unknown> & { value: unknown; context: TaskGroupContext; children: Record<string, AnyActorRef> };

/** The restart policy as data, for a `createTask` of the next incarnation. */
function restartData(policy: ResolvedRestartPolicy | undefined): RestartPolicy | undefined {
  if (policy === undefined) return undefined;
  return {
    type: policy.type,
    ...(policy.ownBudget ? { maxRestarts: policy.maxRestarts, withinMs: policy.withinMs } : {}),
    backoff: { initialMs: policy.initialMs, maxMs: policy.maxMs, factor: policy.factor, jitter: policy.jitter },
    ...(Number.isFinite(policy.resetAfterMs) ? { resetAfterMs: policy.resetAfterMs } : {}),
  };
}

function outcomeOf(task: TaskRecord<unknown>): TaskOutcome {
  if (task.cancelled) return 'cancelled';
  if (task.failed) return isInterruption(task.failure) ? 'interrupted' : 'failed';
  return 'completed';
}

function savedEnded(task: TaskRecord<unknown>, untold: boolean): SavedEnded {
  const origin = task.origin as TaskOrigin;
  const outcome = outcomeOf(task);
  let result: unknown;
  if (outcome === 'completed') {
    result = task.result();
  }
  return {
    name: origin.shortName,
    task: origin.taskName,
    outcome,
    ...(outcome === 'completed' ? {} : { error: errorData(task.failure) }),
    ...(result !== undefined && isPlainJson(result) ? { result } : {}),
    seq: origin.seq ?? null,
    untold,
  };
}

function persist(snapshot: Snapshot<unknown>): SavedGroup {
  const { value, context } = snapshot as GroupSnapshot;
  const table = context.table as unknown as PersistedTable;
  const now = table.clock.now();
  const running: SavedTask[] = [];
  const ended: SavedEnded[] = [];
  for (const task of table.waitingAck) ended.push(savedEnded(task, false));
  for (const [name, task] of table.running) {
    // Ended, and the step that reports it had not come: it is saved ended, and told at the restore.
    if (task.done) {
      if (!task.abandoned) ended.push(savedEnded(task, true));
      continue;
    }
    const origin = task.origin as TaskOrigin;
    const paramsSaved = isPlainJson(origin.params);
    const restart = restartData(task.restartPolicy);
    running.push({
      name,
      task: origin.taskName,
      ...(paramsSaved && origin.params !== undefined ? { params: origin.params } : {}),
      paramsSaved,
      ...(restart === undefined ? {} : { restart }),
      logException: task.logsException,
      seq: origin.seq ?? null,
      attempt: task.attempt,
      restartsAgoMs: (task.restarts ?? []).map((at) => now - at),
    });
  }
  return {
    logic: 'statesmith.taskGroup',
    format: 1,
    state: value === 'running' || value === 'stopping' ? value : 'idle',
    lineage: table.lineage,
    nextSeq: table.nextSeq,
    running,
    ended,
    restartsAgoMs: table.supervisor.restartTimes().map((at) => now - at),
    savedAt: Date.now(),
  };
}

function isSaved(saved: unknown): saved is SavedGroup {
  const s = saved as Partial<SavedGroup> | null;
  return (
    typeof s === 'object' &&
    s !== null &&
    s.logic === 'statesmith.taskGroup' &&
    s.format === 1 &&
    typeof s.lineage === 'string' &&
    Array.isArray(s.running) &&
    Array.isArray(s.ended)
  );
}

/** An error as it was, from its data: its name, message and code. */
function errorFrom(data: ErrorData | undefined): Error {
  if (data?.code === 'ERR_INTERRUPTED') return new DurableError('ERR_INTERRUPTED', data.message);
  const error = new Error(data?.message ?? 'failed before its process ended');
  Object.defineProperty(error, 'name', { value: data?.name ?? 'Error', configurable: true, writable: true });
  if (data?.code !== undefined) Object.assign(error, { code: data.code });
  return error;
}

const neverRuns: TaskBody<unknown> = () => undefined;

/** The `taskDone` of a task the restore found ended. */
function doneReply(ended: SavedEnded): TaskGroupReply {
  return {
    type: 'statesmith.taskGroup.taskDone',
    name: ended.name,
    task: ended.task,
    outcome: ended.outcome,
    ...(ended.error === undefined ? {} : { error: ended.error }),
    ...(ended.result === undefined ? {} : { result: ended.result }),
  } as TaskGroupReply;
}

/** The task group's adapter. `machine` is `taskGroupLogic` (its `resolveState` makes a snapshot in a given state). */
export function taskGroupPersistence(machine: AnyStateMachine): PersistenceAdapter {
  return {
    persist,
    revive(saved: unknown, fresh: Snapshot<unknown>, policy: InterruptedPolicy): Revived {
      if (!isSaved(saved)) {
        throw notSavedBy("a task group's", saved);
      }
      const { context, children } = fresh as GroupSnapshot;
      const table = context.table as unknown as PersistedTable;
      const now = table.clock.now();
      // The time the process was down counts: a restart's age is its age at the save, plus that.
      const down = Math.max(0, Date.now() - (typeof saved.savedAt === 'number' ? saved.savedAt : Date.now()));
      const clockTimes = (ages: readonly number[] | undefined): number[] => (ages ?? []).map((age) => now - age - down);
      table.lineage = saved.lineage;
      table.nextSeq = saved.nextSeq;
      table.supervisor.restoreRestartTimes(clockTimes(saved.restartsAgoMs));

      const tell: SavedEnded[] = [];
      const interrupted: InterruptedWork[] = [];
      const first: EventObject[] = [];
      const restoreEnded = (ended: SavedEnded): void => {
        const origin: TaskOrigin = {
          shortName: ended.name,
          taskName: ended.task,
          params: undefined,
          replyTo: null,
          ...(ended.seq === null ? {} : { seq: ended.seq }),
        };
        const record = table.makeRecord(neverRuns, origin, false, undefined);
        record.restoreEnded(
          ended.outcome === 'completed' ? 'completed' : ended.outcome === 'cancelled' ? 'cancelled' : 'failed',
          ended.result,
          ended.outcome === 'completed' ? undefined : errorFrom(ended.error),
        );
        table.waitingAck.add(record);
      };
      for (const ended of saved.ended) {
        restoreEnded(ended);
        if (ended.untold) tell.push(ended);
      }
      for (const task of saved.running) {
        const fn = task.task === null ? undefined : context.tasks[task.task];
        const what = `task ${JSON.stringify(task.name)} of ${context.name}${task.task === null ? '' : ` (${JSON.stringify(task.task)})`}, attempt ${task.attempt}`;
        const again = saved.state !== 'stopping' && task.task !== null && fn !== undefined && task.paramsSaved && (isIdempotent(fn) || policy === 'retry');
        if (again) {
          first.push(
            Object.assign(
              {
                type: 'statesmith.taskGroup.createTask',
                name: task.name,
                task: task.task as string,
                ...(task.params === undefined ? {} : { params: task.params }),
                ...(task.restart === undefined ? {} : { restart: task.restart }),
                logException: task.logException,
              },
              { [kSeq]: task.seq ?? undefined, [kAttempt]: task.attempt + 1, [kRestarts]: clockTimes(task.restartsAgoMs) },
            ),
          );
          interrupted.push({ what, rerun: true });
          continue;
        }
        const why =
          saved.state === 'stopping'
            ? 'its group was stopping'
            : task.task === null
              ? "it ran an in-process function, which only that process had (name it in the group's tasks to restore it)"
              : fn === undefined
                ? `this incarnation's group has no task named ${JSON.stringify(task.task)}`
                : !task.paramsSaved
                  ? 'its params were not plain JSON, so they were not saved'
                  : 'it is not marked idempotent()';
        const message = `${what} was running when its process ended; it is not run again: ${why}`;
        const ended: SavedEnded = {
          name: task.name,
          task: task.task,
          outcome: 'interrupted',
          error: { name: 'DurableError', code: 'ERR_INTERRUPTED', message },
          seq: task.seq,
          untold: true,
        };
        restoreEnded(ended);
        tell.push(ended);
        interrupted.push({ what: message, rerun: false });
      }
      const snapshot = {
        ...machine.resolveState({ value: 'idle' as never, context: { ...context, waiters: [] } as never }),
        children,
      } as unknown as Snapshot<unknown>;
      return {
        snapshot,
        interrupted,
        first,
        report: (scope: AnyActorScope) => {
          for (const ended of tell) {
            const reply = doneReply(ended);
            tellRevived(scope, reply);
          }
        },
      };
    },
  };
}
