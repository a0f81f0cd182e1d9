/**
 * `statesmith/telemetry`: Prometheus metrics (through `prom-client`) and OpenTelemetry
 * traces (through `@opentelemetry/api`) for actors, executors, tasks, locks, the
 * locksmith, coordinators, leaders and subprocesses. Both clients are optional peers,
 * loaded when telemetry is switched on; until then every facility pays one boolean test
 * per event.
 *
 * @packageDocumentation
 */
// Keeps the comment above in the .d.ts, where API Extractor reads it (an import alone would drop it).
export {};
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { ArgumentRangeError, ArgumentTypeError } from '../errors.ts';
import { observeActors } from '../runtime/startActor.ts';
import { optionalBoolean, optionalObject } from '../runtime/validate.ts';
import { telemetry } from './hooks.ts';
import { StatesmithMetrics } from './metrics.ts';
import { StatesmithSink, type MetricSet, type TracerLike } from './sink.ts';

/** Options of the metrics part of {@link enableTelemetry}. */
export interface MetricsOptions {
  /** The prom-client `Registry` to register the metrics in; default a registry of their own. */
  readonly registry?: unknown;
}

/** Options of the traces part of {@link enableTelemetry}. */
export interface TracesOptions {
  /** The OpenTelemetry tracer to use; default `trace.getTracer('statesmith')` from the global provider. */
  readonly tracer?: unknown;
}

/** Options of {@link enableTelemetry}. */
export interface TelemetryOptions {
  /** Record Prometheus metrics (default true), optionally in your own registry. */
  readonly metrics?: boolean | MetricsOptions;
  /** Record OpenTelemetry spans (default false): executor tasks, subprocess calls, lock acquires, forces. */
  readonly traces?: boolean | TracesOptions;
  /**
   * Put each lock's name in a `lock` label of the lock metrics. Off by default: 10,000
   * volume locks would make 10,000 series. Spans always carry the name.
   */
  readonly lockNamesInLabels?: boolean;
  /** Put each executor action's name in an `action` label of the executor metric. Off by default, for the same reason. */
  readonly actionNamesInLabels?: boolean;
  /**
   * Give every executor its own value of the `executor` label. Off by default: the first 20
   * executor names get their own, the rest share `other` (one executor per volume would
   * otherwise make a series per volume). Spans always carry the name.
   */
  readonly executorNamesInLabels?: boolean;
  /** Also collect prom-client's default process and heap metrics into the registry (default false; the demo turns it on). */
  readonly collectDefaultMetrics?: boolean;
  /** Histogram buckets in seconds: `work` for executor tasks and subprocess calls, `lock` for lock waits and holds. */
  readonly buckets?: { readonly work?: readonly number[]; readonly lock?: readonly number[] };
  /**
   * Time one in this many holds of each in-process lock, and count it as that many
   * (default 8; 1 times every hold). Reading a clock at both ends of a hold costs an
   * uncontended mutex about half its speed; a sample keeps the histogram's shape and,
   * over time, its counts. Distributed locks' holds are always timed.
   */
  readonly lockHoldSampling?: number;
}

/** A served `/metrics` endpoint. */
export interface MetricsEndpoint {
  /** `http://host:port/metrics`. */
  readonly url: string;
  /** The port it listens on (the free one it was given for port 0). */
  readonly port: number;
  /** Stops serving. */
  close(): Promise<void>;
}

/** The running telemetry: its registry, its text, an endpoint, and the switch to turn it off. */
export interface Telemetry extends AsyncDisposable {
  /** The prom-client registry the metrics are in (undefined with `metrics: false`). */
  readonly registry: unknown;
  /** The metrics in Prometheus' text format. */
  metrics(): Promise<string>;
  /** The content type of {@link Telemetry.metrics}' text, for an HTTP reply. */
  readonly contentType: string;
  /** Serves `GET /metrics` on `host:port` (default `127.0.0.1`, port 0: a free one). */
  serve(options?: { readonly port?: number; readonly host?: string }): Promise<MetricsEndpoint>;
  /**
   * Records that this process became (`true`) or stopped being (`false`) the leader of
   * `group`: `statesmith_leader{group}` and `statesmith_leadership_changes_total{group}`.
   * statesmith's elections call it; an application that elects its own way can too.
   */
  recordLeadership(group: string, leader: boolean): void;
  /** Stops recording and serving; the metrics registered in a registry of yours are removed from it. */
  disable(): Promise<void>;
}

