/**
 * The process-wide inspection stream. Every actor statesmith starts reports here, but
 * only while capture is on (an inspector or a NATS feed is running): otherwise the cost
 * is one boolean test per event. Capture hears an actor's system by wrapping XState's
 * own dispatch (`hook`), not by subscribing, which would make XState copy every event.
 *
 * A processed event's record keeps references (XState's snapshots are immutable by
 * contract; a context or event holding something that can change is copied at the step)
 * and is written as JSON once, when first read: by a viewer's batch, a NATS feed, or a
 * late viewer's picture. Records are numbered and kept in a bounded ring; the latest
 * snapshot of each actor, its creation record and its machine's graph are kept beside
 * it, so a late viewer gets the current picture first. Record names follow XState's
 * (`@xstate.actor`, `@xstate.snapshot`) with Stately's field names (`sessionId`,
 * `parentId`, `sourceId`, `rootId`, `event`, `snapshot` fields), so the stream can be
 * bridged to Stately's tools. Each processed event is one `@xstate.snapshot` record: the
 * event with its payload and sender, the microsteps it caused (`transitions`), and the
 * state after.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import {
  getStateNodes,
  type AnyActorLogic,
  type AnyActorRef,
  type AnyStateMachine,
  type AnyTransitionDefinition,
  type InspectionEvent,
  type Observer,
} from 'xstate';
import { finalReplies } from '../../machines/finalReplies.ts';
import { describeOwner } from '../runtime/describeOwner.ts';
import { isStable, safeStringify } from './safeJson.ts';

/** One record, its JSON (made when first read), and what the server needs to route it. */
export interface CapturedRecord {
  readonly seq: number;
  readonly type: string;
  readonly sessionId: string | undefined;
  readonly json: string;
  /** For records a later one of the same key replaces (snapshots, lock states): that key. */
  readonly key?: string;
  /** True for a record taken in from another process (`ingest`): a feed never sends it on. */
  readonly remote?: true;
  /**
   * A snapshot record's JSON without its context (`"contextOmitted":true`), for a live
   * batch that holds a later step of the same actor: the page asks for the whole record
   * ({@link InspectionStream.recordOf}) only if someone travels back to that step.
   */
  readonly lightJson?: string;
}

type Listener = (record: CapturedRecord) => void;

/** A state node of a machine's graph, as the page draws it. */
interface GraphNode {
  readonly id: string;
  readonly key: string;
  readonly type: string;
  readonly initial: string | undefined;
  readonly children: GraphNode[];
  /** `event` is `''` for an eventless (`always`) transition; `guard` names its guard, if any. */
  readonly edges: Array<{ readonly event: string; readonly targets: string[]; readonly guard?: string }>;
}

/** A guard's name as the chart labels it: its name, `not(x)` for a higher-order one, `guard` for an anonymous one. */
function guardName(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && typeof (guard as { type?: unknown }).type === 'string') return (guard as { type: string }).type;
  if (typeof guard === 'function') {
    // XState's and(), or(), not() are functions that carry the guards they combine.
    const inner = (guard as { guards?: unknown }).guards;
    const name = guard.name && guard.name !== 'guard' ? guard.name : 'guard';
    return Array.isArray(inner) ? `${name}(${inner.map((g) => guardName(g) ?? 'guard').join(', ')})` : name;
  }
  return 'guard';
}

function edgeOf(event: string, transition: AnyTransitionDefinition): GraphNode['edges'][number] {
  const targets = (transition.target ?? []).map((target) => target.id);
  const guard = guardName(transition.guard);
  return guard === undefined ? { event, targets } : { event, targets, guard };
}

function graphOf(node: AnyStateMachine['root']): GraphNode {
  const edges: GraphNode['edges'] = [];
  for (const [event, transitions] of node.transitions) {
    for (const transition of transitions) edges.push(edgeOf(event, transition));
  }
  for (const transition of (node as { always?: AnyTransitionDefinition[] }).always ?? []) edges.push(edgeOf('', transition));
  const initial = node.initial?.target?.[0]?.key;
  return {
    id: node.id,
    key: node.key,
    type: node.type,
    initial,
    children: Object.values(node.states).map((child) => graphOf(child)),
    edges,
  };
}

