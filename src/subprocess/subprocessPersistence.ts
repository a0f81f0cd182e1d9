/**
 * How `durable(subprocessLogic, …)` saves and restores a subprocess runner: its sticky
 * cancel flag, its call counter, and the last call as data (the command line, the process
 * id, how it ended). A call's `onOutput` and `caller` stay in the process.
 *
 * A call that was running when the process ended is never run again (a command line may do
 * anything twice): the runner comes back `done` with outcome `interrupted`
 * (`ERR_INTERRUPTED`), and its `exited` goes to the parent and the listeners once. The
 * process itself, if it outlived its runner, was ended by `durable()` before the restore
 * (it carries the actor's owner token).
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorRef, AnyActorScope, AnyStateMachine, Snapshot } from 'xstate';
import type { ErrorData } from '../../machines/protocol.ts';
import type { SubprocessContext, SubprocessOutcome, SubprocessReply, SubprocessStopReason } from '../../machines/subprocess.machine.ts';
import { notSavedBy, tellRevived, type InterruptedPolicy, type PersistenceAdapter, type Revived } from '../runtime/persistence.ts';

/** What is saved of a subprocess runner: plain JSON. */
interface SavedSubprocess {
  readonly logic: 'statesmith.subprocess';
  readonly format: 1;
  /** `busy`: a call was scheduled, running or being stopped. */
  readonly state: 'idle' | 'busy' | 'done';
  readonly cancelled: boolean;
  readonly call: number;
  readonly argv: readonly string[] | null;
  readonly pid: number | null;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly outcome: SubprocessOutcome | null;
  readonly error: ErrorData | null;
  readonly stopReason: SubprocessStopReason | null;
}

type RunnerSnapshot = Snapshot<unknown> & { value: unknown; context: SubprocessContext; children: Record<string, AnyActorRef> };

function isSaved(saved: unknown): saved is SavedSubprocess {
  const s = saved as Partial<SavedSubprocess> | null;
  return typeof s === 'object' && s !== null && s.logic === 'statesmith.subprocess' && s.format === 1 && typeof s.call === 'number';
}

function persist(snapshot: Snapshot<unknown>): SavedSubprocess {
  const { value, context } = snapshot as RunnerSnapshot;
  return {
    logic: 'statesmith.subprocess',
    format: 1,
    state: value === 'idle' ? 'idle' : value === 'done' ? 'done' : 'busy',
    cancelled: context.cancelled,
    call: context.call,
    argv: context.argv,
    pid: context.pid,
    exitCode: context.exitCode,
    signal: context.signal,
    outcome: context.outcome,
    error: context.error,
    stopReason: context.stopReason,
  };
}

/** The runner's adapter. `machine` is `subprocessLogic`. */
export function subprocessPersistence(machine: AnyStateMachine): PersistenceAdapter {
  return {
    persist,
    revive(saved: unknown, fresh: Snapshot<unknown>, _policy: InterruptedPolicy): Revived {
      if (!isSaved(saved)) {
        throw notSavedBy("a subprocess runner's", saved);
      }
      const { context, children } = fresh as RunnerSnapshot;
      let restored: SubprocessContext = {
        ...context,
        cancelled: saved.cancelled,
        call: saved.call,
        argv: saved.argv,
        pid: saved.pid,
        exitCode: saved.exitCode,
        signal: saved.signal,
        outcome: saved.outcome,
        error: saved.error,
        stopReason: saved.stopReason,
      };
      let told: SubprocessReply | undefined;
      const interrupted: Array<{ what: string; rerun: boolean }> = [];
      if (saved.state === 'busy') {
        const what = `call ${saved.call} of ${context.name} (${JSON.stringify(saved.argv ?? [])}${saved.pid === null ? '' : `, pid ${saved.pid}`})`;
        const message = `${what} was running when its process ended; a command line is never run again`;
        const error: ErrorData = { name: 'DurableError', code: 'ERR_INTERRUPTED', message };
        restored = { ...restored, outcome: 'interrupted', error, exitCode: null, signal: null, stopReason: null };
        told = { type: 'statesmith.subprocess.exited', call: saved.call, outcome: 'interrupted', exitCode: null, signal: null, stopReason: null, error };
        interrupted.push({ what: message, rerun: false });
      }
      const value = saved.state === 'idle' ? 'idle' : 'done';
      const snapshot = { ...machine.resolveState({ value: value as never, context: restored as never }), children } as unknown as Snapshot<unknown>;
      return {
        snapshot,
        interrupted,
        first: [],
        report: (scope: AnyActorScope) => {
          if (told === undefined) return;
          tellRevived(scope, told);
        },
      };
    },
  };
}
