/**
 * What telemetry does with each event the facilities report: time it, count it in the
 * metrics, and wrap it in a span when traces are on. Internal to statesmith: the public
 * side is `enableTelemetry()` in this folder's index.
 */
import type { Span, Tracer } from '@opentelemetry/api';
import type { LockSeries, TelemetrySink, TelemetrySpan } from './hooks.ts';

/** The metrics the sink records into (prom-client's, in metrics.ts). */
export interface MetricSet {
  transition(kind: string, from: string, to: string): void;
  /** An actor's current state; `undefined` once it is over. */
  actorState(actor: object, kind: string, state: string | undefined): void;
  executorTask(executor: string, action: string, outcome: string, seconds: number): void;
  taskRestart(group: string, task: string): void;
  lockAcquire(kind: string, lock: string, outcome: string, seconds: number): void;
  lockHold(kind: string, lock: string, seconds: number): void;
  /** The fast series of one lock: an acquire that did not wait, and its holds. */
  lockSeries(kind: string, lock: string): LockSeries;
  lockLost(kind: string, reason: string): void;
  lockWaiters(kind: string, delta: number): void;
  forced(result: string): void;
  coordinatorState(coordinator: string, backend: string, state: string): void;
  reconnect(): void;
  renewFailure(): void;
  leadership(group: string, leader: boolean): void;
  subprocess(outcome: string, seconds: number): void;
  kill(signal: string): void;
  unregister(): void;
}

/** The OpenTelemetry API and the tracer to start spans with. */
export interface TracerLike {
  readonly api: typeof import('@opentelemetry/api');
  readonly tracer: Tracer;
}

/** A timing with an optional span: what each reported operation gets. */
class Operation implements TelemetrySpan {
  readonly #startedAt = performance.now();
  readonly #span: Span | undefined;
  readonly #tracer: TracerLike | undefined;
  readonly #done: (outcome: string, seconds: number) => void;
  #ended = false;

  constructor(
    tracer: TracerLike | undefined,
    name: string,
    attributes: Record<string, string | number | boolean>,
    done: (outcome: string, seconds: number) => void,
  ) {
    this.#tracer = tracer;
    this.#done = done;
    if (tracer !== undefined) this.#span = tracer.tracer.startSpan(name, { attributes });
  }

