/**
 * ask(): resolves on the command's final reply (finalReplies), interim replies to onReply,
 * a rejection as a RejectedError, silence as ERR_NO_REPLY, and a stopped actor at once.
 * And every statesmith actor answers every event that is not XState's own.
 */
import { expect } from 'chai';
import { createActor, setup } from 'xstate';
import {
  ActorStoppedError,
  ask,
  criticalTaskLogic,
  executorLogic,
  finalReplies,
  locksmithLogic,
  NoReplyError,
  RejectedError,
  serviceLogic,
  subprocessLogic,
  taskGroupLogic,
  verdictOf,
} from '../../src/index.ts';
import { rejection } from '../support/async.ts';

describe('ask', () => {
  it('resolves a run with its done, not the scheduled before it; interim replies go to onReply', async () => {
    const executor = createActor(executorLogic, { input: { actions: { restart: async () => 'restarted' } } }).start();
    const interim: string[] = [];
    const done = await ask(executor, { type: 'statesmith.executor.run', action: 'restart' }, { timeoutMs: 5_000, onReply: (r) => interim.push(r.type) });
    expect(done).to.deep.include({ type: 'statesmith.executor.done', outcome: 'completed', result: 'restarted' });
    expect(interim).to.deep.equal(['statesmith.executor.scheduled', 'statesmith.executor.started']);
    expect(verdictOf(done)).to.equal('succeeded');
    executor.stop();
  });

  it('a done whose outcome is failed is a reply, not a rejection', async () => {
    const executor = createActor(executorLogic, { input: { actions: { boom: async () => Promise.reject(new Error('boom')) } } }).start();
    const done = await ask(executor, { type: 'statesmith.executor.run', action: 'boom' });
    expect(done).to.deep.include({ outcome: 'failed' });
    expect(verdictOf(done)).to.equal('failed');
    executor.stop();
  });

  it('rejects with a RejectedError carrying the reply and its code', async () => {
    const executor = createActor(executorLogic, { input: {} }).start();
    const error = (await rejection(ask(executor, { type: 'statesmith.executor.run', action: 'shrink' }))) as RejectedError;
    expect(error).to.be.instanceOf(RejectedError);
    expect(error.code).to.equal('ERR_UNKNOWN_ACTION');
    expect(error.rejection.type).to.equal('statesmith.rejected');
    executor.stop();
  });

  it('rejects with ERR_NO_REPLY when no final reply comes in time, keeping the interim ones', async () => {
    const silent = createActor(setup({}).createMachine({ on: { poke: {} } })).start();
    const error = (await rejection(ask(silent, { type: 'poke' }, { timeoutMs: 20 }))) as NoReplyError;
    expect(error).to.be.instanceOf(NoReplyError);
    expect(error.code).to.equal('ERR_NO_REPLY');
    silent.stop();
  });

  it('rejects at once when the actor stops before its final reply, naming the actor and its state', async () => {
    const group = createActor(taskGroupLogic, {
      input: { uniqueId: 'asked', tasks: { nap: (signal: AbortSignal) => new Promise((r) => signal.addEventListener('abort', r)) } },
    }).start();
    const pending = ask(group, { type: 'statesmith.taskGroup.createTask', task: 'nap' });
    group.stop();
    const error = (await rejection(pending)) as ActorStoppedError;
    expect(error).to.be.instanceOf(ActorStoppedError);
    expect(error.code).to.equal('ERR_ACTOR_STOPPED');
    expect(error.status).to.equal('stopped');
    expect(await rejection(ask(group, { type: 'statesmith.taskGroup.wait' }))).to.be.instanceOf(ActorStoppedError);
  });

  it("rejects with the signal's reason on abort, and refuses bad options with typed errors", async () => {
    const group = createActor(taskGroupLogic, {
      input: { uniqueId: 'abort', tasks: { nap: (signal: AbortSignal) => new Promise((r) => signal.addEventListener('abort', r)) } },
    }).start();
    const controller = new AbortController();
    const pending = ask(group, { type: 'statesmith.taskGroup.createTask', task: 'nap' }, { signal: controller.signal });
    const reason = new Error('gave up');
    controller.abort(reason);
    expect(await rejection(pending)).to.equal(reason);
    expect(await rejection(ask(group, { type: 'x' }, { timeout: 5 } as never))).to.have.property('code', 'ERR_UNKNOWN_OPTION');
    expect(await rejection(ask(group, { type: 'x' }, { timeoutMs: -1 }))).to.have.property('code', 'ERR_OUT_OF_RANGE');
    expect(await rejection(ask(null as never, { type: 'x' }))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    group.stop();
  });

  it('refuses a command whose field getter throws with a typed error naming why, and never sends it', async () => {
    const executor = createActor(executorLogic, { input: { actions: { quick: () => 'q' } } }).start();
    const seen: string[] = [];
    executor.on('*', (reply) => seen.push(reply.type));
    const thrown = new Error('hostile');
    const hostile = {
      type: 'statesmith.executor.run',
      get action(): string {
        throw thrown;
      },
    };
    const error = (await rejection(ask(executor, hostile as never, { timeoutMs: 1_000 }))) as Error & { code?: string };
    expect(error.code).to.equal('ERR_INVALID_ARG_VALUE');
    expect(error.message).to.match(/a command whose fields can be read \(reading them threw: hostile\)/);
    expect(error.cause).to.equal(thrown);
    expect(seen, 'nothing reached the actor').to.deep.equal([]);
    expect(executor.getSnapshot().status).to.equal('active');
    executor.stop();
  });

  it('lists rejected among the final replies of every command', () => {
    for (const [command, replies] of Object.entries(finalReplies)) expect(replies, command).to.include('statesmith.rejected');
    expect(finalReplies['statesmith.executor.run']).to.include('statesmith.executor.done');
  });
});

describe('no command goes unanswered', () => {
  const actors = {
    executor: () => createActor(executorLogic, { input: {} }),
    critical: () => createActor(criticalTaskLogic, { input: {} } as never),
    subprocess: () => createActor(subprocessLogic, { input: {} } as never),
    taskGroup: () => createActor(taskGroupLogic, { input: {} }),
    service: () =>
      createActor(serviceLogic, { input: { main: async (signal: AbortSignal) => new Promise((r) => signal.addEventListener('abort', r)) } } as never),
    locksmith: () => createActor(locksmithLogic, { input: {} } as never),
  };
  for (const [facility, make] of Object.entries(actors)) {
    it(`${facility}: a bare word, a misspelled facility and another facility's command are rejected with ERR_UNKNOWN_COMMAND naming its prefix`, async () => {
      const actor = make().start() as unknown as {
        send(event: { type: string }): void;
        stop(): void;
        getSnapshot(): { status: string };
        on(type: string, fn: (event: unknown) => void): unknown;
      };
      for (const type of ['run', 'statesmith.exectuor.run', facility === 'taskGroup' ? 'statesmith.executor.run' : 'statesmith.taskGroup.wait']) {
        const error = (await rejection(ask(actor as never, { type }, { timeoutMs: 1_000 }))) as RejectedError;
        expect(error, type).to.be.instanceOf(RejectedError);
        expect(error.code, type).to.equal('ERR_UNKNOWN_COMMAND');
        expect(error.rejection.reason, type).to.include(`statesmith.${facility}.`);
      }
      // XState's own events and replies are heard, never answered.
      const heard: unknown[] = [];
      actor.on('*', (event) => heard.push(event));
      actor.send({ type: 'statesmith.rejected' });
      actor.send({ type: facility === 'subprocess' ? 'statesmith.executor.done' : 'statesmith.subprocess.exited' });
      actor.send({ type: 'xstate.after.1000.x' });
      expect(heard).to.deep.equal([]);
      expect(actor.getSnapshot().status).to.equal('active');
      actor.stop();
    });
  }
});

describe('the canceller of a run', () => {
  it('learns how the run really ended: a task that fails after the cancel reached it is failed, not cancelled', async () => {
    const executor = createActor(executorLogic, {
      input: {
        actions: {
          stubborn: async (signal: AbortSignal) => {
            await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
            throw new Error('cleanup failed');
          },
        },
      },
    }).start();
    const done = ask(executor, { type: 'statesmith.executor.run', action: 'stubborn' });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const cancelled = await ask(executor, { type: 'statesmith.executor.cancel' }, { timeoutMs: 5_000 });
    expect(cancelled).to.deep.include({ type: 'statesmith.executor.cancelled', action: 'stubborn', outcome: 'failed' });
    expect(await done).to.deep.include({ outcome: 'failed' });
    expect(await ask(executor, { type: 'statesmith.executor.cancel' })).to.deep.include({ action: null, outcome: null });
    executor.stop();
  });
});

describe("the README's table of final replies", () => {
  it('lists exactly finalReplies, command by command', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const table = new Map<string, string[]>();
    for (const match of text.matchAll(/^\| `(statesmith\.(\w+)\.\w+)` \| ((?:`\w+`(?:, )?)+) \|$/gm)) {
      table.set(
        match[1] as string,
        (match[3] as string).split(', ').map((reply) => `statesmith.${match[2]}.${reply.slice(1, -1)}`),
      );
    }
    const expected = Object.fromEntries(
      Object.entries(finalReplies).map(([command, replies]) => [command, replies.filter((r) => r !== 'statesmith.rejected')]),
    );
    expect(Object.fromEntries(table)).to.deep.equal(expected);
  });
});
