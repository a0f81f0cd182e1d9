/**
 * A worker thread and the main thread sharing a lock and an event (concurrency_utils).
 *
 * A scrubber worker bumps every entry of a volume table in shared memory, five passes,
 * holding a SharedMutex for each pass; the main thread bumps the same table under the
 * same lock with the non-blocking acquire. When the worker is done it sets a SharedEvent,
 * which the main thread awaits with a stop event beside it, while a heartbeat shows its
 * event loop never stalls. A second worker fails, and join() re-raises its error with
 * its fields. Run: node --conditions=statesmith-source --import tsx examples/shared-lock.ts
 */
import { SharedEvent, SharedMutex, WorkerThread, awaitEventWithStop, setLogger, withSharedLock } from 'statesmith';

const lock = SharedMutex.create();
const scrubbed = SharedEvent.create();
const stop = SharedEvent.create();
const sizes = new Int32Array(new SharedArrayBuffer(4 * 4));
// Running from TypeScript source, workers start through a small tsx bootstrap; a compiled
// program would pass new URL('./shared-lock.worker.js', import.meta.url) directly.
const boot = new URL('./support/tsx-worker.mjs', import.meta.url);
const entry = new URL('./shared-lock.worker.ts', import.meta.url).href;
const scrubber = (name: string, fail: boolean): WorkerThread =>
  new WorkerThread(boot, { name, workerData: { entry, lockBuffer: lock.buffer, scrubbedBuffer: scrubbed.buffer, table: sizes.buffer, fail } });

// Errors from workers are logged when they arrive; print them in one line here.
setLogger({ debug: () => {}, info: () => {}, warn: () => {}, error: (message) => console.log(`log: ${message}`) });

let beats = 0;
const heartbeat = setInterval(() => beats++, 10);
const worker = scrubber('scrubber', false).start();

for (let pass = 0; pass < 5; pass++) {
  await withSharedLock(lock, () => {
    for (let i = 0; i < sizes.length; i++) sizes[i] = (sizes[i] as number) + 1;
  });
  await new Promise((resolve) => setTimeout(resolve, 15));
}
const giveUp = setTimeout(() => stop.set(), 20_000);
const done = await awaitEventWithStop(scrubbed, stop);
clearTimeout(giveUp);
await worker.join();
clearInterval(heartbeat);
console.log(`scrubbed: ${done}, table: [${sizes.join(', ')}] (5 passes each from 2 threads), lock free: ${!lock.locked}`);
console.log(`main event loop beat ${beats > 0 ? 'throughout' : 'never'} the wait`);

const broken = scrubber('broken-scrubber', true).start();
try {
  await broken.join();
} catch (error) {
  const { name, message, code, volume } = error as Error & { code: string; volume: number };
  console.log(`join() re-raised ${name}: ${message} (code ${code}, volume ${volume})`);
}
