import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { waitUntil } from '../support/async.ts';
import { runExample } from '../support/examples.ts';
import { sharedRedis } from '../support/servers.ts';

describe('examples/ha-agent.ts (npm start)', function () {
  this.timeout(60_000);

  it('leads, runs actions as subprocesses, monitors, breaks the stuck lock, shows the inspector URL, and stops cleanly', async () => {
    const { code, out } = await runExample('examples/ha-agent.ts', 40_000, ['--inspect', '--for', '6']);
    expect(code, out).to.equal(0);
    expect(out).to.match(/inspector\s+open http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{32}/);
    expect(out).to.match(/loop\s+cycle 1: became the leader \(fence 1\)/);
    expect(out).to.match(/promote\s+\| promoted/);
    expect(out).to.match(/bus\s+wake-up: promote completed/);
    expect(out).to.match(/archiver\s+gave up: wal-archive was taken away by watchdog: archiver stuck for 2 s/);
    expect(out).to.match(/watchdog\s+host\(\) returned: archive status reset/);
    expect(out).to.match(/restart\s+\| ready/);
    expect(out).to.match(/agent\s+stopped cleanly/);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`npm start stops cleanly on ${signal} sent to npm's own pid (a supervisor's way), leaving no agent behind`, async () => {
      const child = spawn('npm', ['start', '--silent'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      try {
        await waitUntil(() => /became the leader/.test(out), 20_000, `the agent to lead:\n${out}`);
        child.kill(signal);
        expect(await exited).to.equal(0);
        expect(out).to.match(/agent\s+stopped cleanly/);
      } finally {
        child.kill('SIGKILL');
      }
    });
  }

  it('rejects unknown arguments with the usage', async () => {
    const { code, out } = await runExample('examples/ha-agent.ts', 20_000, ['--bogus']);
    expect(code).to.equal(2);
    expect(out).to.match(/unknown argument "--bogus"\nusage: statesmith demo/);
  });

  it('two agents on one Redis elect one leader, and the follower takes over when the leader is killed', async function () {
    const url = await sharedRedis();
    if (url === undefined) this.skip(); // no Redis and none could be started: outside CI only (under CI=true the harness throws)
    const coordinator = `${url}?namespace=ha${process.pid}${Date.now()}`;
    const start = (name: string) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'examples/ha-agent.ts', '--coordinator', coordinator, '--name', name, '--for', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      return { child, output: () => out };
    };
    const a = start('a');
    await waitUntil(() => /became the leader/.test(a.output()), 20_000, `agent a to lead:\n${a.output()}`);
    const b = start('b');
    try {
      await waitUntil(() => /following/.test(b.output()), 20_000, `agent b to follow:\n${b.output()}`);
      a.child.kill('SIGKILL');
      // The leader's lease is 3 s: the follower leads within a few cycles after it runs out.
      await waitUntil(() => /became the leader/.test(b.output()), 15_000, `agent b to take over:\n${b.output()}`);
      const fenceOf = (out: string): bigint => BigInt(/became the leader \(fence (\d+)\)/.exec(out)?.[1] ?? '0');
      expect(fenceOf(b.output()) > fenceOf(a.output()), 'the new leader has the larger fence').to.equal(true);
    } finally {
      a.child.kill('SIGKILL');
      b.child.kill('SIGTERM');
    }
    const exited = await new Promise<number | null>((resolve) => b.child.once('exit', resolve));
    expect(exited).to.equal(0);
    expect(b.output()).to.match(/stopped cleanly/);
  });
});
