/**
 * The HA agent of the demo as a user's own XState machine: it spawns a statesmith
 * executor (which owns the `postgres` subprocess runner) and a monitoring service, drives
 * them only by commands, and reacts to what they answer.
 *
 * `running.waiting ⇄ running.cycling`, then `stopping.{monitoring → executor → leaving}`
 * and `stopped`:
 * - a cycle comes every `cycleMs`, or at once when the executor's finished work wakes the
 *   agent; it campaigns once in the `leader` election (holding the executor lock, as
 *   Patroni's HA cycle does; a leader first reads its leadership's signal, so after a
 *   freeze it sees its loss before it acts) and says which action to run, which the agent
 *   sends as a `run` command;
 * - `stop` stops the monitoring service (`statesmith.service.stop` → `stopped`), cancels
 *   the executor (`statesmith.executor.cancel` → `cancelled`), then resigns its leadership
 *   and leaves the coordination group.
 *
 * @module
 */
import { telemetry } from '../telemetry/hooks.ts';
import { assign, enqueueActions, fromPromise, sendTo, setup, waitFor, type AnyActorRef } from 'xstate';
import type { Election, Leadership } from '../coordination/election/Election.ts';
import type { Mutex } from '../locks/Mutex.ts';
import type { ServiceMain } from '../../machines/service.machine.ts';
import { executorLogic } from '../executor/executorLogic.ts';
import { serviceLogic } from '../tasks/serviceLogic.ts';

/** What the agent machine is given. */
export interface HaAgentInput {
  /** The agent's name (its leader value). */
  readonly name: string;
  /** Writes one line of the demo's output. */
  readonly say: (who: string, what: string) => void;
  /** The election of the agents' leader. */
  readonly election: Election;
  /** Leaves the coordination group (after the leadership is given up). */
  readonly leave: () => Promise<void>;
  /** Woken when a task ends; the agent hears the wake-ups through `wake` events. */
  readonly wakeup: { wakeup(reason: string, detail?: object): void };
  /** The executor lock, held by each cycle. */
  readonly lock: Mutex;
  readonly cycleMs: number;
  /** The executor's named actions (they run shell scripts through its subprocess runner). */
  readonly actions: Readonly<Record<string, (signal: AbortSignal, params: unknown) => unknown>>;
  /** The monitoring service's main. */
  readonly monitoring: ServiceMain;
}

/**
 * The context of the agent's executor child: its own, or the inner executor's when the
 * child is `durable(executorLogic)` (the demo's `--state`); undefined while it restores.
 */
export function executorContextOf(ref: AnyActorRef | undefined): { readonly action: string | null } | undefined {
  const snapshot = ref?.getSnapshot() as { context?: { action?: string | null }; inner?: { context: { action: string | null } } } | undefined;
  if (snapshot === undefined) return undefined;
  if ('inner' in snapshot) return snapshot.inner?.context;
  return snapshot.context as { action: string | null };
}

interface AgentContext {
  readonly input: HaAgentInput;
  readonly cycles: number;
  readonly leader: Leadership | null;
}

interface CycleOutput {
  readonly leader: Leadership | null;
  /** The action to run, if any. */
  readonly run: string | null;
}

type AgentEvent =
  | { readonly type: 'wake' }
  | { readonly type: 'stop'; readonly reason: string }
  | { readonly type: 'statesmith.service.stopped' }
  | { readonly type: 'statesmith.executor.cancelled' }
  | { readonly type: string };

