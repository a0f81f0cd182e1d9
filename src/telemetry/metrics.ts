/**
 * statesmith's Prometheus metrics, on prom-client: names in base units (`_seconds`,
 * `_total`), labels of low cardinality. Lock and action names become labels only when
 * the user asks. Internal to statesmith: `enableTelemetry()` makes it.
 */
import type * as Prom from 'prom-client';
import type { LockSeries } from './hooks.ts';
import type { MetricSet } from './sink.ts';

/** Seconds from 100 µs to 30 s: lock waits and holds. */
const LOCK_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30];
/** Seconds from 10 ms to 15 min: executor tasks and subprocesses (a base backup is long). */
/** How many distinct executor names get a label value of their own before the rest are `other`. */
export const EXECUTOR_LABELS = 20;

const WORK_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900];

const COORDINATOR_STATES = ['disconnected', 'connecting', 'connected', 'reconnecting', 'stopping', 'stopped'];

type Labels = Record<string, string>;

/** One labelled series of a {@link FastHistogram}: counts per bucket, a sum and a count. */
class HistogramSeries {
  readonly labels: Labels;
  readonly #bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(labels: Labels, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  /** Counts `value`, as `weight` observations (a sample standing for several). */
  observe(value: number, weight = 1): void {
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + weight;
        break;
      }
    }
    this.sum += value * weight;
    this.count += weight;
  }
}

/**
 * Values found by three strings without building a key from them: a step that finds its
 * series allocates nothing (a joined key is a string made, flattened and hashed per call).
 */
class Tree3<V> {
  readonly #root = new Map<string, Map<string, Map<string, V>>>();

  get(a: string, b: string, c: string): V | undefined {
    return this.#root.get(a)?.get(b)?.get(c);
  }

  set(a: string, b: string, c: string, value: V): void {
    let level1 = this.#root.get(a);
    if (level1 === undefined) this.#root.set(a, (level1 = new Map()));
    let level2 = level1.get(b);
    if (level2 === undefined) level1.set(b, (level2 = new Map()));
    level2.set(c, value);
  }

  clear(): void {
    this.#root.clear();
  }
}

/**
 * A histogram for hot paths: each series is an object its callers keep, so an
 * observation is a bucket scan and three additions (prom-client's own hashes the labels
 * on every call). The registry reads it as any metric, through `get()`.
 */
class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly #labelNames: readonly string[];
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();
  /** Series a caller found by three label values before (see {@link FastHistogram.cached}). */
  readonly #cached = new Tree3<HistogramSeries>();

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#labelNames = labelNames;
    this.#bounds = bounds;
  }

  series(labels: Labels): HistogramSeries {
    const key = this.#labelNames.map((name) => labels[name] ?? '').join('\u0000');
    let series = this.#series.get(key);
    if (series === undefined) {
      series = new HistogramSeries(labels, this.#bounds);
      this.#series.set(key, series);
    }
    return series;
  }

  /** The series a caller remembered under three label values, found without a key built; `undefined` the first time. */
  cached(a: string, b: string, c: string): HistogramSeries | undefined {
    return this.#cached.get(a, b, c);
  }

  /** Remembers `series` under three label values (until the histogram is reset), and returns it. */
  remember(a: string, b: string, c: string, series: HistogramSeries): HistogramSeries {
    this.#cached.set(a, b, c, series);
    return series;
  }

  async get(): Promise<object> {
    const values: object[] = [];
    for (const series of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += series.counts[i] as number;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le: '+Inf' }, value: series.count });
      values.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#series.clear();
    this.#cached.clear();
  }
}

