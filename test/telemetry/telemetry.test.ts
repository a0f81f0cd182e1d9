/**
 * statesmith/telemetry: the metrics scraped over HTTP and parsed after a scripted
 * scenario, spans through the OpenTelemetry SDK's in-memory exporter (with their
 * parent/child links), and label cardinality.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { AsyncExecutor, createCoordinator, Locksmith, ManualClock, Mutex, TaskGroup, WakeupBus, CancellableSubprocess } from '../../src/index.ts';
import { enableTelemetry, TelemetryError, type Telemetry } from '../../src/telemetry/index.ts';
import { rejection, settle } from '../support/async.ts';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Prometheus' text format: the samples, and each metric's TYPE. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(match, `a sample line: ${line}`).to.not.equal(null);
    const labels: Record<string, string> = {};
    for (const pair of (match?.[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] as string] = pair[2] as string;
    samples.push({ name: match?.[1] as string, labels, value: Number(match?.[3]) });
  }
  return { samples, types };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe('telemetry', function () {
  this.timeout(20_000);
  let telemetry: Telemetry | undefined;
  afterEach(async () => {
    await telemetry?.disable();
    telemetry = undefined;
  });

  it('serves /metrics with every metric, its type and low-cardinality labels, after a scripted scenario', async () => {
    telemetry = await enableTelemetry({ lockHoldSampling: 1 });
    // An executor task that completes and one that fails.
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'ha' });
    await executor.run(async function promote() {
      return 'ok';
    });
    await executor.run(async function restart() {
      throw new Error('pg_ctl failed');
    });
    // A contended mutex: one waiter gets it, one times out.
    // Durations are measured in real time: the timeout is a real 5 ms, so it cannot land in the
    // 0.1 ms bucket (on a simulated clock it took microseconds, and sometimes did).
    const mutex = new Mutex({ name: 'volume-7' });
    const held = await mutex.acquire();
    const waiter = mutex.acquire();
    await rejection(mutex.acquire({ timeoutMs: 5 }));
    held.release();
    (await waiter).release();
    // A stuck holder forced by a locksmith.
    const stuck = new Mutex({ name: 'wal-archive' });
    await stuck.acquire();
    const locksmith = new Locksmith({ name: 'watchdog' });
    await locksmith.recognize(stuck);
    await locksmith.force(stuck, { answerTimeoutMs: 0 });
    // A task restarted by its group, on a simulated clock.
    const clock = new ManualClock();
    const group = new TaskGroup({ uniqueId: 'mon', clock, random: () => 0 });
    let runs = 0;
    group.createTask(() => (++runs === 1 ? Promise.reject(new Error('flaky')) : new Promise(() => undefined)), {
      name: 'poller',
      logException: false,
      restart: { backoff: { initialMs: 10 } },
    });
    await settle();
    await clock.advance(10);
    group.cancel();
    // A subprocess call, and one cancelled (SIGTERM).
    const runner = new CancellableSubprocess({ name: 'pg' });
    await runner.call(['true']);
    const long = runner.call(['sleep', '5']);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await runner.cancel();
    await long.catch(() => undefined);
    // A coordinator's life, a distributed lock, and a leadership change.
    const coordinator = createCoordinator({ agentId: 'a' });
    await coordinator.start();
    const handle = await coordinator.getLock('leader').acquire();
    await handle?.release();
    telemetry.recordLeadership('db', true);
    telemetry.recordLeadership('db', true);
    telemetry.recordLeadership('db', false);
    await coordinator.stop();

    const endpoint = await telemetry.serve({ port: 0 });
    const response = await fetch(endpoint.url);
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.match(/^text\/plain/);
    const { samples, types } = parse(await response.text());
    expect(Object.fromEntries(types)).to.deep.include({
      statesmith_actor_transitions_total: 'counter',
      statesmith_actors: 'gauge',
      statesmith_executor_task_duration_seconds: 'histogram',
      statesmith_task_restarts_total: 'counter',
      statesmith_lock_acquire_duration_seconds: 'histogram',
      statesmith_lock_hold_duration_seconds: 'histogram',
      statesmith_lock_lost_total: 'counter',
      statesmith_lock_waiters: 'gauge',
      statesmith_lock_forced_total: 'counter',
      statesmith_coordinator_state: 'gauge',
      statesmith_coordinator_reconnects_total: 'counter',
      statesmith_lease_renew_failures_total: 'counter',
      statesmith_leader: 'gauge',
      statesmith_leadership_changes_total: 'counter',
      statesmith_subprocess_duration_seconds: 'histogram',
      statesmith_subprocess_kills_total: 'counter',
    });
    expect(value(samples, 'statesmith_actor_transitions_total', { kind: 'executor', from: 'running', to: 'done' })).to.equal(2);
    expect(value(samples, 'statesmith_actors', { kind: 'executor', state: 'idle' })).to.be.at.least(1);
    expect(value(samples, 'statesmith_executor_task_duration_seconds_count', { executor: 'ha', outcome: 'completed' })).to.equal(1);
    expect(value(samples, 'statesmith_executor_task_duration_seconds_count', { executor: 'ha', outcome: 'failed' })).to.equal(1);
    expect(
      samples.filter((s) => s.name.startsWith('statesmith_executor_') && 'action' in s.labels),
      'no action label unless asked',
    ).to.deep.equal([]);
    expect(value(samples, 'statesmith_lock_acquire_duration_seconds_count', { kind: 'mutex', outcome: 'timeout' })).to.equal(1);
    expect(value(samples, 'statesmith_lock_acquire_duration_seconds_bucket', { kind: 'mutex', outcome: 'timeout', le: '0.0001' })).to.equal(0);
    expect(value(samples, 'statesmith_lock_acquire_duration_seconds_count', { kind: 'mutex', outcome: 'acquired' })).to.equal(3);
    expect(value(samples, 'statesmith_lock_hold_duration_seconds_count', { kind: 'mutex' })).to.equal(3);
    expect(value(samples, 'statesmith_lock_waiters', { kind: 'mutex' })).to.equal(0);
    expect(value(samples, 'statesmith_lock_lost_total', { kind: 'mutex', reason: 'forced' })).to.equal(1);
    expect(value(samples, 'statesmith_lock_forced_total', { result: 'RELEASED' })).to.equal(1);
    expect(value(samples, 'statesmith_task_restarts_total', { group: 'TaskGroup:mon', task: 'poller' })).to.equal(1);
    expect(value(samples, 'statesmith_subprocess_duration_seconds_count', { outcome: 'completed' })).to.equal(1);
    expect(value(samples, 'statesmith_subprocess_duration_seconds_count', { outcome: 'cancelled' })).to.equal(1);
    expect(value(samples, 'statesmith_subprocess_kills_total', { signal: 'SIGTERM' })).to.equal(1);
    expect(value(samples, 'statesmith_lock_acquire_duration_seconds_count', { kind: 'distributed', outcome: 'acquired' })).to.equal(1);
    expect(value(samples, 'statesmith_lock_hold_duration_seconds_count', { kind: 'distributed' })).to.equal(1);
    expect(value(samples, 'statesmith_coordinator_state', { backend: 'memory', state: 'connected' })).to.equal(0);
    expect(value(samples, 'statesmith_coordinator_reconnects_total')).to.equal(0);
    expect(value(samples, 'statesmith_leader', { group: 'db' })).to.equal(0);
    expect(value(samples, 'statesmith_leadership_changes_total', { group: 'db' })).to.equal(2);
    expect(
      samples.filter((s) => s.name.startsWith('statesmith_lock_') && 'lock' in s.labels),
      'no lock label unless asked',
    ).to.deep.equal([]);
    expect((await fetch(endpoint.url.replace('/metrics', '/other'))).status).to.equal(404);
    await endpoint.close();
  });

  it('records spans with statesmith attributes; a user span inside an executor task nests under it', async () => {
    const contextManager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(contextManager);
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracer = provider.getTracer('test');
    try {
      telemetry = await enableTelemetry({ metrics: false, traces: { tracer } });
      const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'ha' });
      await executor.run(async function promote() {
        const mine = tracer.startSpan('pg_ctl promote');
        await new Promise((resolve) => setTimeout(resolve, 1));
        mine.end();
      });
      const coordinator = createCoordinator({ agentId: 'b', prefix: 'ha-' });
      await coordinator.start();
      const lock = await coordinator.getLock('leader').acquire();
      const fence = String(lock?.fence);
      await lock?.release();
      await coordinator.stop();
      const runner = new CancellableSubprocess({ name: 'pg' });
      await runner.call(['sh', '-c', 'exit 3']);
      const stuck = new Mutex({ name: 'wal-archive' });
      await stuck.acquire();
      const locksmith = new Locksmith({ name: 'watchdog' });
      await locksmith.recognize(stuck);
      await locksmith.force(stuck, { answerTimeoutMs: 0 });

      const spans = exporter.getFinishedSpans();
      const byName = (name: string): ReadableSpan[] => spans.filter((s) => s.name === name);
      const task = byName('statesmith.executor.task')[0] as ReadableSpan;
      expect(task.attributes).to.deep.include({ 'statesmith.executor': 'ha', 'statesmith.action': 'promote', 'statesmith.outcome': 'completed' });
      const mine = byName('pg_ctl promote')[0] as ReadableSpan;
      expect(mine.parentSpanContext?.spanId, 'the user span is the task span’s child').to.equal(task.spanContext().spanId);
      expect(mine.spanContext().traceId).to.equal(task.spanContext().traceId);
      const acquire = byName('statesmith.lock.acquire').find((s) => s.attributes['statesmith.lock.kind'] === 'distributed') as ReadableSpan;
      expect(acquire.attributes).to.deep.include({ 'statesmith.lock.name': 'ha-leader', 'statesmith.lock.fence': fence, 'statesmith.outcome': 'acquired' });
      const call = byName('statesmith.subprocess.call')[0] as ReadableSpan;
      expect(call.attributes).to.deep.include({ 'statesmith.subprocess': 'pg', 'statesmith.subprocess.command': 'sh', 'statesmith.subprocess.exit_code': 3 });
      const force = byName('statesmith.locksmith.force')[0] as ReadableSpan;
      expect(force.attributes).to.deep.include({ 'statesmith.lock.name': 'wal-archive', 'statesmith.outcome': 'RELEASED' });
    } finally {
      await provider.shutdown();
      context.disable();
      trace.disable();
    }
  });

  it('counts on after the registry is reset: the hot series found without a key start again from zero', async () => {
    const registry = new Registry();
    telemetry = await enableTelemetry({ metrics: { registry } });
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'reset' });
    const done = async (): Promise<string> => 'ok';
    await executor.run(done);
    await executor.run(done);
    const count = async (): Promise<number | undefined> =>
      value(parse(await registry.metrics()).samples, 'statesmith_executor_task_duration_seconds_count', { executor: 'reset', outcome: 'completed' });
    const transitions = async (): Promise<number | undefined> =>
      value(parse(await registry.metrics()).samples, 'statesmith_actor_transitions_total', { kind: 'executor', from: 'running', to: 'done' });
    expect(await count()).to.equal(2);
    expect(await transitions()).to.be.at.least(2);
    registry.resetMetrics();
    await executor.run(done);
    expect(await count(), 'one task since the reset').to.equal(1);
    expect(await transitions(), 'one transition since the reset').to.equal(1);
  });

  it('keeps lock names out of labels: 10,000 locks make one series, unless asked', async () => {
    telemetry = await enableTelemetry({ lockHoldSampling: 1 });
    for (let i = 0; i < 10_000; i++) (await new Mutex({ name: `volume-${i}` }).acquire()).release();
    let { samples } = parse(await telemetry.metrics());
    expect(samples.filter((s) => s.name === 'statesmith_lock_hold_duration_seconds_count')).to.have.length(1);
    expect(value(samples, 'statesmith_lock_hold_duration_seconds_count', { kind: 'mutex' })).to.equal(10_000);
    await telemetry.disable();
    telemetry = await enableTelemetry({ lockNamesInLabels: true, actionNamesInLabels: true, lockHoldSampling: 1 });
    for (let i = 0; i < 100; i++) (await new Mutex({ name: `volume-${i}` }).acquire()).release();
    const executor = new AsyncExecutor({ wakeup: new WakeupBus(), name: 'ha' });
    await executor.run(async function promote() {});
    ({ samples } = parse(await telemetry.metrics()));
    expect(samples.filter((s) => s.name === 'statesmith_lock_hold_duration_seconds_count')).to.have.length(100);
    expect(value(samples, 'statesmith_executor_task_duration_seconds_count', { executor: 'ha', action: 'promote', outcome: 'completed' })).to.equal(1);
  });

  it('samples one hold in lockHoldSampling and counts it as that many', async () => {
    telemetry = await enableTelemetry({ lockHoldSampling: 4 });
    const mutex = new Mutex({ name: 'hot' });
    for (let i = 0; i < 40; i++) (await mutex.acquire()).release();
    const { samples } = parse(await telemetry.metrics());
    expect(value(samples, 'statesmith_lock_hold_duration_seconds_count', { kind: 'mutex' })).to.equal(40);
    expect(value(samples, 'statesmith_lock_acquire_duration_seconds_count', { kind: 'mutex', outcome: 'acquired' }), 'acquires are all counted').to.equal(40);
    expect(((await rejection(enableTelemetry({ lockHoldSampling: 0 }))) as { code: string }).code).to.equal('ERR_OUT_OF_RANGE');
  });

  it('is off until enabled, once at a time, and disable() takes its metrics out of your registry', async () => {
    const registry = new Registry();
    telemetry = await enableTelemetry({ metrics: { registry } });
    expect((await registry.getMetricsAsJSON()).map((m) => m.name)).to.include('statesmith_lock_waiters');
    const again = (await rejection(enableTelemetry())) as TelemetryError;
    expect(again).to.be.instanceOf(TelemetryError);
    expect(again.code).to.equal('ERR_TELEMETRY_STATE');
    await telemetry.disable();
    telemetry = undefined;
    expect(await registry.getMetricsAsJSON()).to.deep.equal([]);
    // Off: the facilities record nothing anywhere.
    (await new Mutex({ name: 'quiet' }).acquire()).release();
    expect(await registry.metrics()).to.equal('\n');
    expect(((await rejection(enableTelemetry({ metric: true } as never))) as { code: string }).code).to.equal('ERR_UNKNOWN_OPTION');
    expect(() => enableTelemetry({ traces: 'yes' as never })).to.not.throw();
  });
});
