/**
 * `taskGroupLogic`: the task group machine with its table and actions, as actor logic
 * that `createActor`, `spawn` and `invoke` accept. The table is the group's truth; each
 * task steps its own lazy actor and becomes a real child of the group when someone reads
 * it (or at once while an inspector captures).
 *
 * @module
 */
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { assign, enqueueActions, fromCallback, type AnyActorRef, type EventObject } from 'xstate';
import { answer, errorData, rejection, replyToOf, shown, withInProcess } from '../../machines/protocol.ts';
import { taskMachine } from '../../machines/task.machine.ts';
import {
  kErrors,
  kFromGroup,
  taskGroupMachine,
  type TaskFailure,
  type TaskGroupCommand,
  type TaskGroupContext,
  type TaskGroupEvent,
  type TaskGroupReply,
  type TaskGroupWaiter,
  type TaskOutcome,
  type TaskTableLike,
} from '../../machines/taskGroup.machine.ts';
import { type Clock } from '../clock.ts';
import { RejectedError } from '../errors.ts';
import { isCancelledError } from '../runtime/cancellation.ts';
import { inspection } from '../inspect/capture.ts';
import { startingAt } from '../runtime/LazyActor.ts';
import { optionalClock, optionalRandom, requireReadableInput } from '../runtime/validate.ts';
import { resolveRestartPolicy, type ResolvedRestartPolicy } from './restartPolicy.ts';
import { Supervisor, supervisionOf, type Supervision } from './supervision.ts';
import { TaskRecord, type TaskBody, type TaskExit, type TaskOrigin, type TaskSetup } from './Task.ts';
import { describeAs } from '../inspect/safeJson.ts';
import { persistWith, saveBarrierAbove } from '../runtime/persistence.ts';
import { isInterruption, kAttempt, kRestarts, kSeq, taskGroupPersistence } from './taskGroupPersistence.ts';

export { kErrors };

/** The task a facade's `createTask` made, carried in-process by the command. @internal */
export const kRecord: unique symbol = Symbol('statesmith.taskGroup.record');

let nextId = 0;
/** A unique lowercase hex id, standing in for Python's `id()`. @internal */
export function uniqueHexId(): string {
  return (++nextId).toString(16);
}

/** The most task ends one `settled` event reports. */
const BATCH = 256;

const CREATE_KEYS = new Set(['type', 'name', 'task', 'params', 'fn', 'restart', 'logException', 'replyTo']);

/**
 * The tasks of one group: the running ones by name, the finished ones waiting for
 * acknowledgement (in the order they finished), and the ends not yet reported to the
 * group. Only the group's actions change it.
 *
 * @internal
 */
export class TaskTable implements TaskTableLike {
  readonly running = new Map<string, TaskRecord<unknown>>();
  readonly waitingAck = new Set<TaskRecord<unknown>>();
  /** The id each materialised task has among the group's children. */
  readonly childIds = new Map<TaskRecord<unknown>, string>();
  readonly prefix: string;
  readonly clock: Clock;
  readonly random: () => number;
  /** Decides what an exit leads to: a restart (of the task alone or with siblings), or its end. */
  readonly supervisor: Supervisor;
  /** What every idempotency key of this group starts with: random, made once per fresh group, kept across incarnations under `durable()`. */
  lineage: string = globalThis.crypto.randomUUID();
  /** The number the next task gets (its key is `<lineage>:<seq>`). */
  nextSeq = 1;
  readonly #self: AnyActorRef;
  #ended: TaskRecord<unknown>[] = [];
  /** Where the unreported ends start in `#ended`. */
  #head = 0;
  #flushQueued = false;
  /** The setups of tasks without a restart policy, by logException; shared so a task allocates less. */
  readonly #shared: [TaskSetup?, TaskSetup?] = [];

  constructor(self: AnyActorRef, prefix: string, clock: Clock, random: () => number, supervision: Supervision) {
    this.#self = self;
    this.prefix = prefix;
    this.clock = clock;
    this.random = random;
    this.supervisor = new Supervisor(supervision, this, self, (id) => ({ type: 'statesmith.taskGroup.shutdownTimeout', [kFromGroup]: true, id }));
  }

  get runningCount(): number {
    return this.running.size;
  }

  isRunning(name: string): boolean {
    return this.running.has(name);
  }

