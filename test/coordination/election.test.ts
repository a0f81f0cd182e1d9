/**
 * The election and group commands as data, sent to the actors directly (no facade): every
 * command is answered, with its reply or with `statesmith.rejected` and a code, and no
 * message from outside can fake what only the election's own children may say.
 */
import { expect } from 'chai';
import { createActor, type AnyActorRef } from 'xstate';
import { coordinatorLogic, createCoordinator } from '../../src/index.ts';
import { rejection } from '../support/async.ts';

type Reply = { readonly type: string } & Record<string, unknown>;

/** Sends `command` to `actor` and resolves the first reply emitted (to `replyTo`-less senders, replies are emitted). */
function send(actor: AnyActorRef, command: Reply): Promise<Reply> {
  return new Promise((resolve) => {
    const subscription = actor.on('*', (event: Reply) => {
      subscription.unsubscribe();
      resolve(event);
    });
    actor.send(command);
  });
}

describe('the election and groups as commands', () => {
  let run = 0;
  const start = async (): Promise<AnyActorRef> => {
    const coordinator = createActor(coordinatorLogic, { input: { options: { url: `memory://commands-${++run}`, agentId: 'node-1' } } }).start();
    expect(await send(coordinator, { type: 'statesmith.coordinator.start' })).to.deep.include({ type: 'statesmith.coordinator.started' });
    return coordinator;
  };

  it('opens an election child and answers each command in each state', async () => {
    const coordinator = await start();
    expect(await send(coordinator, { type: 'statesmith.coordinator.election', group: 'db' })).to.deep.equal({
      type: 'statesmith.coordinator.electionOpened',
      group: 'db',
      id: 'election:db',
    });
    // Opening it again answers the same child.
    expect(await send(coordinator, { type: 'statesmith.coordinator.election', group: 'db' })).to.deep.include({ id: 'election:db' });
    const election = coordinator.getSnapshot().children['election:db'] as AnyActorRef;
    expect(election.getSnapshot().value).to.equal('follower');

    expect(await send(election, { type: 'statesmith.election.resign' })).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_NOT_LEADER' });
    expect(await send(election, { type: 'statesmith.election.proclaim', value: 1 })).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_NOT_LEADER' });
    expect(await send(election, { type: 'statesmith.election.withdraw' })).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_NOT_CAMPAIGNING' });
    expect(await send(election, { type: 'statesmith.election.campaign', timeoutMs: -1 })).to.deep.include({
      type: 'statesmith.rejected',
      code: 'ERR_OUT_OF_RANGE',
    });
    expect(await send(election, { type: 'statesmith.election.vote' })).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_UNKNOWN_COMMAND' });

    const elected = await send(election, { type: 'statesmith.election.campaign', value: { url: 'pg://1' } });
    expect(elected).to.deep.equal({ type: 'statesmith.election.elected', group: 'db', memberId: 'node-1', term: '1' });
    expect(election.getSnapshot().value).to.deep.equal({ leader: 'serving' });
    expect(await send(election, { type: 'statesmith.election.campaign' })).to.deep.include({ type: 'statesmith.rejected', code: 'ERR_ALREADY_CAMPAIGNING' });
    // What only the election's own children say cannot come from outside.
    expect(await send(election, { type: 'statesmith.election.lost', term: '1', reason: {} })).to.deep.include({
      type: 'statesmith.rejected',
      code: 'ERR_INVALID_ARG_VALUE',
    });
    expect(election.getSnapshot().value).to.deep.equal({ leader: 'serving' });
    expect(await send(election, { type: 'statesmith.election.proclaim', value: { url: 'pg://2' } })).to.deep.equal({
      type: 'statesmith.election.proclaimed',
      group: 'db',
      term: '1',
    });
    expect(await send(election, { type: 'statesmith.election.resign' })).to.deep.equal({ type: 'statesmith.election.resigned', group: 'db', term: '1' });
    expect(election.getSnapshot().value).to.equal('follower');
    await send(coordinator, { type: 'statesmith.coordinator.stop' });
  });

  it("a follower's campaign that times out ends as a routine outcome (its child done, not errored), and still answers failed with ERR_TIMEOUT", async () => {
    const leader = createCoordinator({ url: `memory://routine-${++run}`, agentId: 'leader' });
    const follower = createCoordinator({ url: `memory://routine-${run}`, agentId: 'follower' });
    await leader.start();
    await follower.start();
    try {
      await leader.getElection('db').campaign();
      const election = follower.getElection('db');
      let child: AnyActorRef | undefined;
      const watching = election.actor.subscribe((snapshot: { children: Record<string, AnyActorRef | undefined> }) => {
        child ??= snapshot.children['campaign'];
      });
      const error = (await rejection(election.campaign({ timeoutMs: 30 }))) as { code?: string };
      watching.unsubscribe();
      expect(error.code).to.equal('ERR_TIMEOUT');
      expect(child, 'the campaign child was seen').to.not.equal(undefined);
      expect(child?.getSnapshot().status, 'not an errored actor: the inspector shows no red row').to.equal('done');
      expect(election.actor.getSnapshot().value).to.equal('follower');
    } finally {
      await follower.stop();
      await leader.stop();
    }
  });

  it('joins, lists and leaves groups; refuses a bad group, a second join, and groups before start', async () => {
    const idle = createActor(coordinatorLogic, { input: { options: { url: 'memory://idle' } } }).start();
    expect(await send(idle, { type: 'statesmith.coordinator.join', group: 'g' })).to.deep.include({
      type: 'statesmith.rejected',
      code: 'ERR_COORDINATION_STATE',
    });
    const coordinator = await start();
    expect(await send(coordinator, { type: 'statesmith.coordinator.join', group: '' })).to.deep.include({
      type: 'statesmith.rejected',
      code: 'ERR_INVALID_ARG_TYPE',
    });
    expect(await send(coordinator, { type: 'statesmith.coordinator.members', group: 'x'.repeat(300) })).to.deep.include({
      type: 'statesmith.rejected',
      code: 'ERR_OUT_OF_RANGE',
    });
    expect(await send(coordinator, { type: 'statesmith.coordinator.join', group: 'g', capabilities: { zone: 'a' } })).to.deep.equal({
      type: 'statesmith.coordinator.joined',
      group: 'g',
      memberId: 'node-1',
    });
    expect(await send(coordinator, { type: 'statesmith.coordinator.join', group: 'g' })).to.deep.include({
      type: 'statesmith.rejected',
      code: 'ERR_ALREADY_MEMBER',
    });
    expect(await send(coordinator, { type: 'statesmith.coordinator.members', group: 'g' })).to.deep.equal({
      type: 'statesmith.coordinator.members',
      group: 'g',
      members: [{ memberId: 'node-1', capabilities: { zone: 'a' } }],
    });
    expect(await send(coordinator, { type: 'statesmith.coordinator.leave', group: 'g' })).to.deep.equal({
      type: 'statesmith.coordinator.left',
      group: 'g',
      memberId: 'node-1',
      wasMember: true,
    });
    expect(await send(coordinator, { type: 'statesmith.coordinator.leave', group: 'g' })).to.deep.include({ wasMember: false });
    expect(await send(coordinator, { type: 'statesmith.coordinator.members', group: 'g' })).to.deep.include({ members: [] });
    await send(coordinator, { type: 'statesmith.coordinator.stop' });
    idle.stop();
  });

  it('every wait of the facades takes signal and timeoutMs, and refuses an unknown option key', async () => {
    const c = createCoordinator({ url: `memory://bounds-${++run}`, agentId: 'bounded' });
    await c.start();
    const aborted = AbortSignal.abort(new Error('operator gave up'));
    for (const call of [
      () => c.joinGroup('g', { signal: aborted }),
      () => c.getMembers('g', { signal: aborted }),
      () => c.breakLock('x', { signal: aborted }),
      () => c.getElection('g').leader({ signal: aborted }),
      () => c.getElection('g').campaign({ signal: aborted }),
    ]) {
      expect(((await rejection(call())) as Error).message).to.equal('operator gave up');
    }
    for (const call of [
      () => c.getMembers('g', { timeout: 5 } as never),
      () => c.joinGroup('g', { timeout: 5 } as never),
      () => c.getElection('g').leader({ timeout: 5 } as never),
    ]) {
      expect(await rejection(call())).to.have.property('code', 'ERR_UNKNOWN_OPTION');
    }
    const membership = await c.joinGroup('g', { capabilities: 1, timeoutMs: 1_000 });
    expect(await membership.leave({ timeoutMs: 1_000 })).to.equal(true);
    const leadership = await c.getElection('g').campaign({ timeoutMs: Infinity });
    await leadership.proclaim('v', { timeoutMs: 1_000 });
    await leadership.resign({ timeoutMs: 1_000 });
    await c.stop();
  });
});
