/** Starting TypeScript worker fixtures under tsx, and sleeping in real time inside one. */
import { WorkerThread, type WorkerThreadOptions } from '../../src/index.ts';

const boot = new URL('../../examples/support/tsx-worker.mjs', import.meta.url);

/** A WorkerThread (not started) running the TypeScript file `entry` with `data` as its `workerData`. */
export function tsWorker(entry: URL, data: Record<string, unknown>, options?: WorkerThreadOptions): WorkerThread {
  return new WorkerThread(boot, { ...options, workerData: { ...data, entry: entry.href } });
}

/** The next message a worker posts, bounded in time. */
export function nextMessage<T = unknown>(thread: WorkerThread, timeoutMs = 10_000): Promise<T> {
  const worker = thread.worker;
  if (!worker) throw new Error('the worker is not started');
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message from ${thread.name} within ${timeoutMs} ms`)), timeoutMs);
    worker.once('message', (message: T) => {
      clearTimeout(timer);
      resolve(message);
    });
  });
}