  /** A task of this group, not yet taken on (a `createTask` carries it in-process, or the group makes it). */
  makeRecord(fn: TaskBody<unknown>, origin: TaskOrigin, logException: boolean, restart: ResolvedRestartPolicy | undefined): TaskRecord<unknown> {
    return new TaskRecord<unknown>(fn, `${this.prefix}:${origin.shortName}`, this.setup(logException, restart), origin);
  }

  setup(logException: boolean, restart: ResolvedRestartPolicy | undefined): TaskSetup {
    if (restart === undefined) return (this.#shared[logException ? 1 : 0] ??= this.#makeSetup(logException, undefined));
    return this.#makeSetup(logException, restart);
  }

  #makeSetup(logException: boolean, restart: ResolvedRestartPolicy | undefined): TaskSetup {
    return {
      logException,
      restart,
      clock: this.clock,
      random: this.random,
      onDone: this.#onDone,
      cancel: this.#cancel,
      spawn: this.#spawn,
      onExit: this.#onExit,
      lineage: this.lineage,
      barrier: this.#barrier,
    };
  }

  /**
   * The ends reported since the last drain, in order, at most `BATCH` of them; the rest
   * go in the next `settled` event. (XState runs a step's deferred effects, the emitted
   * `taskDone`s among them, by shifting an array: a bounded batch keeps that linear.)
   */
  drain(): TaskRecord<unknown>[] {
    const ended = this.#ended;
    const from = this.#head;
    if (ended.length - from <= BATCH) {
      this.#ended = [];
      this.#head = 0;
      return from === 0 ? ended : ended.slice(from);
    }
    this.#head = from + BATCH;
    this.#queueFlush();
    return ended.slice(from, from + BATCH);
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(this.#flush);
  }

  /** A task exited and its supervisor decides what follows: on a microtask, with the ends of this turn. */
  readonly #onExit = (task: TaskRecord<unknown>, exit: TaskExit): void => {
    this.supervisor.noteExit(task, exit);
    this.#queueFlush();
  };

