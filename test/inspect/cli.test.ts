import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runExample } from '../support/examples.ts';

const cli = (...args: string[]) => runExample('src/cli.ts', 20_000, args);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('the statesmith CLI', function () {
  this.timeout(30_000);

  it("prints its help for no command, --help and -h, and the demo's for demo --help, exiting 0", async () => {
    for (const args of [[], ['--help'], ['-h']]) {
      const { code, out } = await cli(...args);
      expect(code, args.join(' ')).to.equal(0);
      expect(out).to.match(/^statesmith: statechart actors/);
      expect(out).to.match(/commands:\n {2}demo/);
    }
    for (const flag of ['--help', '-h']) {
      const { code, out } = await cli('demo', flag);
      expect(code).to.equal(0);
      expect(out).to.match(/^usage: statesmith demo \[--inspect \[port\]\]/);
      expect(out).to.match(/--for <seconds> +stop by itself/);
      expect(out).to.match(/examples:\n {2}statesmith demo --inspect/);
    }
  });

  it("prints a command's help for 'statesmith help <command>', and refuses an unknown one with exit 2", async () => {
    expect((await cli('help', 'demo')).out).to.match(/^usage: statesmith demo \[--inspect/);
    expect((await cli('help', 'send')).out).to.match(/^usage: statesmith send .*\n[\s\S]*exit status:\n {2}0 {2}the final reply reports success/);
    expect((await cli('help', 'watch')).out).to.match(/^usage: statesmith watch/);
    expect((await cli('help')).out).to.match(/^statesmith: statechart actors/);
    const unknown = await cli('help', 'frobnicate');
    expect(unknown.code).to.equal(2);
    expect(unknown.out).to.match(/no command "frobnicate"; the commands are demo, send, watch \(ERR_UNKNOWN_COMMAND\)/);
  });

  it('refuses a bad name or URL before it starts, exiting 2 and naming the flag, never an internal option', async () => {
    for (const [args, pattern] of [
      [['--name', ''], /--name needs 1 to 64 letters/],
      [['--name', 'a.b'], /--name needs 1 to 64 letters/],
      [['--coordinator', 'bogus://x'], /--coordinator needs a URL with a scheme of memory:\/\//],
      [['--nats', 'not a url'], /--nats needs a URL/],
      [['--state', 'redis://127.0.0.1:6379'], /--state needs a URL with a scheme of sqlite:\/\/, postgresql:\/\//],
      [['--state', 'sqlite:///tmp/x.db', '--no-state'], /--state and --no-state cannot both be given/],
    ] as const) {
      const { code, out } = await cli('demo', ...args);
      expect(code, args.join(' ')).to.equal(2);
      expect(out, args.join(' ')).to.match(pattern);
      expect(out).to.not.match(/options\.[a-z]/);
    }
  });

  it('demo --nats fails before it starts the agent when NATS cannot be reached, and says NATS', async () => {
    const { code, out } = await cli('demo', '--nats', 'nats://127.0.0.1:1', '--for', '5');
    expect(code).to.equal(1);
    expect(out).to.match(/could not start: could not reach NATS at nats:\/\/127\.0\.0\.1:1/);
    expect(out, 'nothing started').to.not.match(/joined|became the leader|inspector/);
  });

  it('prints its version from package.json', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) expect(await cli(flag)).to.deep.equal({ code: 0, out: `${version}\n` });
  });

  it('answers a bad command line with a typed message and exit 2', async () => {
    const unknown = await cli('frobnicate');
    expect(unknown.code).to.equal(2);
    expect(unknown.out).to.match(/unknown command "frobnicate" \(ERR_UNKNOWN_COMMAND\)/);
    const word = await cli('demo', '--inspect', 'abc');
    expect(word.code).to.equal(2);
    expect(word.out).to.match(/port must be an integer from 0 to 65535; received "abc" \(ERR_INVALID_ARG_VALUE\)/);
    const range = await cli('demo', '--inspect', '99999');
    expect(range.code).to.equal(2);
    expect(range.out).to.match(/port must be an integer from 0 to 65535; received "99999" \(ERR_OUT_OF_RANGE\)/);
    const soon = await cli('demo', '--for', 'soon');
    expect(soon.code).to.equal(2);
    expect(soon.out).to.match(/--for needs a number of seconds > 0; received "soon"/);
    const flag = await cli('demo', '--bogus');
    expect(flag.out).to.match(/unknown argument "--bogus" \(ERR_UNKNOWN_OPTION\)\nRun 'statesmith demo --help'/);
  });

  it('reports a failure at run time as one line with its cause, the stack only with --verbose, and exits 1', async () => {
    const quiet = await cli('demo', '--coordinator', 'redis://127.0.0.1:1', '--for', '2');
    expect(quiet.code).to.equal(1);
    expect(quiet.out).to.match(/^statesmith demo: could not start: could not connect to redis:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/);
    expect(quiet.out.trim().split('\n')).to.have.length(1);
    const verbose = await cli('demo', '--coordinator', 'redis://127.0.0.1:1', '--for', '2', '--verbose');
    expect(verbose.code).to.equal(1);
    expect(verbose.out).to.match(/\n {4}at /);
  });

  it('a second signal during the stop (Ctrl-C under npm comes twice) does not cut the clean stop short', async () => {
    const child = spawn(process.execPath, ['--conditions=statesmith-source', '--import', 'tsx', 'src/cli.ts', 'demo'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    try {
      const deadline = Date.now() + 15_000;
      while (!out.includes('became the leader') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      // Each after the one before was handled (signals sent at once are merged by the kernel).
      for (const signal of ['SIGTERM', 'SIGTERM', 'SIGINT', 'SIGINT'] as const) {
        child.kill(signal);
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      expect(await exited, out).to.deep.equal({ code: 0, signal: null });
      expect(out).to.match(/stopped cleanly/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('statesmith demo runs the HA agent and stops by itself with --for', async () => {
    const { code, out } = await cli('demo', '--for', '2');
    expect(code, out).to.equal(0);
    expect(out).to.match(/became the leader/);
    expect(out).to.match(/stopped cleanly/);
  });
});
