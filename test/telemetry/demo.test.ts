/** `statesmith demo --metrics <port>`: the HA agent serves its metrics while it runs. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('statesmith demo --metrics', function () {
  this.timeout(30_000);

  it('serves /metrics while the agent runs: its leadership, executor, locks and actors', async () => {
    const child = spawn(process.execPath, ['--conditions=statesmith-source', '--import', 'tsx', 'src/cli.ts', 'demo', '--metrics', '0', '--for', '4'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    try {
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const found = /serving (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(out);
          if (found) resolve(found[1] as string);
        });
        void exited.then(() => reject(new Error(`the demo exited without serving metrics:\n${out}`)));
      });
      // Wait until the agent has led and run an action: the leader's first promote.
      for (
        let i = 0;
        i < 100 && !/executor_task_duration_seconds_count\{executor="ha",outcome="completed"\} [1-9]/.test(await (await fetch(url)).text());
        i++
      ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const text = await (await fetch(url)).text();
      expect(text).to.match(/^statesmith_leader\{group="leader"\} 1$/m);
      expect(text).to.match(/^statesmith_executor_task_duration_seconds_count\{executor="ha",outcome="completed"\} [1-9]/m);
      expect(text).to.match(/^statesmith_actors\{kind="service",state="running"\} 1$/m);
      expect(text).to.match(/^statesmith_lock_acquire_duration_seconds_count\{kind="distributed",outcome="acquired"\} 1$/m);
      expect(await exited, out).to.equal(0);
      expect(out).to.match(/stopped cleanly/);
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  });
});
