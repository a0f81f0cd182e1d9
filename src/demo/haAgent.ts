/**
 * The HA-agent demo (`npm start`, `statesmith demo`): every facility in one small agent.
 *
 * - It joins a coordinator (embedded by default, or Redis, PostgreSQL, etcd, SQLite or MySQL by URL) and
 *   campaigns in the `leader` election every cycle; the leader promotes itself and, now
 *   and then, restarts its database, each as a real subprocess run through the executor.
 *   A follower waits. Agents on one backend elect one leader, and a follower takes over,
 *   with a larger term, when the leader dies (its lease runs out).
 * - The HA loop runs on the wake-up bus: finished actions wake it early.
 * - A monitoring service runs health-check and metrics tasks until stopped.
 * - A WAL archiver takes a lock and wedges; a watchdog locksmith forces the lock, runs
 *   a cleanup under it, and the archiver learns why it lost it.
 * - With an inspector, every actor shows live in the browser.
 *
 * @module
 */
import { sleep } from '../runtime/sleep.ts';
import { AsyncExecutor } from '../executor/AsyncExecutor.ts';
import { WakeupBus } from '../bus/WakeupBus.ts';
import { createCoordinator } from '../coordination/Coordinator.ts';
import type { LockLostError } from '../errors.ts';
import { startInspector, type Inspector } from '../inspect/server.ts';
import { enableTelemetry, type MetricsEndpoint, type Telemetry } from '../telemetry/index.ts';
import { exposeActor, exposeInspection } from '../nats/index.ts';
import { Mutex } from '../locks/Mutex.ts';
import { Locksmith } from '../locksmith/Locksmith.ts';
import { getLogger, setLogger, type LogFields } from '../logger.ts';
import { CancellableSubprocess } from '../subprocess/CancellableSubprocess.ts';
import type { ServiceMain } from '../../machines/service.machine.ts';
import { startActor } from '../runtime/startActor.ts';
import { executorContextOf, haAgentMachine } from './haAgentMachine.ts';
import { durable, type DurableSnapshot } from '../durable/durable.ts';
import { executorLogic } from '../executor/executorLogic.ts';
import type { AnyActorRef } from 'xstate';

/** Options of {@link runHaAgent}. */
export interface HaAgentOptions {
  /** The agent's name (its member id). Default `agent-<pid>`. */
  readonly name?: string;
  /** Coordinator URL; default `memory://`. */
  readonly coordinatorUrl?: string;
  /** Start an inspector on this port (0: any free one); `undefined`: none. */
  readonly inspectPort?: number;
  /** Serve Prometheus metrics on this port (0: any free one); `undefined`: none. */
  readonly metricsPort?: number;
  /** Expose the agent's actors on this NATS server under `statesmith.agents.<name>.…`; `undefined`: none. */
  readonly natsUrl?: string;
  /** Stop by itself after this many ms; default never. */
  readonly durationMs?: number;
  /** Where log lines go; default stdout. */
  readonly out?: (line: string) => void;
  /** How long a silent leader keeps the lock (its lease); default 3000 ms. */
  readonly leaseMs?: number;
  /** HA cycle interval; default 1000 ms. */
  readonly cycleMs?: number;
  /**
   * Keep the executor's state in this store (`sqlite:///abs/path.db`, `postgresql://…`), so a
   * restarted agent (after a crash, a SIGKILL) comes back where its executor was, under the id
   * `ha/<name>/executor` (`ha/default/executor` without a name): an action it was running is
   * reported interrupted, never silently run again. Fenced by the coordinator when its backend
   * has leases (`sqlite://`, Redis, etcd). Default: nothing is kept.
   */
  readonly stateUrl?: string;
}

/** A running agent. */
export interface HaAgent {
  readonly inspectorUrl: string | undefined;
  /** Where the metrics are served, with `metricsPort`. */
  readonly metricsUrl: string | undefined;
  /** True while this agent leads (its leadership is not lost). */
  readonly isLeader: boolean;
  /** Resolves once the agent has stopped (by `stop()`, or after `durationMs`). */
  readonly done: Promise<void>;
  readonly executor: AsyncExecutor;
  stop(reason?: string): Promise<void>;
}

