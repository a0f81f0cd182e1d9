/**
 * An actor created on demand. Until someone reads `actor`, a `LazyActor` steps its
 * machine's own transition table (worked out by XState, once per state and event type,
 * and shared by every instance), which costs a string per instance instead of an actor
 * (~3.5 KB and ~17 µs to start and drive, measured on Node 20): that is what lets a
 * group hold 100,000 pending tasks. The first read of `actor` starts a real actor in the
 * current state; from then on the actor is the only truth.
 *
 * Only machines whose transitions depend on nothing but the state and the event type
 * (no guards, no context-dependent targets) may be stepped this way.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { transition, type Actor, type AnyStateMachine, type SnapshotFrom, type StateValue } from 'xstate';
import { inspection } from '../inspect/capture.ts';
import { startActor } from './startActor.ts';

/** Starts the real actor of a `LazyActor` in the state `key`, as a child of someone, and hands it over with `adopt()`; it may not be able to now. */
export type LazySpawn = (owner: unknown, key: string) => void;

/**
 * `machine`, starting in the state `input.at` (a dotted key) with `input.context` instead
 * of its initial state: what a parent spawns to materialise a `LazyActor` as its child.
 */
export function startingAt<TMachine extends AnyStateMachine>(machine: TMachine): TMachine {
  return Object.create(machine, {
    getInitialSnapshot: {
      value: (_scope: unknown, input: { readonly at: string; readonly context: unknown }) =>
        machine.resolveState({ value: valueOf(input.at), context: input.context as never }),
    },
  }) as TMachine;
}

/** state key → event type → next state key. */
type Table = Map<string, Map<string, string>>;
const tables = new WeakMap<AnyStateMachine, Table>();

function keyOf(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [[parent, child]] = Object.entries(value) as [[string, StateValue]];
  return `${parent}.${keyOf(child)}`;
}

function valueOf(key: string): StateValue {
  const dot = key.indexOf('.');
  return dot < 0 ? key : { [key.slice(0, dot)]: valueOf(key.slice(dot + 1)) };
}

export class LazyActor<TMachine extends AnyStateMachine> {
  readonly #machine: TMachine;
  readonly #kind: string;
  readonly #id: string;
  readonly #context: (id: string) => SnapshotFrom<TMachine>['context'];
  readonly #spawn: LazySpawn | undefined;
  readonly #owner: unknown;
  #key: string;
  #actor: Actor<TMachine> | undefined;

  /**
   * @param context builds the actor's context from its id when needed (shared, so nothing is allocated per instance).
   * @param spawn starts the real actor as someone's child, in the given state; without it (or when it cannot) the actor is a root.
   * @param owner what `spawn` is called with (shared spawners, so nothing is allocated per instance).
   */
  constructor(
    machine: TMachine,
    kind: string,
    id: string,
    context: (id: string) => SnapshotFrom<TMachine>['context'],
    initial: string,
    spawn?: LazySpawn,
    owner?: unknown,
  ) {
    this.#machine = machine;
    this.#kind = kind;
    this.#id = id;
    this.#context = context;
    this.#key = initial;
    this.#spawn = spawn;
    this.#owner = owner;
    // While an inspector captures, every actor is real from the start, so it shows.
    if (inspection.enabled && spawn === undefined) void this.actor;
  }

  /** True once the real actor exists. */
  get materialised(): boolean {
    return this.#actor !== undefined;
  }

  /** Takes the real actor a spawner started in the current state. */
  adopt(actor: Actor<TMachine>): void {
    this.#actor ??= actor;
  }

  /** The state as a key, for a spawner that starts the actor there. */
  get key(): string {
    return this.#key;
  }

  /** The current state as a dotted path (`'running'`, `'done.failed'`). */
  get state(): string {
    return this.#actor ? keyOf((this.#actor.getSnapshot() as { value: StateValue }).value) : this.#key;
  }

  /** True in `state` or one of its substates. */
  matches(state: string): boolean {
    const current = this.state;
    return current === state || current.startsWith(`${state}.`);
  }

  send(event: { readonly type: string }): void {
    if (this.#actor) {
      this.#actor.send(event as never);
      return;
    }
    let table = tables.get(this.#machine);
    if (table === undefined) tables.set(this.#machine, (table = new Map()));
    let row = table.get(this.#key);
    if (row === undefined) table.set(this.#key, (row = new Map()));
    let next = row.get(event.type);
    if (next === undefined) {
      const [snapshot] = transition(this.#machine, this.#resolve(this.#key), event as never);
      next = keyOf((snapshot as { value: StateValue }).value);
      row.set(event.type, next);
    }
    this.#key = next;
  }

  /** The real actor, started in the current state on first use. */
  get actor(): Actor<TMachine> {
    // A spawner that can start the actor now hands it over through adopt().
    if (this.#actor === undefined) this.#spawn?.(this.#owner, this.#key);
    this.#actor ??= startActor(this.#kind, this.#machine, {
      id: this.#id,
      snapshot: this.#resolve(this.#key),
    } as never) as Actor<TMachine>;
    return this.#actor;
  }

  #resolve(key: string): SnapshotFrom<TMachine> {
    return this.#machine.resolveState({ value: valueOf(key), context: this.#context(this.#id) }) as SnapshotFrom<TMachine>;
  }
}
