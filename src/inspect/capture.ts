/**
 * The process-wide inspection stream. Every actor statesmith starts reports here through
 * XState's `inspect` option, but only while capture is on (an inspector is running):
 * otherwise the cost is one boolean test per actor start.
 *
 * Each record is serialised at once (snapshots are live objects), numbered, and kept in
 * a bounded ring; the latest snapshot of each actor, its creation record and its
 * machine's graph are kept beside it, so a late viewer gets the current picture first.
 * Record names follow XState's (`@xstate.actor`, `@xstate.snapshot`) with Stately's
 * field names (`sessionId`, `parentId`, `sourceId`, `rootId`, `event`, `snapshot`
 * fields), so the stream can be bridged to Stately's tools. Each processed event is one
 * `@xstate.snapshot` record: the event with its payload and sender, the microsteps it
 * caused (`transitions`), and the state after. Packing the three (XState reports them
 * apart) keeps capture within half the runtime's speed.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { getStateNodes, type AnyActorLogic, type AnyActorRef, type AnyStateMachine, type AnyTransitionDefinition, type InspectionEvent, type Observer } from 'xstate';
import { describeOwner } from '../runtime/describeOwner.ts';
import { safeStringify } from './safeJson.ts';

/** One serialised record and what the server needs to route it. */
export interface CapturedRecord {
  readonly seq: number;
  readonly type: string;
  readonly sessionId: string | undefined;
  readonly json: string;
  /** For records a later one of the same key replaces (snapshots, lock states): that key. */
  readonly key?: string;
  /** True for a record taken in from another process (`ingest`): a feed never sends it on. */
  readonly remote?: true;
}

type Listener = (record: CapturedRecord) => void;

/** A state node of a machine's graph, as the page draws it. */
interface GraphNode {
  readonly id: string;
  readonly key: string;
  readonly type: string;
  readonly initial: string | undefined;
  readonly children: GraphNode[];
  readonly edges: Array<{ readonly event: string; readonly targets: string[] }>;
}