  run<R>(fn: () => R): R {
    const tracer = this.#tracer;
    if (tracer === undefined || this.#span === undefined) return fn();
    return tracer.api.context.with(tracer.api.trace.setSpan(tracer.api.context.active(), this.#span), fn);
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.#span?.setAttribute(key, value);
  }

  end(outcome: string, error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#done(outcome, (performance.now() - this.#startedAt) / 1000);
    const span = this.#span;
    if (span === undefined) return;
    span.setAttribute('statesmith.outcome', outcome);
    if (error !== undefined && outcome !== 'cancelled' && outcome !== 'aborted') {
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: (this.#tracer as TracerLike).api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    }
    span.end();
  }
}

const nothing = (): void => undefined;

/** A dotted name of a state value: `idle`, `done.completed`, `a.x,b.y` for parallel states. */
function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return String(value);
  return Object.entries(value as Record<string, unknown>)
    .map(([key, inner]) => {
      const rest = stateName(inner);
      return rest === '' ? key : `${key}.${rest}`;
    })
    .join(',');
}

/** The kind of a machine actor: its machine's id without the `statesmith.` prefix; undefined for other logic. */
function kindOf(actor: unknown): string | undefined {
  const logic = (actor as { logic?: { id?: unknown; root?: unknown } } | undefined)?.logic;
  if (logic === undefined || logic.root === undefined || typeof logic.id !== 'string') return undefined;
  return logic.id.startsWith('statesmith.') ? logic.id.slice('statesmith.'.length) : logic.id;
}

/** The sink `enableTelemetry()` installs. */
export class StatesmithSink implements TelemetrySink {
  readonly #metrics: MetricSet | undefined;
  readonly #tracer: TracerLike | undefined;
  /**
   * Each observed actor's last state value object (XState keeps it while the state stays) and
   * its name, for `from` in the transition counter: one record per actor, changed in place (a
   * step allocates nothing here).
   */
  readonly #seen = new WeakMap<object, { value: unknown; state: string | undefined }>();

  constructor(metrics: MetricSet | undefined, tracer: TracerLike | undefined) {
    this.#metrics = metrics;
    this.#tracer = tracer;
  }

  #operation(name: string, attributes: Record<string, string | number | boolean>, done: (outcome: string, seconds: number) => void): TelemetrySpan {
    return new Operation(this.#tracer, name, attributes, this.#metrics === undefined ? nothing : done);
  }

  executorTask(executor: string, action: string): TelemetrySpan {
    return this.#operation('statesmith.executor.task', { 'statesmith.executor': executor, 'statesmith.action': action }, (outcome, seconds) =>
      this.#metrics?.executorTask(executor, action, outcome, seconds),
    );
  }

  subprocessCall(runner: string, argv0: string): TelemetrySpan {
    return this.#operation('statesmith.subprocess.call', { 'statesmith.subprocess': runner, 'statesmith.subprocess.command': argv0 }, (outcome, seconds) =>
      this.#metrics?.subprocess(outcome, seconds),
    );
  }

  subprocessKill(signal: 'SIGTERM' | 'SIGKILL'): void {
    this.#metrics?.kill(signal);
  }

  lockAcquire(kind: string, name: string): TelemetrySpan {
    return this.#operation('statesmith.lock.acquire', { 'statesmith.lock.kind': kind, 'statesmith.lock.name': name }, (outcome, seconds) =>
      this.#metrics?.lockAcquire(kind, name, outcome, seconds),
    );
  }

  /**
   * An in-process lock taken at once gets no span, only its metrics: a span per
   * uncontended acquire made a mutex 35 times slower. A wait gets one (`lockAcquire`).
   */
  lockSeries(kind: string, name: string): LockSeries {
    const series = this.#metrics?.lockSeries(kind, name);
    return series ?? { acquiredAtOnce: nothing, timesHold: () => false, held: nothing };
  }

  lockReleased(kind: string, name: string, heldMs: number): void {
    this.#metrics?.lockHold(kind, name, heldMs / 1000);
  }

  lockLost(kind: string, reason: string): void {
    this.#metrics?.lockLost(kind, reason);
  }

  lockWaiters(kind: string, delta: number): void {
    this.#metrics?.lockWaiters(kind, delta);
  }

  force(lock: string): TelemetrySpan {
    return this.#operation('statesmith.locksmith.force', { 'statesmith.lock.name': lock }, (outcome) => this.#metrics?.forced(outcome));
  }

  taskRestarted(group: string, task: string): void {
    this.#metrics?.taskRestart(group, task);
  }

  coordinatorState(coordinator: string, backend: string, state: string): void {
    this.#metrics?.coordinatorState(coordinator, backend, state);
  }

  coordinatorReconnect(): void {
    this.#metrics?.reconnect();
  }

  leaseRenewFailure(): void {
    this.#metrics?.renewFailure();
  }

  leadership(group: string, leader: boolean): void {
    this.#metrics?.leadership(group, leader);
    const tracer = this.#tracer;
    // A change of leadership is an event on whatever span is active (a campaign's, a cycle's).
    tracer?.api.trace.getActiveSpan()?.addEvent(leader ? 'statesmith.leadership.gained' : 'statesmith.leadership.lost', { 'statesmith.group': group });
  }

  snapshot(actor: object, snapshot: { readonly status?: string; readonly value?: unknown }): void {
    const metrics = this.#metrics;
    if (metrics === undefined) return;
    const kind = kindOf(actor);
    if (kind === undefined) return;
    if (snapshot.status !== 'active') {
      metrics.actorState(actor, kind, undefined);
      return;
    }
    // Most snapshots keep their state (a context change): the value object is then the same one.
    const value = snapshot.value;
    let seen = this.#seen.get(actor);
    if (seen === undefined) this.#seen.set(actor, (seen = { value, state: undefined }));
    else if (seen.value === value) return;
    else seen.value = value;
    const state = stateName(value);
    const before = seen.state;
    if (before === state) return;
    seen.state = state;
    metrics.actorState(actor, kind, state);
    if (before !== undefined) metrics.transition(kind, before, state);
  }
}
