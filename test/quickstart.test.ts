/**
 * The README's two commands on a fresh clone: `npm start` alone installs what it needs and
 * runs the demo. It clones the committed HEAD into a temp dir and installs there, so it runs
 * under CI only (outside CI it skips, saying why).
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './support/async.ts';

describe('the quickstart on a fresh clone', function () {
  this.timeout(300_000);

  it('npm start installs the dependencies by itself, runs the demo with its inspector URL, and stops cleanly on SIGINT', async function () {
    if (process.env['CI'] !== 'true') this.skip(); // outside CI only: it clones and runs npm ci, minutes of network and disk
    const dir = await mkdtemp(join(tmpdir(), 'statesmith-clone-'));
    try {
      execFileSync('git', ['clone', '--quiet', '--depth', '1', `file://${process.cwd()}`, dir], { stdio: 'ignore' });
      expect(existsSync(join(dir, 'node_modules')), 'a clean clone has no node_modules').to.equal(false);
      const child = spawn('npm', ['start'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      try {
        await waitUntil(
          () => /inspector\s+open http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{32}/.test(out),
          240_000,
          `the demo's inspector URL:\n${out.slice(-3000)}`,
        );
        expect(out).to.match(/node_modules is missing; installing the dependencies \(npm ci\) first/);
        // Running, with its signal handlers in place: it has led a cycle.
        await waitUntil(() => /became the leader/.test(out), 30_000, `the agent to lead:\n${out.slice(-3000)}`);
        child.kill('SIGINT');
        expect(await exited, out.slice(-3000)).to.equal(0);
        expect(out).to.match(/agent\s+stopped cleanly/);
      } finally {
        child.kill('SIGKILL');
      }
      // Now everything is in place: the check costs a stat, and installs nothing.
      const again = execFileSync(process.execPath, ['scripts/ensure-deps.mjs'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(again).to.equal('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