/**
 * The event types a machine takes from outside, for the page's send form: its transitions'
 * types without XState's own, wildcards, and statesmith's internal events (a `statesmith.*`
 * type counts only when it is a command of the protocol, one with final replies).
 */
function commandsOf(root: AnyStateMachine['root']): string[] {
  const types = new Set<string>();
  const visit = (node: AnyStateMachine['root']): void => {
    for (const event of node.transitions.keys()) {
      if (event.startsWith('xstate.') || event.includes('*')) continue;
      if (event.startsWith('statesmith.') && finalReplies[event] === undefined) continue;
      types.add(event);
    }
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(root);
  return [...types].sort();
}

function isMachine(logic: unknown): logic is AnyStateMachine {
  return typeof logic === 'object' && logic !== null && 'root' in logic && 'resolveState' in logic;
}

/** How many finished actors stay in the picture (the ring keeps their history anyway). */
const FINISHED_KEPT = 500;

/** The default bound on what the ring holds, in bytes of written JSON (UTF-16): 64 MiB. */
export const RING_MAX_BYTES = 64 * 1024 * 1024;

/** What a record holds, in bytes: its JSON once written, else the JSON it copied at capture. */
function heldBytes(record: CapturedRecord): number {
  return record instanceof SnapshotRecord ? record.heldBytes : record.json.length * 2 + 64;
}

export class InspectionStream {
  /** Records kept for late viewers and for `records()`. */
  readonly capacity: number;
  /** The bound on the bytes the ring holds: past it the oldest records go first, whatever their count. */
  readonly maxBytes: number;
  #bytes = 0;
  /** What each record in the ring was counted at. */
  readonly #counted = new WeakMap<CapturedRecord, number>();
  #enabled = false;
  #seq = 0;
  #ring: Array<CapturedRecord | undefined>;
  #next = 0;
  #size = 0;
  readonly #listeners = new Set<Listener>();
  #graphIds = new WeakMap<AnyActorLogic, string>();
  readonly #graphs = new Map<string, CapturedRecord>();
  readonly #actors = new Map<string, CapturedRecord>();
  readonly #latest = new Map<string, CapturedRecord>();
  readonly #finished: string[] = [];
  readonly #locks = new Map<string, CapturedRecord>();
  /** The actors by session id, for the inspector's "send an event" (weakly: the page never keeps one alive). */
  readonly #refs = new Map<string, WeakRef<AnyActorRef>>();
  readonly #activeCache = new WeakMap<AnyStateMachine, Map<string, string>>();
  readonly #transitionCache = new WeakMap<AnyTransitionDefinition, string>();
  readonly #contextCache = new WeakMap<object, string>();
  /** The force run whose release is being reported (see {@link InspectionStream.forcing}). */
  #forceRun: ForceRunPlace | undefined;
  /** The actor systems {@link InspectionStream.hook} hears. */
  readonly #hooked = new WeakSet<object>();
  /** Per actor, the event being processed and the transitions it took so far. */
  readonly #inbound = new Map<string, SnapshotRecord>();
  /** Per actor, its last context and how capture kept it: an unchanged context is not judged again. */
  readonly #contexts = new Map<string, { raw: unknown; kept: unknown }>();
  /** Who is being created right now (XState reports an actor from inside createActor). */
  /** What the actor being created is; its children, created in the same window (invoked at start), are not it. */
  #pending: { kind: string; parentId: string | undefined; id: string | undefined } | undefined;

  constructor(capacity = 10_000, maxBytes = RING_MAX_BYTES) {
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.#ring = new Array(capacity);
  }

  /** A record in the ring was written (its JSON made, its copies dropped): count it again, and trim. @internal */
  resized(record: CapturedRecord): void {
    const before = this.#counted.get(record);
    if (before === undefined) return; // not in the ring (any more)
    const now = heldBytes(record);
    this.#counted.set(record, now);
    this.#bytes += now - before;
    this.#trim();
  }

  /** Drops the oldest records while the ring holds more than `maxBytes` (the newest always stays). */
  #trim(): void {
    while (this.#bytes > this.maxBytes && this.#size > 1) {
      const oldest = (this.#next - this.#size + this.capacity) % this.capacity;
      this.#drop(oldest);
      this.#size--;
    }
  }

  #drop(index: number): void {
    const record = this.#ring[index];
    if (record === undefined) return;
    this.#bytes -= this.#counted.get(record) ?? 0;
    this.#counted.delete(record);
    this.#ring[index] = undefined;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** The observer handed to XState. */
  readonly observer: Observer<InspectionEvent> = {
    next: (event: InspectionEvent) => {
      if (this.#enabled) this.#capture(event);
    },
  };

  /** Capture on or off; returns a function that turns it back. */
  enable(): void {
    this.#enabled = true;
  }

  disable(): void {
    this.#enabled = false;
  }

  /**
   * Reports a statesmith actor created while capture is on but not started yet, and the
   * children its initial state created: XState reported them from inside `createActor`,
   * before {@link InspectionStream.hook} could hear its system.
   */
  announce(actor: AnyActorRef, kind: string, parent: AnyActorRef | undefined): void {
    if (!this.#enabled || this.#actors.has(actor.sessionId)) return;
    this.#pending = { kind, parentId: parent?.sessionId, id: actor.id };
    this.#capture({ type: '@xstate.actor', actorRef: actor, rootId: actor.sessionId });
    this.#pending = undefined;
    this.#announceChildren(actor, actor.sessionId);
  }

  #announceChildren(actor: AnyActorRef, rootId: string): void {
    const children = (actor.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> } | undefined)?.children;
    for (const child of Object.values(children ?? {})) {
      if (child === undefined || this.#actors.has(child.sessionId)) continue;
      this.#capture({ type: '@xstate.actor', actorRef: child, rootId });
      if (typeof child.getSnapshot === 'function') this.#announceChildren(child, rootId);
    }
  }

  /**
   * Hears every inspection event of `system`, the actor system of a statesmith actor
   * (`root`), from now on, for as long as capture is on. It wraps the system's own
   * dispatch rather than subscribing with `system.inspect`: a subscriber makes XState
   * copy every event it reports, including one per action executed, which cost a busy
   * executor a fifth to a third of its speed before capture did anything (measured with
   * a no-op observer). Events reach XState's own
   * subscribers as before. If XState's dispatch is not there (a later version), it
   * subscribes. Idempotent per system.
   */
  hook(system: object, root: AnyActorRef): void {
    if (this.#hooked.has(system)) return;
    this.#hooked.add(system);
    const internal = system as { _sendInspectionEvent?: unknown; inspect(observer: Observer<InspectionEvent>): unknown };
    const original = internal._sendInspectionEvent;
    if (typeof original !== 'function') {
      internal.inspect(this.observer);
      return;
    }
    const dispatch = original as (event: InspectionEvent) => void;
    const rootId = root.sessionId;
    internal._sendInspectionEvent = (event: InspectionEvent): void => {
      if (this.#enabled && event.type !== '@xstate.action') this.#capture(event.type === '@xstate.actor' ? { ...event, rootId } : event);
      dispatch(event);
    };
  }

  /** Reports an actor that was started before capture was on, with its current snapshot. */
  adopt(actor: AnyActorRef, kind: string, parent: AnyActorRef | undefined): void {
    if (!this.#enabled || this.#actors.has(actor.sessionId)) return;
    this.#pending = { kind, parentId: parent?.sessionId, id: actor.id };
    this.#capture({ type: '@xstate.actor', actorRef: actor, rootId: actor.sessionId });
    this.#pending = undefined;
    const snapshot = actor.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> };
    this.#capture({
      type: '@xstate.snapshot',
      actorRef: actor,
      rootId: actor.sessionId,
      event: { type: 'statesmith.inspect.attach' },
      snapshot,
    } as unknown as InspectionEvent);
    // Its children too (an executor spawned by the user's machine, its subprocess runner): they started before capture.
    for (const child of Object.values(snapshot.children ?? {})) {
      if (child !== undefined && typeof child.getSnapshot === 'function') this.adopt(child, kindOf((child as { logic?: AnyActorLogic }).logic), actor);
    }
  }

  /**
   * Runs `fn`, and names the force run `run` (a locksmith's force actor: the locksmith's
   * session id and the child's id) in the lock records it causes that end a hold
   * (`forced`, `lost`): the lock timeline links a forced hold to the run that forced it.
   * Synchronous: what `fn` causes later is not named.
   */
  forcing<T>(run: ForceRunPlace | undefined, fn: () => T): T {
    const outer = this.#forceRun;
    this.#forceRun = run;
    try {
      return fn();
    } finally {
      this.#forceRun = outer;
    }
  }

  /** A lock's state changed (the locks view). No-op unless capture is on. */
  lock(fields: { lock: string; kind: string; op: string; holder?: unknown; waiters?: number; fence?: bigint | undefined; by?: unknown }): void {
    if (!this.#enabled) return;
    const forceRun = this.#forceRun !== undefined && (fields.op === 'forced' || fields.op === 'lost') ? this.#forceRun : undefined;
    const record = this.#record('statesmith.lock', undefined, `lock:${fields.lock}`, [
      ['lock', JSON.stringify(fields.lock)],
      ['kind', JSON.stringify(fields.kind)],
      ['op', JSON.stringify(fields.op)],
      ['holder', fields.holder === undefined ? 'null' : JSON.stringify(describeOwner(fields.holder))],
      ['waiters', String(fields.waiters ?? 0)],
      ['fence', fields.fence === undefined ? 'null' : `"${fields.fence}"`],
      ['by', fields.by === undefined ? 'null' : JSON.stringify(describeOwner(fields.by))],
      ['forceRun', forceRun === undefined ? 'null' : JSON.stringify(forceRun)],
    ]);
    this.#locks.set(fields.lock, record);
    this.#emit(record);
  }

  /**
   * Takes a record made elsewhere (another process's, over NATS) into this stream: it is
   * numbered here, kept as a local record of its type would be (graph, actor, latest
   * snapshot, lock), and sent to every viewer. `fields` are already mapped to this
   * stream's ids; `type` and `seq` in them are replaced. No-op unless capture is on.
   */
  ingest(type: string, fields: Readonly<Record<string, unknown>>): void {
    if (!this.#enabled) return;
    const { type: _type, seq: _seq, sessionId, ...rest } = fields;
    const id = typeof sessionId === 'string' ? sessionId : undefined;
    const seq = ++this.#seq;
    const json = JSON.stringify({ type, seq, ts: rest['ts'] ?? Date.now(), ...(id === undefined ? {} : { sessionId: id }), ...rest });
    switch (type) {
      case 'statesmith.graph': {
        const record: CapturedRecord = { seq, type, sessionId: id, json, remote: true };
        this.#graphs.set(String(rest['graphId']), record);
        this.#emit(record);
        return;
      }
      case '@xstate.actor': {
        if (id === undefined) return;
        const record: CapturedRecord = { seq, type, sessionId: id, json, remote: true };
        this.#actors.set(id, record);
        this.#emit(record);
        return;
      }
      case '@xstate.snapshot': {
        if (id === undefined) return;
        const record: CapturedRecord = { seq, type, sessionId: id, json, key: `snapshot:${id}`, remote: true };
        this.#latest.set(id, record);
        if (rest['status'] !== undefined && rest['status'] !== 'active') this.#finish(id);
        this.#emit(record);
        return;
      }
      case 'statesmith.lock': {
        const lock = String(rest['lock']);
        const record: CapturedRecord = { seq, type, sessionId: undefined, json, key: `lock:${lock}`, remote: true };
        this.#locks.set(lock, record);
        this.#emit(record);
        return;
      }
      default:
        return;
    }
  }

  /** Hears every record from now on; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /**
   * The current picture, for a viewer that arrives late, in time order: graphs and
   * actors; then the latest state of each actor and lock whose history has left the ring;
   * then the ring's snapshots and lock changes, oldest first. Applied in this order, every
   * actor and lock ends in its latest state, and the event log and lock timeline are in
   * sequence.
   */
  picture(): CapturedRecord[] {
    const history = this.records().filter((r) => r.type === '@xstate.snapshot' || r.type === 'statesmith.lock');
    const inRing = new Set<string | undefined>();
    for (const record of history) inRing.add(record.key);
    // The latest state of what has no history left in the ring: an actor's snapshot, a lock's state.
    const older = [...this.#latest.values(), ...this.#locks.values()].filter((r) => !inRing.has(r.key)).sort((a, b) => a.seq - b.seq);
    return [...this.#graphs.values(), ...this.#actors.values(), ...older, ...history];
  }

  /**
   * The picture in two parts, so a late viewer can paint before the whole history has
   * come: `first` is the structure, the latest state of every actor and lock, and the
   * newest `tail` records of the history, in sequence order; `earlier` is the rest of the
   * history, oldest first, for the page to merge in behind.
   */
  pictureParts(tail: number): { first: CapturedRecord[]; earlier: CapturedRecord[] } {
    const picture = this.picture();
    const history = this.records().filter((r) => r.type === '@xstate.snapshot' || r.type === 'statesmith.lock');
    const cut = Math.max(0, history.length - tail);
    const recent = history.slice(cut);
    const older = history.slice(0, cut);
    // The latest record of each key whose last step is in the older part goes first, so every state is current at once.
    const latestSeq = new Map<string | undefined, number>();
    for (const record of history) latestSeq.set(record.key, record.seq);
    const latestOlder = older.filter((r) => latestSeq.get(r.key) === r.seq);
    const lead = picture.slice(0, picture.length - history.length);
    const moved = new Set(latestOlder);
    return { first: [...lead, ...latestOlder, ...recent], earlier: older.filter((r) => !moved.has(r)) };
  }

  /** The ring's record of `seq`, while the ring holds it. */
  recordOf(seq: number): CapturedRecord | undefined {
    // The ring is in sequence order: a binary search over its positions.
    let low = 0;
    let high = this.#size - 1;
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const record = this.#ring[(start + middle) % this.capacity] as CapturedRecord;
      if (record.seq === seq) return record;
      if (record.seq < seq) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  /** The live actor of `sessionId`, if capture has seen it and it still runs. */
  actorOf(sessionId: string): AnyActorRef | undefined {
    const ref = this.#refs.get(sessionId)?.deref();
    if (ref === undefined) return undefined;
    return (ref.getSnapshot() as { status?: string } | undefined)?.status === 'active' ? ref : undefined;
  }

  /** The picture's parts: machine graphs, actors, each actor's latest snapshot, locks. */
  structure(): { graphs: CapturedRecord[]; actors: CapturedRecord[]; latest: CapturedRecord[]; locks: CapturedRecord[] } {
    return { graphs: [...this.#graphs.values()], actors: [...this.#actors.values()], latest: [...this.#latest.values()], locks: [...this.#locks.values()] };
  }

  /** The ring's records, oldest first. */
  records(): CapturedRecord[] {
    const out: CapturedRecord[] = [];
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let i = 0; i < this.#size; i++) out.push(this.#ring[(start + i) % this.capacity] as CapturedRecord);
    return out;
  }

  /** Approximate bytes held by the ring (UTF-16 strings): JSON written, and what records copied at capture. */
  get ringBytes(): number {
    return this.#bytes;
  }

  /** Forgets everything (tests). */
  reset(): void {
    this.#ring = new Array(this.capacity);
    this.#bytes = 0;
    this.#next = 0;
    this.#size = 0;
    this.#graphIds = new WeakMap();
    this.#graphs.clear();
    this.#inbound.clear();
    this.#contexts.clear();
    this.#actors.clear();
    this.#latest.clear();
    this.#refs.clear();
    this.#finished.length = 0;
    this.#locks.clear();
  }

  #capture(event: InspectionEvent): void {
    const ref = event.actorRef as AnyActorRef;
    const sessionId = ref.sessionId;
    switch (event.type) {
      case '@xstate.actor': {
        const logic = (ref as { logic?: AnyActorLogic }).logic;
        const graphId = logic ? this.#graphId(logic) : undefined;
        // A child created while its parent is (an invoke of its initial state) is not the actor pending.
        const pending =
          this.#pending !== undefined && (this.#pending.id === undefined || this.#pending.id === ref.id) && (ref as { _parent?: unknown })._parent === undefined
            ? this.#pending
            : undefined;
        const record = this.#record('@xstate.actor', sessionId, undefined, [
          ['id', JSON.stringify(ref.id)],
          ['name', JSON.stringify(isMachine(logic) ? logic.id : ref.id)],
          ['kind', JSON.stringify(pending?.kind ?? kindOf(logic))],
          ['parentId', JSON.stringify(pending?.parentId ?? (ref as { _parent?: AnyActorRef })._parent?.sessionId ?? null)],
          ['systemId', JSON.stringify((ref as { _systemId?: string })._systemId ?? null)],
          // The logic's key when it was invoked or spawned by name: what the page shows for an id XState made up.
          ['src', JSON.stringify(typeof (ref as { src?: unknown }).src === 'string' ? (ref as { src: string }).src : null)],
          ['rootId', JSON.stringify(event.rootId)],
          ['graphId', JSON.stringify(graphId ?? null)],
        ]);
        this.#actors.set(sessionId, record);
        this.#refs.set(sessionId, new WeakRef(ref));
        this.#emit(record);
        return;
      }
      case '@xstate.event': {
        // Held until the snapshot it leads to: one record per processed event.
        this.#inbound.set(sessionId, new SnapshotRecord(this, sessionId, event.sourceRef?.sessionId, kept(event.event)));
        return;
      }
      case '@xstate.microstep': {
        const inbound = this.#inbound.get(sessionId);
        if (inbound === undefined) return;
        for (const transition of event._transitions) (inbound.transitions ??= []).push(transition as AnyTransitionDefinition);
        return;
      }
      case '@xstate.snapshot': {
        const snapshot = event.snapshot as { status?: string; value?: unknown; context?: unknown; output?: unknown; error?: unknown };
        let record = this.#inbound.get(sessionId);
        if (record === undefined) record = new SnapshotRecord(this, sessionId, undefined, { type: event.event.type });
        else this.#inbound.delete(sessionId);
        record.seq = ++this.#seq;
        record.logic = (ref as { logic?: AnyActorLogic }).logic;
        record.status = snapshot.status ?? 'active';
        record.value = snapshot.value;
        record.context = this.#keptContext(sessionId, snapshot.context);
        if (snapshot.output !== undefined) record.output = kept(snapshot.output);
        if (snapshot.error !== undefined) record.error = kept(snapshot.error);
        this.#latest.set(sessionId, record);
        if (record.status !== 'active') this.#finish(sessionId);
        this.#emit(record);
        return;
      }
      default:
        // Actions are not recorded: assign() never shows there, and the rest is noise for the page.
        return;
    }
  }

  /** An actor's context as capture keeps it; the same context as its last one is kept as it was. */
  #keptContext(sessionId: string, context: unknown): unknown {
    if (typeof context !== 'object' || context === null) return context;
    let last = this.#contexts.get(sessionId);
    if (last === undefined) this.#contexts.set(sessionId, (last = { raw: undefined, kept: undefined }));
    else if (last.raw === context) return last.kept;
    last.raw = context;
    last.kept = kept(context);
    return last.kept;
  }

  /** A snapshot record's JSON, made when a viewer or a feed first reads it; without its context if `light`. */
  snapshotJson(record: SnapshotRecord, light = false): string {
    const { logic, status, value } = record;
    const valueJson = safeStringify(value);
    let transitions = '';
    for (const transition of record.transitions ?? []) transitions += (transitions === '' ? '' : ',') + this.#transitionJson(transition);
    let json = `{"type":"@xstate.snapshot","seq":${record.seq},"ts":${record.ts},"sessionId":${JSON.stringify(record.sessionId)}`;
    json += `,"event":${this.#json(record.event)},"sourceId":${record.sourceId === undefined ? 'null' : JSON.stringify(record.sourceId)}`;
    json += `,"transitions":[${transitions}],"status":${JSON.stringify(status)},"value":${valueJson}`;
    json += light ? ',"contextOmitted":true' : `,"context":${this.#json(record.context)}`;
    json += `,"activeIds":${isMachine(logic) && value !== undefined ? this.#activeIds(logic, value, valueJson) : '[]'}`;
    if (record.output !== undefined) json += `,"output":${this.#json(record.output)}`;
    if (record.error !== undefined) json += `,"error":${this.#json(record.error)}`;
    return `${json}}`;
  }

  /**
   * A kept value's JSON. A value kept by reference is immutable by contract, so its JSON
   * is made once per object (XState replaces the context object on every assign: an
   * unchanged context is one object).
   */
  #json(value: unknown): string {
    if (value instanceof Copied) return value.json;
    if (typeof value !== 'object' || value === null) return safeStringify(value);
    let json = this.#contextCache.get(value);
    if (json === undefined) {
      json = safeStringify(value);
      this.#contextCache.set(value, json);
    }
    return json;
  }

  /** The active state ids of `value`, as JSON, cached per machine and state. */
  #activeIds(logic: AnyStateMachine, value: unknown, valueJson: string): string {
    let byValue = this.#activeCache.get(logic);
    if (byValue === undefined) this.#activeCache.set(logic, (byValue = new Map()));
    let ids = byValue.get(valueJson);
    if (ids === undefined) {
      try {
        ids = JSON.stringify([...new Set(getStateNodes(logic.root, value as never).map((node) => node.id))]);
      } catch {
        ids = '[]';
      }
      if (byValue.size < 1_000) byValue.set(valueJson, ids);
    }
    return ids;
  }

  #transitionJson(transition: AnyTransitionDefinition): string {
    let json = this.#transitionCache.get(transition);
    if (json === undefined) {
      json = JSON.stringify({ source: transition.source.id, targets: (transition.target ?? []).map((n) => n.id) });
      this.#transitionCache.set(transition, json);
    }
    return json;
  }

  #graphId(logic: AnyActorLogic): string | undefined {
    if (!isMachine(logic)) return undefined;
    let id = this.#graphIds.get(logic);
    if (id === undefined) {
      id = `${logic.id}#${this.#graphs.size + 1}`;
      this.#graphIds.set(logic, id);
      const record = this.#record('statesmith.graph', undefined, undefined, [
        ['graphId', JSON.stringify(id)],
        ['machine', JSON.stringify(logic.id)],
        ['root', JSON.stringify(graphOf(logic.root))],
        ['commands', JSON.stringify(commandsOf(logic.root))],
      ]);
      this.#graphs.set(id, record);
      this.#emit(record);
    }
    return id;
  }

  #finish(sessionId: string): void {
    this.#finished.push(sessionId);
    while (this.#finished.length > FINISHED_KEPT) {
      const old = this.#finished.shift() as string;
      this.#actors.delete(old);
      this.#latest.delete(old);
      this.#contexts.delete(old);
      this.#refs.delete(old);
    }
  }

  /** Builds a record's JSON from fields already serialised (cheaper than one big stringify). */
  #record(type: string, sessionId: string | undefined, key: string | undefined, fields: ReadonlyArray<readonly [string, string]>): CapturedRecord {
    const seq = ++this.#seq;
    let json = `{"type":"${type}","seq":${seq},"ts":${Date.now()}`;
    if (sessionId !== undefined) json += `,"sessionId":${JSON.stringify(sessionId)}`;
    for (const [name, value] of fields) json += `,"${name}":${value}`;
    json += '}';
    return key === undefined ? { seq, type, sessionId, json } : { seq, type, sessionId, json, key };
  }

  #emit(record: CapturedRecord): void {
    // The slot's old record (a full ring) leaves first.
    if (this.#size === this.capacity) this.#drop(this.#next);
    this.#ring[this.#next] = record;
    const bytes = heldBytes(record);
    this.#counted.set(record, bytes);
    this.#bytes += bytes;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
    this.#trim();
    for (const listener of this.#listeners) listener(record);
  }
}

