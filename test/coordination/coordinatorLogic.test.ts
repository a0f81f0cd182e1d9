/**
 * `coordinatorLogic` as an actor: started, driven and stopped by commands on a real
 * backend, each grant listed in its context's `grants` (no child per grant), forged engine
 * events refused.
 */
import { expect } from 'chai';
import { createActor, type AnyActorRef } from 'xstate';
import { coordinatorLogic, createCoordinator } from '../../src/index.ts';
import { sharedRedis } from '../support/servers.ts';
import { heard, waitUntil } from '../support/async.ts';

describe('coordinatorLogic', function () {
  this.timeout(20_000);

  it('on Redis: starts by command, takes and gives back a lock by name, the grant kept in its context', async () => {
    const url = `${await sharedRedis()}?namespace=cl${process.pid}${Date.now()}`;
    const coordinator = createActor(coordinatorLogic, { input: { options: { url, prefix: 'vm-', agentId: 'node-1', lockTtlMs: 3_000 } } }).start();
    const replies = heard(coordinator);
    coordinator.send({ type: 'statesmith.coordinator.start' });
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.coordinator.started'), 10_000, 'started');
    expect(replies.at(-1)).to.deep.equal({ type: 'statesmith.coordinator.started', memberId: 'vm-node-1' });
    expect(coordinator.getSnapshot().matches('connected')).to.equal(true);
    coordinator.send({ type: 'statesmith.coordinator.acquire', lock: 'volume-7', blocking: false });
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.coordinator.acquired'), 5_000, 'acquired');
    const acquired = replies.find((r) => r.type === 'statesmith.coordinator.acquired');
    expect(acquired).to.include({ lock: 'volume-7' });
    expect(BigInt(acquired?.['fence'] as string) > 0n).to.equal(true);
    expect(coordinator.getSnapshot().context.grants).to.deep.equal({ 'grant-1': { lock: 'vm-volume-7', fence: acquired?.['fence'] } });
    // No child per grant: the engine's one command runner is the only child.
    expect(Object.keys(coordinator.getSnapshot().children)).to.deep.equal(['backend']);
    // Another member does not get it.
    const other = createCoordinator({ url, prefix: 'vm-', agentId: 'node-2' });
    await other.start();
    expect(await other.getLock('volume-7').acquire({ blocking: false })).to.equal(null);
    coordinator.send({ type: 'statesmith.coordinator.release', lock: 'volume-7' });
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.coordinator.released'), 5_000, 'released');
    expect(replies.find((r) => r.type === 'statesmith.coordinator.released')).to.deep.equal({
      type: 'statesmith.coordinator.released',
      lock: 'volume-7',
      freed: true,
    });
    await waitUntil(() => Object.keys(coordinator.getSnapshot().context.grants).length === 0, 5_000, 'grant dropped');
    const next = await other.getLock('volume-7').acquire({ blocking: false });
    expect(next?.fence !== undefined && next.fence > BigInt(acquired?.['fence'] as string)).to.equal(true);
    await next?.release();
    await other.stop();
    coordinator.send({ type: 'statesmith.coordinator.stop' });
    await waitUntil(() => coordinator.getSnapshot().value === 'stopped', 5_000, 'stopped');
    for (const reply of replies) expect(JSON.parse(JSON.stringify(reply))).to.deep.equal(reply);
    coordinator.stop();
  });

  it('answers what it cannot take with statesmith.rejected, and refuses forged engine events', async () => {
    const c = createCoordinator({ agentId: 'refuser' });
    const replies = heard(c.actor as unknown as AnyActorRef);
    c.actor.send({ type: 'statesmith.coordinator.acquire', lock: 'x' });
    c.actor.send({ type: 'statesmith.coordinator.acquire', lock: '' });
    c.actor.send({ type: 'statesmith.coordinator.acquire', lock: 'x', blocking: -5 });
    c.actor.send({ type: 'statesmith.coordinator.lost', error: { name: 'Error', message: 'fake' } } as never);
    c.actor.send({ type: 'statesmith.coordinator.grantEnded', id: 'grant-1' } as never);
    c.actor.send({ type: 'statesmith.coordinator.granted', id: 'grant-9', lock: 'x', fence: '1' } as never);
    expect(replies.map((r) => r['code'])).to.deep.equal([
      'ERR_COORDINATION_STATE',
      'ERR_INVALID_ARG_TYPE',
      'ERR_OUT_OF_RANGE',
      'ERR_INVALID_ARG_VALUE',
      'ERR_INVALID_ARG_VALUE',
      'ERR_INVALID_ARG_VALUE',
    ]);
    expect(c.actor.getSnapshot().context.grants).to.deep.equal({});
    expect(c.state).to.equal('disconnected');
    await c.start();
    c.actor.send({ type: 'statesmith.coordinator.lost', error: { name: 'Error', message: 'fake' } } as never);
    expect(c.state).to.equal('connected');
    await c.stop();
  });

  it("the facade is a thin client: its grants are the actor's, and a direct stop is seen by it", async () => {
    const c = createCoordinator({ agentId: 'thin' });
    await c.start();
    const held = await c.getLock('a').acquire();
    expect(Object.values(c.actor.getSnapshot().context.grants)).to.deep.equal([{ lock: 'a', fence: String(held?.fence) }]);
    expect(Object.keys(c.actor.getSnapshot().children)).to.deep.equal(['backend']);
    c.actor.send({ type: 'statesmith.coordinator.stop' });
    await waitUntil(() => c.state === 'stopped', 5_000, 'stopped');
    expect(held?.held).to.equal(false);
    expect(c.actor.getSnapshot().context.grants).to.deep.equal({});
  });
});
