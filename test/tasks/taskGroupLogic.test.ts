/**
 * `taskGroupLogic` and `serviceLogic` as actors: driven by data commands, answering every
 * one (rejections change nothing), with their tasks as children, inside a user's machine.
 */
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { assign, createActor, sendTo, setup, type AnyActorRef } from 'xstate';
import { RejectedError, ServiceBase, serviceLogic, TaskGroup, taskGroupLogic, type Task, type TaskGroupReply } from '../../src/index.ts';
import { gate, heard, settle, waitUntil } from '../support/async.ts';

const never = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));

describe('taskGroupLogic', () => {
  it('runs a named task with params, answers taskDone when it ends, and stop answers stopped', async () => {
    const group = createActor(taskGroupLogic, {
      input: { uniqueId: 'v', tasks: { scrub: async (_s, params) => `scrubbed ${(params as { id: number }).id}` } },
    }).start();
    const replies = heard(group);
    group.send({ type: 'statesmith.taskGroup.createTask', name: 'scrub-7', task: 'scrub', params: { id: 7 } });
    expect(replies, 'createTask is answered by taskDone, later').to.deep.equal([]);
    expect(group.getSnapshot().value).to.equal('running');
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.taskGroup.taskDone'), 1_000, 'taskDone');
    expect(replies.find((r) => r.type === 'statesmith.taskGroup.taskDone')).to.deep.equal({
      type: 'statesmith.taskGroup.taskDone',
      name: 'scrub-7',
      task: 'scrub',
      outcome: 'completed',
      result: 'scrubbed 7',
    });
    expect(group.getSnapshot().value).to.equal('idle');
    group.send({ type: 'statesmith.taskGroup.stop' });
    expect(replies.at(-1)).to.deep.equal({ type: 'statesmith.taskGroup.stopped', errors: [] });
    // Every reply is plain data: it survives JSON as it is.
    for (const reply of replies) expect(JSON.parse(JSON.stringify(reply))).to.deep.equal(reply);
    group.stop();
  });

  it('stop cancels the running tasks and answers once they ended, with the failures other than cancellations', async () => {
    const group = createActor(taskGroupLogic, {
      input: {
        uniqueId: 's',
        tasks: {
          wait: (signal) => never(signal),
          stubborn: (signal) =>
            new Promise((_, reject) => signal.addEventListener('abort', () => setTimeout(() => reject(new Error('disk busy')), 5), { once: true })),
        },
      },
    }).start();
    const replies = heard(group);
    group.send({ type: 'statesmith.taskGroup.createTask', name: 'a', task: 'wait' });
    group.send({ type: 'statesmith.taskGroup.createTask', name: 'b', task: 'stubborn', logException: false });
    await settle();
    group.send({ type: 'statesmith.taskGroup.stop', reason: 'shutdown' });
    expect(group.getSnapshot().value).to.equal('stopping');
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.taskGroup.stopped'), 1_000, 'stopped');
    const stopped = replies.find((r) => r.type === 'statesmith.taskGroup.stopped');
    expect(stopped?.['errors']).to.deep.equal([{ task: 'stubborn', name: 'b', message: 'disk busy', error: { name: 'Error', message: 'disk busy' } }]);
    const outcomes = replies.filter((r) => r.type === 'statesmith.taskGroup.taskDone').map((r) => [r['name'], r['outcome']]);
    expect(outcomes).to.have.deep.members([
      ['a', 'cancelled'],
      ['b', 'failed'],
    ]);
    expect(group.getSnapshot().value).to.equal('idle');
    group.stop();
  });

  it('answers every malformed or unacceptable command with statesmith.rejected and changes nothing', async () => {
    const group = createActor(taskGroupLogic, { input: { uniqueId: 'r', tasks: { wait: (signal) => never(signal) } } }).start();
    const replies = heard(group);
    group.send({ type: 'statesmith.taskGroup.createTask', name: 'w', task: 'wait' });
    const before = group.getSnapshot();
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ type: 'statesmith.taskGroup.createTask', task: 'shrink' }, 'ERR_UNKNOWN_TASK'],
      [{ type: 'statesmith.taskGroup.createTask', name: 'w', task: 'wait' }, 'ERR_DUPLICATE_TASK'],
      [{ type: 'statesmith.taskGroup.createTask', fn: 'not a function' }, 'ERR_INVALID_ARG_TYPE'],
      [{ type: 'statesmith.taskGroup.createTask', task: 'wait', fn: () => 1 }, 'ERR_INVALID_ARG_VALUE'],
      [{ type: 'statesmith.taskGroup.createTask' }, 'ERR_INVALID_ARG_VALUE'],
      [{ type: 'statesmith.taskGroup.createTask', task: 'wait', name: 7 }, 'ERR_INVALID_ARG_TYPE'],
      [{ type: 'statesmith.taskGroup.createTask', task: 'wait', retries: 3 }, 'ERR_UNKNOWN_OPTION'],
      [{ type: 'statesmith.taskGroup.createTask', task: 'wait', restart: { maxRestarts: -1 } }, 'ERR_OUT_OF_RANGE'],
      [{ type: 'statesmith.taskGroup.cancelTask', name: 'nobody' }, 'ERR_UNKNOWN_TASK'],
      [{ type: 'statesmith.taskGroup.cancelTask' }, 'ERR_INVALID_ARG_TYPE'],
      [{ type: 'statesmith.taskGroup.acknowledge', name: 'w' }, 'ERR_UNKNOWN_TASK'],
      [{ type: 'statesmith.taskGroup.stop', reason: 42 }, 'ERR_INVALID_ARG_TYPE'],
      [{ type: 'statesmith.taskGroup.cancel', reason: {} }, 'ERR_INVALID_ARG_TYPE'],
      // The group's own events cannot be forged from outside.
      [{ type: 'statesmith.taskGroup.settled' }, 'ERR_INVALID_ARG_VALUE'],
      [{ type: 'statesmith.taskGroup.materialise', task: {}, at: 'done.completed' }, 'ERR_INVALID_ARG_VALUE'],
    ];
    for (const [command, code] of bad) {
      const count = replies.length;
      group.send(command as never);
      expect(replies.length, JSON.stringify(command)).to.equal(count + 1);
      expect(replies.at(-1), JSON.stringify(command)).to.include({ type: 'statesmith.rejected', code, state: 'running' });
      expect((replies.at(-1)?.['command'] as { type: string }).type).to.equal(command['type']);
    }
    expect(group.getSnapshot().value).to.deep.equal(before.value);
    expect(group.getSnapshot().status).to.equal('active');
    expect(group.getSnapshot().context.table?.isRunning('w')).to.equal(true);
    group.send({ type: 'statesmith.taskGroup.cancelTask', name: 'w', reason: 'enough' });
    expect(replies.at(-1)).to.deep.equal({ type: 'statesmith.taskGroup.cancelling', names: ['w'] });
    await waitUntil(() => group.getSnapshot().value === 'idle', 1_000, 'idle');
    group.stop();
  });

  it('makes each task a child of its group once its actor is read, in the state it reached', async () => {
    const group = new TaskGroup({ uniqueId: 'tree' });
    const g = gate<string>();
    const task = group.createTask(() => g.promise, { name: 'job' });
    await settle();
    const actor = task.actor;
    expect(group.actor.getSnapshot().children['TaskGroup:tree:job']).to.equal(actor);
    expect((actor as unknown as { _parent?: AnyActorRef })._parent).to.equal(group.actor);
    expect(actor.getSnapshot().value).to.equal('running');
    g.open('ok');
    await task.wait();
    expect(actor.getSnapshot().value).to.deep.equal({ done: 'completed' });
    // Acknowledged tasks leave the tree.
    await group.stop();
    expect(group.actor.getSnapshot().children['TaskGroup:tree:job']).to.equal(undefined);
  });

  it('takes a task created from inside one of its own replies, and refuses a queued duplicate through the task itself', async () => {
    const group = new TaskGroup({ uniqueId: 'nested' });
    const g = gate<void>();
    const made: string[] = [];
    let duplicate: Task<unknown> | undefined;
    group.actor.on('statesmith.taskGroup.taskDone', (reply) => {
      if (reply.name !== 'first') return;
      // The group is busy with this step: the command waits, but the task comes back at once.
      made.push(group.createTask(() => g.promise, { name: 'again' }).name);
      duplicate = group.createTask(async () => 'never runs', { name: 'again', logException: false });
    });
    group.createTask(async () => 1, { name: 'first' });
    await waitUntil(() => duplicate !== undefined && duplicate.done, 1_000, 'the duplicate refused');
    expect(made).to.deep.equal(['TaskGroup:nested:again']);
    expect(group.isRunning).to.equal(true);
    expect(duplicate?.cancelled).to.equal(true);
    expect(() => duplicate?.result())
      .to.throw(RejectedError)
      .with.property('code', 'ERR_DUPLICATE_TASK');
    g.open();
    await group.stop();
  });

  it('stays the truth when the facade and direct sends interleave', async () => {
    const group = new TaskGroup({ uniqueId: 'mixed' });
    const a = group.createTask((signal) => never(signal), { name: 'a' });
    group.actor.send({ type: 'statesmith.taskGroup.createTask', name: 'b', fn: (signal: AbortSignal) => never(signal) });
    expect([...group.tasks].map((t) => t.name)).to.deep.equal(['TaskGroup:mixed:a', 'TaskGroup:mixed:b']);
    expect(() => group.createTask(async () => 1, { name: 'b' }))
      .to.throw(RejectedError)
      .with.property('code', 'ERR_DUPLICATE_TASK');
    group.actor.send({ type: 'statesmith.taskGroup.cancel', reason: 'from outside' });
    await a.wait().catch(() => undefined);
    await group.whenIdle();
    expect(group.isRunning).to.equal(false);
    expect(a.cancelled).to.equal(true);
    await group.stop();
    expect(group.tasks.size).to.equal(0);
  });
});

