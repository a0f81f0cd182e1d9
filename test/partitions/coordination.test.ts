/**
 * Distributed locks and elections under real network faults (issue 32): the server in one
 * host of the harness, members in others (test/support/netfault.ts).
 *
 * What each backend must show:
 * - a member cut off from the server sees its lock's and leadership's `signal` abort (and
 *   `held` false) no later than the next member is granted them, on the machine's one
 *   monotonic clock;
 * - the late writes of the member that lost, held on a slow path to a fenced store, are all
 *   refused there by their fence, and none is accepted;
 * - after heal the member recovers without a restart, and takes the lock again with a larger
 *   fence.
 *
 * Faults: a full partition, each one-way partition, a partition longer than the member's
 * kernel retry window, a delay past the lease, and burst loss.
 */
import { expect } from 'chai';
import { isolatedUrl } from '../support/admin.ts';
import { FaultNet, requireNetFaults, type PartitionWay } from '../support/netfault.ts';
import { privateEtcd, privateMysql, privatePostgres, privateRedis, type PrivateServer, type ServerPlace } from '../support/servers.ts';
import { FencedStore, Member, monotonic, msBetween, reportFigure, type MemberEvent } from './support.ts';

const TTL = 2_000;
/**
 * How long a's writes take to reach the fenced store: longer than any backend takes to grant the
 * lock to b after a fault (session-based backends: about two leases), so the writes a made just
 * before it saw its loss land after b's first write.
 */
const WRITE_DELAY = 3 * TTL;

const backends: ReadonlyArray<{ kind: string; start: (place: ServerPlace) => Promise<PrivateServer>; port: number }> = [
  { kind: 'redis', start: privateRedis, port: 6379 },
  { kind: 'postgresql', start: privatePostgres, port: 5432 },
  { kind: 'etcd', start: privateEtcd, port: 2379 },
  { kind: 'mysql', start: privateMysql, port: 3306 },
];