export const haAgentMachine = setup({
  types: { context: {} as AgentContext, events: {} as AgentEvent, input: {} as HaAgentInput },
  delays: { cycle: ({ context }) => context.input.cycleMs },
  actors: {
    executor: executorLogic,
    monitoring: serviceLogic,
    /** One HA cycle: holds the executor lock, campaigns once for the leadership, picks the action. */
    cycle: fromPromise<CycleOutput, { context: AgentContext; agent: AnyActorRef }>(async ({ input: { context, agent } }) => {
      const { input, cycles } = context;
      const executor = (agent.getSnapshot() as { children: Record<string, AnyActorRef | undefined> } | undefined)?.children['executor'];
      // A durable executor restores before the first cycle acts: a promote sent to it meanwhile would be refused.
      if (executor !== undefined && executorContextOf(executor) === undefined) {
        await waitFor(executor, () => executorContextOf(executor) !== undefined, { timeout: 10_000 }).catch(() => undefined);
      }
      const view = executorContextOf(executor);
      const busy = view === undefined || view.action != null;
      return input.lock.runExclusive(async (): Promise<CycleOutput> => {
        const current = context.leader;
        // Reading the signal checks the lease first: after a freeze, the old leader sees its loss here, before it acts.
        if (current === null || current.signal.aborted) {
          // One try per cycle: elected now, or follow until the next cycle.
          const leader = await input.election.campaign({ value: { agent: input.name }, timeoutMs: 0 }).catch(() => null);
          if (leader === null) {
            if (cycles % 5 === 1) input.say('loop', `cycle ${cycles}: following (another agent leads)`);
            return { leader: null, run: null };
          }
          input.say('loop', `cycle ${cycles}: became the leader (term ${leader.term})`);
          if (telemetry.enabled) telemetry.sink.leadership('leader', true);
          leader.signal.addEventListener(
            'abort',
            () => {
              const reason = leader.signal.reason as { why?: unknown; message?: unknown };
              // A clean resign (the agent stopping) is routine: said as such, not as a loss.
              if (typeof reason?.why === 'string' && reason.why.startsWith('resigned')) input.say('loop', `resigned the leadership (term ${leader.term})`);
              else input.say('loop', `lost the leadership: ${String(reason?.message ?? reason)}`);
              if (telemetry.enabled) telemetry.sink.leadership('leader', false);
            },
            { once: true },
          );
          return { leader, run: 'promote' };
        }
        if (busy || cycles % 4 !== 0) return { leader: current, run: null };
        input.say('loop', `cycle ${cycles}: leader, scheduling a restart`);
        return { leader: current, run: 'restart' };
      });
    }),
    leave: fromPromise<void, { context: AgentContext }>(async ({ input: { context } }) => {
      if (context.leader !== null && !context.leader.signal.aborted) {
        await context.leader.resign();
        if (telemetry.enabled) telemetry.sink.leadership('leader', false);
      }
      await context.input.leave();
    }),
  },
}).createMachine({
  id: 'haAgent',
  context: ({ input }) => ({ input, cycles: 0, leader: null }),
  invoke: [
    {
      id: 'executor',
      src: 'executor',
      input: ({ context }) => ({
        name: 'ha',
        wakeup: context.input.wakeup,
        lock: context.input.lock,
        actions: context.input.actions,
        subprocess: { name: 'postgres', terminateTimeoutMs: 2_000 },
      }),
    },
    {
      id: 'monitoring',
      src: 'monitoring',
      // A supervisor of its subtasks: each restarts alone, five restarts a minute at most
      // (then the service fails), and a subtask gets 2 s to stop.
      input: ({ context }) => ({
        name: 'Monitoring',
        uniqueId: 'monitoring',
        main: context.input.monitoring,
        strategy: 'one_for_one' as const,
        maxRestarts: 5,
        withinMs: 60_000,
        shutdownMs: 2_000,
      }),
    },
  ],
  entry: sendTo('monitoring', { type: 'statesmith.service.start' }),
  initial: 'running',
  states: {
    running: {
      initial: 'cycling',
      on: { stop: 'stopping' },
      states: {
        waiting: {
          after: { cycle: 'cycling' },
          on: { wake: 'cycling' },
        },
        cycling: {
          entry: assign({ cycles: ({ context }) => context.cycles + 1 }),
          invoke: {
            src: 'cycle',
            input: ({ context, self }) => ({ context, agent: self as AnyActorRef }),
            onDone: {
              target: 'waiting',
              actions: enqueueActions(({ enqueue, event, self }) => {
                enqueue.assign({ leader: event.output.leader });
                if (event.output.run !== null) {
                  enqueue.sendTo('executor', { type: 'statesmith.executor.run', action: event.output.run, replyTo: self as AnyActorRef });
                }
              }),
            },
            onError: { target: 'waiting', actions: ({ context, event }) => context.input.say('loop', `cycle failed: ${(event.error as Error).message}`) },
          },
        },
      },
    },
    stopping: {
      initial: 'monitoring',
      states: {
        monitoring: {
          entry: sendTo('monitoring', ({ self }) => ({ type: 'statesmith.service.stop' as const, replyTo: self as AnyActorRef })),
          on: { 'statesmith.service.stopped': 'executor' },
        },
        executor: {
          entry: sendTo('executor', ({ self }) => ({ type: 'statesmith.executor.cancel' as const, replyTo: self as AnyActorRef })),
          on: { 'statesmith.executor.cancelled': 'leaving' },
        },
        leaving: {
          invoke: { src: 'leave', input: ({ context }) => ({ context }), onDone: '#haAgent.stopped', onError: '#haAgent.stopped' },
        },
      },
    },
    stopped: { type: 'final' },
  },
});
