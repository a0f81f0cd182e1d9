import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function runExample(file: string, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not exit within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('examples/ha-loop.ts (npm start)', function () {
  this.timeout(30_000);

  it('shows the early wake-up and the cancel of a long action, then exits by itself', async () => {
    const { code, out } = await runExample('examples/ha-loop.ts', 25_000);
    expect(code, out).to.equal(0);
    expect(out).to.match(/bus\s+wake-up: restart completed/);
    expect(out).to.match(/loop\s+cycle 2: busy=false/);
    expect(out).to.match(/process\s+\{"cancelling":"terminating"\}/);
    expect(out).to.match(/executor\s+done \(basebackup → cancelled\)/);
    expect(out).to.match(/main\s+loop stopped: demo finished/);
  });
});
