/**
 * Python's `ThreadWithException` on `worker_threads`: a worker whose error is re-raised
 * by `join()`.
 *
 * @module
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { systemClock } from '../clock.ts';
import { releaseSharedMutexesOf } from './SharedMutex.ts';
import { ArgumentTypeError, InvalidStateError } from '../errors.ts';
import { getLogger } from '../logger.ts';
import { createDeferred, raceSignal, type Deferred } from '../runtime/deferred.ts';
import { optionalDuration, optionalObject, signalOption } from '../runtime/validate.ts';
import { describeAs } from '../inspect/safeJson.ts';

/** Options of {@link WorkerThread}: Node's `WorkerOptions` and a name for logs and errors. */
export interface WorkerThreadOptions extends WorkerOptions {
  /** Shown in logs and error messages; default `WorkerThread-<n>`. */
  readonly name?: string;
}

let counter = 0;

/** The keys of Node's `WorkerOptions` (Node 20), and ours. */
const WORKER_OPTIONS = [
  'name',
  'argv',
  'env',
  'eval',
  'execArgv',
  'stdin',
  'stdout',
  'stderr',
  'workerData',
  'trackUnmanagedFds',
  'transferList',
  'resourceLimits',
] as (keyof WorkerThreadOptions & string)[];

/**
 * A worker thread with Python's thread shape: nothing runs until `start()`, and `join()`
 * waits for the end and throws the error the worker died of, on every call. The error
 * keeps its `name`, `message`, `stack` and own fields (`code`, custom data) as it
 * crosses threads, though not its class; it is also logged when it arrives, whether or
 * not anyone joins. A worker that calls `process.exit(n)` did not fail: `join()` returns
 * and `exitCode` tells. When the worker exits, every `SharedMutex` it still holds is
 * released (among those this thread made with `create()` or `from()`), with a warning.
 *
 * @example
 * ```ts
 * import { WorkerThread } from 'statesmith';
 * const code = "throw Object.assign(new Error('disk gone'), { code: 'E_DISK' })";
 * const worker = new WorkerThread(code, { eval: true, name: 'scrubber' }).start();
 * try {
 *   await worker.join();
 * } catch (error) {
 *   console.log((error as { code: string }).code, (error as Error).message); // E_DISK disk gone
 * }
 * console.log(worker.isAlive, worker.exitCode); // false 1
 * ```
 */
export class WorkerThread {
  /** The name given in the options, or a generated one. */
  readonly name: string;
  readonly #file: string | URL;
  readonly #options: WorkerOptions;
  #worker: Worker | undefined;
  #exited: Deferred<void> | undefined;
  #exitCode: number | undefined;
  #failed = false;
  #error: unknown;

  /** @param file - the worker's script (a path, a `file:` URL, or code with `eval: true`). */
  constructor(file: string | URL, options?: WorkerThreadOptions) {
    if (typeof file !== 'string' && !(file instanceof URL)) {
      throw new ArgumentTypeError('file', 'a path, a file: URL or (with eval) code', file);
    }
    const { name, ...workerOptions } = optionalObject<WorkerThreadOptions>('options', options, WORKER_OPTIONS);
    this.name = name ?? `WorkerThread-${++counter}`;
    this.#file = file;
    this.#options = workerOptions;
  }

  /** Starts the worker and returns this; a second `start()` throws `InvalidStateError`. */
  start(): this {
    if (this.#worker) throw new InvalidStateError(`${this.name} was already started; a WorkerThread starts once`);
    const worker = new Worker(this.#file, this.#options);
    const exited = createDeferred();
    this.#worker = worker;
    this.#exited = exited;
    worker.on('error', (error: unknown) => {
      // Node emits 'error' once, before 'exit'; keep the first in any case.
      if (!this.#failed) {
        this.#failed = true;
        this.#error = error;
      }
      getLogger().error(`exception in worker ${this.name}`, { error });
    });
    const id = worker.threadId; // -1 once the worker has exited
    worker.once('exit', (code: number) => {
      this.#exitCode = code;
      // A worker that died holding a SharedMutex would leave it taken for good, and the
      // threads waiting in acquireSync() without a timeout asleep: free what it held.
      releaseSharedMutexesOf(id);
      exited.resolve();
    });
    return this;
  }

  /** True from `start()` until the worker has exited. */
  get isAlive(): boolean {
    return this.#exited !== undefined && !this.#exited.settled;
  }

  /** The exit code once the worker has exited (1 when it died of an error). */
  get exitCode(): number | undefined {
    return this.#exitCode;
  }

  /** The error the worker died of, or `undefined`. */
  get error(): unknown {
    return this.#error;
  }

  /** The underlying Node `Worker` after `start()`, for `postMessage` and events. */
  get worker(): Worker | undefined {
    return this.#worker;
  }

  /**
   * Waits until the worker exits, then throws its error if it died of one (the same
   * value on every call). After `timeoutMs` it returns normally with `isAlive` still
   * true, as Python's `join(timeout)`. Rejects with `InvalidStateError` before
   * `start()`, and with `signal.reason` when aborted.
   */
  async join(timeoutMs?: number, options?: { readonly signal?: AbortSignal }): Promise<void> {
    const ms = optionalDuration('timeoutMs', timeoutMs, Infinity);
    const signal = signalOption('options', options);
    const exited = this.#exited;
    if (!exited) throw new InvalidStateError(`cannot join ${this.name} before it is started`);
    if (!exited.settled) {
      let timer: unknown;
      const timedOut = new Promise<void>((resolve) => {
        if (Number.isFinite(ms)) timer = systemClock.setTimeout(resolve, ms);
      });
      try {
        await raceSignal(Promise.race([exited.promise, timedOut]), signal);
      } finally {
        if (timer !== undefined) systemClock.clearTimeout(timer);
      }
    }
    if (this.#failed) throw this.#error;
  }

  /** Stops the worker as soon as possible; resolves once it has exited. */
  async terminate(): Promise<void> {
    if (!this.#worker || !this.#exited) return;
    await this.#worker.terminate();
    await this.#exited.promise;
  }
}

// Kept by reference in a snapshot and shown by name: its insides change.
describeAs(WorkerThread, (worker) => `[WorkerThread ${worker.name}]`);