/** A telemetry client package is not installed, or telemetry is already on: `code` says which. */
export class TelemetryError extends Error {
  /** The class name, `'TelemetryError'`, as Node's own errors have it. */
  override readonly name = 'TelemetryError';
  /** `ERR_TELEMETRY_CLIENT_MISSING` (install `prom-client` or `@opentelemetry/api`) or `ERR_TELEMETRY_STATE` (already on). */
  readonly code: 'ERR_TELEMETRY_CLIENT_MISSING' | 'ERR_TELEMETRY_STATE';
  constructor(code: TelemetryError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

async function load<T>(name: string, purpose: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (error) {
    throw new TelemetryError('ERR_TELEMETRY_CLIENT_MISSING', `${purpose} needs the optional package ${name}: npm install ${name}`, { cause: error });
  }
}

let active: Telemetry | undefined;

let version: string | undefined;

/** The package's version, for `statesmith_build_info`: read from its package.json when telemetry is first enabled. */
function packageVersion(): string {
  if (version !== undefined) return version;
  // From src/telemetry (sources) or dist/src/telemetry (the built package).
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const parsed = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'statesmith' && typeof parsed.version === 'string') return (version = parsed.version);
    } catch {
      // not there: the other layout
    }
  }
  return (version = 'unknown');
}

/** Histogram buckets: a non-empty array of finite numbers > 0, strictly increasing. */
function checkBuckets(name: string, value: unknown): readonly number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) throw new ArgumentTypeError(name, 'a non-empty array of bucket bounds in seconds', value);
  for (const [i, bound] of value.entries()) {
    if (typeof bound !== 'number' || !Number.isFinite(bound) || bound <= 0 || (i > 0 && bound <= (value[i - 1] as number))) {
      throw new ArgumentRangeError(name, 'finite numbers > 0, strictly increasing', value);
    }
  }
  return value as readonly number[];
}

/**
 * Switches telemetry on for the whole process, and returns it. Metrics are on by
 * default, traces off; lock and action names stay out of labels unless asked. Rejects
 * with a `TelemetryError` when a needed client is not installed or telemetry is on already.
 *
 * @example
 * ```ts
 * import { Mutex } from 'statesmith';
 * import { enableTelemetry } from 'statesmith/telemetry';
 * const telemetry = await enableTelemetry();
 * const mutex = new Mutex({ name: 'volume-7' });
 * await mutex.runExclusive(async () => undefined);
 * const text = await telemetry.metrics();
 * console.log(text.includes('statesmith_lock_acquire_duration_seconds_count{kind="mutex",outcome="acquired"} 1')); // true
 * await telemetry.disable();
 * ```
 */
