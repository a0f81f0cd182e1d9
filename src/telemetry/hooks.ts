/**
 * The switch every facility tests before it records anything: `telemetry.enabled` is one
 * boolean, false until `enableTelemetry()` (statesmith/telemetry) installs a sink, so
 * with telemetry off each event costs that one test. The sink is the only code that
 * knows prom-client and OpenTelemetry; nothing here imports them.
 *
 * Internal to statesmith (not exported from the package).
 */

/** A started span, or a timing without one: ended once, with how it went. */
export interface TelemetrySpan {
  /** Runs `fn` with this span as the active one, so spans started inside nest under it. */
  run<R>(fn: () => R): R;
  setAttribute(key: string, value: string | number | boolean): void;
  /** Ends it: `outcome` is a low-cardinality word (`completed`, `failed`, `timeout`, ...). */
  end(outcome: string, error?: unknown): void;
}

/** One lock's metrics, kept by the lock (see {@link TelemetrySink.lockSeries}). */
export interface LockSeries {
  /** The lock was free and taken at once. */
  acquiredAtOnce(): void;
  /**
   * Whether to time the hold that starts now: true for one hold in `lockHoldSampling`
   * (reading a clock twice costs a fast mutex half its speed).
   */
  timesHold(): boolean;
  /** A timed hold ended after `seconds`; it stands for `lockHoldSampling` holds. */
  held(seconds: number): void;
}

/** What the facilities tell the telemetry. */
export interface TelemetrySink {
  /** An executor task starts (its span wraps the function). */
  executorTask(executor: string, action: string): TelemetrySpan;
  /** A subprocess call is spawned. */
  subprocessCall(runner: string, argv0: string): TelemetrySpan;
  /** A signal was sent to a process tree to stop it. */
  subprocessKill(signal: 'SIGTERM' | 'SIGKILL'): void;
  /** Someone starts waiting for a lock; the span ends when they get it or give up. */
  lockAcquire(kind: string, name: string): TelemetrySpan;
  /**
   * The series of one lock, for its hot path: a lock asks once per sink and keeps the
   * answer, so an uncontended acquire and release cost two observations and no lookup.
   */
  lockSeries(kind: string, name: string): LockSeries;
  /** A hold ended after `heldMs` (the cold path of locks that keep no series). */
  lockReleased(kind: string, name: string, heldMs: number): void;
  /** A holder lost its lock: `reason` is `forced`, `lease` or `connection`. */
  lockLost(kind: string, reason: string): void;
  /** The number of waiters of one kind changed by `delta`. */
  lockWaiters(kind: string, delta: number): void;
  /** A locksmith force starts; its span ends with the force's result. */
  force(lock: string): TelemetrySpan;
  /** A task of a group was restarted by its supervisor. */
  taskRestarted(group: string, task: string): void;
  /** A coordinator changed its connection state. */
  coordinatorState(coordinator: string, backend: string, state: string): void;
  /** A coordinator started reconnecting. */
  coordinatorReconnect(): void;
  /** A lease renewal failed (an error, not a refusal). */
  leaseRenewFailure(): void;
  /** This process became (or stopped being) the leader of `group`. */
  leadership(group: string, leader: boolean): void;
  /** A snapshot of an observed actor, for the actor metrics. */
  snapshot(actor: object, snapshot: { readonly status?: string; readonly value?: unknown }): void;
}

class TelemetryHooks {
  /** True while a sink is installed: the one test each facility makes. */
  enabled = false;
  sink: TelemetrySink = undefined as unknown as TelemetrySink;

  install(sink: TelemetrySink): void {
    this.sink = sink;
    this.enabled = true;
  }

  remove(): void {
    this.enabled = false;
    this.sink = undefined as unknown as TelemetrySink;
  }
}

/** The process's telemetry switch. */
export const telemetry = new TelemetryHooks();