/** Where a force run's actor is: its locksmith's session id and its id among the locksmith's children. */
export interface ForceRunPlace {
  readonly parentId: string;
  readonly id: string;
}

/** The one stream of the process. */
export const inspection = new InspectionStream();

/**
 * What reports the state that existed before a capture started (held locks, leases): each
 * lock kind adds its reporter when its first lock is held, and a capture calls them all
 * as it starts.
 *
 * @internal
 */
export const lateReporters = new Set<() => void>();

/** A value copied (serialised) at capture, because it could change under a reference. */
class Copied {
  readonly json: string;
  constructor(value: unknown) {
    this.json = safeStringify(value);
  }
}

/** `value` as capture keeps it: by reference when it will serialise the same later, else copied now. */
function kept(value: unknown): unknown {
  return isStable(value) ? value : new Copied(value);
}

/**
 * A processed event's record: made when the event arrives, filled and numbered when the
 * snapshot it leads to does. Capture keeps references (XState's snapshots are immutable
 * by contract; what is not plain data is copied by {@link kept}), and the JSON is made
 * once, when a viewer, a feed or a late picture first reads it. A record no one reads
 * (the ring without a viewer, steps a lagging viewer is spared) is never serialised.
 */
class SnapshotRecord implements CapturedRecord {
  readonly type = '@xstate.snapshot';
  seq = 0;
  readonly ts = Date.now();
  transitions: AnyTransitionDefinition[] | undefined;
  logic: AnyActorLogic | undefined;
  status = 'active';
  value: unknown;
  context: unknown;
  output: unknown;
  error: unknown;
  #stream: InspectionStream | undefined;
  #json: string | undefined;