export async function runHaAgent(options: HaAgentOptions = {}): Promise<HaAgent> {
  const name = options.name ?? `agent-${process.pid}`;
  const out = options.out ?? ((line: string) => console.log(line));
  const t0 = performance.now();
  const say = (who: string, what: string): void => out(`+${String(Math.round(performance.now() - t0)).padStart(6)} ms  ${who.padEnd(10)} ${what}`);
  const log = (level: string) => (message: string, fields?: LogFields) =>
    say('log', `${level}: ${message}${fields?.['error'] instanceof Error ? ` (${fields['error'].message})` : ''}`);
  // NATS first: an agent asked to serve over NATS that cannot reach it starts nothing.
  let natsConnection: Awaited<ReturnType<(typeof import('@nats-io/transport-node'))['connect']>> | undefined;
  if (options.natsUrl !== undefined) {
    const { connect } = await import('@nats-io/transport-node');
    try {
      natsConnection = await connect({ servers: options.natsUrl, name, timeout: 5_000 });
    } catch (error) {
      const reason = error instanceof Error ? `${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ''}` : String(error);
      throw Object.assign(new Error(`could not reach NATS at ${options.natsUrl}: ${reason}`, { cause: error }), { code: 'ERR_NATS_UNREACHABLE' });
    }
  }

  // The agent's log goes to its own output; whatever logger was set before comes back on stop().
  const previousLogger = getLogger();
  setLogger({ debug: () => undefined, info: log('info'), warn: log('warn'), error: log('error') });

  let inspector: Inspector | undefined;
  if (options.inspectPort !== undefined) {
    inspector = await startInspector({ port: options.inspectPort });
    say('inspector', `open ${inspector.url}`);
  }
  let metrics: { telemetry: Telemetry; endpoint: MetricsEndpoint } | undefined;
  if (options.metricsPort !== undefined) {
    const telemetry = await enableTelemetry({ collectDefaultMetrics: true });
    metrics = { telemetry, endpoint: await telemetry.serve({ port: options.metricsPort }) };
    say('metrics', `serving ${metrics.endpoint.url}`);
  }

  const coordinator = createCoordinator({
    url: options.coordinatorUrl ?? 'memory://',
    prefix: 'ha-',
    agentId: name,
    lockTtlMs: options.leaseMs ?? 3_000,
    heartbeatMs: 500,
    initialReconnectBackoffMs: 200,
    maxReconnectBackoffMs: 5_000,
  });
  await coordinator.start();
  say('agent', `${coordinator.memberId} joined ${coordinator.backendKind} coordination`);
  const election = coordinator.getElection('leader');

  const bus = new WakeupBus();
  const lock = new Mutex({ name: 'ha lock', reentrant: true });
  // The executor's actions run shell scripts through the subprocess runner it owns (its child).
  let runner: CancellableSubprocess | undefined;
  const postgres = (): CancellableSubprocess => {
    const executor = agent.getSnapshot().children['executor'] as AnyActorRef;
    runner ??= CancellableSubprocess.attach(executor.getSnapshot().children['subprocess'], 'postgres');
    return runner;
  };
  const sh = (script: string, tag: string, signal: AbortSignal): Promise<number | null> =>
    postgres().call(['sh', '-c', script], { onOutput: (text) => say(tag, `| ${text}`), signal });

  // The monitoring service's main: health checks, metrics, and a WAL archiver that wedges holding its lock.
  const walLock = new Mutex({ name: 'wal-archive' });
  const monitoring: ServiceMain = async (signal, service) => {
    service.createTask(
      async (sub) => {
        for (let n = 1; !sub.aborted; n++) {
          await sleep(1_500, sub);
          if (!sub.aborted && n % 2 === 0) say('health', `database healthy (check ${n})`);
        }
      },
      { name: 'health-check', restart: { type: 'permanent', backoff: { initialMs: 500 } } },
    );
    service.createTask(
      async (sub) => {
        for (let n = 1; !sub.aborted; n++) {
          await sleep(2_000, sub);
          if (!sub.aborted && n % 2 === 0) {
            const { cycles, leader } = agent.getSnapshot().context;
            const action = executorContextOf(agent.getSnapshot().children['executor'] as AnyActorRef)?.action ?? null;
            say('metrics', `cycles=${cycles} leader=${leader != null && !leader.signal.aborted} executor=${action ?? 'idle'}`);
          }
        }
      },
      { name: 'metrics', restart: { type: 'permanent', backoff: { initialMs: 500 } } },
    );
    service.createTask(
      async (sub) => {
        await sleep(1_000, sub);
        const held = await walLock.acquire({ signal: sub });
        say('archiver', 'took the wal-archive lock, and now hangs on a dead NFS mount');
        await new Promise<void>((resolve) => {
          held.signal.addEventListener('abort', () => resolve(), { once: true });
          sub.addEventListener('abort', () => resolve(), { once: true });
        });
        if (held.signal.aborted) say('archiver', `gave up: ${(held.signal.reason as LockLostError).message}`);
        held.release();
      },
      { name: 'wal-archiver' },
    );
    await sleep(3_000, signal);
    if (signal.aborted) return;
    const watchdog = new Locksmith({ name: 'watchdog' });
    await watchdog.recognize(walLock);
    say('watchdog', 'wal-archive held for 2 s with no progress: forcing it');
    const report = await watchdog.host(
      async () => {
        say('watchdog', `cleanup runs holding wal-archive (owner: ${String(walLock.owner)})`);
        return 'archive status reset';
      },
      walLock,
      { info: 'archiver stuck for 2 s', forceTimeoutMs: 1_000 },
    );
    say('watchdog', `host() returned: ${report}`);
    // The service's main has nothing more to do: it waits to be stopped, its tasks run on.
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  };

  // With a state store, the executor is durable: a user's machine invokes durable(executorLogic) as it would executorLogic.
  const fenceable = /^(sqlite|redis|rediss|etcd|etcds):/.test(options.coordinatorUrl ?? 'memory://');
  const machine =
    options.stateUrl === undefined
      ? haAgentMachine
      : haAgentMachine.provide({
          actors: {
            executor: durable(executorLogic, {
              store: options.stateUrl,
              id: `ha/${options.name ?? 'default'}/executor`,
              version: 1,
              ...(fenceable ? { coordinator } : {}),
            }) as never,
          },
        });
  // The agent itself is an XState machine that drives its executor and its service by commands.
  const agent = startActor('haAgent', machine, {
    id: `agent:${name}`,
    input: {
      say,
      election,
      name,
      leave: () => coordinator.stop(),
      wakeup: bus,
      lock,
      cycleMs: options.cycleMs ?? 1_000,
      actions: {
        promote: (signal: AbortSignal) => sh('echo promoting; sleep 0.3; echo promoted', 'promote', signal),
        restart: (signal: AbortSignal) => sh('echo stopping postgres; sleep 0.4; echo starting postgres; sleep 0.4; echo ready', 'restart', signal),
      },
      monitoring,
    },
  });
  bus.wakeups$.subscribe((w) => {
    say('bus', `wake-up: ${w.reason}`);
    agent.send({ type: 'wake' });
  });
  const executorRef = agent.getSnapshot().children['executor'] as AnyActorRef;
  const executor = AsyncExecutor.attach(executorRef, { name: 'ha', lock });
  if (options.stateUrl !== undefined) {
    // What it came back with, once that is saved: where the executor was, and what the crash cut short.
    executorRef.on('statesmith.durable.restored', (event) => {
      const { restored, savedAt, fence, interrupted } = event as unknown as {
        restored: boolean;
        savedAt: number | null;
        fence: string | null;
        interrupted: number;
      };
      const inner = (executorRef.getSnapshot() as DurableSnapshot).inner as unknown as
        { value: unknown; context: { generation: number; lastAction: string | null; lastOutcome: string | null } } | undefined;
      const under = fence === null ? '' : ` under fence ${fence}`;
      if (!restored) say('state', `no saved state: the executor starts fresh${under}, kept in ${options.stateUrl}`);
      else
        say(
          'state',
          `restored the executor saved at ${new Date(savedAt as number).toISOString()}${under}: task ${inner?.context.generation ?? 0}, ` +
            `${JSON.stringify(inner?.value)}, last ${inner?.context.lastAction ?? 'none'} ${inner?.context.lastOutcome ?? ''}; ${interrupted} interrupted`,
        );
    });
    executorRef.on('statesmith.executor.done', (event) => {
      const { action, outcome } = event as unknown as { action: string; outcome: string };
      if (outcome === 'interrupted') say('executor', `${action} was cut short by the last crash: reported interrupted, not run again`);
    });
  }

  // Over NATS: the agent (its leadership in its context), its executor and its monitoring service.
  let nats: { close(): Promise<void>; exposed: Array<{ close(): Promise<void> }> } | undefined;
  if (natsConnection !== undefined) {
    const connection = natsConnection;
    const base = `statesmith.agents.${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const children = agent.getSnapshot().children as Record<string, AnyActorRef>;
    const exposed = [
      await exposeActor(agent, { connection, subject: `${base}.agent` }),
      await exposeActor(children['executor'] as AnyActorRef, { connection, subject: `${base}.executor` }),
      await exposeActor(children['monitoring'] as AnyActorRef, { connection, subject: `${base}.monitoring` }),
    ];
    // And the inspection feed, so one inspector can show several agents (startInspector({ nats })).
    exposed.push(await exposeInspection({ connection, subject: base }));
    nats = { exposed, close: () => connection.close() };
    say('nats', `serving ${base}.{agent,executor,monitoring,inspect} on ${options.natsUrl}`);
  }

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let stopping: Promise<void> | undefined;
  const stop = (reason = 'stopped'): Promise<void> => {
    stopping ??= (async () => {
      say('agent', `stopping: ${reason}`);
      clearTimeout(autoStop);
      // The agent stops its service, cancels its executor and leaves coordination, by messages.
      // An agent machine stopped already (status 'stopped') would never call complete: skip the wait.
      if (agent.getSnapshot().status === 'active') {
        await new Promise<void>((resolve) => {
          agent.subscribe({ complete: resolve, error: () => resolve() });
          agent.send({ type: 'stop', reason });
        });
      }
      bus.complete();
      await inspector?.close();
      await metrics?.telemetry.disable();
      if (nats !== undefined) {
        for (const exposed of nats.exposed) await exposed.close();
        await nats.close();
      }
      say('agent', 'stopped cleanly');
      setLogger(previousLogger);
      resolveDone();
    })();
    return stopping;
  };
  const autoStop = options.durationMs === undefined ? undefined : setTimeout(() => void stop(`ran for ${options.durationMs} ms`), options.durationMs);

  return {
    inspectorUrl: inspector?.url,
    metricsUrl: metrics?.endpoint.url,
    get isLeader() {
      const leader = agent.getSnapshot().context.leader;
      return leader !== null && !leader.signal.aborted;
    },
    done,
    executor,
    stop,
  };
}