/** A counter for hot paths, as {@link FastHistogram}. */
class FastCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly #series: Array<{ labels: Labels; value: number }> = [];
  readonly #byLabels = new Tree3<{ labels: Labels; value: number }>();
  readonly #labelNames: readonly [string, string, string];

  constructor(name: string, help: string, labelNames: readonly [string, string, string]) {
    this.name = name;
    this.help = help;
    this.#labelNames = labelNames;
  }

  /** Adds one to the series of the three label values `a`, `b`, `c`. */
  inc(a: string, b: string, c: string): void {
    const series = this.#byLabels.get(a, b, c);
    if (series !== undefined) {
      series.value++;
      return;
    }
    const [na, nb, nc] = this.#labelNames;
    const made = { labels: { [na]: a, [nb]: b, [nc]: c }, value: 1 };
    this.#byLabels.set(a, b, c, made);
    this.#series.push(made);
  }

  async get(): Promise<object> {
    const values = this.#series.map(({ labels, value }) => ({ labels, value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#series.length = 0;
    this.#byLabels.clear();
  }
}

/** The metrics (see the README's table), registered in one registry. */
export class StatesmithMetrics implements MetricSet {
  readonly #registry: Prom.Registry;
  readonly #names: string[] = [];
  readonly #lockNames: boolean;
  readonly #holdSampling: number;
  readonly #actionNames: boolean;
  /** Executor names in the `executor` label without a bound (else the first {@link EXECUTOR_LABELS}, then `other`). */
  readonly #executorNames: boolean;
  readonly #executorLabels = new Set<string>();
  readonly #transitions: FastCounter;
  readonly #executor: FastHistogram;
  readonly #restarts: Prom.Counter;
  readonly #acquire: FastHistogram;
  readonly #hold: FastHistogram;
  readonly #lost: Prom.Counter;
  readonly #waiters: Prom.Gauge;
  readonly #forced: Prom.Counter;
  readonly #reconnects: Prom.Counter;
  readonly #renewFailures: Prom.Counter;
  readonly #leader: Prom.Gauge;
  readonly #leadershipChanges: Prom.Counter;
  readonly #subprocess: FastHistogram;
  readonly #kills: Prom.Counter;
  /** Each live actor's kind and state, for `statesmith_actors` (counted at scrape time). */
  readonly #actors = new Map<object, { readonly kind: string; state: string }>();
  /** Each coordinator's backend and state, for `statesmith_coordinator_state`. */
  readonly #coordinators = new Map<string, { backend: string; state: string }>();
  /** The backends of coordinators seen, so their series stay (at 0) after they stopped. */
  readonly #backends = new Set<string>();
  /** Whether this process leads each group it reported. */
  readonly #leaders = new Map<string, boolean>();

