/**
 * `statesmith demo --nats`: the agent's executor served over NATS and driven from other
 * processes (an operator's `statesmith send`), while this process watches it.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { remoteActor } from '../../src/nats/index.ts';
import { waitUntil } from '../support/async.ts';
import { runExample } from '../support/examples.ts';
import { sharedNats, sharedRedis } from '../support/servers.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A demo agent in a child process, with its output so far. */
function startAgent(args: readonly string[]): { out: () => string; exited: Promise<number | null>; kill(): void } {
  const child = spawn(process.execPath, ['--conditions=statesmith-source', '--import', 'tsx', 'src/cli.ts', 'demo', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { out: () => out, exited, kill: () => void child.kill('SIGKILL') };
}

describe('statesmith demo --nats', function () {
  this.timeout(40_000);

  it('serves the agent’s executor: an operator’s send runs restart, and a watcher sees it go running → done', async function () {
    const url = await sharedNats();
    if (url === undefined) this.skip(); // outside CI only: no NATS here and none could be started (under CI=true sharedNats throws instead)
    const name = `natsdemo${process.pid}`;
    const child = spawn(
      process.execPath,
      ['--conditions=statesmith-source', '--import', 'tsx', 'src/cli.ts', 'demo', '--nats', url as string, '--name', name, '--for', '8'],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let connection: NatsConnection | undefined;
    try {
      await waitUntil(() => out.includes(`serving statesmith.agents.${name}.`), 20_000, 'the agent serving over NATS');
      connection = await connect({ servers: url as string, timeout: 2_000 });
      const executor = remoteActor({ connection, subject: `statesmith.agents.${name}.executor` });
      const values: string[] = [];
      executor.subscribe((s) => values.push(JSON.stringify(s.value)));
      // Let the leader's own first action (promote) finish, so the slot is free.
      await waitUntil(() => out.includes('promoted'), 20_000, 'the first promote');
      await waitUntil(() => values.at(-1) === '"idle"', 10_000, 'an idle executor');
      // The agent schedules actions of its own too: a send that finds the slot taken is refused, and sent again.
      let sent = { code: null as number | null, out: '' };
      for (let attempt = 0; attempt < 10 && sent.code !== 0; attempt++) {
        if (attempt > 0) await waitUntil(() => values.at(-1) === '"idle"', 10_000, 'an idle executor');
        sent = await runExample('src/cli.ts', 20_000, [
          'send',
          '--nats',
          url as string,
          `statesmith.agents.${name}.executor`,
          '{"type":"statesmith.executor.run","action":"restart"}',
        ]);
        // 3: the final reply says the slot was taken (refused); 1: rejected. Either way, try again.
        expect(sent.code === 0 || /refused|rejected/.test(sent.out), sent.out).to.equal(true);
      }
      expect(sent.code, sent.out).to.equal(0);
      // send waits for the final reply: the restart has run.
      expect(JSON.parse(sent.out.trim())).to.deep.include({ type: 'statesmith.executor.done', action: 'restart', outcome: 'completed' });
      await waitUntil(() => values.includes('"running"') && values.at(-1) === '"idle"', 10_000, 'running, then idle again');
      expect(out).to.match(/restart +\| ready/);
      executor.close();
      expect(await exited, out).to.equal(0);
    } finally {
      await connection?.close();
      child.kill('SIGKILL');
    }
  });

  it('two agents on one Redis: a third process finds the leader and drives its executor through restart, running → idle', async function () {
    this.timeout(60_000);
    const nats = await sharedNats();
    const redis = await sharedRedis();
    if (nats === undefined || redis === undefined) this.skip(); // outside CI only: no NATS or Redis here and none could be started (under CI=true the harness throws instead)
    // A namespace of this run's own, so no other agent on this Redis competes for the lock.
    const coordinator = `${redis as string}?namespace=natstwo${process.pid}`;
    const names = [`twoa${process.pid}`, `twob${process.pid}`];
    const agents = names.map((name) => startAgent(['--nats', nats as string, '--coordinator', coordinator, '--name', name, '--for', '15']));
    let connection: NatsConnection | undefined;
    try {
      for (const [i, agent] of agents.entries())
        await waitUntil(() => agent.out().includes(`serving statesmith.agents.${names[i]}.`), 20_000, `agent ${names[i]} serving`);
      await waitUntil(() => agents.some((agent) => agent.out().includes('became the leader')), 20_000, 'one agent leading');
      const leaderIndex = agents.findIndex((agent) => agent.out().includes('became the leader'));
      const leader = names[leaderIndex] as string;
      const follower = agents[1 - leaderIndex];
      expect(follower?.out(), 'only one agent leads').not.to.include('became the leader');

      connection = await connect({ servers: nats as string, timeout: 2_000 });
      const subject = `statesmith.agents.${leader}.executor`;
      const executor = remoteActor({ connection, subject });
      const values: string[] = [];
      executor.subscribe((s) => values.push(JSON.stringify(s.value)));
      await waitUntil(() => (agents[leaderIndex]?.out() ?? '').includes('promoted'), 20_000, 'the leader’s promote');
      // The third process: an operator's `statesmith send`, retried while the agent's own action holds the slot.
      let sent = { code: null as number | null, out: '' };
      for (let attempt = 0; attempt < 10 && sent.code !== 0; attempt++) {
        await waitUntil(() => values.at(-1) === '"idle"', 10_000, 'an idle executor');
        values.length = 0;
        sent = await runExample('src/cli.ts', 20_000, ['send', '--nats', nats as string, subject, '{"type":"statesmith.executor.run","action":"restart"}']);
        // 3: the final reply says the slot was taken (refused); 1: rejected. Either way, try again.
        expect(sent.code === 0 || /refused|rejected/.test(sent.out), sent.out).to.equal(true);
      }
      expect(sent.code, sent.out).to.equal(0);
      // send waits for the final reply: the restart has run.
      expect(JSON.parse(sent.out.trim())).to.deep.include({ type: 'statesmith.executor.done', action: 'restart', outcome: 'completed' });
      await waitUntil(() => values.includes('"running"') && values.at(-1) === '"idle"', 10_000, 'running, then idle again');
      expect(values.indexOf('"running"')).to.be.lessThan(values.lastIndexOf('"idle"'));
      // The follower's executor never ran a restart: only the leader's was driven.
      expect(follower?.out()).not.to.match(/restart +\| ready/);
      executor.close();
      for (const agent of agents) expect(await agent.exited, agent.out()).to.equal(0);
    } finally {
      await connection?.close();
      for (const agent of agents) agent.kill();
    }
  });
});