function graphOf(node: AnyStateMachine['root']): GraphNode {
  const edges: GraphNode['edges'] = [];
  for (const [event, transitions] of node.transitions) {
    for (const transition of transitions) {
      edges.push({ event, targets: (transition.target ?? []).map((target) => target.id) });
    }
  }
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

function isMachine(logic: unknown): logic is AnyStateMachine {
  return typeof logic === 'object' && logic !== null && 'root' in logic && 'resolveState' in logic;
}

/** How many finished actors stay in the picture (the ring keeps their history anyway). */
const FINISHED_KEPT = 500;

export class InspectionStream {
  /** Records kept for late viewers and for `records()`. */
  readonly capacity: number;
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
  /** Per actor, the event being processed and the transitions it took so far. */
  readonly #inbound = new Map<string, { sourceId: string; event: string; transitions: string }>();
  /** Who is being created right now (XState reports an actor from inside createActor). */
  /** What the actor being created is; its children, created in the same window (invoked at start), are not it. */
  #pending: { kind: string; parentId: string | undefined; id: string | undefined } | undefined;

  constructor(capacity = 10_000) {
    this.capacity = capacity;
    this.#ring = new Array(capacity);
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

  /** Says what the next created actor is (set by `startActor` around `createActor`). */
  creating(kind: string, parent: AnyActorRef | undefined, id?: string): void {
    this.#pending = { kind, parentId: parent?.sessionId, id };
  }

  created(): void {
    this.#pending = undefined;
  }

  /** Reports an actor that was started before capture was on, with its current snapshot. */
  adopt(actor: AnyActorRef, kind: string, parent: AnyActorRef | undefined): void {
    if (!this.#enabled || this.#actors.has(actor.sessionId)) return;
    this.#pending = { kind, parentId: parent?.sessionId, id: actor.id };
    this.#capture({ type: '@xstate.actor', actorRef: actor, rootId: actor.sessionId });
    this.#pending = undefined;
    const snapshot = actor.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> };
    this.#capture({ type: '@xstate.snapshot', actorRef: actor, rootId: actor.sessionId, event: { type: 'statesmith.inspect.attach' }, snapshot } as unknown as InspectionEvent);
    // Its children too (an executor spawned by the user's machine, its subprocess runner): they started before capture.
    for (const child of Object.values(snapshot.children ?? {})) {
      if (child !== undefined && typeof child.getSnapshot === 'function') this.adopt(child, kindOf((child as { logic?: AnyActorLogic }).logic), actor);
    }
  }

  /** A lock's state changed (the locks view). No-op unless capture is on. */
  lock(fields: { lock: string; kind: string; op: string; holder?: unknown; waiters?: number; fence?: bigint | undefined; by?: unknown }): void {
    if (!this.#enabled) return;
    const record = this.#record('statesmith.lock', undefined, `lock:${fields.lock}`, [
      ['lock', JSON.stringify(fields.lock)],
      ['kind', JSON.stringify(fields.kind)],
      ['op', JSON.stringify(fields.op)],
      ['holder', fields.holder === undefined ? 'null' : JSON.stringify(describeOwner(fields.holder))],
      ['waiters', String(fields.waiters ?? 0)],
      ['fence', fields.fence === undefined ? 'null' : `"${fields.fence}"`],
      ['by', fields.by === undefined ? 'null' : JSON.stringify(describeOwner(fields.by))],
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

  /** Approximate bytes held by the ring (UTF-16 strings). */
  get ringBytes(): number {
    let bytes = 0;
    for (const record of this.#ring) if (record) bytes += record.json.length * 2 + 64;
    return bytes;
  }

  /** Forgets everything (tests). */
  reset(): void {
    this.#ring = new Array(this.capacity);
    this.#next = 0;
    this.#size = 0;
    this.#graphIds = new WeakMap();
    this.#graphs.clear();
    this.#inbound.clear();
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
        const pending = this.#pending !== undefined && (this.#pending.id === undefined || this.#pending.id === ref.id) && (ref as { _parent?: unknown })._parent === undefined ? this.#pending : undefined;
        const record = this.#record('@xstate.actor', sessionId, undefined, [
          ['id', JSON.stringify(ref.id)],
          ['name', JSON.stringify(isMachine(logic) ? logic.id : ref.id)],
          ['kind', JSON.stringify(pending?.kind ?? kindOf(logic))],
          ['parentId', JSON.stringify(pending?.parentId ?? (ref as { _parent?: AnyActorRef })._parent?.sessionId ?? null)],
          ['systemId', JSON.stringify((ref as { _systemId?: string })._systemId ?? null)],
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
        this.#inbound.set(sessionId, {
          sourceId: event.sourceRef === undefined ? 'null' : JSON.stringify(event.sourceRef.sessionId),
          event: safeStringify(event.event),
          transitions: '',
        });
        return;
      }
      case '@xstate.microstep': {
        const inbound = this.#inbound.get(sessionId);
        if (inbound === undefined) return;
        for (const transition of event._transitions) {
          inbound.transitions += (inbound.transitions === '' ? '' : ',') + this.#transitionJson(transition as AnyTransitionDefinition);
        }
        return;
      }
      case '@xstate.snapshot': {
        const snapshot = event.snapshot as { status?: string; value?: unknown; context?: unknown; output?: unknown; error?: unknown };
        const logic = (ref as { logic?: AnyActorLogic }).logic;
        const inbound = this.#inbound.get(sessionId);
        this.#inbound.delete(sessionId);
        const value = safeStringify(snapshot.value);
        const fields: Array<[string, string]> = [
          ['event', inbound?.event ?? `{"type":${JSON.stringify(event.event.type)}}`],
          ['sourceId', inbound?.sourceId ?? 'null'],
          ['transitions', `[${inbound?.transitions ?? ''}]`],
          ['status', JSON.stringify(snapshot.status ?? 'active')],
          ['value', value],
          ['context', this.#contextJson(snapshot.context)],
          ['activeIds', isMachine(logic) && snapshot.value !== undefined ? this.#activeIds(logic, snapshot.value, value) : '[]'],
        ];
        if (snapshot.output !== undefined) fields.push(['output', safeStringify(snapshot.output)]);
        if (snapshot.error !== undefined) fields.push(['error', safeStringify(snapshot.error)]);
        const record = this.#record('@xstate.snapshot', sessionId, `snapshot:${sessionId}`, fields);
        this.#latest.set(sessionId, record);
        if (snapshot.status !== undefined && snapshot.status !== 'active') this.#finish(sessionId);
        this.#emit(record);
        return;
      }
      default:
        // Actions are not recorded: assign() never shows there, and the rest is noise for the page.
        return;
    }
  }

  /** A context's JSON; XState replaces the context object on every assign, so an unchanged one is reused. */
  #contextJson(context: unknown): string {
    if (typeof context !== 'object' || context === null) return safeStringify(context);
    let json = this.#contextCache.get(context);
    if (json === undefined) {
      json = safeStringify(context);
      this.#contextCache.set(context, json);
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
    this.#ring[this.#next] = record;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
    for (const listener of this.#listeners) listener(record);
  }
}

/** The one stream of the process. */
export const inspection = new InspectionStream();

/** The kind of a statesmith machine spawned as a child (`statesmith.task` → `task`); `actor` for anything else. */
function kindOf(logic: AnyActorLogic | undefined): string {
  const id = isMachine(logic) ? logic.id : undefined;
  return id?.startsWith('statesmith.') ? id.slice('statesmith.'.length) : 'actor';
}
