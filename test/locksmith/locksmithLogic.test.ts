/**
 * `locksmithLogic` as an actor: the operations in flight are its truth, a force is its
 * child while it runs once read (or captured), and commands name locks and tasks through
 * registries.
 */
import { expect } from 'chai';
import { assign, createActor, sendTo, setup, type AnyActorRef } from 'xstate';
import { ForceResult, Locksmith, locksmithLogic, Mutex, RejectedError, runAsOwner, serveLockForceRequests } from '../../src/index.ts';
import { gate, waitUntil } from '../support/async.ts';

describe('locksmithLogic', () => {
  it('shows a force in flight as its child, in the negotiation state it reached, and lets it go once answered', async () => {
    const mutex = new Mutex({ name: 'volume-7' });
    const owner = 'snapshot job';
    await runAsOwner(owner, () => mutex.acquire());
    const answer = gate<'release'>();
    const stop = serveLockForceRequests(owner, () => answer.promise);
    const smith = new Locksmith({ name: 'watchdog' });
    await smith.recognize(mutex);
    const forcing = smith.force(mutex, { answerTimeoutMs: 5_000 });
    await waitUntil(() => smith.forces[0]?.state === 'awaitingAnswer', 1_000, 'asked');
    expect(smith.actor.getSnapshot().value).to.equal('forcing');
    const child = smith.forces[0]?.actor;
    expect(smith.actor.getSnapshot().children['force-2']).to.equal(child);
    expect(child?.getSnapshot().value).to.equal('awaitingAnswer');
    answer.open('release');
    expect(await forcing).to.equal(ForceResult.SUCCESS);
    expect(smith.actor.getSnapshot().value).to.equal('idle');
    expect(smith.forces).to.deep.equal([]);
    // Only the one operation runner stays: no child per operation, none per force once answered.
    expect(Object.keys(smith.actor.getSnapshot().children)).to.deep.equal(['ops']);
    stop();
  });

  it('hosts a named task under a named lock by command, and answers hosted', async () => {
    const disks = new Mutex({ name: 'disks' });
    await runAsOwner('wedged resize', () => disks.acquire());
    const smith = createActor(locksmithLogic, {
      input: { name: 'watchdog', locks: { disks }, tasks: { cleanup: async (_signal, params) => `cleaned ${(params as { volume: string }).volume}` } },
    }).start();
    const replies: Array<Record<string, unknown>> = [];
    smith.on('*', (reply) => replies.push(reply as never));
    smith.send({ type: 'statesmith.locksmith.recognize', lock: 'disks' });
    await waitUntil(() => replies.length === 1, 1_000, 'recognized');
    smith.send({ type: 'statesmith.locksmith.host', lock: 'disks', task: 'cleanup', params: { volume: 'vol-7' }, forceTimeoutMs: 200 });
    await waitUntil(() => replies.some((r) => r['type'] === 'statesmith.locksmith.hosted'), 2_000, 'hosted');
    expect(replies.find((r) => r['type'] === 'statesmith.locksmith.hosted')).to.deep.include({ lock: 'disks', outcome: 'completed', result: 'cleaned vol-7' });
    expect(disks.locked).to.equal(false);
    for (const reply of replies) expect(JSON.parse(JSON.stringify(reply))).to.deep.equal(reply);
    smith.stop();
  });

  it('runs a hosting’s force inside the host operation: shown as that operation’s force while it negotiates, answered by hosted alone', async () => {
    const disks = new Mutex({ name: 'disks' });
    const owner = 'wedged resize';
    await runAsOwner(owner, () => disks.acquire());
    const answer = gate<'release'>();
    const stop = serveLockForceRequests(owner, () => answer.promise);
    const smith = new Locksmith({ name: 'watchdog' });
    await smith.recognize(disks);
    const replies: string[] = [];
    smith.actor.on('*', (reply) => replies.push(reply.type));
    const hosting = smith.host(async () => 'cleaned', disks, { forceTimeoutMs: 5_000, answerTimeoutMs: 5_000 });
    await waitUntil(() => smith.forces[0]?.state === 'awaitingAnswer', 1_000, 'asked');
    // One operation (the host, id 2 after the recognize) whose force is its own: no second command went through the mailbox.
    expect(smith.forces.map((run) => run.actor.id)).to.deep.equal([smith.actor.getSnapshot().children['force-2']?.id]);
    expect(smith.actor.getSnapshot().value).to.equal('forcing');
    answer.open('release');
    expect(await hosting).to.equal('cleaned');
    expect(replies).to.deep.equal(['statesmith.locksmith.hosted']);
    expect(smith.actor.getSnapshot().value).to.equal('idle');
    expect(Object.keys(smith.actor.getSnapshot().children)).to.deep.equal(['ops']);
    expect(disks.locked).to.equal(false);
    stop();
  });

  it('rejects a bad host command, and the facade turns a rejection into a RejectedError', async () => {
    const smith = createActor(locksmithLogic, { input: { locks: { disks: new Mutex() } } }).start();
    const codes: string[] = [];
    smith.on('statesmith.rejected', (reply) => codes.push(reply.code));
    smith.send({ type: 'statesmith.locksmith.host', lock: 'disks' });
    smith.send({ type: 'statesmith.locksmith.host', lock: 'disks', task: 'nothing' });
    smith.send({ type: 'statesmith.locksmith.force', lock: 'disks', answerTimeoutMs: -1 });
    smith.send({ type: 'statesmith.locksmith.force', lock: 'disks', retries: 2 } as never);
    expect(codes).to.deep.equal(['ERR_INVALID_ARG_VALUE', 'ERR_UNKNOWN_TASK', 'ERR_OUT_OF_RANGE', 'ERR_UNKNOWN_OPTION']);
    expect(smith.getSnapshot().value).to.equal('idle');
    smith.stop();
    expect(RejectedError).to.be.a('function');
  });

  it('lives inside a user machine: its replies reach the parent', async () => {
    const volumes = new Mutex({ name: 'volumes' });
    const app = createActor(
      setup({ types: { context: {} as { heard: string[] } }, actors: { smith: locksmithLogic } }).createMachine({
        context: { heard: [] },
        invoke: { id: 'smith', src: 'smith', input: { name: 'watchdog', locks: { volumes } } },
        entry: sendTo('smith', ({ self }) => ({ type: 'statesmith.locksmith.recognize' as const, lock: 'volumes', replyTo: self as AnyActorRef })),
        on: { '*': { actions: assign({ heard: ({ context, event }) => [...context.heard, event.type] }) } },
      }),
    ).start();
    await waitUntil(() => app.getSnapshot().context.heard.includes('statesmith.locksmith.recognized'), 1_000, 'recognized');
    expect((app.getSnapshot().children['smith'] as AnyActorRef).system).to.equal(app.system);
    app.stop();
  });
});
