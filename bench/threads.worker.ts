/**
 * The worker side of the two-thread benchmarks: on each message it runs `n` iterations
 * of one mode against the shared cells it was started with, then posts 'done'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SharedEvent, SharedMutex } from '../src/index.ts';

interface Job {
  readonly mode: 'bare' | 'event' | 'bare-lock' | 'lock';
  readonly role: 'ping' | 'pong';
  readonly n: number;
}

type Cells = typeof import('./threads.bench.ts').CELLS;
const { buffer, CELLS } = workerData as { buffer: SharedArrayBuffer; CELLS: Cells };
const c = new Int32Array(buffer);
const pingEvent = SharedEvent.from(buffer, CELLS.eventA);
const pongEvent = SharedEvent.from(buffer, CELLS.eventB);
const lock = SharedMutex.from(buffer, CELLS.lock);

function run({ mode, role, n }: Job): void {
  const ping = role === 'ping';
  for (let i = 0; i < n; i++) {
    switch (mode) {
      case 'bare':
        // The raw baseline: each side stores, notifies, and sleeps on the other cell until
        // it holds 1. The loop is needed, not caution: a notify can arrive late, after the
        // other side saw the store, reset the cell and went to sleep for the next turn.
        if (ping) {
          Atomics.store(c, CELLS.bareA, 1);
          Atomics.notify(c, CELLS.bareA);
          while (Atomics.load(c, CELLS.bareB) === 0) Atomics.wait(c, CELLS.bareB, 0);
          Atomics.store(c, CELLS.bareB, 0);
        } else {
          while (Atomics.load(c, CELLS.bareA) === 0) Atomics.wait(c, CELLS.bareA, 0);
          Atomics.store(c, CELLS.bareA, 0);
          Atomics.store(c, CELLS.bareB, 1);
          Atomics.notify(c, CELLS.bareB);
        }
        break;
      case 'event':
        if (ping) {
          pingEvent.set();
          pongEvent.waitSync();
          pongEvent.clear();
        } else {
          pingEvent.waitSync();
          pingEvent.clear();
          pongEvent.set();
        }
        break;
      case 'bare-lock':
        // The raw baseline lock: compare-and-swap, sleep while held, notify one on release.
        while (Atomics.compareExchange(c, CELLS.bareLock, 0, 1) !== 0) Atomics.wait(c, CELLS.bareLock, 1);
        c[CELLS.counter]! += 1;
        Atomics.store(c, CELLS.bareLock, 0);
        Atomics.notify(c, CELLS.bareLock, 1);
        break;
      case 'lock':
        lock.acquireSync();
        c[CELLS.counter]! += 1;
        lock.release();
        break;
    }
  }
}

parentPort?.on('message', (job: Job | 'exit') => {
  if (job === 'exit') {
    parentPort?.close();
    return;
  }
  run(job);
  parentPort?.postMessage('done');
});