  constructor(
    prom: typeof Prom,
    registry: Prom.Registry,
    options: {
      readonly lockNames: boolean;
      readonly actionNames: boolean;
      readonly holdSampling: number;
      readonly executorNames?: boolean;
      readonly buckets?: { readonly work?: readonly number[]; readonly lock?: readonly number[] };
      readonly defaultMetrics?: boolean;
      readonly version?: string;
    },
  ) {
    this.#registry = registry;
    this.#executorNames = options.executorNames ?? false;
    const workBuckets = [...(options.buckets?.work ?? WORK_BUCKETS)];
    const lockBuckets = [...(options.buckets?.lock ?? LOCK_BUCKETS)];
    this.#holdSampling = options.holdSampling;
    this.#lockNames = options.lockNames;
    this.#actionNames = options.actionNames;
    const registers = [registry];
    const counter = (name: string, help: string, labelNames: string[] = []): Prom.Counter =>
      this.#track(new prom.Counter({ name, help, labelNames, registers }));
    const histogram = (name: string, help: string, labelNames: string[], buckets: number[]): FastHistogram => {
      const metric = new FastHistogram(name, help, labelNames, buckets);
      registry.registerMetric(metric as never);
      return this.#track(metric);
    };
    const lock = this.#lockNames ? ['lock'] : [];
    this.#transitions = new FastCounter(
      'statesmith_actor_transitions_total',
      'State changes of statesmith actors, by machine kind and the states left and entered.',
      ['kind', 'from', 'to'],
    );
    registry.registerMetric(this.#track(this.#transitions) as never);
    const actors = this.#actors;
    this.#track(
      new prom.Gauge({
        name: 'statesmith_actors',
        help: 'Live statesmith actors, by machine kind and current state.',
        labelNames: ['kind', 'state'],
        registers,
        collect() {
          this.reset();
          const counts = new Map<string, { kind: string; state: string; n: number }>();
          for (const [actor, { kind, state }] of actors) {
            // An actor stopped without a last report is over too.
            if ((actor as { getSnapshot?: () => { status?: string } }).getSnapshot?.().status !== 'active') {
              actors.delete(actor);
              continue;
            }
            const key = `${kind}\u0000${state}`;
            const entry = counts.get(key) ?? { kind, state, n: 0 };
            entry.n++;
            counts.set(key, entry);
          }
          for (const { kind, state, n } of counts.values()) this.set({ kind, state }, n);
        },
      }),
    );
    this.#executor = histogram(
      'statesmith_executor_task_duration_seconds',
      'How long executor tasks ran, by executor and outcome (and action, when asked).',
      ['executor', ...(this.#actionNames ? ['action'] : []), 'outcome'],
      workBuckets,
    );
    this.#restarts = counter('statesmith_task_restarts_total', 'Restarts of supervised tasks, by group and task.', ['group', 'task']);
    this.#acquire = histogram(
      'statesmith_lock_acquire_duration_seconds',
      'How long lock acquires waited, by lock kind and outcome.',
      ['kind', ...lock, 'outcome'],
      lockBuckets,
    );
    this.#hold = histogram('statesmith_lock_hold_duration_seconds', 'How long locks were held, by lock kind.', ['kind', ...lock], lockBuckets);
    this.#lost = counter('statesmith_lock_lost_total', 'Locks taken from their holder, by lock kind and reason (forced, lease, connection).', [
      'kind',
      'reason',
    ]);
    this.#waiters = this.#track(
      new prom.Gauge({ name: 'statesmith_lock_waiters', help: 'Callers waiting for a lock, by lock kind.', labelNames: ['kind'], registers }),
    );
    this.#forced = counter('statesmith_lock_forced_total', 'Locksmith forces, by result (a ForceResult name, or critical/error).', ['result']);
    const coordinators = this.#coordinators;
    const knownBackends = this.#backends;
    this.#track(
      new prom.Gauge({
        name: 'statesmith_coordinator_state',
        help: 'Coordinators in each connection state, by backend.',
        labelNames: ['backend', 'state'],
        registers,
        collect() {
          this.reset();
          const backends = new Set([...knownBackends, ...[...coordinators.values()].map((c) => c.backend)]);
          for (const backend of backends) for (const state of COORDINATOR_STATES) this.set({ backend, state }, 0);
          for (const { backend, state } of coordinators.values()) this.inc({ backend, state });
        },
      }),
    );
    this.#reconnects = counter('statesmith_coordinator_reconnects_total', 'Times a coordinator lost its connection and started reconnecting.');
    this.#renewFailures = counter(
      'statesmith_lease_renew_failures_total',
      'Lease renewals of distributed locks that failed with an error (a refusal loses the lock instead).',
    );
    this.#leader = this.#track(
      new prom.Gauge({ name: 'statesmith_leader', help: '1 while this process leads the group, else 0.', labelNames: ['group'], registers }),
    );
    this.#leadershipChanges = counter('statesmith_leadership_changes_total', 'Times this process gained or lost the leadership of the group.', ['group']);
    this.#subprocess = histogram('statesmith_subprocess_duration_seconds', 'How long subprocess calls ran, by outcome.', ['outcome'], workBuckets);
    this.#kills = counter('statesmith_subprocess_kills_total', 'Signals sent to stop subprocess trees, by signal.', ['signal']);
    const build = this.#track(
      new prom.Gauge({
        name: 'statesmith_build_info',
        help: 'Always 1: the statesmith version and the Node.js version, as labels.',
        labelNames: ['version', 'node'],
        registers,
      }),
    );
    build.set({ version: options.version ?? 'unknown', node: process.version }, 1);
    if (options.defaultMetrics === true) {
      // prom-client's process and heap metrics; their names are prom-client's, and they leave with ours.
      const before = new Set(registry.getMetricsAsArray().map((metric) => metric.name));
      prom.collectDefaultMetrics({ register: registry });
      for (const metric of registry.getMetricsAsArray()) if (!before.has(metric.name)) this.#names.push(metric.name);
    }
  }

  /** The `executor` label of `name`: itself, while the label stays bounded (one executor per volume must not make a series each). */
  #executorLabel(name: string): string {
    if (this.#executorNames || this.#executorLabels.has(name)) return name;
    if (this.#executorLabels.size >= EXECUTOR_LABELS) return 'other';
    this.#executorLabels.add(name);
    return name;
  }

  #track<T extends object>(metric: T): T {
    this.#names.push((metric as unknown as { name: string }).name);
    return metric;
  }

  transition(kind: string, from: string, to: string): void {
    this.#transitions.inc(kind, from, to);
  }

  actorState(actor: object, kind: string, state: string | undefined): void {
    if (state === undefined) {
      this.#actors.delete(actor);
      return;
    }
    // Changed in place: a step of a known actor allocates nothing.
    const known = this.#actors.get(actor);
    if (known === undefined) this.#actors.set(actor, { kind, state });
    else known.state = state;
  }

  executorTask(name: string, action: string, outcome: string, seconds: number): void {
    const executor = this.#executorLabel(name);
    const label = this.#actionNames ? action : '';
    const series =
      this.#executor.cached(executor, label, outcome) ??
      this.#executor.remember(executor, label, outcome, this.#executor.series(this.#actionNames ? { executor, action, outcome } : { executor, outcome }));
    series.observe(seconds);
  }

  taskRestart(group: string, task: string): void {
    this.#restarts.inc({ group, task });
  }

  lockAcquire(kind: string, lock: string, outcome: string, seconds: number): void {
    this.#acquire.series(this.#lockNames ? { kind, lock, outcome } : { kind, outcome }).observe(seconds);
  }

  lockHold(kind: string, lock: string, seconds: number): void {
    this.#hold.series(this.#lockNames ? { kind, lock } : { kind }).observe(seconds);
  }

  lockSeries(kind: string, lock: string): LockSeries {
    const acquired = this.#acquire.series(this.#lockNames ? { kind, lock, outcome: 'acquired' } : { kind, outcome: 'acquired' });
    const hold = this.#hold.series(this.#lockNames ? { kind, lock } : { kind });
    const every = this.#holdSampling;
    let holds = 0;
    return {
      acquiredAtOnce: () => acquired.observe(0),
      timesHold: () => every === 1 || ++holds % every === 0,
      held: (seconds) => hold.observe(seconds, every),
    };
  }

  lockLost(kind: string, reason: string): void {
    this.#lost.inc({ kind, reason });
  }

  lockWaiters(kind: string, delta: number): void {
    this.#waiters.inc({ kind }, delta);
  }

  forced(result: string): void {
    this.#forced.inc({ result });
  }

  coordinatorState(coordinator: string, backend: string, state: string): void {
    // A stopped coordinator is forgotten (its backend's series stay, at 0), so making many does not grow the map.
    this.#coordinators.set(coordinator, { backend, state });
    if (state === 'stopped') {
      this.#backends.add(backend);
      this.#coordinators.delete(coordinator);
    }
  }

  reconnect(): void {
    this.#reconnects.inc();
  }

  renewFailure(): void {
    this.#renewFailures.inc();
  }

  leadership(group: string, leader: boolean): void {
    const before = this.#leaders.get(group) ?? false;
    this.#leaders.set(group, leader);
    this.#leader.set({ group }, leader ? 1 : 0);
    if (before !== leader) this.#leadershipChanges.inc({ group });
  }

  subprocess(outcome: string, seconds: number): void {
    this.#subprocess.series({ outcome }).observe(seconds);
  }

  kill(signal: string): void {
    this.#kills.inc({ signal });
  }

  unregister(): void {
    for (const name of this.#names) this.#registry.removeSingleMetric(name);
  }
}
