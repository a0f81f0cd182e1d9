/**
 * frequenz's `cancel_and_await`, without its two ways of losing an error.
 *
 * @module
 */
import { ArgumentTypeError } from '../errors.ts';
import { boundedWait, waitOptions, type WaitOptions } from '../runtime/deferred.ts';
import { TaskRecord, type Task } from './Task.ts';

/**
 * Cancels `task` and waits until it has ended. Its cancellation is hidden; any other
 * outcome is not: if the task fails (while cleaning up, or had already failed before the
 * call) its error is thrown, and a task that caught the cancellation and returned counts
 * as done. If the caller's own `signal` aborts while waiting, this rejects with that
 * reason (Python swallowed the caller's cancellation), and the task is left to finish
 * its cleanup.
 *
 * @example
 * ```ts
 * import { TaskGroup, cancelAndAwait } from 'statesmith';
 * import { setTimeout as sleep } from 'node:timers/promises';
 * const group = new TaskGroup();
 * const poller = group.createTask((signal) => sleep(60_000, undefined, { signal }));
 * await cancelAndAwait(poller);
 * console.log(poller.cancelled); // true
 * ```
 */
export async function cancelAndAwait(task: Task<unknown>, options?: WaitOptions): Promise<void> {
  if (!(task instanceof TaskRecord)) throw new ArgumentTypeError('task', 'a Task from a TaskGroup or service', task);
  const bounds = waitOptions('options', options);
  task.cancel();
  await boundedWait(task.whenDone(), bounds, task.clock, `cancelled task ${task.name} finishing`);
  if (task.cancelled) return;
  // Completed (perhaps by catching the cancellation) or failed: result() returns or throws.
  task.result();
}
