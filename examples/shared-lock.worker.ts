/**
 * The worker half of examples/shared-lock.ts: a scrubber that rewrites the shared volume
 * table under the shared lock, then sets the "scrubbed" event.
 */
import { workerData } from 'node:worker_threads';
import { SharedEvent, SharedMutex } from 'statesmith';

const { lockBuffer, scrubbedBuffer, table, fail } = workerData as {
  lockBuffer: SharedArrayBuffer;
  scrubbedBuffer: SharedArrayBuffer;
  table: SharedArrayBuffer;
  fail: boolean;
};
const lock = SharedMutex.from(lockBuffer);
const scrubbed = SharedEvent.from(scrubbedBuffer);
const sizes = new Int32Array(table);
const nap = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

if (fail) {
  throw Object.assign(new Error('volume table is corrupt'), { code: 'E_CORRUPT', volume: 3 });
}
for (let pass = 0; pass < 5; pass++) {
  // Blocking is fine here: this is a worker, the main event loop keeps turning.
  lock.acquireSync();
  for (let i = 0; i < sizes.length; i++) sizes[i] = (sizes[i] as number) + 1;
  lock.release();
  nap(20);
}
scrubbed.set();
