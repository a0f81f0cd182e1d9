import { expect } from 'chai';
import { CancellableSubprocess, CancelledError } from '../../src/index.ts';
import { isAlive, listDescendants } from '../../src/subprocess/processTree.ts';
import { waitUntil } from '../support/async.ts';
import { logged } from '../support/logs.ts';

/** Collects output lines, and the pids a script prints as `pid=N`. */
function collector() {
  const lines: Array<[string, string]> = [];
  const pids: number[] = [];
  return {
    lines,
    pids,
    onOutput: (line: string, stream: 'stdout' | 'stderr') => {
      lines.push([stream, line]);
      const match = /^pid=(\d+)$/.exec(line);
      if (match) pids.push(Number(match[1]));
    },
  };
}

function states(runner: CancellableSubprocess): string[] {
  const seen: string[] = [];
  runner.actor.subscribe((s) => {
    const value = typeof s.value === 'string' ? s.value : JSON.stringify(s.value);
    if (seen[seen.length - 1] !== value) seen.push(value);
  });
  return seen;
}

describe('CancellableSubprocess', function () {
  this.timeout(20_000);
  const leftovers: number[] = [];
  afterEach(() => {
    for (const pid of leftovers.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone: nothing to clean up
      }
    }
  });

  describe('call()', () => {
    it('resolves the exit code and walks scheduled → running → done', async () => {
      const runner = new CancellableSubprocess();
      const seen = states(runner);
      expect(await runner.call(['true'])).to.equal(0);
      expect(await runner.call(['sh', '-c', 'exit 3'])).to.equal(3);
      expect(seen.slice(0, 3)).to.deep.equal(['scheduled', 'running', 'done']);
      expect(runner.actor.getSnapshot().context).to.include({ exitCode: 3, outcome: 'completed' });
      expect(runner.pid).to.equal(null);
    });

    it('maps a death by signal to -N, as Python does', async () => {
      const runner = new CancellableSubprocess();
      expect(await runner.call(['sh', '-c', 'kill -KILL $$'])).to.equal(-9);
      expect(runner.actor.getSnapshot().context.signal).to.equal('SIGKILL');
    });

    it('resolves null and logs when the command cannot be spawned', async () => {
      const runner = new CancellableSubprocess({ name: 'ghost' });
      expect(await runner.call(['/nonexistent/definitely-not-here'])).to.equal(null);
      expect(await runner.call(['true'], { cwd: '/nonexistent-dir' })).to.equal(null);
      expect(logged('error', /ghost: failed to spawn/)).to.have.length(2);
      expect(runner.actor.getSnapshot().context.outcome).to.equal('failed');
      expect(await runner.call(['true'])).to.equal(0);
    });

    it('streams both pipes line by line: \\r stripped once, final partial line delivered', async () => {
      const runner = new CancellableSubprocess();
      const out = collector();
      const script = "printf 'one\\r\\r\\ntwo\\n'; printf 'err line\\n' >&2; printf 'tail without newline'";
      expect(await runner.call(['sh', '-c', script], { onOutput: out.onOutput })).to.equal(0);
      expect(out.lines.filter(([s]) => s === 'stdout').map(([, l]) => l)).to.deep.equal(['one\r', 'two', 'tail without newline']);
      expect(out.lines.filter(([s]) => s === 'stderr').map(([, l]) => l)).to.deep.equal(['err line']);
    });

    it('keeps multi-byte characters split across chunks whole', async () => {
      const runner = new CancellableSubprocess();
      const out = collector();
      await runner.call(['sh', '-c', "printf '\\303'; sleep 0.05; printf '\\251t\\303\\251\\n'"], { onOutput: out.onOutput });
      expect(out.lines).to.deep.equal([['stdout', 'été']]);
    });

    it('swallows errors thrown by onOutput and still returns the exit code', async () => {
      const runner = new CancellableSubprocess();
      let calls = 0;
      const code = await runner.call(['sh', '-c', 'echo a; echo b'], {
        onOutput: () => {
          calls++;
          throw new Error('callback broke');
        },
      });
      expect(code).to.equal(0);
      expect(calls).to.equal(2);
    });

    it('writes input to stdin with a newline added, and passes cwd and env', async () => {
      const runner = new CancellableSubprocess();
      const out = collector();
      await runner.call(['sh', '-c', 'read line; echo "$line|$PWD|$GREETING"'], {
        input: 'from stdin',
        cwd: '/tmp',
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', GREETING: 'hi' },
        onOutput: out.onOutput,
      });
      expect(out.lines).to.deep.equal([['stdout', 'from stdin|/tmp|hi']]);
    });

    it('does not hang on a descendant that keeps the output pipe open after the command exits', async () => {
      const runner = new CancellableSubprocess({ pipeGraceMs: 100 });
      const out = collector();
      const started = Date.now();
      const code = await runner.call(['sh', '-c', 'sleep 30 & echo pid=$!'], { onOutput: out.onOutput });
      leftovers.push(...out.pids);
      expect(code).to.equal(0);
      expect(Date.now() - started).to.be.lessThan(5_000);
      expect(out.pids).to.have.length(1);
    });

    it('runs one process at a time: a second call rejects with a BusyError', async () => {
      const runner = new CancellableSubprocess();
      const first = runner.call(['sleep', '0.2']);
      const second = await runner.call(['true']).catch((e: unknown) => e);
      expect(second).to.have.property('code', 'ERR_BUSY');
      expect(await first).to.equal(0);
    });

    it('terminates the process when the call signal aborts, rejects with the reason, and sets no sticky flag', async () => {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 2_000 });
      const controller = new AbortController();
      const call = runner.call(['sleep', '30'], { signal: controller.signal });
      await waitUntil(() => runner.pid !== null, 5_000, 'spawn');
      const pid = runner.pid as number;
      const reason = new Error('caller gave up');
      controller.abort(reason);
      expect(await call.catch((e: unknown) => e)).to.equal(reason);
      expect(isAlive(pid)).to.equal(false);
      expect(runner.isCancelled).to.equal(false);
    });

    it('rejects bad input with typed errors and spawns nothing', async () => {
      const runner = new CancellableSubprocess();
      const codeOf = (p: Promise<unknown>) =>
        p.then(
          () => 'resolved',
          (e: { code?: string }) => e.code,
        );
      expect(await codeOf(runner.call([]))).to.equal('ERR_INVALID_ARG_VALUE');
      expect(await codeOf(runner.call('ls' as never))).to.equal('ERR_INVALID_ARG_TYPE');
      expect(await codeOf(runner.call(['ls', 3 as never]))).to.equal('ERR_INVALID_ARG_TYPE');
      expect(await codeOf(runner.call(['']))).to.equal('ERR_INVALID_ARG_VALUE');
      expect(await codeOf(runner.call(['true'], { onOutput: 'x' as never }))).to.equal('ERR_INVALID_ARG_TYPE');
      expect(await codeOf(runner.call(['true'], { input: 5 as never }))).to.equal('ERR_INVALID_ARG_TYPE');
      expect(runner.actor.getSnapshot().value).to.equal('idle');
      expect(() => new CancellableSubprocess({ terminateTimeoutMs: -1 }))
        .to.throw(RangeError)
        .with.property('code', 'ERR_OUT_OF_RANGE');
    });
  });

  describe('cancel()', () => {
    /** A runner whose child ignores SIGTERM, with a 10 s grace before SIGKILL. */
    async function startStubborn() {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 10_000 });
      const out = collector();
      // Wait for the shell to say its trap is in place: a SIGTERM that lands before
      // `trap` runs kills the shell, and the test would see -15 instead of -9.
      const call = runner.call(['sh', '-c', 'trap "" TERM; echo ready; sleep 60'], { onOutput: out.onOutput });
      await waitUntil(() => out.lines.some(([, line]) => line === 'ready'), 5_000, 'the trap');
      return { runner, call };
    }

    it('sets the sticky flag even with nothing running; call() then refuses without spawning', async () => {
      const runner = new CancellableSubprocess();
      await runner.cancel();
      expect(runner.isCancelled).to.equal(true);
      const error = await runner.call(['true']).catch((e: unknown) => e);
      expect(error).to.be.instanceOf(CancelledError).with.property('code', 'ERR_CANCELLED');
      expect(runner.actor.getSnapshot().value).to.equal('idle');
      runner.resetIsCancelled();
      expect(await runner.call(['true'])).to.equal(0);
    });

    it('stops a process with SIGTERM when it obeys, and resolves once it is gone', async () => {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 5_000 });
      const seen = states(runner);
      const call = runner.call(['sleep', '30']);
      await waitUntil(() => runner.pid !== null, 5_000, 'spawn');
      const pid = runner.pid as number;
      await runner.cancel();
      expect(isAlive(pid)).to.equal(false);
      expect(await call).to.equal(-15);
      expect(seen).to.include('{"cancelling":"terminating"}');
      expect(seen).not.to.include('{"cancelling":"killing"}');
      expect(runner.actor.getSnapshot().context.outcome).to.equal('cancelled');
      expect(logged('info', /Terminating sleep 30/)).to.have.length(1);
    });

    it('kills the whole tree when the child ignores SIGTERM and has started a grandchild', async () => {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 300 });
      const seen = states(runner);
      const out = collector();
      const call = runner.call(['sh', '-c', 'trap "" TERM; echo pid=$$; sleep 60 & echo pid=$!; wait'], {
        onOutput: out.onOutput,
      });
      await waitUntil(() => out.pids.length === 2, 5_000, 'both pids');
      leftovers.push(...out.pids);
      await runner.cancel();
      for (const pid of out.pids) expect(isAlive(pid), `pid ${pid}`).to.equal(false);
      expect(await call).to.equal(-9);
      expect(seen).to.include('{"cancelling":"killing"}');
    });

    it('kills what a child that obeyed SIGTERM left behind', async () => {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 5_000 });
      const out = collector();
      const call = runner.call(['sh', '-c', 'trap "exit 0" TERM; sleep 60 & echo pid=$!; wait'], { onOutput: out.onOutput });
      await waitUntil(() => out.pids.length === 1, 5_000, 'grandchild pid');
      leftovers.push(...out.pids);
      await runner.cancel();
      expect(isAlive(out.pids[0] as number)).to.equal(false);
      expect(await call).to.equal(0);
    });

    it('kills a descendant that left the process group (setsid) too', async () => {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 200 });
      const out = collector();
      const call = runner.call(['sh', '-c', 'trap "" TERM; setsid sleep 60 & echo pid=$!; wait'], { onOutput: out.onOutput });
      await waitUntil(() => out.pids.length === 1, 5_000, 'escaped pid');
      leftovers.push(...out.pids);
      await waitUntil(() => isAlive(out.pids[0] as number), 5_000, 'setsid child');
      await runner.cancel();
      expect(isAlive(out.pids[0] as number)).to.equal(false);
      await call;
    });

    it('kills a double-forked setsid daemon, which left both the process group and the tree', async () => {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 200 });
      const out = collector();
      // The middle shell exits at once: the daemon is reparented away from the call's tree, in a session of its own.
      const call = runner.call(['sh', '-c', 'setsid sh -c "sleep 60 & echo pid=\\$!" ; sleep 60'], { onOutput: out.onOutput });
      await waitUntil(() => out.pids.length === 1, 5_000, 'daemon pid');
      const daemon = out.pids[0] as number;
      leftovers.push(daemon);
      await waitUntil(() => isAlive(daemon), 5_000, 'the daemon');
      // The daemon's pid is printed before its middle shell exits: wait for the reparenting, which is what this test is about.
      await waitUntil(() => !listDescendants(process.pid).includes(daemon), 5_000, 'the daemon to leave our tree');
      await runner.cancel();
      expect(isAlive(daemon)).to.equal(false);
      await call;
    });

    it('cannot find a double-forked daemon that also cleared its environment (documented escape)', async () => {
      const runner = new CancellableSubprocess({ terminateTimeoutMs: 200 });
      const out = collector();
      const call = runner.call(['sh', '-c', 'setsid env -i /bin/sh -c "sleep 60 & echo pid=\\$!" ; sleep 60'], { onOutput: out.onOutput });
      await waitUntil(() => out.pids.length === 1, 5_000, 'daemon pid');
      const daemon = out.pids[0] as number;
      leftovers.push(daemon);
      // Its pid is printed before its middle shell exits: until then it is still in our tree,
      // where a cancel finds it. The escape is what happens after the reparenting.
      await waitUntil(() => !listDescendants(process.pid).includes(daemon), 5_000, 'the daemon to leave our tree');
      await runner.cancel();
      await call;
      expect(isAlive(daemon), 'it escapes, as the README says').to.equal(true);
      process.kill(daemon, 'SIGKILL');
    });

    it('with { kill: true } does not wait for SIGTERM to work', async () => {
      const { runner, call } = await startStubborn();
      const started = Date.now();
      await runner.cancel({ kill: true });
      expect(Date.now() - started).to.be.lessThan(5_000);
      expect(await call).to.equal(-9);
    });

    it('a second cancel({ kill: true }) escalates a cancel that is still waiting', async () => {
      const { runner, call } = await startStubborn();
      const started = Date.now();
      const first = runner.cancel();
      await new Promise((r) => setTimeout(r, 50));
      await runner.cancel({ kill: true });
      await first;
      expect(Date.now() - started).to.be.lessThan(5_000);
      expect(await call).to.equal(-9);
    });
  });
});
