/**
 * `serviceLogic`: the service machine with its task group child and its `main` task, as
 * actor logic that `createActor`, `spawn` and `invoke` accept.
 *
 * @module
 */
import { guardedLogic } from '../runtime/guardedLogic.ts';
import { assign, enqueueActions, fromCallback, type EventObject } from 'xstate';
import { errorData } from '../../machines/protocol.ts';
import { kFromMain, serviceMachine, type ServiceContext, type ServiceInternalEvent, type ServiceTools } from '../../machines/service.machine.ts';
import { taskMachine } from '../../machines/task.machine.ts';
import { startingAt } from '../runtime/LazyActor.ts';
import { optionalClock, requireReadableInput } from '../runtime/validate.ts';
import { TaskRecord } from './Task.ts';
import { TaskGroup } from './TaskGroup.ts';
import { kErrors, LIFETIME, taskGroupLogic, uniqueHexId } from './taskGroupLogic.ts';
import { SUPERVISION_KEYS } from './supervision.ts';
import { persistWith, persistenceOf, saveBarrierAbove, type PersistenceAdapter } from '../runtime/persistence.ts';
import { servicePersistence } from './servicePersistence.ts';

const mainOf = (context: ServiceContext): TaskRecord<void> | null => context.main as TaskRecord<void> | null;

/** The current `main` of each service actor (or of the durable actor a service runs in), for its lifetime child. */
const mains = new WeakMap<object, TaskRecord<void>>();

/** Lives as long as the service's actor: its cleanup (the actor stopped, or failed) cancels a `main` still running. */
const lifetime = fromCallback<EventObject, unknown>(
  ({ input }) =>
    () =>
      void mains.get(input as object)?.abort('its service actor was stopped'),
);

const providedService = guardedLogic(
  serviceMachine.provide({
    actors: {
      taskGroup: taskGroupLogic,
      main: startingAt(taskMachine),
      lifetime,
    },
    actions: {
      spawnGroup: assign(({ context, spawn, self }) => {
        const uniqueId = context.uniqueId || uniqueHexId();
        const clock = optionalClock('input.clock', context.options.clock);
        const supervision: Record<string, unknown> = {};
        for (const key of SUPERVISION_KEYS) if (context.options[key] !== undefined) supervision[key] = context.options[key];
        spawn('taskGroup', {
          id: 'taskGroup',
          input: { uniqueId, clock, ...supervision, ...(context.options.tasks === undefined ? {} : { tasks: context.options.tasks }) } as never,
        });
        // main does not outlive the service's actor: stopped (or failed), the actor stops this child, whose cleanup cancels it.
        spawn('lifetime', { id: LIFETIME, input: self });
        return { uniqueId, name: `${context.options.name ?? 'Service'}:${uniqueId}`, options: Object.assign({}, context.options, { clock }) };
      }),
      createMain: enqueueActions(({ enqueue, context, self }) => {
        const previous = mainOf(context);
        if (previous?.lazy.materialised) enqueue.stopChild('main');
        const send = (event: ServiceInternalEvent): void => {
          if (self.getSnapshot().status === 'active') self.send(event);
        };
        const main = context.options.main;
        const groupRef = self.getSnapshot().children.taskGroup;
        const clock = optionalClock('input.clock', context.options.clock);
        let group: TaskGroup | undefined;
        const tools: ServiceTools = { createTask: (fn, options) => (group ??= TaskGroup.attach(groupRef as never, clock)).createTask(fn, options as never) };
        const record: TaskRecord<void> = new TaskRecord<void>((signal) => main(signal, tools), context.name, {
          logException: true,
          restart: undefined,
          clock,
          random: Math.random,
          onStart: () => send({ type: 'statesmith.service.running', [kFromMain]: true, main: record }),
          onDone: (task) => {
            const outcome = task.cancelled ? 'cancelled' : task.failed ? 'failed' : 'completed';
            send({
              type: 'statesmith.service.settled',
              [kFromMain]: true,
              main: record,
              outcome,
              ...(outcome === 'completed' ? {} : { error: errorData(task.failure) }),
            });
            task.notifyDone();
          },
          spawn: (_task, at) => send({ type: 'statesmith.service.materialise', [kFromMain]: true, main: record, at }),
          // Under durable(): main starts once the store holds the service started.
          barrier: () => saveBarrierAbove(self),
        });
        mains.set(self, record);
        enqueue.assign({ main: record });
      }),
      failMain: ({ context, event }) => {
        const [error] = (event as unknown as { [kErrors]: readonly unknown[] })[kErrors];
        mainOf(context)?.failWith(error);
      },
      abortMain: ({ context, event }) => {
        mainOf(context)?.abort((event as { reason?: string }).reason);
      },
      materialise: assign(({ context, spawn }) => {
        const main = mainOf(context);
        if (main === null || main.lazy.materialised) return {};
        const child = spawn('main', { id: 'main', input: { at: main.lazy.key, context: { name: main.name } } as never });
        main.lazy.adopt(child as never);
        return {};
      }),
    },
  }),
  'service',
  { checkInput: (input) => requireReadableInput(input, ['tasks']) },
);

/** The machine type XState infers for serviceLogic (long: every action and child spelled out). */
type ProvidedService = typeof providedService;

/**
 * The type of {@link serviceLogic}: XState logic for the background service: its commands start
 * and stop its main and its group of subtasks. `createActor`, `spawn` and `invoke` take it; its
 * commands, replies, input and context are typed as the README's table of its commands says.
 */
export interface ServiceLogic extends ProvidedService {}

/**
 * The service as actor logic: spawn it in your machine with its `main`, start and stop it
 * with commands, and hear `done` when `main` ends (see the README's table of service
 * commands). Its subtasks run in its child task group (`children.taskGroup`), which takes
 * the task group commands.
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { serviceLogic } from 'statesmith';
 * import { setTimeout as sleep } from 'node:timers/promises';
 * let beats = 0;
 * const service = createActor(serviceLogic, {
 *   input: { name: 'Heartbeat', uniqueId: 'hb', main: async (signal) => { for (;;) { beats++; await sleep(5, undefined, { signal }); } } },
 * }).start();
 * service.send({ type: 'statesmith.service.start' });
 * await sleep(20);
 * const stopped = new Promise<{ errors: unknown[] }>((resolve) => service.on('statesmith.service.stopped', resolve));
 * service.send({ type: 'statesmith.service.stop' });
 * console.log((await stopped).errors, service.getSnapshot().value, beats > 1); // [] { done: 'cancelled' } true
 * ```
 */
export const serviceLogic: ServiceLogic = providedService;

// How durable() saves and restores a service: its state and its group child by name, never main itself.
persistWith(serviceLogic, servicePersistence(serviceLogic as never, persistenceOf(taskGroupLogic) as PersistenceAdapter));
