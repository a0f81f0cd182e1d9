/**
 * The NATS bridge under real network faults (issue 32): the NATS server in one host of the
 * harness, an exposed executor in another (`a`), a remote client in a third (`b`).
 *
 * What it must show: a command sent during a partition is answered after heal when the heal
 * comes within the request's `timeoutMs`, and refused with `ERR_NO_REPLY` when it does not, in
 * which case it never runs (TCP delivers it after the heal, past its deadline, and the exposed
 * side refuses it unrun); it never runs twice, and the bridge works after heal without a restart.
 */
import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { FaultNet, requireNetFaults, type NetHost } from '../support/netfault.ts';
import { privateNats, type PrivateServer } from '../support/servers.ts';
import { reportFigure } from './support.ts';

const peer = new URL('./fixtures/natsPeer.ts', import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A bridge peer in a host (fixtures/natsPeer.ts): what it told, and its answers by request id. */
class Peer {
  readonly ran: number[] = [];
  readonly #answers = new Map<number, (answer: Record<string, unknown>) => void>();
  readonly #child: ChildProcess;
  readonly ready: Promise<void>;
  constructor(net: FaultNet, host: NetHost, mode: 'serve' | 'client', url: string, subject: string) {
    this.#child = net.fork(host, peer, [mode, url, subject], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let ready: () => void = () => undefined;
    this.ready = new Promise((resolve) => (ready = resolve));
    this.#child.on('message', (message: Record<string, unknown>) => {
      if (message['event'] === 'ready') ready();
      else if (message['event'] === 'ran') this.ran.push(message['id'] as number);
      else this.#answers.get(message['id'] as number)?.(message);
    });
  }
  /** Requests `bump` number `id`; resolves with how it ended (never rejects; bounded by `timeoutMs` and a margin). */
  request(id: number, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error(`request ${id} was not settled within ${timeoutMs + 5_000} ms`)), timeoutMs + 5_000);
      this.#answers.set(id, (answer) => {
        clearTimeout(guard);
        resolve(answer);
      });
      this.#child.send({ id, timeoutMs });
    });
  }
  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

describe('partitions: the NATS bridge', function () {
  this.timeout(60_000);
  let net: FaultNet;
  let nats: PrivateServer;
  let serving: Peer;
  let client: Peer;
  let next = 0;

  before(async function () {
    requireNetFaults(this);
    net = FaultNet.create(['a', 'b']);
    nats = await privateNats([], { netns: net.server.netns, host: net.server.address });
    const subject = `statesmith.partitions.${process.pid}`;
    serving = new Peer(net, net.member('a'), 'serve', nats.url, subject);
    await serving.ready;
    client = new Peer(net, net.member('b'), 'client', nats.url, subject);
    await client.ready;
  });
  after(async () => {
    serving?.kill();
    client?.kill();
    await nats?.stop();
    await net?.destroy();
  });
  afterEach(async () => {
    await net.heal();
  });

  /** A fresh request is answered at once, and runs once: the bridge is whole. */
  async function whole(): Promise<void> {
    const id = ++next;
    const answer = await client.request(id, 10_000);
    expect(answer['outcome'], JSON.stringify(answer)).to.equal('answered');
    expect(serving.ran.filter((ran) => ran === id)).to.have.length(1);
  }

  it('answers a command sent while the client is cut off, once the partition heals within its timeoutMs; it runs once', async () => {
    await whole();
    await net.partition(net.member('b'));
    const id = ++next;
    const pending = client.request(id, 8_000);
    await sleep(2_000);
    expect(serving.ran, 'nothing crossed the partition').to.not.include(id);
    await net.heal(net.member('b'));
    const answer = await pending;
    expect(answer['outcome']).to.equal('answered');
    await sleep(1_000);
    expect(
      serving.ran.filter((ran) => ran === id),
      'runs of the command',
    ).to.have.length(1);
    reportFigure({ backend: 'nats bridge', fault: 'client cut off 2 s, request timeoutMs 8 s', outcome: 'answered after heal', runs: 1 });
    await whole();
  });

  for (const side of ['b', 'a'] as const) {
    it(`refuses with ERR_NO_REPLY a command whose timeoutMs passes while ${side === 'b' ? 'the client' : 'the exposed actor'} is cut off; delivered after heal, it is refused unrun, and the bridge works`, async () => {
      await whole();
      await net.partition(net.member(side));
      const id = ++next;
      const answer = await client.request(id, 1_500);
      expect(answer, 'refused, not left hanging').to.include({ outcome: 'rejected', code: 'ERR_NO_REPLY' });
      await sleep(1_000);
      await net.heal(net.member(side));
      // TCP still delivers, after the heal, what was on its way when the caller gave up: the exposed side
      // refuses it unrun, since it arrives after its request's deadline (before that fix it ran, once).
      await sleep(3_000);
      const runs = serving.ran.filter((ran) => ran === id).length;
      expect(runs, 'runs of the command its caller was told ERR_NO_REPLY for').to.equal(0);
      reportFigure({
        backend: 'nats bridge',
        fault: `${side === 'b' ? 'client' : 'exposed actor'} cut off 2.5 s, request timeoutMs 1.5 s`,
        outcome: 'ERR_NO_REPLY',
        runs,
      });
      await whole();
    });
  }
});