for (const backend of backends) {
  describe(`partitions: ${backend.kind}`, function () {
    this.timeout(90_000);
    let net: FaultNet;
    let server: PrivateServer;
    let url: string;
    let store: FencedStore;
    const members: Member[] = [];

    before(async function () {
      requireNetFaults(this);
      net = FaultNet.create(['a', 'b']);
      server = await backend.start({ netns: net.server.netns, host: net.server.address });
    });
    after(async () => {
      await server?.stop();
      await net?.destroy();
    });
    beforeEach(async () => {
      url = isolatedUrl(server.url, 'n');
      store = await FencedStore.open();
    });
    afterEach(async () => {
      await store.close();
      for (const member of members.splice(0)) member.kill();
      await net.heal();
    });

    /** Starts member `name` on `memberUrl`; its guarded writes go to the store, held `writeDelayMs` on the way. */
    async function start(name: 'a' | 'b', memberUrl = url, writeDelayMs = 0): Promise<Member> {
      const member = new Member(net, net.member(name), { url: memberUrl, lockTtlMs: TTL }, (write) =>
        store.write(name, BigInt(write['fence'] as string), write.at, writeDelayMs),
      );
      members.push(member);
      await member.ready();
      return member;
    }

    /**
     * `a` holds the lock and leads; `fault` cuts it off; `b` is granted both. Checks the order on the
     * shared clock, the fences and the store; returns what it measured.
     */
    async function failover(a: Member, b: Member, fault: () => Promise<void>, label: string): Promise<{ lost: MemberEvent; granted: bigint; faultAt: bigint }> {
      const first = await a.ask({ do: 'acquire', lock: 'volume', blockingMs: 5_000 });
      const led = await a.ask({ do: 'campaign', group: 'agents', timeoutMs: 5_000 });
      await a.ask({ do: 'write', everyMs: 20 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const faultAt = monotonic();
      await fault();
      const granted = await b.ask({ do: 'acquire', lock: 'volume', blockingMs: 12 * TTL }, 15 * TTL);
      const grantedAt = BigInt(granted['at'] as string);
      store.superseded('a', grantedAt);
      expect(granted['fence'], `${b.name} was granted the lock`).to.be.a('string');
      await b.ask({ do: 'write', everyMs: 20 });
      const elected = await b.ask({ do: 'campaign', group: 'agents', timeoutMs: 12 * TTL }, 15 * TTL);
      const lost = await a.event((e) => e.event === 'lost', 2 * TTL, 'loss of the lock');
      const deposed = await a.event((e) => e.event === 'deposed', 2 * TTL, 'loss of the leadership');
      expect(msBetween(lost.at, grantedAt), `${label}: a lost its lock (${lost['reason']}) before b was granted it`).to.be.at.least(0);
      expect(msBetween(deposed.at, BigInt(elected['at'] as string)), `${label}: a was deposed (${deposed['reason']}) before b was elected`).to.be.at.least(0);
      expect(BigInt(granted['fence'] as string) > BigInt(first['fence'] as string), 'fences grow').to.equal(true);
      expect(BigInt(elected['term'] as string) > BigInt(led['term'] as string), 'terms grow').to.equal(true);
      reportFigure({
        backend: backend.kind,
        fault: label,
        lostLeases: msBetween(faultAt, lost.at) / TTL,
        grantedLeases: msBetween(faultAt, grantedAt) / TTL,
        marginMs: msBetween(lost.at, grantedAt),
      });
      return { lost, granted: grantedAt, faultAt };
    }

    /** After heal: `a` is connected again without a restart, and takes the lock once `b` lets go, with a larger fence. */
    async function recovers(a: Member, b: Member): Promise<void> {
      await net.heal(net.member('a'));
      await a
        .event((e) => e.event === 'state' && e['state'] === 'connected' && e.at > a.events.find((x) => x.event === 'lost')!.at, 15 * TTL, 'reconnection')
        .catch(async () => {
          // It may never have left `connected`: the connection outlived the fault.
          expect((await a.ask({ do: 'state' }))['state']).to.equal('connected');
        });
      await b.ask({ do: 'stopWriting' });
      const held = (await b.ask({ do: 'release' }))['released'];
      expect(held, 'b still held the lock at the heal').to.equal(true);
      const again = await a.ask({ do: 'acquire', lock: 'volume', blockingMs: 10 * TTL }, 12 * TTL);
      expect(again['fence'], 'a took the lock again').to.be.a('string');
      expect(BigInt(again['fence'] as string) > store.largestFenceOf('b'), 'with a larger fence than b had').to.equal(true);
      await a.ask({ do: 'release' });
    }

    /** What the fenced store saw of `a` once its late writes have all landed. */
    async function storeHeld(label: string): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, WRITE_DELAY + 300));
      await store.settled();
      const a = store.tally('a');
      reportFigure({ backend: backend.kind, fault: label, staleRefused: a.staleRefused, staleAccepted: a.staleAccepted });
      expect(a.madeAfterSuperseded, 'writes a decided (held true) after b was granted').to.equal(0);
      expect(a.staleAccepted, 'late writes of the member that lost, accepted by the fenced store').to.equal(0);
      expect(a.staleRefused, 'some late writes reached the store after b had written, and were refused').to.be.greaterThan(0);
    }

    it('a full partition: the member cut off loses its lock and leadership before the other is granted them, and recovers after heal', async () => {
      const a = await start('a', url, WRITE_DELAY);
      const b = await start('b');
      await failover(a, b, () => net.partition(net.member('a'), 'both'), 'full partition');
      await storeHeld('full partition');
      await recovers(a, b);
    });

    it("a partition longer than the member's kernel retry window: the server frees the lock on its own, and the member recovers after heal", async () => {
      // The member's kernel gives up on its connection after about 3 s (tcp_retries2=3 in its namespace only):
      // after that no closing packet of the old connection ever reaches the server, which must end the
      // session itself (PostgreSQL's and MySQL's session locks: a server-side keepalive, or wait_timeout).
      await net.sysctl(net.member('a'), 'net.ipv4.tcp_retries2', 3);
      const a = await start('a', url, WRITE_DELAY);
      const first = await a.ask({ do: 'acquire', lock: 'volume', blockingMs: 5_000 });
      await a.ask({ do: 'write', everyMs: 20 });
      const faultAt = monotonic();
      await net.partition(net.member('a'), 'both');
      const lost = await a.event((e) => e.event === 'lost', 2 * TTL, 'loss of the lock');
      const b = await start('b');
      await new Promise((resolve) => setTimeout(resolve, 4 * TTL - msBetween(faultAt, monotonic())));
      await net.heal(net.member('a'));
      const healedAt = monotonic();
      // Only now does b ask: whatever the server still held for a's dead session is what it waits for.
      const granted = await b.ask({ do: 'acquire', lock: 'volume', blockingMs: 6 * TTL }, 8 * TTL);
      expect(granted['fence'], 'b was granted the lock after the heal').to.be.a('string');
      const grantedAt = BigInt(granted['at'] as string);
      store.superseded('a', grantedAt);
      expect(msBetween(lost.at, grantedAt)).to.be.at.least(0);
      expect(BigInt(granted['fence'] as string) > BigInt(first['fence'] as string)).to.equal(true);
      reportFigure({
        backend: backend.kind,
        fault: 'partition of 4 leases, past the retry window',
        lostLeases: msBetween(faultAt, lost.at) / TTL,
        grantedAfterHealMs: msBetween(healedAt, grantedAt),
      });
      expect(msBetween(healedAt, grantedAt), 'b waited for a lock the server kept for a dead session').to.be.below(TTL);
      await b.ask({ do: 'write', everyMs: 20 });
      await recovers(a, b);
    });

    it("a delay past the lease on the member's path to the server: it loses before the other is granted, and recovers when the delay ends", async () => {
      const relay = await net.relay(backend.port);
      try {
        const through = new URL(url);
        through.host = `${relay.host}:${relay.port}`;
        const a = await start('a', through.href, WRITE_DELAY);
        const b = await start('b');
        // Every packet each way is held a lease and a half: each renewal's answer comes after the lease it renews.
        await failover(a, b, () => relay.setDelay(1.5 * TTL), 'delay of 1.5 leases each way');
        await storeHeld('delay of 1.5 leases each way');
        await relay.setDelay(0);
        await recovers(a, b);
      } finally {
        await relay.close();
      }
    });

    it("burst loss on the member's link: never two holders at once, and both recover after heal", async () => {
      const a = await start('a', url, WRITE_DELAY);
      const b = await start('b');
      const first = await a.ask({ do: 'acquire', lock: 'volume', blockingMs: 5_000 });
      await a.ask({ do: 'write', everyMs: 20 });
      // Everything lost for 0.4 of a lease, then 0.2 passes: renewals get through now and then, or not.
      await net.lossy(net.member('a'), { lossPercent: 40, dropMs: 0.4 * TTL, passMs: 0.2 * TTL });
      const granted = await b.ask({ do: 'acquire', lock: 'volume', blockingMs: 4 * TTL }, 6 * TTL);
      await net.heal(net.member('a'));
      if (granted['fence'] === null) {
        // a kept its lease through the losses: still the only holder.
        expect((await a.ask({ do: 'state' }))['held'] === true || a.events.some((e) => e.event === 'lost')).to.equal(true);
        reportFigure({ backend: backend.kind, fault: 'burst loss (0.4 lease of every 0.6)', outcome: 'a kept the lock' });
        return;
      }
      const grantedAt = BigInt(granted['at'] as string);
      store.superseded('a', grantedAt);
      const lost = await a.event((e) => e.event === 'lost', 2 * TTL, 'loss of the lock');
      expect(msBetween(lost.at, grantedAt), 'a lost before b was granted').to.be.at.least(0);
      expect(BigInt(granted['fence'] as string) > BigInt(first['fence'] as string)).to.equal(true);
      reportFigure({
        backend: backend.kind,
        fault: 'burst loss (0.4 lease of every 0.6)',
        outcome: 'b took over',
        marginMs: msBetween(lost.at, grantedAt),
      });
      await b.ask({ do: 'write', everyMs: 20 });
      await new Promise((resolve) => setTimeout(resolve, WRITE_DELAY + 300));
      await store.settled();
      expect(store.tally('a').madeAfterSuperseded).to.equal(0);
      expect(store.tally('a').staleAccepted).to.equal(0);
      await recovers(a, b);
    });

    for (const way of ['out', 'in'] as const satisfies readonly PartitionWay[]) {
      it(`a one-way partition (${way === 'out' ? 'what the member sends is lost' : 'what the member is sent is lost'}): the same order, and recovery`, async () => {
        const a = await start('a', url, WRITE_DELAY);
        const b = await start('b');
        await failover(a, b, () => net.partition(net.member('a'), way), `one-way (${way})`);
        await storeHeld(`one-way (${way})`);
        await recovers(a, b);
      });
    }
  });
}
