/**
 * statesmith/nats against raw NATS, in one run on the same server: a remote command round
 * trip (remote.request → exposed actor → reply) against a raw request/reply of the same
 * payload (target ≥ 0.7×), and what serving an executor costs its cycle (snapshots and
 * events published; target ≥ 0.7× of the cycle with no bridge).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createActor } from 'xstate';
import { AsyncExecutor, WakeupBus, setLogger, taskGroupLogic } from '../src/index.ts';
import { exposeActor, remoteActor } from '../src/nats/index.ts';
import { fmtNs, fmtRatio, measure, table } from './harness.ts';

setLogger({ debug() {}, info() {}, warn() {}, error() {} });

export async function benchNats(): Promise<void> {
  const url = process.env['STATESMITH_NATS_URL'] ?? 'nats://127.0.0.1:4222';
  let server: NatsConnection;
  let client: NatsConnection;
  try {
    server = await connect({ servers: url, timeout: 2_000 });
    client = await connect({ servers: url, timeout: 2_000 });
  } catch {
    console.log(`\nstatesmith/nats: no NATS at ${url}; skipped`);
    return;
  }
  const subject = `statesmith.bench.${process.pid}`;
  const command = JSON.stringify({ type: 'statesmith.taskGroup.wait' });
  const reply = JSON.stringify({ type: 'statesmith.taskGroup.finished', errors: [] });
  const raw = server.subscribe(`${subject}.raw`, {
    callback: (_error, message) => {
      message.respond(reply);
    },
  });
  const group = createActor(taskGroupLogic, { input: { uniqueId: 'bench' } }).start();
  const exposed = await exposeActor(group, { connection: server, subject });
  const remote = remoteActor({ connection: client, subject });
  await client.flush();

  const trips = await measure(
    [
      {
        name: 'raw NATS request/reply (same payloads)',
        run: async (n) => {
          for (let i = 0; i < n; i++) await client.request(`${subject}.raw`, command, { timeout: 5_000 });
        },
      },
      {
        name: 'remote.request → exposed task group → reply',
        run: async (n) => {
          for (let i = 0; i < n; i++) await remote.request({ type: 'statesmith.taskGroup.wait' });
        },
      },
    ],
    { n: 2_000, rounds: 5 },
  );
  const base = trips[0]?.nsPerOp ?? 1;
  table(
    'Remote command round trip (2,000 × 5 rounds, median)',
    trips.map((r) => ({ case: r.name, 'per trip': fmtNs(r.nsPerOp), 'speed vs raw': fmtRatio(base / r.nsPerOp) })),
  );
  console.log('target: ≥ 0.70× the raw request/reply');

  const bus = new WakeupBus();
  const bare = new AsyncExecutor({ wakeup: bus, name: 'bare' });
  const served = new AsyncExecutor({ wakeup: bus, name: 'served' });
  // Counted where they are published: a subscriber in this same process would fall behind
  // the burst and be cut off by the server as a slow consumer.
  let published = 0;
  const counting = {
    publish: (to: string, payload?: string | Uint8Array) => {
      if (to.endsWith('.state')) published++;
      server.publish(to, payload);
    },
    subscribe: server.subscribe.bind(server),
    request: server.request.bind(server),
    flush: server.flush.bind(server),
  };
  const servedExposed = await exposeActor(served.actor, { connection: counting as never, subject: `${subject}.executor` });
  const task = async (): Promise<boolean> => true;
  const cycle = (executor: AsyncExecutor) => async (n: number) => {
    for (let i = 0; i < n; i++) {
      executor.schedule('restart');
      await executor.run(task);
      await bus.wait(0);
    }
  };
  const started = performance.now();
  const cycles = await measure(
    [
      { name: 'executor cycle, not served', run: cycle(bare) },
      { name: 'executor cycle, served over NATS', run: cycle(served) },
    ],
    { n: 5_000, rounds: 5 },
  );
  await client.flush();
  const seconds = (performance.now() - started) / 1000;
  const off = cycles[0]?.nsPerOp ?? 1;
  table(
    'Serving a busy executor (5,000 cycles × 5 rounds, median)',
    cycles.map((r) => ({ case: r.name, 'per cycle': fmtNs(r.nsPerOp), 'speed vs not served': fmtRatio(off / r.nsPerOp) })),
  );
  console.log(`snapshots published: ${published} (${Math.round(published / seconds)} per second over the run); target: ≥ 0.70× the cycle not served`);

  raw.unsubscribe();
  remote.close();
  await servedExposed.close();
  await exposed.close();
  group.stop();
  await server.close();
  await client.close();
}