  /** A task ended: report it to the group on a microtask, with every other end of this turn. */
  readonly #onDone = (task: TaskRecord<unknown>): void => {
    this.#ended.push(task);
    this.#queueFlush();
  };

  readonly #flush = (): void => {
    this.#flushQueued = false;
    if (this.#self.getSnapshot().status === 'active') {
      this.#self.send({ type: 'statesmith.taskGroup.settled', [kFromGroup]: true });
      return;
    }
    // The group is gone: nobody does bookkeeping any more, but nobody may wait for ever either.
    this.supervisor.concludeAll();
    const ended = this.#ended.slice(this.#head);
    this.#ended = [];
    this.#head = 0;
    for (const task of ended) task.notifyDone();
  };

  /**
   * Under durable(): the save barrier of the durable actor the group runs in (its own logic's, or
   * a durable service's above it), looked up as a body starts.
   */
  readonly #barrier = (): (() => Promise<void>) | undefined => saveBarrierAbove(this.#self);

  /** `task.cancel()` goes through the group, as a command. */
  readonly #cancel = (task: TaskRecord<unknown>, reason: string | undefined): boolean => {
    if (this.#self.getSnapshot().status !== 'active') return task.abort(reason);
    const name = task.origin?.shortName as string;
    this.#self.send({ type: 'statesmith.taskGroup.cancelTask', name, ...(reason === undefined ? {} : { reason }) });
    return true;
  };

  /** Reading `task.actor`: the group spawns it as its child, in the state it has reached. */
  readonly #spawn = (task: TaskRecord<unknown>, at: string): undefined => {
    if (this.#self.getSnapshot().status !== 'active') return undefined;
    this.#self.send({ type: 'statesmith.taskGroup.materialise', [kFromGroup]: true, task, at });
    return undefined;
  };

  /** The group's actor ended: every task still running, or waiting for a restart, is cancelled with `reason`. */
  cancelAll(reason: string): void {
    for (const task of [...this.running.values()]) task.abort(reason);
  }

  /** A free child id for a task named `name`. */
  childIdFor(name: string, children: Readonly<Record<string, unknown>>): string {
    if (children[name] === undefined) return name;
    for (let n = 2; ; n++) if (children[`${name}#${n}`] === undefined) return `${name}#${n}`;
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(TaskTable, (table) => `[TaskTable ${table.prefix}]`);

/** The id of the child whose cleanup cancels the group's tasks when the group's actor stops. @internal */
export const LIFETIME = 'statesmith.lifetime';

/** Lives as long as the group's actor: its cleanup (the actor stopped, or failed) cancels every task left. */
const lifetime = fromCallback<EventObject, unknown>(
  ({ input }) =>
    () =>
      (input as TaskTable).cancelAll('its task group actor was stopped'),
);

type CreateTask = Extract<TaskGroupCommand, { type: 'statesmith.taskGroup.createTask' }>;

/** Why a command cannot be accepted at all: a code and a reason. */
function malformed(context: TaskGroupContext, event: TaskGroupEvent): { code: string; reason: string } | undefined {
  const fields = event as Readonly<Record<string, unknown>>;
  if ('reason' in fields && fields.reason !== undefined && typeof fields.reason !== 'string') {
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"reason" must be a string; received ${shown(fields.reason)}` };
  }
  switch (event.type) {
    case 'statesmith.taskGroup.cancelTask':
    case 'statesmith.taskGroup.acknowledge':
      if (typeof event.name !== 'string' || event.name.length === 0) {
        return { code: 'ERR_INVALID_ARG_TYPE', reason: `"name" must be a non-empty string; received ${shown(event.name)}` };
      }
      return undefined;
    case 'statesmith.taskGroup.createTask':
      return malformedCreate(context, event);
    default:
      return undefined;
  }
}

function malformedCreate(context: TaskGroupContext, event: CreateTask): { code: string; reason: string } | undefined {
  for (const key of Object.keys(event)) {
    if (!CREATE_KEYS.has(key))
      return { code: 'ERR_UNKNOWN_OPTION', reason: `createTask has no field "${key}"; it takes ${[...CREATE_KEYS].slice(1).join(', ')}` };
  }
  if (event.name !== undefined && typeof event.name !== 'string')
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"name" must be a string; received ${shown(event.name)}` };
  if (event.fn !== undefined && typeof event.fn !== 'function') return { code: 'ERR_INVALID_ARG_TYPE', reason: '"fn" must be a function' };
  if (event.task !== undefined && typeof event.task !== 'string')
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"task" must be a string; received ${shown(event.task)}` };
  if (event.logException !== undefined && typeof event.logException !== 'boolean') {
    return { code: 'ERR_INVALID_ARG_TYPE', reason: `"logException" must be a boolean; received ${shown(event.logException)}` };
  }
  if ((event.fn === undefined) === (event.task === undefined)) {
    return { code: 'ERR_INVALID_ARG_VALUE', reason: 'createTask needs exactly one of "task" (a name from the group\'s tasks) and "fn"' };
  }
  if (event.task !== undefined && !Object.hasOwn(context.tasks, event.task)) {
    const known = Object.keys(context.tasks);
    return {
      code: 'ERR_UNKNOWN_TASK',
      reason: `no task named ${JSON.stringify(event.task)}; the group knows ${known.length ? known.join(', ') : 'no named tasks'}`,
    };
  }
  if (event.name && (context.table as TaskTable).isRunning(event.name)) {
    return { code: 'ERR_DUPLICATE_TASK', reason: `a task named ${JSON.stringify(event.name)} is already running in ${context.name}` };
  }
  if (event.restart !== undefined) {
    try {
      resolveRestartPolicy(event.restart);
    } catch (error) {
      return { code: (error as { code?: string }).code ?? 'ERR_INVALID_ARG_VALUE', reason: (error as Error).message };
    }
  }
  return undefined;
}

/** A task's failure as data for a reply. */
function failureData(task: TaskRecord<unknown>): TaskFailure {
  const error = errorData(task.failure);
  return { task: task.origin?.taskName ?? null, name: task.origin?.shortName ?? task.name, message: error.message, error };
}

/**
 * Removes cancellations from a failure, looking inside nested `AggregateError`s; groups
 * left empty are dropped, others rebuilt with their message. `undefined` when nothing is left.
 *
 * @internal
 */
export function withoutCancellations(error: unknown): unknown {
  if (isCancelledError(error)) return undefined;
  if (!isAggregate(error)) return error;
  const rest = error.errors.map(withoutCancellations).filter((e) => e !== undefined);
  if (rest.length === 0) return undefined;
  if (rest.length === error.errors.length && rest.every((e, i) => e === error.errors[i])) return error;
  const Rebuilt = error.constructor as new (errors: unknown[], message: string) => AggregateError;
  return new Rebuilt(rest, error.message);
}

/** `error instanceof AggregateError`, false for a value whose prototype lookup throws. */
function isAggregate(error: unknown): error is AggregateError {
  try {
    return error instanceof AggregateError;
  } catch {
    return false;
  }
}

/** The `taskDone` of a task that ended. */
function taskDone(task: TaskRecord<unknown>, origin: TaskOrigin): TaskGroupReply {
  if (task.cancelled || task.failed) {
    const outcome: TaskOutcome = task.cancelled ? 'cancelled' : isInterruption(task.failure) ? 'interrupted' : 'failed';
    return { type: 'statesmith.taskGroup.taskDone', name: origin.shortName, task: origin.taskName, outcome, error: errorData(task.failure) };
  }
  const result = task.result();
  return result === undefined
    ? { type: 'statesmith.taskGroup.taskDone', name: origin.shortName, task: origin.taskName, outcome: 'completed' }
    : { type: 'statesmith.taskGroup.taskDone', name: origin.shortName, task: origin.taskName, outcome: 'completed', result };
}

const providedTaskGroup = guardedLogic(
  taskGroupMachine.provide({
    actors: {
      task: startingAt(taskMachine),
      lifetime,
    },
    guards: {
      malformed: ({ context, event }) => malformed(context, event) !== undefined,
    },
    actions: {
      rejectMalformed: enqueueActions(({ enqueue, context, event, self }) => {
        const why = malformed(context, event) ?? { code: 'ERR_INVALID_ARG_VALUE', reason: 'malformed command' };
        const refused = rejection(event, self, why.code, why.reason);
        // A task the facade made for this command never runs: it ends refused, with the rejection.
        (event as { [kRecord]?: TaskRecord<unknown> })[kRecord]?.refuse(new RejectedError(refused));
        answer<TaskGroupReply>(enqueue as never, self, replyToOf(event), refused);
      }),
      openTable: enqueueActions(({ enqueue, context, self }) => {
        const uniqueId = context.uniqueId || uniqueHexId();
        const name = `TaskGroup:${uniqueId}`;
        const clock = optionalClock('input.clock', context.options.clock);
        const random = optionalRandom('input.random', context.options.random);
        const supervision = supervisionOf('input', context.options);
        const table = new TaskTable(self, name, clock, random, supervision);
        enqueue.assign({ uniqueId, name, table });
        // Its tasks do not outlive the group's actor: stopped (or failed), the actor stops this
        // child, whose cleanup cancels every task still running or waiting for a restart.
        enqueue.spawnChild('lifetime', { id: LIFETIME, input: table });
      }),
      // The hot path (100,000 tasks): a plain action, no reply until `taskDone`; a malformed
      // createTask was answered by `rejectMalformed` before this runs.
      createTask: ({ context, event, self }) => {
        const command = event as CreateTask & { readonly [kRecord]?: TaskRecord<unknown> };
        const table = context.table as TaskTable;
        // The facade made the task already (it returns it at once, even when this command
        // waits behind another): the group takes it on here.
        let record = command[kRecord];
        if (record === undefined) {
          const restart = command.restart === undefined ? undefined : resolveRestartPolicy(command.restart);
          const fn = (command.fn ?? context.tasks[command.task as string]) as TaskBody<unknown>;
          // A durable group's restore re-runs a task under the number (so the key) and the next attempt it had.
          const restored = command as { readonly [kSeq]?: number; readonly [kAttempt]?: number };
          const seq = restored[kSeq] ?? table.nextSeq++;
          const origin: TaskOrigin = {
            shortName: command.name || uniqueHexId(),
            taskName: command.task ?? null,
            params: command.params,
            replyTo: command.replyTo ?? null,
            seq,
            attempt: restored[kAttempt] ?? 1,
          };
          record = table.makeRecord(fn, origin, command.logException ?? true, restart);
          const restarts = (command as { readonly [kRestarts]?: number[] })[kRestarts];
          if (restarts !== undefined && restarts.length > 0) record.restarts = restarts;
        }
        table.running.set((record.origin as TaskOrigin).shortName, record);
        // While an inspector captures, every task is a real child from the start, so it shows
        // (handled in this same send, before the task's body starts on a microtask).
        if (inspection.enabled) self.send({ type: 'statesmith.taskGroup.materialise', [kFromGroup]: true, task: record, at: 'scheduled' });
      },
      cancelTask: enqueueActions(({ enqueue, context, event, self }) => {
        const why = malformed(context, event);
        const command = event as Extract<TaskGroupCommand, { type: 'statesmith.taskGroup.cancelTask' }>;
        const record = why ? undefined : (context.table as TaskTable).running.get(command.name);
        if (why || record === undefined) {
          const { code, reason } = why ?? { code: 'ERR_UNKNOWN_TASK', reason: `no running task is named ${JSON.stringify(command.name)} in ${context.name}` };
          answer<TaskGroupReply>(enqueue as never, self, replyToOf(event), rejection(event, self, code, reason));
          return;
        }
        record.abort(command.reason);
        answer<TaskGroupReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.taskGroup.cancelling', names: [command.name] });
      }),
      cancelAll: enqueueActions(({ enqueue, context, event, self }, params: unknown) => {
        const reason = (event as { reason?: string }).reason;
        (context.table as TaskTable).supervisor.cancelRound();
        const names = [...(context.table as TaskTable).running].map(([name, record]) => (record.abort(reason), name));
        if ((params as { reply: boolean }).reply)
          answer<TaskGroupReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.taskGroup.cancelling', names });
      }),
      acknowledge: enqueueActions(({ enqueue, context, event, self }) => {
        const name = (event as { name: string }).name;
        const table = context.table as TaskTable;
        let found: TaskRecord<unknown> | undefined;
        for (const task of table.waitingAck) {
          if (task.origin?.shortName === name) {
            found = task;
            break;
          }
        }
        if (found === undefined) {
          answer<TaskGroupReply>(
            enqueue as never,
            self,
            replyToOf(event),
            rejection(event, self, 'ERR_UNKNOWN_TASK', `no finished task named ${JSON.stringify(name)} waits for acknowledgement`),
          );
          return;
        }
        table.waitingAck.delete(found);
        const childId = table.childIds.get(found);
        if (childId !== undefined) {
          table.childIds.delete(found);
          enqueue.stopChild(childId);
        }
        answer<TaskGroupReply>(enqueue as never, self, replyToOf(event), { type: 'statesmith.taskGroup.acknowledged', name });
      }),
      beginStop: ({ context, event }) => {
        const reason = (event as { reason?: string }).reason;
        (context.table as TaskTable).supervisor.beginStop(event.type === 'statesmith.taskGroup.escalated' ? `${context.name} failed` : reason);
      },
      abandonTask: ({ context, event }) => {
        (context.table as TaskTable).supervisor.budgetSpent((event as { id: number }).id);
      },
      recordSettled: enqueueActions(({ enqueue, context, self }) => {
        const table = context.table as TaskTable;
        const supervisor = table.supervisor;
        let escalation: ReturnType<Supervisor['handleExits']>;
        do {
          escalation = supervisor.handleExits() ?? escalation;
          supervisor.afterSettled();
        } while (supervisor.hasExits);
        const ended = table.drain();
        for (const task of ended) {
          const origin = task.origin as NonNullable<TaskRecord<unknown>['origin']>;
          if (table.running.get(origin.shortName) === task) table.running.delete(origin.shortName);
          // One abandoned by a stop was reported then; it is not acknowledged again.
          if (!task.abandoned) table.waitingAck.add(task);
          answer<TaskGroupReply>(enqueue as never, self, origin.replyTo as AnyActorRef | null, taskDone(task, origin));
        }
        // Whoever awaits a task resumes after the group's bookkeeping (their continuations run later).
        for (const task of ended) task.notifyDone();
        // Ends can finish a stop's current task: the next one is stopped.
        supervisor.afterSettled();
        if (escalation !== undefined) {
          const { task, error } = escalation;
          const failed = { type: 'statesmith.taskGroup.failed' as const, task: task.origin?.shortName ?? task.name, error: errorData(error) };
          answer<TaskGroupReply>(enqueue as never, self, null, withInProcess(failed, kErrors, [error]));
          enqueue.raise({ type: 'statesmith.taskGroup.escalated', [kFromGroup]: true });
        }
      }),
      answerWaiters: enqueueActions(({ enqueue, context, self }) => {
        if (context.waiters.length === 0) return;
        const table = context.table as TaskTable;
        const finished = [...table.waitingAck];
        table.waitingAck.clear();
        for (const task of finished) {
          const childId = table.childIds.get(task);
          if (childId === undefined) continue;
          table.childIds.delete(task);
          enqueue.stopChild(childId);
        }
        const failed = finished.filter((task) => task.cancelled || task.failed);
        const waitErrors = failed.map((task) => task.failure);
        const stopFailed = failed.filter((task) => withoutCancellations(task.failure) !== undefined);
        const stopErrors = stopFailed.map((task) => withoutCancellations(task.failure));
        // Tasks a stop gave up on are failures of the stop, reported once.
        const abandoned = table.supervisor.takeAbandoned();
        const abandonedData = abandoned.map((error) => ({
          task: null,
          name: error.task.slice(context.name.length + 1),
          message: error.message,
          error: errorData(error),
        }));
        for (const waiter of context.waiters as TaskGroupWaiter[]) {
          const reply: TaskGroupReply =
            waiter.kind === 'stop'
              ? withInProcess({ type: 'statesmith.taskGroup.stopped', errors: [...stopFailed.map(failureData), ...abandonedData] }, kErrors, [
                  ...stopErrors,
                  ...abandoned,
                ])
              : withInProcess({ type: 'statesmith.taskGroup.finished', errors: [...failed.map(failureData), ...abandonedData] }, kErrors, [
                  ...waitErrors,
                  ...abandoned,
                ]);
          answer<TaskGroupReply>(enqueue as never, self, waiter.replyTo, reply);
        }
      }),
      materialise: assign(({ context, event, spawn, self }) => {
        const task = (event as Extract<TaskGroupEvent, { type: 'statesmith.taskGroup.materialise' }>).task as TaskRecord<unknown>;
        const table = context.table as TaskTable;
        if (task.lazy.materialised || table.childIds.has(task)) return {};
        const id = table.childIdFor(task.name, self.getSnapshot().children as Record<string, unknown>);
        const child = spawn('task', { id, input: { at: task.lazy.key, context: { name: task.name } } as never });
        table.childIds.set(task, id);
        task.lazy.adopt(child as never);
        return {};
      }),
    },
  }),
  'taskGroup',
  { checkInput: (input) => requireReadableInput(input, ['tasks']) },
);

/** The machine type XState infers for taskGroupLogic (long: every action and child spelled out). */
type ProvidedTaskGroup = typeof providedTaskGroup;

/**
 * The type of {@link taskGroupLogic}: XState logic for the task group: its commands create, cancel
 * and stop tasks, under its restart strategy. `createActor`, `spawn` and `invoke` take it; its
 * commands, replies, input and context are typed as the README's table of its commands says.
 */
export interface TaskGroupLogic extends ProvidedTaskGroup {}

/**
 * The task group as actor logic: spawn it in your machine, drive it with commands, and
 * hear `taskDone` for each task (see the README's table of task group commands).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { taskGroupLogic } from 'statesmith';
 * const group = createActor(taskGroupLogic, {
 *   input: { uniqueId: 'volumes', tasks: { scrub: async (_signal, params) => `scrubbed ${(params as { id: number }).id}` } },
 * }).start();
 * const done = new Promise<{ name: string; outcome: string; result?: unknown }>((resolve) => group.on('statesmith.taskGroup.taskDone', resolve));
 * group.send({ type: 'statesmith.taskGroup.createTask', name: 'scrub-7', task: 'scrub', params: { id: 7 } });
 * const { name, outcome, result } = await done;
 * console.log(name, outcome, result); // scrub-7 completed scrubbed 7
 * const stopped = new Promise<{ errors: unknown[] }>((resolve) => group.on('statesmith.taskGroup.stopped', resolve));
 * group.send({ type: 'statesmith.taskGroup.stop' });
 * console.log((await stopped).errors); // []
 * ```
 */
export const taskGroupLogic: TaskGroupLogic = providedTaskGroup;

// How durable() saves and restores a group: its tasks by registry name, never its functions.
persistWith(taskGroupLogic, taskGroupPersistence(taskGroupLogic as never));
