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
import { sharedNats } from '../support/servers.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('statesmith demo --nats', function () {
  this.timeout(40_000);

  it('serves the agent’s executor: an operator’s send runs restart, and a watcher sees it go running → done', async function () {
    const url = await sharedNats();
    if (url === undefined) this.skip(); // outside CI only: no NATS here and none could be started (under CI=true sharedNats throws instead)
    const name = `natsdemo${process.pid}`;
    const child = spawn(process.execPath, ['--conditions=statesmith-source', '--import', 'tsx', 'src/cli.ts', 'demo', '--nats', url as string, '--name', name, '--for', '8'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
        sent = await runExample('src/cli.ts', 20_000, ['send', '--nats', url as string, `statesmith.agents.${name}.executor`, '{"type":"statesmith.executor.run","action":"restart"}']);
        expect(sent.code === 0 || /rejected/.test(sent.out), sent.out).to.equal(true);
      }
      expect(sent.code, sent.out).to.equal(0);
      expect(JSON.parse(sent.out.trim())).to.deep.include({ type: 'statesmith.executor.scheduled', action: 'restart' });
      await waitUntil(() => values.includes('"running"') && values.at(-1) === '"idle"', 10_000, 'running, then idle again');
      expect(out).to.match(/restart +\| ready/);
      executor.close();
      expect(await exited, out).to.equal(0);
    } finally {
      await connection?.close();
      child.kill('SIGKILL');
    }
  });
});
