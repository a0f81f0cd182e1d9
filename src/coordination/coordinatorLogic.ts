/**
 * `coordinatorLogic`: the coordinator machine with its children (connect, heartbeat,
 * reconnect, shutdown, the command runner, an election per group), as actor logic that
 * `createActor`, `spawn` and `invoke` accept. The actor owns its engine (made from its
 * input's options as it starts): the connection, every grant, and the renewal loop.
 *
 * @module
 */
import { assign, fromCallback, fromPromise } from 'xstate';
import {
  coordinatorMachine,
  kFromEngine,
  kReplyTo,
  type CoordinatorCommand,
  type CoordinatorEngine as MachineEngine,
} from '../../machines/coordinator.machine.ts';
import { withInProcess } from '../../machines/protocol.ts';
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { electionLogic } from './election/electionLogic.ts';
import { CoordinatorEngine, kGrant } from './engine.ts';
import type { Grant } from './lock/grant.ts';

const engineOf = (context: { readonly engine: MachineEngine }): CoordinatorEngine => context.engine as CoordinatorEngine;

const providedCoordinator = guardedLogic(
  coordinatorMachine.provide({
    actors: {
      connect: fromPromise<void, { readonly engine: MachineEngine }>(({ input }) => engineOf(input).connectNow()),
      ping: fromPromise<void, { readonly engine: MachineEngine }>(({ input }) => engineOf(input).pingNow()),
      reconnect: fromPromise<void, { readonly engine: MachineEngine }>(({ input }) => engineOf(input).reconnectNow()),
      shutdown: fromPromise<void, { readonly engine: MachineEngine }>(({ input }) => engineOf(input).shutdownNow()),
      election: electionLogic,
      backend: fromCallback<{ readonly type: string }, { readonly engine: MachineEngine }>(({ input, receive, sendBack }) => {
        let active = true;
        receive((event) => {
          const { opId, command } = event as unknown as { readonly opId: string; readonly command: CoordinatorCommand };
          void engineOf(input)
            .runCommand(command)
            .then((reply) => {
              const grant = (reply as { [kGrant]?: Grant })[kGrant];
              // The actor stopped under the wait: nobody can be handed the grant, so it is given back.
              if (!active) return void grant?.release();
              // A grant goes into the actor's `grants` with the answer that hands it out: one step, not two.
              const settled = {
                type: 'statesmith.coordinator.opSettled',
                [kFromEngine]: true,
                opId,
                reply,
                ...(grant === undefined ? {} : { grant: grant.record() }),
              };
              sendBack(withInProcess(settled, kReplyTo, command.replyTo ?? null));
            });
        });
        return () => {
          active = false;
        };
      }),
    },
    actions: {
      // The engine is made from input.options as the actor starts, unless the input brings one (the machine's tests).
      open: assign(({ context, self }) => {
        if (context.engine !== undefined) return {};
        const engine = new CoordinatorEngine(self, context.options);
        return { engine, memberId: engine.memberId };
      }),
      connectionLost: ({ context, event }) => engineOf(context).loseAll((event as { error?: unknown }).error),
      reconnected: ({ context }) => engineOf(context).wakeAll(),
    },
  }),
  'coordinator',
);

/** The machine type XState infers for coordinatorLogic (long: every action and child spelled out). */
type ProvidedCoordinator = typeof providedCoordinator;

/**
 * The type of {@link coordinatorLogic}: XState logic for the coordinator: its context holds the
 * grants, and its commands acquire, release and renew locks, campaign and join groups.
 * `createActor`, `spawn` and `invoke` take it; its commands, replies, input and context are typed
 * as the README's table of its commands says.
 */
export interface CoordinatorLogic extends ProvidedCoordinator {}

/**
 * The coordinator as actor logic: spawn it in your machine with its options, start it with
 * a command, and take and give back locks by name (see the README's table of coordinator
 * commands). Its context lists every grant held through it in `grants`.
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
 * console.log((await acquired).fence, Object.values(coordinator.getSnapshot().context.grants)); // 1 [ { lock: 'vm-volume-7', fence: '1' } ]
 * const stopped = heard('statesmith.coordinator.stopped');
 * coordinator.send({ type: 'statesmith.coordinator.stop' });
 * await stopped;
 * console.log(coordinator.getSnapshot().value); // stopped
 * ```
 */
export const coordinatorLogic: CoordinatorLogic = providedCoordinator;
