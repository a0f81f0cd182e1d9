/**
 * `subprocessLogic` as an actor: driven by data commands with real processes, answering
 * every command, its time limits on the actor system's clock.
 */
import { expect } from 'chai';
import { createActor, SimulatedClock, type AnyActorRef } from 'xstate';
import { subprocessLogic, type SubprocessReply } from '../../src/index.ts';
import { isAlive } from '../../src/subprocess/processTree.ts';
import { heard as heardAll, waitUntil } from '../support/async.ts';

const heard = (actor: Parameters<typeof heardAll>[0]): Reply[] => heardAll<Reply>(actor);

type Reply = SubprocessReply & Record<string, unknown>;

describe('subprocessLogic', function () {
  this.timeout(20_000);

  it('runs a call by command and answers started, then exited with the code', async () => {
    const runner = createActor(subprocessLogic, { input: { name: 'cmd' } }).start();
    const replies = heard(runner);
    runner.send({ type: 'statesmith.subprocess.call', argv: ['sh', '-c', 'exit 3'] });
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.subprocess.exited'), 5_000, 'exited');
    expect(replies[0]).to.include({ type: 'statesmith.subprocess.started', call: 1 });
    expect(replies.at(-1)).to.deep.equal({ type: 'statesmith.subprocess.exited', call: 1, outcome: 'completed', exitCode: 3, signal: null, stopReason: null });
    expect(runner.getSnapshot().value).to.equal('done');
    for (const reply of replies) expect(JSON.parse(JSON.stringify(reply))).to.deep.equal(reply);
    runner.stop();
  });

  it('answers every command it cannot take with statesmith.rejected and changes nothing', async () => {
    const runner = createActor(subprocessLogic, { input: { name: 'busy' } }).start();
    const replies = heard(runner);
    runner.send({ type: 'statesmith.subprocess.call', argv: ['sleep', '30'] });
    await waitUntil(() => runner.getSnapshot().value === 'running', 5_000, 'running');
    const before = runner.getSnapshot().context;
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ type: 'statesmith.subprocess.call', argv: ['true'] }, 'ERR_BUSY'],
      [{ type: 'statesmith.subprocess.call', argv: 'ls -l' }, 'ERR_INVALID_ARG_TYPE'],
      [{ type: 'statesmith.subprocess.call', argv: ['true'], shell: true }, 'ERR_UNKNOWN_OPTION'],
      [{ type: 'statesmith.subprocess.call', argv: ['true'], timeoutMs: -1 }, 'ERR_OUT_OF_RANGE'],
      [{ type: 'statesmith.subprocess.call', argv: ['true'], env: { A: 1 } }, 'ERR_INVALID_ARG_TYPE'],
      [{ type: 'statesmith.subprocess.cancel', kill: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
      [{ type: 'statesmith.subprocess.terminate', call: 99 }, 'ERR_INVALID_STATE'],
    ];
    for (const [command, code] of bad) {
      const count = replies.length;
      runner.send(command as never);
      expect(replies.length, JSON.stringify(command)).to.equal(count + 1);
      expect(replies.at(-1), JSON.stringify(command)).to.include({ type: 'statesmith.rejected', code, state: 'running' });
    }
    // An end that did not come from the call's own process child changes nothing.
    runner.send({ type: 'statesmith.subprocess.ended', call: 1, exitCode: 0, signal: null } as never);
    expect(runner.getSnapshot().value).to.equal('running');
    expect(runner.getSnapshot().context).to.deep.equal(before);
    runner.send({ type: 'statesmith.subprocess.cancel', kill: true });
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.subprocess.cancelled'), 5_000, 'cancelled');
    expect(runner.getSnapshot().context).to.include({ cancelled: true, outcome: 'cancelled', stopReason: 'cancel' });
    runner.send({ type: 'statesmith.subprocess.call', argv: ['true'] });
    expect(replies.at(-1)).to.include({ type: 'statesmith.rejected', code: 'ERR_CANCELLED' });
    runner.send({ type: 'statesmith.subprocess.resetCancelled' });
    expect(replies.at(-1)).to.deep.equal({ type: 'statesmith.subprocess.rearmed' });
    runner.stop();
  });

  it('escalates to SIGKILL when the terminate timeout passes on the system clock (a SimulatedClock here)', async () => {
    const clock = new SimulatedClock();
    const runner = createActor(subprocessLogic, { input: { name: 'stubborn', terminateTimeoutMs: 60_000 }, clock }).start();
    const replies = heard(runner);
    runner.send({ type: 'statesmith.subprocess.call', argv: ['sh', '-c', 'trap "" TERM; while :; do sleep 0.05; done'] });
    await waitUntil(() => runner.getSnapshot().value === 'running', 5_000, 'running');
    const pid = runner.getSnapshot().context.pid as number;
    runner.send({ type: 'statesmith.subprocess.cancel' });
    expect(runner.getSnapshot().value).to.deep.equal({ cancelling: 'terminating' });
    clock.increment(59_999);
    expect(runner.getSnapshot().value).to.deep.equal({ cancelling: 'terminating' });
    clock.increment(1);
    expect(runner.getSnapshot().value).to.deep.equal({ cancelling: 'killing' });
    await waitUntil(() => replies.some((r) => r.type === 'statesmith.subprocess.exited'), 5_000, 'exited');
    expect(isAlive(pid)).to.equal(false);
    expect(replies.find((r) => r.type === 'statesmith.subprocess.exited')).to.include({ outcome: 'cancelled', exitCode: -9, stopReason: 'cancel' });
    runner.stop();
  });

  it('never escalates an infinite terminate timeout, however far the clock moves (no 1 ms clamp)', async () => {
    const clock = new SimulatedClock();
    const runner = createActor(subprocessLogic, { input: { name: 'patient', terminateTimeoutMs: Infinity }, clock }).start();
    runner.send({ type: 'statesmith.subprocess.call', argv: ['sh', '-c', 'trap "" TERM; while :; do sleep 0.05; done'] });
    await waitUntil(() => runner.getSnapshot().value === 'running', 5_000, 'running');
    runner.send({ type: 'statesmith.subprocess.terminate', call: 1 });
    for (let i = 0; i < 5; i++) clock.increment(2 ** 31);
    expect(runner.getSnapshot().value).to.deep.equal({ cancelling: 'terminating' });
    runner.send({ type: 'statesmith.subprocess.terminate', call: 1, kill: true });
    await waitUntil(() => runner.getSnapshot().value === 'done', 5_000, 'done');
    expect(runner.getSnapshot().context).to.include({ outcome: 'cancelled', stopReason: 'abort', cancelled: false });
    runner.stop();
  });

  it('a call time limit terminates the process (stopReason timeout)', async () => {
    const clock = new SimulatedClock();
    const runner = createActor(subprocessLogic, { input: { name: 'slow' }, clock }).start();
    const replies = heard(runner);
    runner.send({ type: 'statesmith.subprocess.call', argv: ['sleep', '30'], timeoutMs: 1_000 });
    await waitUntil(() => runner.getSnapshot().value === 'running', 5_000, 'running');
    clock.increment(1_000);
    await waitUntil(() => runner.getSnapshot().value === 'done', 5_000, 'done');
    expect(replies.at(-1)).to.include({ type: 'statesmith.subprocess.exited', outcome: 'cancelled', exitCode: -15, stopReason: 'timeout' });
    runner.stop();
  });

  it('kills its process tree when the actor is stopped mid-call: nothing outlives it', async () => {
    const runner = createActor(subprocessLogic, { input: { name: 'orphan' } }).start();
    runner.send({ type: 'statesmith.subprocess.call', argv: ['sleep', '30'] });
    await waitUntil(() => runner.getSnapshot().value === 'running', 5_000, 'running');
    const pid = runner.getSnapshot().context.pid as number;
    (runner as AnyActorRef).stop();
    await waitUntil(() => !isAlive(pid), 5_000, 'killed');
  });
});
