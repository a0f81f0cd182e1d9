/**
 * The partition harness itself (test/support/netfault.ts): the hosts reach each other, each
 * fault does what it says at the TCP level, heal undoes it, and nothing is left behind.
 */
import { expect } from 'chai';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { FaultNet, requireNetFaults, type NetHost } from '../support/netfault.ts';

const probe = new URL('./fixtures/probe.ts', import.meta.url);

/** A probe's answer: whether the line came back (or was seen), which line, and how long it took. */
interface Answer {
  readonly ok: boolean;
  readonly ms: number;
  readonly line?: string;
  readonly error?: string;
}

/** A TCP echo server in `host`'s namespace, and a client in another's: the client's answers, with their times. */
class Echo {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (reply: Answer) => void>();
  #next = 0;
  constructor(net: FaultNet, host: NetHost, args: readonly string[]) {
    this.#child = net.fork(host, probe, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (message: Answer & { id: number }) => this.#waiting.get(message.id)?.(message));
  }
  /** Sends one line to the echo server over a fresh connection (or the kept one), waits at most `ms`. */
  ask(command: Record<string, unknown>): Promise<Answer> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#waiting.set(id, (reply) => {
        this.#waiting.delete(id);
        resolve(reply);
      });
      this.#child.send({ id, ...command });
    });
  }
  ready(): Promise<{ ok: boolean; ms: number }> {
    return this.ask({ do: 'ready' });
  }
}

function namespaces(): string[] {
  return (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n').map((line) => line.split(' ')[0] ?? '');
}

describe('the partition harness (test/support/netfault.ts)', function () {
  this.timeout(60_000);
  let net: FaultNet;
  let server: Echo;
  let client: Echo;

  before(async function () {
    requireNetFaults(this);
    net = FaultNet.create(['a']);
    server = new Echo(net, net.server, ['serve', net.server.address, '7000']);
    expect((await server.ready()).ok).to.equal(true);
    client = new Echo(net, net.member('a'), ['client', net.server.address, '7000']);
  });
  after(async () => {
    await net?.destroy();
  });
  afterEach(async () => {
    await net?.heal();
  });

  it('joins the hosts: a member reaches the server on its address, and only there', async () => {
    expect(await client.ask({ do: 'fresh', timeoutMs: 2_000 })).to.include({ ok: true });
    // The machine's own interfaces are not on the harness's links: the member has eth0 and lo, and one route.
    const routes = await net.exec(net.member('a'), ['ip', '-4', 'route']);
    expect(routes.trim().split('\n')).to.have.length(1);
    expect(routes).to.match(/^10\.66\.\d+\.0\/24 dev eth0/);
  });

  it('a full partition drops both ways until heal; a connection made before it carries on after', async () => {
    expect(await client.ask({ do: 'open', timeoutMs: 2_000 })).to.include({ ok: true });
    await net.partition(net.member('a'));
    expect(await client.ask({ do: 'kept', timeoutMs: 500 })).to.include({ ok: false });
    expect(await client.ask({ do: 'fresh', timeoutMs: 500 })).to.include({ ok: false });
    await net.heal(net.member('a'));
    // The kept connection's line was retransmitted by the kernel: it arrives after the heal.
    expect(await client.ask({ do: 'kept', timeoutMs: 5_000 })).to.include({ ok: true });
    expect(await client.ask({ do: 'fresh', timeoutMs: 2_000 })).to.include({ ok: true });
  });

  for (const way of ['out', 'in'] as const) {
    it(`a one-way partition ('${way}') drops ${way === 'out' ? 'what the member sends' : 'what the member is sent'}: a line goes ${way === 'out' ? 'nowhere' : 'to the server, whose answer never comes back'}`, async () => {
      expect(await client.ask({ do: 'open', timeoutMs: 2_000 })).to.include({ ok: true });
      await net.partition(net.member('a'), way);
      const sent = await client.ask({ do: 'kept', timeoutMs: 700 });
      expect(sent).to.include({ ok: false });
      expect((await server.ask({ do: 'seen', line: sent.line })).ok, 'the server received the line').to.equal(way === 'in');
    });
  }

  it('a relay in the server namespace holds what it forwards for the delay set, both ways', async () => {
    const relay = await net.relay(7000);
    try {
      const direct = new Echo(net, net.member('a'), ['client', relay.host, String(relay.port)]);
      const quick = await direct.ask({ do: 'fresh', timeoutMs: 2_000 });
      expect(quick.ok).to.equal(true);
      await relay.setDelay(300);
      const slow = await direct.ask({ do: 'fresh', timeoutMs: 5_000 });
      expect(slow.ok).to.equal(true);
      // A line and its answer, each held 300 ms (the connect itself is not delayed).
      expect(slow.ms).to.be.at.least(590);
      await relay.setDelay(0);
    } finally {
      await relay.close();
    }
  });

  it('loses packets in bursts (or at random with netem) until heal', async () => {
    expect(await client.ask({ do: 'open', timeoutMs: 2_000 })).to.include({ ok: true });
    const kind = await net.lossy(net.member('a'), { lossPercent: 50, dropMs: 400, passMs: 100 });
    const answers: boolean[] = [];
    for (let i = 0; i < 6; i++) answers.push((await client.ask({ do: 'fresh', timeoutMs: 150 })).ok);
    expect(answers, `${kind}: some lines were lost`).to.include(false);
    await net.heal(net.member('a'));
    expect(await client.ask({ do: 'fresh', timeoutMs: 2_000 })).to.include({ ok: true });
  });

  it('sets a TCP setting inside one namespace only', async () => {
    await net.sysctl(net.member('a'), 'net.ipv4.tcp_retries2', 3);
    expect(await net.readSysctl(net.member('a'), 'net.ipv4.tcp_retries2')).to.equal('3');
    expect(await net.readSysctl(net.server, 'net.ipv4.tcp_retries2'), 'another namespace').to.not.equal('3');
    expect(readFileSync('/proc/sys/net/ipv4/tcp_retries2', 'utf8').trim(), "the machine's own").to.not.equal('3');
  });

  it('removes every namespace it made, and the processes in them', async () => {
    const other = FaultNet.create(['x', 'y']);
    const made = [...other.namespaces];
    expect(namespaces()).to.include.members(made);
    const echo = new Echo(other, other.server, ['serve', other.server.address, '7000']);
    await echo.ready();
    await other.destroy();
    expect(namespaces().filter((name) => made.includes(name))).to.deep.equal([]);
  });
});