describe('serviceLogic', () => {
  it('is started and stopped by commands, with its group as a child that takes task commands', async () => {
    let beats = 0;
    const service = createActor(serviceLogic, {
      input: {
        name: 'Heartbeat',
        uniqueId: 'hb',
        tasks: { watchdog: (signal: AbortSignal) => never(signal) },
        main: async (signal: AbortSignal) => {
          for (;;) {
            beats++;
            await sleep(2, undefined, { signal });
          }
        },
      },
    }).start();
    const replies = heard(service);
    const group = service.getSnapshot().children.taskGroup as AnyActorRef;
    expect(group.getSnapshot().context.name).to.equal('TaskGroup:hb');
    service.send({ type: 'statesmith.service.start' });
    expect(replies.at(-1)).to.deep.equal({ type: 'statesmith.service.started', starts: 1 });
    service.send({ type: 'statesmith.service.start' });
    expect(replies.at(-1)).to.include({ type: 'statesmith.rejected', code: 'ERR_INVALID_STATE', state: 'scheduled' });
    group.send({ type: 'statesmith.taskGroup.createTask', name: 'dog', task: 'watchdog' });
    await waitUntil(() => beats > 2, 1_000, 'beats');
    expect(service.getSnapshot().value).to.equal('running');
    service.send({ type: 'statesmith.service.stop' });
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.service.stopped'), 1_000, 'stopped');
    expect(replies.find((r) => r.type === 'statesmith.service.stopped')).to.deep.equal({ type: 'statesmith.service.stopped', errors: [] });
    expect(service.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
    expect(group.getSnapshot().value).to.equal('idle');
    service.stop();
  });

  it('ServiceBase is a thin client: its group and main are children of its actor, and a direct cancel is seen', async () => {
    class Poller extends ServiceBase {
      protected async main(signal: AbortSignal): Promise<void> {
        this.createTask((sub) => never(sub), { name: 'poll' });
        await never(signal);
      }
    }
    const service = new Poller({ uniqueId: 'p' }).start();
    await settle();
    expect(service.actor.getSnapshot().children['taskGroup']).to.equal(service.taskGroup.actor);
    const main = (service.actor.getSnapshot().context.main as { actor: AnyActorRef }).actor;
    expect(service.actor.getSnapshot().children['main']).to.equal(main);
    expect(service.isRunning).to.equal(true);
    service.actor.send({ type: 'statesmith.service.cancel', reason: 'from outside' });
    await waitUntil(() => !service.isRunning && !service.taskGroup.isRunning, 1_000, 'cancelled');
    expect(service.actor.getSnapshot().value).to.deep.equal({ done: 'cancelled' });
    await service.stop();
  });

  it('lives inside a user machine: spawned as a child, in its system, its done heard by the parent', async () => {
    const app = createActor(
      setup({
        types: { context: {} as { heard: string[] } },
        actors: { service: serviceLogic },
      }).createMachine({
        context: { heard: [] },
        invoke: { id: 'svc', src: 'service', input: { name: 'Once', uniqueId: 'once', main: async () => undefined } },
        entry: sendTo('svc', ({ self }) => ({ type: 'statesmith.service.start' as const, replyTo: self as AnyActorRef })),
        on: { '*': { actions: assign({ heard: ({ context, event }) => [...context.heard, event.type] }) } },
      }),
    ).start();
    const child = app.getSnapshot().children['svc'] as AnyActorRef;
    expect(child.system).to.equal(app.system);
    await waitUntil(() => app.getSnapshot().context.heard.includes('statesmith.service.done'), 1_000, 'done');
    expect(app.getSnapshot().context.heard).to.include('statesmith.service.started');
    expect(child.getSnapshot().value).to.deep.equal({ done: 'completed' });
    app.stop();
  });
});

// The reply type is exported for users' machines.
const _typed: TaskGroupReply['type'] = 'statesmith.taskGroup.taskDone';
void _typed;

describe('task signals', () => {
  it('makes no signal for a body that takes none, yet task.signal tells the cancellation; every other body gets one', async () => {
    const group = new TaskGroup({ uniqueId: 'signals' });
    const g = gate<void>();
    const quiet = group.createTask(() => g.promise, { name: 'quiet' });
    let seen: unknown;
    const classic = group.createTask(
      function (this: unknown) {
        // A classic function can read its arguments without naming them.
        // eslint-disable-next-line prefer-rest-params
        seen = arguments[0];
        return g.promise;
      },
      { name: 'classic' },
    );
    await settle();
    expect(seen).to.be.instanceOf(AbortSignal);
    quiet.cancel('enough');
    expect(quiet.signal.aborted).to.equal(true);
    expect((quiet.signal.reason as Error).message).to.equal('enough');
    const late = group.createTask(async () => 1, { name: 'late' });
    const signal = late.signal;
    late.cancel('before it ran');
    expect(signal.aborted).to.equal(true);
    g.open();
    classic.cancel();
    await group.stop();
    // quiet could not see its signal and returned: a value returned after a cancel counts as a success.
    expect([quiet.cancelled, late.cancelled]).to.deep.equal([false, true]);
  });
});
