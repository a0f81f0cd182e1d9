import { expect } from 'chai';
import { WorkerThread } from '../../src/index.ts';
import { rejection } from '../support/async.ts';
import { logged } from '../support/logs.ts';

const evalWorker = (code: string, name?: string): WorkerThread => new WorkerThread(code, name === undefined ? { eval: true } : { eval: true, name });

const customError = `
  class VolumeError extends Error {
    constructor(message, volume) { super(message); this.name = 'VolumeError'; this.code = 'E_VOLUME'; this.volume = volume; }
  }
  function deleteVolume() { throw new VolumeError('volume is busy', { id: 'vol-7', attempts: 3 }); }
  deleteVolume();
`;

describe('WorkerThread', () => {
  it('re-raises the worker error from join() with its name, message, stack and own fields, on every call', async () => {
    const worker = evalWorker(customError, 'deleter').start();
    const first = await rejection(worker.join());
    expect(first).to.be.instanceOf(Error);
    expect(first).to.include({ name: 'VolumeError', message: 'volume is busy', code: 'E_VOLUME' });
    expect((first as { volume: unknown }).volume).to.deep.equal({ id: 'vol-7', attempts: 3 });
    expect((first as Error).stack).to.match(/deleteVolume/);
    expect(await rejection(worker.join())).to.equal(first);
    expect(worker.error).to.equal(first);
    expect(worker.isAlive).to.equal(false);
    expect(worker.exitCode).to.equal(1);
  });

  it('logs the error when it arrives, whether or not anyone joins', async () => {
    const worker = evalWorker("throw new Error('unwatched')", 'lonely').start();
    await new Promise<void>((resolve) => worker.worker?.once('exit', () => resolve()));
    const lines = logged('error', /exception in worker lonely/);
    expect(lines).to.have.length(1);
    expect(lines[0]?.fields?.['error']).to.have.property('message', 'unwatched');
    await rejection(worker.join());
  });

  it('re-raises a thrown non-Error value as it was thrown', async () => {
    const worker = evalWorker("throw 'plain string'").start();
    expect(await rejection(worker.join())).to.equal('plain string');
  });

  it('treats process.exit(n) as an ending, not a failure: join() returns and exitCode tells', async () => {
    const worker = evalWorker('process.exit(3)').start();
    await worker.join();
    expect(worker.exitCode).to.equal(3);
    expect(worker.error).to.equal(undefined);
  });

  it('returns from join(timeoutMs) with isAlive still true while the worker runs on', async () => {
    const worker = evalWorker('Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10000)').start();
    expect(worker.isAlive).to.equal(true);
    await worker.join(30);
    expect(worker.isAlive).to.equal(true);
    await worker.terminate();
    expect(worker.isAlive).to.equal(false);
    await worker.join();
  });

  it('rejects join() with signal.reason when aborted, leaving the worker running', async () => {
    const worker = evalWorker('Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10000)').start();
    const controller = new AbortController();
    const joining = worker.join(undefined, { signal: controller.signal });
    controller.abort('give up');
    expect(await rejection(joining)).to.equal('give up');
    expect(worker.isAlive).to.equal(true);
    await worker.terminate();
  });

  it('refuses join() before start() and a second start()', async () => {
    const worker = evalWorker('0', 'idle');
    expect(worker.isAlive).to.equal(false);
    const early = await rejection(worker.join());
    expect(early).to.have.property('code', 'ERR_INVALID_STATE');
    expect(early).to.have.property('message', 'cannot join idle before it is started');
    expect(worker.start()).to.equal(worker);
    expect(() => worker.start())
      .to.throw(/already started/)
      .with.property('code', 'ERR_INVALID_STATE');
    await worker.join();
    expect(worker.exitCode).to.equal(0);
  });

  it('rejects bad input with typed errors', async () => {
    expect(() => new WorkerThread(42 as never))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    expect(() => new WorkerThread('0', 'eval' as never))
      .to.throw()
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    const worker = evalWorker('0').start();
    expect(await rejection(worker.join(-1))).to.have.property('code', 'ERR_OUT_OF_RANGE');
    expect(await rejection(worker.join(10, { signal: {} as AbortSignal }))).to.have.property('code', 'ERR_INVALID_ARG_TYPE');
    await worker.join();
  });
});
