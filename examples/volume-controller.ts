/**
 * A volume controller written as a user's own XState machine. It spawns a statesmith
 * executor (one delete at a time) and a task group (scrubs and a poller), drives them
 * only by data commands, and reacts to their replies: `statesmith.executor.done`,
 * `statesmith.executor.refused`, `statesmith.taskGroup.taskDone` and
 * `statesmith.taskGroup.stopped`.
 *
 *   node --conditions=statesmith-source --import tsx examples/volume-controller.ts
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { assign, createActor, enqueueActions, setup, type AnyActorRef } from 'xstate';
import { executorLogic, taskGroupLogic, type ExecutorReply, type TaskGroupReply } from 'statesmith';

const log = (who: string, what: string): void => console.log(`${who.padEnd(10)} ${what}`);

/** The named work: only names and params cross the command boundary. */
const actions = {
  delete: async (signal: AbortSignal, params: unknown): Promise<string> => {
    const { volume } = params as { volume: string };
    await sleep(20, undefined, { signal });
    return `${volume} deleted`;
  },
};
const tasks = {
  scrub: async (signal: AbortSignal, params: unknown): Promise<number> => {
    const { volume, blocks } = params as { volume: string; blocks: number };
    await sleep(blocks, undefined, { signal });
    if (volume === 'vol-3') throw new Error('checksum mismatch in block 7');
    return blocks;
  },
  poll: async (signal: AbortSignal): Promise<void> => {
    for (;;) await sleep(5, undefined, { signal });
  },
};

type ControllerEvent = ExecutorReply | TaskGroupReply;

interface ControllerContext {
  /** Volumes waiting for the executor's slot. */
  readonly deletes: readonly string[];
  readonly scrubsLeft: number;
  readonly deleting: boolean;
}

const controller = setup({
  types: { context: {} as ControllerContext, events: {} as ControllerEvent },
  actors: { executor: executorLogic, group: taskGroupLogic },
}).createMachine({
  id: 'volumeController',
  context: { deletes: ['vol-2', 'vol-4'], scrubsLeft: 3, deleting: false },
  invoke: [
    { id: 'executor', src: 'executor', input: { name: 'deletes', actions } },
    { id: 'group', src: 'group', input: { uniqueId: 'volumes', tasks } },
  ],
  initial: 'serving',
  states: {
    serving: {
      entry: enqueueActions(({ enqueue, context, self }) => {
        const replyTo = self as AnyActorRef;
        enqueue.sendTo('group', { type: 'statesmith.taskGroup.createTask', name: 'poller', task: 'poll', replyTo });
        for (const [volume, blocks] of [
          ['vol-1', 10],
          ['vol-2', 15],
          ['vol-3', 5],
        ] as const) {
          enqueue.sendTo('group', {
            type: 'statesmith.taskGroup.createTask',
            name: `scrub-${volume}`,
            task: 'scrub',
            params: { volume, blocks },
            logException: false,
            replyTo,
          });
        }
        // Two deletes at once: the executor takes the first and refuses the second.
        for (const volume of context.deletes) enqueue.sendTo('executor', { type: 'statesmith.executor.run', action: 'delete', params: { volume }, replyTo });
      }),
      always: { guard: ({ context }) => context.scrubsLeft === 0 && context.deletes.length === 0 && !context.deleting, target: 'stopping' },
      on: {
        'statesmith.executor.started': {
          actions: [({ event }) => log('executor', `started ${event.action}`), assign({ deleting: true })],
        },
        'statesmith.executor.refused': {
          actions: ({ event }) => log('executor', `refused another ${event.action ?? 'task'}: the slot holds ${event.occupant}`),
        },
        'statesmith.executor.done': {
          actions: enqueueActions(({ enqueue, context, event, self }) => {
            log('executor', `${event.action} ${event.outcome}: ${String(event.result)}`);
            const done = String(event.result).split(' ')[0];
            const rest = context.deletes.filter((volume) => volume !== done);
            enqueue.assign({ deletes: rest, deleting: false });
            // The slot is free again: send the delete that was refused.
            if (rest[0] !== undefined)
              enqueue.sendTo('executor', { type: 'statesmith.executor.run', action: 'delete', params: { volume: rest[0] }, replyTo: self as AnyActorRef });
          }),
        },
        'statesmith.taskGroup.taskDone': {
          actions: enqueueActions(({ enqueue, context, event }) => {
            const detail = event.outcome === 'failed' ? event.error?.message : `${String(event.result)} blocks`;
            log('group', `${event.name} ${event.outcome}: ${detail}`);
            if (event.task === 'scrub') enqueue.assign({ scrubsLeft: context.scrubsLeft - 1 });
          }),
        },
      },
    },
    stopping: {
      entry: enqueueActions(({ enqueue, self }) => {
        log('controller', 'all scrubs and deletes done; stopping the group');
        enqueue.sendTo('group', { type: 'statesmith.taskGroup.stop', reason: 'controller stopping', replyTo: self as AnyActorRef });
      }),
      on: {
        'statesmith.taskGroup.taskDone': { actions: ({ event }) => log('group', `${event.name} ${event.outcome}`) },
        'statesmith.taskGroup.stopped': {
          target: 'stopped',
          actions: ({ event }) =>
            log('group', `stopped; failures nobody acknowledged: ${event.errors.map((e) => `${e.name}: ${e.message}`).join('; ') || 'none'}`),
        },
      },
    },
    stopped: { type: 'final' },
  },
});

const app = createActor(controller);
app.subscribe({ complete: () => log('controller', 'stopped') });
app.start();
