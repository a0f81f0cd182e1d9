/**
 * `executorLogic`: the executor machine with its real children, as actor logic that
 * `createActor`, `spawn` and `invoke` accept. The machine holds every bit of state; these
 * children only do the work: take the executor lock, run the task, stop the subprocess,
 * clean up.
 *
 * @module
 */
import { fromCallback, fromPromise } from 'xstate';
import {
  executorMachine,
  kFromTask,
  type ExecutorGateInput,
  type ExecutorInternalEvent,
  type ExecutorLockEvent,
  type ExecutorTaskCommand,
  type ExecutorServices,
  type ExecutorTaskInput,
  type OutcomeParams,
  type WakeParams,
} from '../../machines/executor.machine.ts';
import { errorData } from '../../machines/protocol.ts';
import { CancelledError } from '../errors.ts';
import { runDetached } from '../locks/Mutex.ts';
import { subprocessLogic } from '../subprocess/subprocessLogic.ts';
import { getLogger } from '../logger.ts';

export { errorData } from '../../machines/protocol.ts';

/** Why the task child's pending lock wait is given up: it stopped. */
const CHILD_STOPPED = Object.freeze({ name: 'ChildStopped', message: 'the executor task child stopped' });

/**
 * Takes the executor lock and resolves its release. The acquire starts synchronously in
 * the sender's async context, so a caller that holds the lock (an HA cycle running a task
 * inline) re-enters it.
 */
function takeLock(lock: ExecutorServices['lock'], signal: AbortSignal): Promise<() => void> {
  if (lock === undefined) return Promise.resolve(() => undefined);
  return lock.acquire({ signal }).then((handle) => () => handle.release());
}

function wake(deps: ExecutorServices, name: string, { action, outcome }: WakeParams): void {
  const wakeup = deps.wakeup;
  if (wakeup === undefined) return;
  try {
    if (typeof wakeup === 'function') wakeup();
    else wakeup.wakeup(`${action} ${outcome}`, { executor: name, action, outcome });
  } catch (error) {
    getLogger().error(`${name}: the wake-up function threw`, { error });
  }
}

/**
 * The executor as actor logic: spawn it in your machine, drive it with commands, and hear
 * its replies (see the README's table of executor commands).
 *
 * @example
 * ```ts
 * import { createActor } from 'xstate';
 * import { executorLogic } from 'statesmith';
 * const executor = createActor(executorLogic, {
 *   input: { name: 'volumes', actions: { resize: async (_signal, params) => `resized ${(params as { id: number }).id}` } },
 * }).start();
 * const done = new Promise<{ outcome: string; result?: unknown }>((resolve) => executor.on('statesmith.executor.done', resolve));
 * executor.send({ type: 'statesmith.executor.run', action: 'resize', params: { id: 7 } });
 * const { outcome, result } = await done;
 * console.log(outcome, result); // completed resized 7
 * // A bad command is answered with statesmith.rejected, never thrown:
 * executor.send({ type: 'statesmith.executor.run', action: 'shrink' });
 * console.log(executor.getSnapshot().value); // idle
 * ```
 */
export const executorLogic = executorMachine.provide({
  actors: {
    subprocess: subprocessLogic,
    task: fromCallback<ExecutorTaskCommand, ExecutorTaskInput>(({ input, sendBack, receive }) => {
      const { generation, job, deps } = input;
      const controller = new AbortController();
      /** Aborted when the machine stops this child: a lock wait in progress is given up. */
      const stopped = new AbortController();
      let settled = false;
      /** Takes the executor lock, does `underLock`, and hands the lock's release to the machine. */
      const handOver = (type: ExecutorLockEvent['type'], underLock?: () => Promise<void>): void => {
        takeLock(deps.lock, stopped.signal).then(
          async (release) => {
            if (underLock) await underLock();
            // Stopped while the lock was on its way: nobody will release it but us.
            if (stopped.signal.aborted) release();
            else sendBack({ type, [kFromTask]: true, generation, release } satisfies ExecutorLockEvent);
          },
          () => undefined, // the wait was given up because the child stopped
        );
      };
      const resetCriticalTask = async (): Promise<void> => {
        try {
          const critical = deps.criticalTask?.();
          if (critical) await critical.withLock(() => critical.reset());
        } catch (error) {
          getLogger().error('resetting the critical task failed', { error });
        }
      };
      const settle = (event: Omit<ExecutorInternalEvent, 'type' | 'generation' | typeof kFromTask>): void => {
        settled = true;
        sendBack({ type: 'statesmith.executor.settled', [kFromTask]: true, generation, ...event } satisfies ExecutorInternalEvent);
      };
      const start = (): void => {
        // The function runs as a fresh owner: locks its runner holds (an HA cycle's) are not
        // the task's. Its answer comes back in the runner's own async context, so the
        // cleanup re-enters the executor lock when the runner holds it (run() in a cycle).
        const pending = runDetached(() => {
          try {
            return job.fn(controller.signal, job.params);
          } catch (error) {
            return Promise.reject(error);
          }
        });
        Promise.resolve(pending).then(
          (result) => settle({ outcome: 'completed', returned: true, result }),
          (error: unknown) =>
            settle({
              outcome: error instanceof CancelledError || (controller.signal.aborted && error === controller.signal.reason) ? 'cancelled' : 'failed',
              returned: false,
              error: errorData(error),
              // The thrown value itself stays in-process, for the log's stack.
              result: error,
            }),
        );
      };
      receive((command) => {
        switch (command.type) {
          case 'start':
            start();
            break;
          case 'cancel':
            if (!controller.signal.aborted) controller.abort(new CancelledError(`${input.action} was cancelled`));
            break;
          case 'cleanup':
            handOver('statesmith.executor.cleaned', resetCriticalTask);
            break;
        }
      });
      // Runs synchronously in the sender's async context: a caller that holds the lock re-enters it.
      handOver('statesmith.executor.gate');
      return () => {
        // A shared reason: abort() without one makes a DOMException (a stack capture) per task.
        stopped.abort(CHILD_STOPPED);
        // Stopping the executor while the task runs cancels the task.
        if (!settled && !controller.signal.aborted) controller.abort(new CancelledError(`${input.action} was cancelled: its executor stopped`));
      };
    }),
    stopSubprocess: fromPromise<void, ExecutorGateInput>(async ({ input }) => {
      try {
        await input.deps.cancellable?.cancel();
      } catch (error) {
        getLogger().error('cancelling the subprocess of a task failed', { error });
      }
    }),
  },
  actions: {
    beforeStart: ({ context }) => {
      context.deps.cancellable?.resetIsCancelled();
      // The task may take a critical step now: its critical task shows `scheduled`.
      context.deps.criticalTask?.()?.schedule?.();
    },
    // After the step: XState commits the snapshot once the actions ran, and the woken loop
    // must already see the slot free.
    wake: ({ context }, params) => queueMicrotask(() => wake(context.deps, context.name, params as WakeParams)),
    logCancel: ({ context }, params) => getLogger().info(`Cancelling long running task ${(params as { action: string }).action}`, { executor: context.name }),
    logOutcome: ({ context }, params) => {
      const { action, outcome, error } = params as OutcomeParams;
      if (outcome === 'cancelled' && error !== null) getLogger().info(`Long running task ${action} was cancelled`, { executor: context.name });
      else if (outcome === 'failed') {
        // The thrown value itself, when this process has it, for its stack.
        const thrown = context.result instanceof Error ? context.result : error;
        getLogger().error(`Exception during execution of long running task ${action}`, { executor: context.name, error: thrown });
      }
    },
  },
});
