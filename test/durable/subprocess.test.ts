/**
 * durable(subprocessLogic): a runner saved with its last call as data. A call that was
 * running when its process ended is never run again: the runner comes back `done` with
 * outcome `interrupted`, told once, and the process the call started is ended by the restore.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActor, type AnyActorRef } from 'xstate';
import { durable, openStore, subprocessLogic, type DurableSnapshot, type SnapshotStore } from '../../src/index.ts';
import { waitUntil } from '../support/async.ts';
import { sqliteUrl } from '../support/servers.ts';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('durable(subprocessLogic)', function () {
  this.timeout(20_000);
  let store: SnapshotStore;
  const actors: AnyActorRef[] = [];

  before(async () => {
    store = await openStore(sqliteUrl('durable-subprocess.db'));
  });
  after(async () => store.close());
  afterEach(() => {
    for (const actor of actors.splice(0)) actor.stop();
  });

  it('a call running at the crash is never run again: the runner comes back done, interrupted, told once, and its process is gone', async () => {
    const id = `runner-${randomBytes(4).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), 'durable-subprocess-'));
    const runs = join(dir, 'runs');
    const incarnation = () => {
      const actor = createActor(durable(subprocessLogic, { store, id, version: 1 }), { input: { name: 'runner' } });
      const exited: Array<{ call: number; outcome: string; error?: { code?: string; message: string } }> = [];
      actor.on('statesmith.subprocess.exited', (event) => exited.push(event as never));
      actor.subscribe({ error: () => undefined });
      actors.push(actor);
      actor.start();
      const inner = () =>
        (actor.getSnapshot() as DurableSnapshot).inner as unknown as { value: unknown; context: { pid: number | null; call: number; outcome: string | null } };
      return { actor, exited, inner, running: () => waitUntil(() => (actor.getSnapshot() as DurableSnapshot).value === 'running', 5_000, 'the runner to run') };
    };
    const one = incarnation();
    await one.running();
    one.actor.send({ type: 'statesmith.subprocess.call', argv: ['sh', '-c', `echo run >> ${runs}; exec sleep 30`] });
    await waitUntil(() => one.inner().value === 'running' && one.inner().context.pid !== null, 5_000, 'the call to run');
    const pid = one.inner().context.pid as number;
    await waitUntil(
      async () => ((await store.load(id))?.snapshot as { inner?: { state?: string; pid?: number } } | undefined)?.inner?.pid === pid,
      5_000,
      'the store to hold the call running',
    );
    one.actor.stop(); // stands for the kill
    actors.splice(actors.indexOf(one.actor), 1);

    const two = incarnation();
    await two.running();
    await waitUntil(() => two.exited.length === 1, 5_000, 'the interrupted call to be told');
    expect(two.exited[0]).to.include({ call: 1, outcome: 'interrupted' });
    expect(two.exited[0]?.error?.code).to.equal('ERR_INTERRUPTED');
    expect(two.inner().value).to.equal('done');
    expect(two.inner().context.outcome).to.equal('interrupted');
    await waitUntil(() => !alive(pid), 5_000, 'the call’s process to be gone');
    expect(existsSync(runs) ? readFileSync(runs, 'utf8').trim().split('\n') : []).to.deep.equal(['run']);
    // The next call goes on from the saved counter.
    two.actor.send({ type: 'statesmith.subprocess.call', argv: ['sh', '-c', 'exit 0'] });
    await waitUntil(() => two.exited.length === 2, 5_000, 'the next call to end');
    expect(two.exited[1]).to.include({ call: 2, outcome: 'completed' });
  });
});
