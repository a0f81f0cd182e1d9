/**
 * What a task group does when a task exits, as an Erlang/OTP supervisor: restart the task
 * alone (`one_for_one`), with all its siblings (`one_for_all`), or with the siblings
 * created after it (`rest_for_one`); count every restart towards the group's intensity
 * and fail the group when it is exceeded; stop children in reverse start order, each
 * within a shutdown budget, abandoning one that ignores its signal past it.
 *
 * Internal to statesmith: the task group's actions drive it, inside the group actor's
 * steps. Nothing here runs on its own but the budget timers, and they only send the group
 * an event.
 *
 * @module
 */
import type { AnyActorRef } from 'xstate';
import type { Clock } from '../clock.ts';
import { ArgumentRangeError, ArgumentTypeError, ArgumentValueError, CancelledError, TaskAbandonedError, TaskGroupError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { errorData } from '../../machines/protocol.ts';
import { telemetry } from '../telemetry/hooks.ts';
import { optionalDuration, optionalObject } from '../runtime/validate.ts';
import { backoffDelay } from './restartPolicy.ts';
import type { TaskExit, TaskRecord } from './Task.ts';

/**
 * Which tasks restart with a task that exits and is restarted (OTP's strategies):
 * `'one_for_one'` only that task; `'one_for_all'` every task of the group;
 * `'rest_for_one'` that task and the tasks created after it.
 */
export type SupervisionStrategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

/** A group's supervision settings, checked and with defaults. @internal */
export interface Supervision {
  readonly strategy: SupervisionStrategy;
  /** The group's restart intensity: at most this many restarts within `withinMs`. */
  readonly maxRestarts: number;
  readonly withinMs: number;
  /** How long a stopped child may take to end before it is abandoned. */
  readonly shutdownMs: number;
}

const STRATEGIES: readonly SupervisionStrategy[] = ['one_for_one', 'one_for_all', 'rest_for_one'];

/** The supervision keys of a task group's options or input. @internal */
export const SUPERVISION_KEYS = ['strategy', 'maxRestarts', 'withinMs', 'shutdownMs'] as const;

/** Checks a group's supervision settings (`where` names the options object) and fills in the defaults. @internal */
export function resolveSupervision(where: string, value: Partial<Record<(typeof SUPERVISION_KEYS)[number], unknown>>): Supervision {
  const strategy = value.strategy ?? 'one_for_one';
  if (!STRATEGIES.includes(strategy as SupervisionStrategy)) {
    throw new ArgumentValueError(`${where}.strategy`, `one of ${STRATEGIES.map((s) => `'${s}'`).join(', ')}`, strategy);
  }
  let maxRestarts = Infinity;
  if (value.maxRestarts !== undefined) {
    if (typeof value.maxRestarts !== 'number' || Number.isNaN(value.maxRestarts))
      throw new ArgumentTypeError(`${where}.maxRestarts`, 'a number', value.maxRestarts);
    if (value.maxRestarts < 0 || (!Number.isInteger(value.maxRestarts) && value.maxRestarts !== Infinity)) {
      throw new ArgumentRangeError(`${where}.maxRestarts`, 'an integer >= 0, or Infinity', value.maxRestarts);
    }
    maxRestarts = value.maxRestarts;
  }
  const withinMs = optionalDuration(`${where}.withinMs`, value.withinMs, 5_000);
  if (withinMs === 0) throw new ArgumentRangeError(`${where}.withinMs`, 'a number > 0', withinMs);
  return { strategy: strategy as SupervisionStrategy, maxRestarts, withinMs, shutdownMs: optionalDuration(`${where}.shutdownMs`, value.shutdownMs, 5_000) };
}

/** Reads the supervision keys of an options object (other keys are the caller's to check). @internal */
export function supervisionOf(where: string, options: object | undefined): Supervision {
  const picked: Record<string, unknown> = {};
  for (const key of SUPERVISION_KEYS) if (options !== undefined && key in options) picked[key] = (options as Record<string, unknown>)[key];
  return resolveSupervision(where, optionalObject(where, picked, SUPERVISION_KEYS));
}

/** A restart of several tasks together: the siblings are stopped first, then all start again. */
interface Round {
  readonly trigger: TaskRecord<unknown>;
  /** Every task the round restarts, in creation order, the trigger included. */
  readonly members: TaskRecord<unknown>[];
  /** How each stopped sibling exited. */
  readonly exits: Map<TaskRecord<unknown>, TaskExit>;
  readonly delayMs: number;
  readonly attempt: number;
}

/** Children stopped one at a time, newest first, each within the shutdown budget. */
interface Sequence {
  readonly id: number;
  /** What is left, in creation order: the next one stopped is the last. */
  readonly queue: TaskRecord<unknown>[];
  readonly reason: string;
  /** True for a round (the tasks are held for a restart), false for a stop. */
  readonly hold: boolean;
  current: TaskRecord<unknown> | undefined;
  timer: unknown;
}

/** What the group tells its parent and its listeners when its intensity is exceeded. @internal */
export interface Escalation {
  readonly task: TaskRecord<unknown>;
  readonly error: TaskGroupError;
}

/** The table's view that the supervisor needs. @internal */
export interface SupervisedTable {
  readonly prefix: string;
  readonly clock: Clock;
  readonly random: () => number;
  readonly running: Map<string, TaskRecord<unknown>>;
}

/** Marks a budget timer's event as the group's own. @internal */
export type BudgetEvent = (id: number) => object;

let sequenceIds = 0;

/** The supervisor of one task group (see the file's comment). @internal */
export class Supervisor {
  readonly config: Supervision;
  readonly #table: SupervisedTable;
  readonly #self: AnyActorRef;
  readonly #budgetEvent: BudgetEvent;
  /** The clock times of the group's restarts within `withinMs`. */
  #restarts: number[] = [];
  #exits: { task: TaskRecord<unknown>; exit: TaskExit }[] = [];
  /** Exits that came while a round ran, for tasks outside it: handled when it ends. */
  #deferred: { task: TaskRecord<unknown>; exit: TaskExit }[] = [];
  #round: Round | undefined;
  #roundSequence: Sequence | undefined;
  #stopSequence: Sequence | undefined;
  /** Tasks abandoned since the last `stop` or `wait` was answered. */
  abandoned: TaskRecord<unknown>[] = [];

  constructor(config: Supervision, table: SupervisedTable, self: AnyActorRef, budgetEvent: BudgetEvent) {
    this.config = config;
    this.#table = table;
    this.#self = self;
    this.#budgetEvent = budgetEvent;
  }

  /** The clock times of the restarts counted towards the group's intensity (what `durable()` saves). */
  restartTimes(): readonly number[] {
    return this.#restarts;
  }

  /** A restore's restarts, as clock times of this incarnation: the budget goes on where it was. */
  restoreRestartTimes(times: readonly number[]): void {
    this.#restarts = [...times];
  }

  /** A task's exit that may lead to a restart; handled at the group's next `settled`. */
  noteExit(task: TaskRecord<unknown>, exit: TaskExit): void {
    this.#exits.push({ task, exit });
  }

  get hasExits(): boolean {
    return this.#exits.length > 0;
  }

  /** The group is gone: every held exit ends as it is, so nobody waits for ever. */
  concludeAll(): void {
    const exits = [...this.#exits, ...this.#deferred];
    this.#exits = [];
    this.#deferred = [];
    for (const { task, exit } of exits) task.conclude(exit);
  }

  /** True while a `stop` (or a failure of the group) stops the children one by one. */
  get stopping(): boolean {
    return this.#stopSequence !== undefined;
  }

  /**
   * Handles the exits noted since the last call, in order. Returns the escalation when
   * one of them exceeded the group's intensity (the group then stops every task).
   */
  handleExits(): Escalation | undefined {
    let escalation: Escalation | undefined;
    while (this.#exits.length > 0) {
      const exits = this.#exits;
      this.#exits = [];
      for (const { task, exit } of exits) escalation = this.#handle(task, exit) ?? escalation;
    }
    return escalation;
  }

  #handle(task: TaskRecord<unknown>, exit: TaskExit): Escalation | undefined {
    const round = this.#round;
    if (round !== undefined && round.members.includes(task) && task !== round.trigger) {
      round.exits.set(task, exit);
      return undefined;
    }
    if (round !== undefined && task !== round.trigger) {
      this.#deferred.push({ task, exit });
      return undefined;
    }
    const policy = task.restartPolicy;
    if (policy === undefined || task.cancelledOnPurpose || this.#stopSequence !== undefined) {
      task.conclude(exit);
      return undefined;
    }
    const now = this.#table.clock.now();
    if (exit.ranMs >= policy.resetAfterMs) task.restarts = [];
    const own = (task.restarts ?? []).filter((at) => now - at < policy.withinMs);
    own.push(now);
    task.restarts = own;
    const attempt = own.length;
    const verb = exit.outcome === 'failed' ? 'failed' : 'exited';
    // Which budgets count (OTP has only the supervisor's): the group's intensity when it has
    // one, and the task's own only where the task set it (or the group has none).
    const groupCounts = this.config.maxRestarts !== Infinity;
    const ownCounts = policy.ownBudget || !groupCounts;
    if (ownCounts && attempt > policy.maxRestarts) {
      getLogger().warn(
        `Task ${task.name} ${verb} ${attempt} times within ${policy.withinMs} ms; giving up (the task's own budget: maxRestarts ${policy.maxRestarts})`,
        { error: exit.error },
      );
      task.conclude(exit);
      return undefined;
    }
    this.#restarts = this.#restarts.filter((at) => now - at < this.config.withinMs);
    this.#restarts.push(now);
    if (this.#restarts.length > this.config.maxRestarts) return this.#escalate(task, exit);
    const budgets = [
      ...(groupCounts ? [`group restart ${this.#restarts.length} of ${this.config.maxRestarts} within ${this.config.withinMs} ms`] : []),
      ...(ownCounts ? [`task restart ${attempt} of ${policy.maxRestarts} within ${policy.withinMs} ms`] : []),
    ].join(', ');
    const delayMs = backoffDelay(policy, attempt, this.#table.random());
    // An expected restart is one line at info: the reason, the attempt, the delay. Its stack only at debug.
    const why = exit.outcome === 'failed' ? errorData(exit.error).message : exit.outcome;
    const others = this.#siblingsOf(task);
    const along = others.length === 0 ? '' : ` with ${others.length} sibling${others.length === 1 ? '' : 's'} (${this.config.strategy})`;
    getLogger().info(`Task ${task.name} ${verb} (${why}); restarting in ${Math.round(delayMs)} ms${along} (${budgets})`);
    if (exit.outcome === 'failed') getLogger().debug(`Task ${task.name} failed`, { error: exit.error });
    if (telemetry.enabled) telemetry.sink.taskRestarted(this.#table.prefix, task.origin?.shortName ?? task.name);
    if (others.length === 0) {
      task.restartAfter(delayMs, attempt);
      return undefined;
    }
    task.markRestarting(attempt, delayMs);
    const members = [...this.#table.running.values()].filter((t) => t === task || others.includes(t));
    this.#round = { trigger: task, members, exits: new Map(), delayMs, attempt };
    this.#roundSequence = this.#sequence(others, `restarting with ${task.name}`, true);
    this.#advance(this.#roundSequence);
    return undefined;
  }

  /** The running siblings a restart of `task` takes along, by the strategy. */
  #siblingsOf(task: TaskRecord<unknown>): TaskRecord<unknown>[] {
    if (this.config.strategy === 'one_for_one') return [];
    const order = [...this.#table.running.values()];
    const from = this.config.strategy === 'one_for_all' ? 0 : order.indexOf(task) + 1;
    return order.slice(from).filter((t) => t !== task && !t.done);
  }

  #escalate(task: TaskRecord<unknown>, exit: TaskExit): Escalation {
    const { maxRestarts, withinMs } = this.config;
    const message = `${this.#table.prefix} failed: ${task.name} exceeded the group's restart intensity (more than ${maxRestarts} restarts within ${withinMs} ms)`;
    const budget = { of: 'group' as const, maxRestarts, withinMs };
    const error = new TaskGroupError(
      exit.outcome === 'failed' ? [exit.error] : [],
      message,
      exit.outcome === 'failed' ? { cause: exit.error, task: task.name, budget } : { task: task.name, budget },
    );
    getLogger().error(message, { error: exit.error });
    // A failed supervisor starts afresh when it is used again (a service started again keeps its group).
    this.#restarts = [];
    task.conclude(exit, error);
    return { task, error };
  }

  /**
   * Stops every running task, newest first, each within the budget (a `stop`, or the
   * group's failure). A restart in progress is called off.
   */
  beginStop(reason: string | undefined): void {
    this.cancelRound();
    if (this.#stopSequence !== undefined) return;
    const queue = [...this.#table.running.values()];
    this.#stopSequence = this.#sequence(queue, reason ?? `${this.#table.prefix} is stopping`, false);
    this.#advance(this.#stopSequence);
  }

  /** Calls off a restart in progress (a `cancel` or `stop` came): the tasks waiting for it end cancelled. */
  cancelRound(): void {
    const round = this.#round;
    if (round === undefined) return;
    this.#round = undefined;
    this.#endSequence(this.#roundSequence);
    this.#roundSequence = undefined;
    for (const member of round.members) {
      const exit = round.exits.get(member);
      if (exit !== undefined) member.conclude(exit);
      else if (member.awaitingRestart) member.abort('the restart was called off');
    }
    this.#replayDeferred();
  }

  /** After a batch of ends and exits: moves the sequences on when their current task is over. */
  afterSettled(): void {
    for (const sequence of [this.#roundSequence, this.#stopSequence]) {
      if (sequence === undefined) continue;
      const current = sequence.current;
      if (current === undefined) continue;
      const over = current.done || current.abandoned || (sequence.hold && this.#round?.exits.has(current) === true);
      if (over) this.#advance(sequence);
    }
  }

  /** The budget of the current task of sequence `id` ran out: abandon it and go on. */
  budgetSpent(id: number): void {
    const sequence = [this.#roundSequence, this.#stopSequence].find((s) => s?.id === id);
    const task = sequence?.current;
    if (sequence === undefined || task === undefined || task.done) return;
    sequence.timer = undefined;
    const shortName = task.origin?.shortName ?? task.name;
    getLogger().error(`Task ${task.name} ignored its cancel for ${this.config.shutdownMs} ms and was abandoned; it may still be running`);
    task.abandon();
    if (this.#table.running.get(shortName) === task) this.#table.running.delete(shortName);
    const round = this.#round;
    if (round !== undefined) {
      const at = round.members.indexOf(task);
      if (at >= 0) round.members.splice(at, 1);
    }
    this.abandoned.push(task);
    this.#advance(sequence);
  }

  /** The abandoned tasks as errors for a `stop` or `wait` answer; reported once. */
  takeAbandoned(): TaskAbandonedError[] {
    const abandoned = this.abandoned;
    this.abandoned = [];
    return abandoned.map((task) => new TaskAbandonedError(task.name, this.config.shutdownMs));
  }

  #sequence(queue: TaskRecord<unknown>[], reason: string, hold: boolean): Sequence {
    return { id: ++sequenceIds, queue, reason, hold, current: undefined, timer: undefined };
  }

  #advance(sequence: Sequence): void {
    if (sequence.timer !== undefined) this.#table.clock.clearTimeout(sequence.timer);
    sequence.timer = undefined;
    sequence.current = undefined;
    for (let task = sequence.queue.pop(); task !== undefined; task = sequence.queue.pop()) {
      if (task.done || task.abandoned) continue;
      if (sequence.hold) {
        const waiting = task.awaitingRestart;
        task.hold(sequence.reason);
        // One waiting for its own restart has nothing running to stop.
        if (waiting) continue;
      } else {
        task.abort(sequence.reason);
        if (task.done) continue;
      }
      sequence.current = task;
      if (this.config.shutdownMs !== Infinity) {
        const id = sequence.id;
        sequence.timer = this.#table.clock.setTimeout(() => {
          if (this.#self.getSnapshot().status === 'active') this.#self.send(this.#budgetEvent(id) as never);
        }, this.config.shutdownMs);
      }
      return;
    }
    if (sequence === this.#roundSequence) this.#finishRound();
    else if (sequence === this.#stopSequence) this.#stopSequence = undefined;
  }

  #endSequence(sequence: Sequence | undefined): void {
    if (sequence?.timer !== undefined) this.#table.clock.clearTimeout(sequence.timer);
  }

  /** Every sibling has stopped: start the round's tasks again, in creation order, after the trigger's delay. */
  #finishRound(): void {
    const round = this.#round as Round;
    this.#round = undefined;
    this.#roundSequence = undefined;
    for (const member of round.members) {
      if (member.done || member.abandoned) continue;
      if (member === round.trigger) {
        member.restartAfter(round.delayMs, round.attempt);
        continue;
      }
      const type = member.restartPolicy?.type ?? 'temporary';
      if (type === 'temporary' || member.cancelledOnPurpose) {
        member.conclude(
          round.exits.get(member) ?? { outcome: 'cancelled', value: undefined, error: new CancelledError(`restarting with ${round.trigger.name}`), ranMs: 0 },
        );
        continue;
      }
      member.restartAfter(round.delayMs, round.attempt);
    }
    this.#replayDeferred();
  }

  #replayDeferred(): void {
    if (this.#deferred.length === 0) return;
    this.#exits.unshift(...this.#deferred);
    this.#deferred = [];
  }

  /** Clears the timers (the group is stopping for good). */
  dispose(): void {
    this.#endSequence(this.#roundSequence);
    this.#endSequence(this.#stopSequence);
  }
}
