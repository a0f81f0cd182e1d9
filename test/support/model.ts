/**
 * Model-based tests generated from a machine with `xstate/graph`: one `it` per shortest
 * path (which aims at every transition), each walked on a fresh actor whose state and
 * per-state invariants are checked after every step; then two `it`s asserting that the
 * paths visited every state node and took every transition the machine declares.
 */
import { expect } from 'chai';
import { createActor, createMachine, type AnyMachineSnapshot, type AnyStateMachine, type EventFromLogic, type InputFrom, type SnapshotFrom } from 'xstate';
import { createTestModel, getStateNodes } from 'xstate/graph';

export interface ModelSpec<TMachine extends AnyStateMachine> {
  readonly input: InputFrom<TMachine>;
  /** Every event worth sending from a state (payloads computed from the state). */
  readonly events: (snapshot: SnapshotFrom<TMachine>) => ReadonlyArray<EventFromLogic<TMachine>>;
  /** The parts of a snapshot that make it a distinct model state (leave counters out). */
  readonly serialize: (snapshot: SnapshotFrom<TMachine>) => string;
  /** Checks that must hold in each state, keyed by a state value `matches()` accepts. */
  readonly invariants: Record<string, (snapshot: SnapshotFrom<TMachine>) => void>;
  /**
   * State node ids no event leads to: only a durable restore puts the actor there (pinned by
   * the durable tests). Named here, so every other state must still be visited.
   */
  readonly restoredOnly?: readonly string[];
}

export function describeModel<TMachine extends AnyStateMachine>(title: string, machine: TMachine, spec: ModelSpec<TMachine>): void {
  const model = createTestModel(machine, {
    input: spec.input,
    events: spec.events as never,
    // Fold the incoming transition into the key, so shortest paths aim at every transition.
    serializeState: (snapshot, event, previous) =>
      [spec.serialize(snapshot as SnapshotFrom<TMachine>), event?.type ?? '', previous ? spec.serialize(previous as SnapshotFrom<TMachine>) : ''].join(' | '),
  });
  const paths = model.getShortestPaths();
  const eventTypes = new Set<string>();
  for (const path of paths) for (const step of path.steps) eventTypes.add(step.event.type);

  describe(`${title} (model-based, ${paths.length} paths)`, () => {
    for (const path of paths) {
      it(path.description, async () => {
        const actor = createActor(machine, { input: spec.input } as never).start();
        const checkState = (expected: AnyMachineSnapshot): void => {
          const actual = actor.getSnapshot() as AnyMachineSnapshot;
          expect(actual.value, 'state value').to.deep.equal(expected.value);
          expect(spec.serialize(actual as never), 'model state').to.equal(spec.serialize(expected as never));
          for (const [key, invariant] of Object.entries(spec.invariants)) {
            if (actual.matches(key as never)) invariant(actual as never);
          }
        };
        const events: Record<string, (step: { event: unknown }) => void> = {};
        for (const type of eventTypes) events[type] = (step) => actor.send(step.event as never);
        for (const step of path.steps) {
          if (step.event.type !== 'xstate.init') actor.send(step.event as never);
          checkState(step.state as AnyMachineSnapshot);
        }
        checkState(path.state as AnyMachineSnapshot);
        actor.stop();
      });
    }

    it('visits every state node', () => {
      const visited = new Set<string>();
      for (const path of paths) {
        for (const step of path.steps) for (const node of (step.state as AnyMachineSnapshot)._nodes) visited.add(node.id);
      }
      const all = getStateNodes(machine.root)
        .map((node) => node.id)
        .filter((id) => !(spec.restoredOnly ?? []).includes(id));
      expect(
        all.filter((id) => !visited.has(id)),
        'unvisited states',
      ).to.deep.equal([]);
    });

    it('takes every transition', () => {
      const taken = new Set<string>();
      for (const path of paths) {
        for (let i = 1; i < path.steps.length; i++) {
          const before = path.steps[i - 1]?.state as AnyMachineSnapshot;
          const event = path.steps[i]?.event.type as string;
          for (const node of before._nodes) taken.add(`${node.id} ${event}`);
        }
      }
      const declared: string[] = [];
      for (const node of getStateNodes(machine.root)) {
        for (const type of node.transitions.keys()) if (!type.startsWith('xstate.')) declared.push(`${node.id} ${type}`);
      }
      expect(
        declared.filter((key) => !taken.has(key)),
        'transitions never taken',
      ).to.deep.equal([]);
    });
  });
}

/**
 * The same machine with its invocations turned into plain transitions: `xstate/graph`
 * refuses machines that invoke children, so each invoke's `onDone` and `onError` become
 * transitions on its `xstate.done.actor.<id>` and `xstate.error.actor.<id>` events, which
 * the model then sends itself (every such invoke needs an explicit `id`). Implementations (actions, guards, actors) stay the machine's.
 */
export function invocationsAsEvents<TMachine extends AnyStateMachine>(machine: TMachine): TMachine {
  const strip = (node: Record<string, unknown>): Record<string, unknown> => {
    const copy: Record<string, unknown> = { ...node };
    const invokes = copy['invoke'] === undefined ? [] : ([] as unknown[]).concat(copy['invoke']);
    delete copy['invoke'];
    if (invokes.length > 0) {
      const on: Record<string, unknown> = { ...((copy['on'] as Record<string, unknown> | undefined) ?? {}) };
      for (const invoke of invokes as Array<{ id?: string; onDone?: unknown; onError?: unknown }>) {
        if (invoke.onDone === undefined && invoke.onError === undefined) continue;
        if (invoke.id === undefined) throw new Error('invocationsAsEvents needs an explicit id on every invoke with onDone or onError');
        if (invoke.onDone !== undefined) on[`xstate.done.actor.${invoke.id}`] = invoke.onDone;
        if (invoke.onError !== undefined) on[`xstate.error.actor.${invoke.id}`] = invoke.onError;
      }
      copy['on'] = on;
    }
    const states = copy['states'] as Record<string, Record<string, unknown>> | undefined;
    if (states) copy['states'] = Object.fromEntries(Object.entries(states).map(([key, child]) => [key, strip(child)]));
    return copy;
  };
  return createMachine(strip(machine.config as Record<string, unknown>) as never).provide(machine.implementations as never) as unknown as TMachine;
}

/**
 * The same machine with its delayed transitions turned into plain ones: `xstate/graph`
 * refuses `after`, so each `after: { <delay>: … }` becomes a transition on the event
 * `statesmith.test.after.<delay>`, which the model sends itself. Implementations stay
 * the machine's.
 */
export function delaysAsEvents<TMachine extends AnyStateMachine>(machine: TMachine): TMachine {
  const strip = (node: Record<string, unknown>): Record<string, unknown> => {
    const copy: Record<string, unknown> = { ...node };
    const after = copy['after'] as Record<string, unknown> | undefined;
    delete copy['after'];
    if (after !== undefined) {
      const on: Record<string, unknown> = { ...((copy['on'] as Record<string, unknown> | undefined) ?? {}) };
      for (const [delay, transitions] of Object.entries(after)) on[`statesmith.test.after.${delay}`] = transitions;
      copy['on'] = on;
    }
    const states = copy['states'] as Record<string, Record<string, unknown>> | undefined;
    if (states) copy['states'] = Object.fromEntries(Object.entries(states).map(([key, child]) => [key, strip(child)]));
    return copy;
  };
  return createMachine(strip(machine.config as Record<string, unknown>) as never).provide(machine.implementations as never) as unknown as TMachine;
}
