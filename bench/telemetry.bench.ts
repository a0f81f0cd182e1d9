/**
 * What telemetry costs: the executor cycle and the Mutex cycle with telemetry off, with
 * metrics on, and with metrics and traces on (an OpenTelemetry SDK recording every span
 * in memory), side by side in one run. Targets: the executor cycle ≥ 0.9× and the Mutex
 * cycle ≥ 0.7× of their speed with telemetry off (metrics on).
 */
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { AsyncExecutor, Mutex, WakeupBus, setLogger } from '../src/index.ts';
import { telemetry as hooks, type TelemetrySink } from '../src/telemetry/hooks.ts';
import { enableTelemetry } from '../src/telemetry/index.ts';
import { observeActors } from '../src/runtime/startActor.ts';
import { fmtNs, fmtRatio, measure, table } from './harness.ts';

setLogger({ debug() {}, info() {}, warn() {}, error() {} });

const task = async (): Promise<boolean> => true;

export async function benchTelemetry(): Promise<void> {
  // Both sinks are made once; each case switches the process's hooks to its own for its run.
  const metricsOnly = await enableTelemetry();
  const metricsSink = hooks.sink;
  await metricsOnly.disable();
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const withTraces = await enableTelemetry({ traces: { tracer: provider.getTracer('bench') } });
  const tracingSink = hooks.sink;
  await withTraces.disable();

  // As enableTelemetry() does: the hooks, and the actor systems observed for the actor metrics.
  const as = (sink: TelemetrySink | undefined, run: (n: number) => Promise<void>) => async (n: number) => {
    if (sink === undefined) hooks.remove();
    else hooks.install(sink);
    const stopObserving = sink === undefined ? undefined : observeActors((actor, snapshot) => sink.snapshot(actor, snapshot));
    try {
      await run(n);
    } finally {
      stopObserving?.();
      hooks.remove();
      exporter.reset();
    }
  };

  const bus = new WakeupBus();
  const executor = new AsyncExecutor({ wakeup: bus, name: 'bench' });
  const cycle = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      executor.schedule('restart');
      await executor.run(task);
      await bus.wait(0);
    }
  };
  const mutex = new Mutex({ name: 'bench' });
  const lockCycle = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) (await mutex.acquire()).release();
  };

  for (const [title, run, n, target] of [
    ['Executor cycle with telemetry (20,000 cycles × 7 rounds, median)', cycle, 20_000, 0.9],
    ['Mutex acquire/release with telemetry (200,000 × 7 rounds, median)', lockCycle, 200_000, 0.7],
  ] as const) {
    const results = await measure(
      [
        { name: 'telemetry off', run: as(undefined, run) },
        { name: 'metrics on', run: as(metricsSink, run) },
        { name: 'metrics and traces on', run: as(tracingSink, run) },
      ],
      { n, rounds: 7 },
    );
    const off = results[0]?.nsPerOp ?? 1;
    table(
      title,
      results.map((r) => ({ case: r.name, 'per cycle': fmtNs(r.nsPerOp), 'speed vs off': fmtRatio(off / r.nsPerOp) })),
    );
    console.log(`target: metrics on ≥ ${target.toFixed(2)}× the speed with telemetry off`);
  }
  await provider.shutdown();
}
