/**
 * Work does not outlive the actor that owns it: stopping a task group's actor (or its parent
 * leaving the state that invoked it) cancels every task still running or waiting for a
 * restart, and stopping a service's actor cancels its `main` and its group's tasks.
 */
import { expect } from 'chai';
import { createActor, setup } from 'xstate';
import { serviceLogic, taskGroupLogic, type TaskGroupTask } from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';

describe('a stopped actor cancels its work', () => {
  const until = (signal: AbortSignal, seen: string[], what: string): Promise<void> =>
    new Promise((resolve) =>
      signal.addEventListener(
        'abort',
        () => {
          seen.push(`${what}: ${String((signal.reason as Error).message)}`);
          resolve();
        },
        { once: true },
      ),
    );

  it('a task group actor stopped with tasks running, and one waiting for a restart, cancels them all', async () => {
    const seen: string[] = [];
    let failures = 0;
    const tasks: Record<string, TaskGroupTask> = {
      hold: (signal) => until(signal, seen, 'hold'),
      flaky: async () => {
        failures++;
        throw new Error('flaky');
      },
    };
    const group = createActor(taskGroupLogic, { input: { uniqueId: 'lifetime', tasks } }).start();
    group.send({ type: 'statesmith.taskGroup.createTask', name: 'hold', task: 'hold' });
    group.send({
      type: 'statesmith.taskGroup.createTask',
      name: 'flaky',
      task: 'flaky',
      logException: false,
      restart: { backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } },
    });
    await waitUntil(() => failures === 1, 5_000, 'the flaky task to fail and wait for its restart');
    group.stop();
    await waitUntil(() => seen.length === 1, 5_000, 'the running task to be cancelled');
    expect(seen).to.deep.equal(['hold: its task group actor was stopped']);
    // The restart waiting for its back-off never comes: its timer was cleared with it.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(failures).to.equal(1);
  });

  it('a machine leaving the state that invoked a service cancels its main and its subtasks', async () => {
    const seen: string[] = [];
    const main = async (signal: AbortSignal, tools: { createTask(fn: (signal: AbortSignal) => unknown): unknown }): Promise<void> => {
      tools.createTask((s) => until(s, seen, 'subtask'));
      await until(signal, seen, 'main');
    };
    const machine = setup({ actors: { service: serviceLogic } }).createMachine({
      initial: 'serving',
      states: {
        serving: {
          invoke: { id: 'svc', src: 'service', input: { name: 'Pump', uniqueId: 'lifetime-svc', main } },
          entry: ({ self }) =>
            queueMicrotask(() => (self.getSnapshot().children as Record<string, { send(e: object): void }>).svc?.send({ type: 'statesmith.service.start' })),
          on: { leave: 'gone' },
        },
        gone: {},
      },
    });
    const actor = createActor(machine).start();
    await new Promise((resolve) => setTimeout(resolve, 20));
    actor.send({ type: 'leave' });
    await waitUntil(() => seen.length === 2, 5_000, 'main and its subtask to be cancelled');
    expect([...seen].sort()).to.deep.equal(['main: its service actor was stopped', 'subtask: its task group actor was stopped']);
    actor.stop();
  });
});

describe('task group and service inputs whose getters throw', () => {
  it('are refused with a typed error (the actor starts in error with it), not the raw one', () => {
    const throwing = (): never => {
      throw new Error('getter boom');
    };
    const main = async (): Promise<void> => undefined;
    for (const [logic, input] of [
      [taskGroupLogic, Object.defineProperty({}, 'tasks', { get: throwing, enumerable: true })],
      [taskGroupLogic, { tasks: Object.defineProperty({}, 'scrub', { get: throwing, enumerable: true }) }],
      [serviceLogic, Object.defineProperty({ main }, 'uniqueId', { get: throwing, enumerable: true })],
      [serviceLogic, { main, tasks: Object.defineProperty({}, 'scrub', { get: throwing, enumerable: true }) }],
    ] as const) {
      const actor = createActor(logic as typeof taskGroupLogic, { input: input as never });
      const snapshot = actor.getSnapshot() as { status: string; error?: { code?: string; cause?: { message?: string } } };
      expect(snapshot.status).to.equal('error');
      expect(snapshot.error?.code).to.equal('ERR_INVALID_ARG_TYPE');
      expect(snapshot.error?.cause?.message).to.equal('getter boom');
    }
  });
});