export async function enableTelemetry(options?: TelemetryOptions): Promise<Telemetry> {
  const opts = optionalObject<TelemetryOptions>('options', options, [
    'metrics',
    'traces',
    'lockNamesInLabels',
    'actionNamesInLabels',
    'executorNamesInLabels',
    'collectDefaultMetrics',
    'buckets',
    'lockHoldSampling',
  ]);
  const metricsOn = opts.metrics === undefined ? true : typeof opts.metrics === 'boolean' ? opts.metrics : true;
  const tracesOn = opts.traces === undefined ? false : typeof opts.traces === 'boolean' ? opts.traces : true;
  const metricsOptions = optionalObject<MetricsOptions>('options.metrics', typeof opts.metrics === 'object' ? opts.metrics : undefined, ['registry']);
  const tracesOptions = optionalObject<TracesOptions>('options.traces', typeof opts.traces === 'object' ? opts.traces : undefined, ['tracer']);
  if (opts.metrics !== undefined && typeof opts.metrics !== 'boolean' && (opts.metrics === null || typeof opts.metrics !== 'object')) {
    throw new ArgumentTypeError('options.metrics', 'a boolean or an options object', opts.metrics);
  }
  if (opts.traces !== undefined && typeof opts.traces !== 'boolean' && (opts.traces === null || typeof opts.traces !== 'object')) {
    throw new ArgumentTypeError('options.traces', 'a boolean or an options object', opts.traces);
  }
  const lockNames = optionalBoolean('options.lockNamesInLabels', opts.lockNamesInLabels, false);
  const actionNames = optionalBoolean('options.actionNamesInLabels', opts.actionNamesInLabels, false);
  const executorNames = optionalBoolean('options.executorNamesInLabels', opts.executorNamesInLabels, false);
  const defaultMetrics = optionalBoolean('options.collectDefaultMetrics', opts.collectDefaultMetrics, false);
  const bucketOptions = optionalObject<{ work: readonly number[]; lock: readonly number[] }>('options.buckets', opts.buckets, ['work', 'lock']);
  const buckets = { work: checkBuckets('options.buckets.work', bucketOptions.work), lock: checkBuckets('options.buckets.lock', bucketOptions.lock) };
  const holdSampling = opts.lockHoldSampling ?? 8;
  if (typeof holdSampling !== 'number' || !Number.isInteger(holdSampling) || holdSampling < 1 || holdSampling > 1_000_000) {
    throw new ArgumentRangeError('options.lockHoldSampling', 'an integer from 1 to 1000000', holdSampling);
  }
  if (active !== undefined || telemetry.enabled) throw new TelemetryError('ERR_TELEMETRY_STATE', 'telemetry is already enabled; disable() it first');

  let metrics: MetricSet | undefined;
  let registry: { metrics(): Promise<string>; contentType: string; removeSingleMetric(name: string): void } | undefined;
  if (metricsOn) {
    const prom = await load<typeof import('prom-client')>('prom-client', 'Prometheus metrics');
    const client = ((prom as unknown as { default?: typeof prom }).default ?? prom) as typeof prom;
    registry = (metricsOptions.registry as typeof registry) ?? (new client.Registry() as unknown as typeof registry);
    metrics = new StatesmithMetrics(client as never, registry as never, {
      lockNames,
      actionNames,
      holdSampling,
      executorNames,
      defaultMetrics,
      version: packageVersion(),
      buckets: { ...(buckets.work === undefined ? {} : { work: buckets.work }), ...(buckets.lock === undefined ? {} : { lock: buckets.lock }) },
    });
  }
  let tracer: TracerLike | undefined;
  if (tracesOn) {
    const api = await load<typeof import('@opentelemetry/api')>('@opentelemetry/api', 'OpenTelemetry traces');
    const otel = ((api as unknown as { default?: typeof api }).default ?? api) as typeof api;
    const given = tracesOptions.tracer as import('@opentelemetry/api').Tracer | undefined;
    tracer = { api: otel, tracer: given ?? otel.trace.getTracer('statesmith') };
  }
  if (active !== undefined || telemetry.enabled) throw new TelemetryError('ERR_TELEMETRY_STATE', 'telemetry is already enabled; disable() it first');

  const sink = new StatesmithSink(metrics, tracer);
  telemetry.install(sink);
  const stopObserving = observeActors((actor, snapshot) => sink.snapshot(actor, snapshot));
  const servers = new Set<Server>();

  const handle: Telemetry = {
    registry,
    contentType: (registry as { contentType?: string } | undefined)?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8',
    metrics: async () => (registry === undefined ? '' : registry.metrics()),
    serve: async (serveOptions) => {
      const { port = 0, host = '127.0.0.1' } = optionalObject<{ port: number; host: string }>('options', serveOptions, ['port', 'host']);
      if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ArgumentTypeError('options.port', 'an integer from 0 to 65535', port);
      const server = createServer((request, response) => {
        if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
          response.writeHead(404, { 'content-type': 'text/plain' }).end('not found; the metrics are at /metrics\n');
          return;
        }
        handle.metrics().then(
          (text) => response.writeHead(200, { 'content-type': handle.contentType }).end(text),
          (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
        );
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      servers.add(server);
      const bound = (server.address() as { port: number }).port;
      return {
        url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`,
        port: bound,
        close: () => closeServer(server, servers),
      };
    },
    recordLeadership: (group, leader) => {
      if (typeof group !== 'string') throw new ArgumentTypeError('group', 'a string', group);
      if (typeof leader !== 'boolean') throw new ArgumentTypeError('leader', 'a boolean', leader);
      if (active === handle) sink.leadership(group, leader);
    },
    disable: async () => {
      if (active !== handle) return;
      active = undefined;
      telemetry.remove();
      stopObserving();
      metrics?.unregister();
      await Promise.all([...servers].map((server) => closeServer(server, servers)));
    },
    [Symbol.asyncDispose]: () => handle.disable(),
  };
  active = handle;
  return handle;
}

function closeServer(server: Server, servers: Set<Server>): Promise<void> {
  servers.delete(server);
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
