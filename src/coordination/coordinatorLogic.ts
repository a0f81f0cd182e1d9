/**
 * `coordinatorLogic`: the coordinator machine with its children (connect, heartbeat,
 * reconnect, shutdown, a lease per held lock, an op per command), as actor logic that
 * `createActor`, `spawn` and `invoke` accept. The backend I/O is the engine's: a
 * `Coordinator`, whose methods are the thin client of this actor.
 *
 * @module
 */
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { assign, fromCallback, fromPromise } from 'xstate';
import { withInProcess } from '../../machines/protocol.ts';
import {
  coordinatorMachine,
  kFromEngine,
  kReplyTo,
  type CoordinatorCommand,
  type CoordinatorContext,
  type CoordinatorEngine,
} from '../../machines/coordinator.machine.ts';
import { Coordinator, type CoordinatorOptions } from './Coordinator.ts';
import { electionLogic } from './election.ts';

/** What the coordinator's children call: the `Coordinator` engine's internal steps. @internal */
export interface CoordinatorSteps extends CoordinatorEngine {
  connectNow(): Promise<void>;
  pingNow(): Promise<void>;
  reconnectNow(): Promise<void>;
  shutdownNow(): Promise<void>;
  loseAll(error: unknown): void;
  wakeAll(): void;
  runCommand(command: CoordinatorCommand): Promise<import('../../machines/coordinator.machine.ts').CoordinatorReply>;
  startUpkeep(lease: unknown): void;
  stopUpkeep(lease: unknown): void;
}

const steps = (context: { readonly engine: CoordinatorEngine }): CoordinatorSteps => context.engine as CoordinatorSteps;

/**
 * The coordinator as actor logic: spawn it in your machine with its options, start it with
 * a command, and take and give back locks by name (see the README's table of coordinator
 * commands). Each held lock is its `lease-<n>` child.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { coordinatorLogic } from 'statesmith';
 * const coordinator = createActor(coordinatorLogic, { input: { options: { prefix: 'vm-', agentId: 'node-1' } } }).start();
 * const heard = (type: string) => new Promise<Record<string, unknown>>((resolve) => coordinator.on(type as never, resolve as never));
 * const started = heard('statesmith.coordinator.started');
 * coordinator.send({ type: 'statesmith.coordinator.start' });
 * console.log((await started).memberId); // vm-node-1
 * const acquired = heard('statesmith.coordinator.acquired');
 * coordinator.send({ type: 'statesmith.coordinator.acquire', lock: 'volume-7', blocking: false });
 * console.log((await acquired).fence, Object.keys(coordinator.getSnapshot().children)); // 1 [ 'lease-1' ]
 * const stopped = heard('statesmith.coordinator.stopped');
 * coordinator.send({ type: 'statesmith.coordinator.stop' });
 * await stopped;
 * console.log(coordinator.getSnapshot().value); // stopped
 * ```
 */
export const coordinatorLogic = guardedLogic(
  coordinatorMachine.provide({
    actors: {
      connect: fromPromise<void, { readonly engine: CoordinatorEngine }>(({ input }) => steps(input).connectNow()),
      ping: fromPromise<void, { readonly engine: CoordinatorEngine }>(({ input }) => steps(input).pingNow()),
      reconnect: fromPromise<void, { readonly engine: CoordinatorEngine }>(({ input }) => steps(input).reconnectNow()),
      shutdown: fromPromise<void, { readonly engine: CoordinatorEngine }>(({ input }) => steps(input).shutdownNow()),
      election: electionLogic,
      lease: fromCallback<{ readonly type: string }, { readonly lease: unknown; readonly engine?: CoordinatorEngine }>(({ input, self }) => {
        const engine = ((self as { _parent?: { getSnapshot(): { context: CoordinatorContext } } })._parent?.getSnapshot().context.engine ??
          input.engine) as CoordinatorSteps;
        engine.startUpkeep(input.lease);
        return () => engine.stopUpkeep(input.lease);
      }),
      op: fromCallback<{ readonly type: string }, { readonly engine: CoordinatorEngine; readonly opId: string; readonly command: CoordinatorCommand }>(
        ({ input, sendBack }) => {
          let active = true;
          void steps(input)
            .runCommand(input.command)
            .then((reply) => {
              if (!active) return;
              sendBack(
                withInProcess(
                  { type: 'statesmith.coordinator.opSettled', [kFromEngine]: true, opId: input.opId, reply },
                  kReplyTo,
                  input.command.replyTo ?? null,
                ),
              );
            });
          return () => {
            active = false;
          };
        },
      ),
    },
    actions: {
      // Spawned on its own, the coordinator's engine is a Coordinator made from input.options whose actor is this one.
      open: assign(({ context, self }) => {
        if (context.engine !== undefined) return {};
        const engine = Coordinator.attach(self, context.options as CoordinatorOptions | undefined);
        return { engine, memberId: engine.memberId };
      }),
      connectionLost: ({ context, event }) => steps(context).loseAll((event as { error?: unknown }).error),
      reconnected: ({ context }) => steps(context).wakeAll(),
    },
  }),
  'coordinator',
);
