/**
 * `forwardToStately`: the capture stream as Stately Inspector records, for a user who keeps
 * Stately's tools. Our own inspector stays the primary view (locks, fences, force runs and
 * the other processes have no place in Stately's records and are left out).
 *
 * @module
 */
import { optionalObject } from '../runtime/validate.ts';
import { startCapture } from '../runtime/startActor.ts';
import { ArgumentTypeError } from '../errors.ts';
import { inspection, type CapturedRecord } from './capture.ts';

/** A snapshot as Stately's inspector takes it. */
export interface StatelySnapshot {
  /** The actor's status. */
  readonly status?: 'active' | 'done' | 'error' | 'stopped';
  /** Its state value. */
  readonly value?: unknown;
  /** Its context, as capture kept it. */
  readonly context?: unknown;
  /** Its output, once done. */
  readonly output?: unknown;
}

/**
 * What `forwardToStately` calls: the `actor`, `event` and `snapshot` methods of an
 * inspector from `@statelyai/inspect` (`createWebSocketInspector()`, `createSkyInspector()`,
 * `createInspector(adapter)`). Actors are named by their session id.
 */
export interface StatelyInspectorLike {
  /** Registers an actor. */
  actor(actor: string, snapshot?: StatelySnapshot, info?: { definition?: string; parentId?: string; rootId?: string }): void;
  /** An event the actor received. */
  event(actor: string, event: { readonly type: string }, info?: { source?: string }): void;
  /** The actor's state after an event. */
  snapshot(actor: string, snapshot: StatelySnapshot, info?: { event?: { readonly type: string } }): void;
}

/** Options of {@link forwardToStately}. */
export interface ForwardToStatelyOptions {
  /** Send what capture already holds first (every actor and its latest state); default true. */
  readonly history?: boolean;
}

/**
 * Forwards every actor, event and snapshot that statesmith captures to a Stately
 * inspector, from now on (and, with `history`, what is there already). Capture runs while
 * it forwards. Returns the function that stops.
 *
 * @example
 * ```ts
 * import { createInspector } from '@statelyai/inspect';
 * import { AsyncExecutor, WakeupBus } from 'statesmith';
 * import { forwardToStately } from 'statesmith/inspector';
 * const sent: string[] = [];
 * const stately = createInspector({ send: (record) => void sent.push(record.type) });
 * const stop = forwardToStately(stately);
 * const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'forwarded' });
 * await executor.run(async () => 'done');
 * stop();
 * console.log(sent.includes('@xstate.actor'), sent.includes('@xstate.event'), sent.includes('@xstate.snapshot')); // true true true
 * ```
 */
export function forwardToStately(inspector: StatelyInspectorLike, options?: ForwardToStatelyOptions): () => void {
  for (const method of ['actor', 'event', 'snapshot'] as const) {
    if (typeof (inspector as unknown as Record<string, unknown> | null)?.[method] !== 'function') {
      throw new ArgumentTypeError('inspector', 'a Stately inspector (with actor, event and snapshot methods)', inspector);
    }
  }
  const opts = optionalObject<ForwardToStatelyOptions>('options', options, ['history']);
  const stopCapture = startCapture();
  const known = new Set<string>();
  const forward = (record: CapturedRecord): void => {
    if (record.type !== '@xstate.actor' && record.type !== '@xstate.snapshot') return;
    let fields: Record<string, unknown>;
    try {
      fields = JSON.parse(record.json) as Record<string, unknown>;
    } catch {
      return;
    }
    const id = record.sessionId;
    if (id === undefined) return;
    const state = snapshotOf(fields);
    if (record.type === '@xstate.actor') {
      known.add(id);
      const parentId = typeof fields['parentId'] === 'string' ? fields['parentId'] : undefined;
      const rootId = typeof fields['rootId'] === 'string' ? fields['rootId'] : undefined;
      inspector.actor(id, state.status === undefined ? undefined : state, { ...(parentId ? { parentId } : {}), ...(rootId ? { rootId } : {}) });
      return;
    }
    if (!known.has(id)) {
      known.add(id);
      inspector.actor(id, state);
    }
    const event = fields['event'] as { type?: unknown } | undefined;
    const typed = event !== null && typeof event === 'object' && typeof event.type === 'string' ? (event as { readonly type: string }) : undefined;
    if (typed !== undefined) {
      const source = typeof fields['sourceId'] === 'string' ? fields['sourceId'] : undefined;
      inspector.event(id, typed, source === undefined ? {} : { source });
    }
    inspector.snapshot(id, state, typed === undefined ? {} : { event: typed });
  };
  if (opts.history !== false) for (const record of inspection.picture()) forward(record);
  const unsubscribe = inspection.subscribe(forward);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    stopCapture();
  };
}

function snapshotOf(fields: Record<string, unknown>): StatelySnapshot {
  const status = fields['status'];
  return {
    ...(status === 'active' || status === 'done' || status === 'error' || status === 'stopped' ? { status } : {}),
    ...('value' in fields ? { value: fields['value'] } : {}),
    ...('context' in fields && fields['context'] !== undefined ? { context: fields['context'] } : {}),
    ...('output' in fields && fields['output'] !== undefined ? { output: fields['output'] } : {}),
  };
}
