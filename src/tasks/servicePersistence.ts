/**
 * How `durable(serviceLogic, …)` saves and restores a service: its state, how many times
 * `main` was started and how the last one ended, and its task group child as the group's own
 * adapter saves it (its tasks by registry name). `main` itself comes from the new
 * incarnation's input. A `main` that was running when the process ended:
 *
 * - is started again, as part of the restore and before any command, when it is marked
 *   `idempotent()` (or `onInterrupted: 'retry'`);
 * - else the service ends `done.interrupted` (`ERR_INTERRUPTED`): its `done` goes to the
 *   parent and to the listeners once. A `start` runs it again.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { AnyActorRef, AnyActorScope, AnyStateMachine, EventObject, Snapshot } from 'xstate';
import type { ErrorData } from '../../machines/protocol.ts';
import type { ServiceContext, ServiceReply } from '../../machines/service.machine.ts';
import type { TaskOutcome } from '../../machines/taskGroup.machine.ts';
import {
  isIdempotent,
  type InterruptedPolicy,
  type InterruptedWork,
  type PersistenceAdapter,
  type Revived,
  notSavedBy,
  tellRevived,
} from '../runtime/persistence.ts';

type State = 'idle' | 'scheduled' | 'running' | 'cancelling' | 'done';

/** What is saved of a service: plain JSON. */
interface SavedService {
  readonly logic: 'statesmith.service';
  readonly format: 1;
  readonly state: State;
  /** In `done`: which end. */
  readonly doneAs: TaskOutcome | null;
  readonly starts: number;
  readonly outcome: TaskOutcome | null;
  readonly error: ErrorData | null;
  /** The task group child, as its adapter saves it. */
  readonly group: unknown;
}

type ServiceSnapshot = Snapshot<unknown> & { value: unknown; context: ServiceContext; children: Record<string, AnyActorRef> };

function stateOf(value: unknown): { state: State; doneAs: TaskOutcome | null } {
  if (value === 'idle' || value === 'scheduled' || value === 'running' || value === 'cancelling') return { state: value, doneAs: null };
  const done = (value as { done?: unknown } | null)?.done;
  return { state: 'done', doneAs: typeof done === 'string' ? (done as TaskOutcome) : 'completed' };
}

function isSaved(saved: unknown): saved is SavedService {
  const s = saved as Partial<SavedService> | null;
  return typeof s === 'object' && s !== null && s.logic === 'statesmith.service' && s.format === 1 && typeof s.starts === 'number';
}

/** The service's adapter. `machine` is `serviceLogic`; `group` is its task group child's adapter. */
export function servicePersistence(machine: AnyStateMachine, group: PersistenceAdapter): PersistenceAdapter {
  return {
    persist(snapshot: Snapshot<unknown>): SavedService {
      const { value, context, children } = snapshot as ServiceSnapshot;
      const { state, doneAs } = stateOf(value);
      const child = children.taskGroup;
      return {
        logic: 'statesmith.service',
        format: 1,
        state,
        doneAs,
        starts: context.starts,
        outcome: context.outcome,
        error: context.error,
        group: child === undefined ? null : group.persist(child.getSnapshot() as Snapshot<unknown>),
      };
    },
    revive(saved: unknown, fresh: Snapshot<unknown>, policy: InterruptedPolicy): Revived {
      if (!isSaved(saved)) {
        throw notSavedBy("a service's", saved);
      }
      const { context, children } = fresh as ServiceSnapshot;
      const interrupted: InterruptedWork[] = [];
      const first: EventObject[] = [];
      // The group child: its table is restored in place, and its re-runs wait in its mailbox until it starts (with the service, before any command).
      const child = children.taskGroup;
      let groupReport: ((scope: AnyActorScope) => void) | undefined;
      if (child !== undefined && saved.group !== null && saved.group !== undefined) {
        const revived = group.revive(saved.group, child.getSnapshot() as Snapshot<unknown>, policy);
        for (const event of revived.first) child.send(event);
        interrupted.push(...revived.interrupted);
        groupReport = revived.report;
      }
      let value: unknown = saved.state === 'done' ? { done: saved.doneAs ?? 'completed' } : 'idle';
      let restored: ServiceContext = { ...context, starts: saved.starts, outcome: saved.outcome, error: saved.error, main: null };
      let told: ServiceReply | undefined;
      if (saved.state === 'scheduled' || saved.state === 'running' || saved.state === 'cancelling') {
        const what = `the main of ${context.name} (start ${saved.starts})`;
        const again = saved.state !== 'cancelling' && (isIdempotent(context.options.main) || policy === 'retry');
        if (again) {
          value = 'idle';
          first.push({ type: 'statesmith.service.start' });
          interrupted.push({ what, rerun: true });
        } else {
          const why = saved.state === 'cancelling' ? 'it was being cancelled' : 'it is not marked idempotent()';
          const message = `${what} was running when its process ended; it is not run again: ${why}`;
          const error: ErrorData = { name: 'DurableError', code: 'ERR_INTERRUPTED', message };
          value = { done: 'interrupted' };
          restored = { ...restored, outcome: 'interrupted', error };
          told = { type: 'statesmith.service.done', outcome: 'interrupted', error };
          interrupted.push({ what: message, rerun: false });
        }
      }
      const snapshot = { ...machine.resolveState({ value: value as never, context: restored as never }), children } as unknown as Snapshot<unknown>;
      return {
        snapshot,
        interrupted,
        first,
        report: (scope: AnyActorScope) => {
          groupReport?.(scope);
          if (told === undefined) return;
          tellRevived(scope, told);
        },
      };
    },
  };
}