  constructor(
    stream: InspectionStream,
    readonly sessionId: string,
    /** Who sent the event. */
    readonly sourceId: string | undefined,
    /** The event, as {@link kept} keeps it. */
    public event: unknown,
  ) {
    this.#stream = stream;
  }

  get key(): string {
    return `snapshot:${this.sessionId}`;
  }

  get lightJson(): string {
    // Once the whole JSON is made, the parts are gone: the whole is what there is.
    return this.#json ?? (this.#stream as InspectionStream).snapshotJson(this, true);
  }

  get json(): string {
    if (this.#json === undefined) {
      const stream = this.#stream as InspectionStream;
      this.#json = stream.snapshotJson(this);
      // What it was made of is no longer needed, and can be collected.
      this.#stream = undefined;
      this.event = this.transitions = this.logic = this.value = this.context = this.output = this.error = undefined;
      stream.resized(this);
    }
    return this.#json;
  }

  /** Bytes it holds: its JSON once written; before, the JSON it copied at capture (what it refers to is the program's). */
  get heldBytes(): number {
    if (this.#json !== undefined) return this.#json.length * 2 + 64;
    let bytes = 64;
    for (const part of [this.event, this.context, this.output, this.error]) if (part instanceof Copied) bytes += part.json.length * 2;
    return bytes;
  }
}

/** Marks statesmith logic that is not a machine (`durable(logic)`) with its kind. */
export const kLogicKind: unique symbol = Symbol.for('statesmith.logicKind');

/** The kind of a statesmith machine spawned as a child (`statesmith.task` → `task`), or of marked logic (`durable`); `actor` for anything else. */
function kindOf(logic: AnyActorLogic | undefined): string {
  const marked = (logic as { [kLogicKind]?: unknown } | undefined)?.[kLogicKind];
  if (typeof marked === 'string') return marked;
  const id = isMachine(logic) ? logic.id : undefined;
  return id?.startsWith('statesmith.') ? id.slice('statesmith.'.length) : 'actor';
}
