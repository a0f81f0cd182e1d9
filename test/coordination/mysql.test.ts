/**
 * What only the `mysql://` backend has to face: the server's 64-character bound on user
 * lock names, a fence row lost to a restore, and a URL without a database. (The contract
 * and cross-process suites run on it too: SIGKILL, SIGSTOP, KILL CONNECTION, a restart.)
 */
import { expect } from 'chai';
import type { RowDataPacket } from 'mysql2/promise';
import { CoordinationError, createCoordinator, type Coordinator } from '../../src/index.ts';
import { userLockName } from '../../src/coordination/backends/mysql.ts';
import { isolatedUrl, withMysqlAdmin } from '../support/admin.ts';
import { rejection, waitUntil } from '../support/async.ts';
import { sharedMysql } from '../support/servers.ts';

describe('coordination on mysql://', function () {
  this.timeout(20_000);
  let base: string;
  let url: string;
  const open: Coordinator[] = [];

  before(async function () {
    const found = await sharedMysql();
    if (found === undefined) this.skip(); // no server and none could be started: outside CI only (under CI=true the harness throws)
    base = found;
  });
  beforeEach(() => (url = isolatedUrl(base, 'm')));
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.stop()));
  });

  async function coordinator(agentId: string): Promise<Coordinator> {
    const c = createCoordinator({ url, agentId, heartbeatMs: 500 });
    open.push(c);
    await c.start();
    return c;
  }

  it('refuses a URL without a database when it is parsed, and a bad pollMs at start(), with ERR_COORDINATION_URL', async () => {
    let parsed: CoordinationError | undefined;
    try {
      createCoordinator({ url: 'mysql://root@127.0.0.1:3306' });
    } catch (error) {
      parsed = error as CoordinationError;
    }
    expect(parsed?.code).to.equal('ERR_COORDINATION_URL');
    expect(parsed?.message).to.match(/a mysql:\/\/ URL names its database, such as mysql:\/\/root@127.0.0.1:3306\/test; received ""/);
    const c = createCoordinator({ url: 'mysql://root@127.0.0.1:3306/test?pollMs=-1' });
    const error = (await rejection(c.start())) as CoordinationError;
    expect(error.code).to.equal('ERR_COORDINATION_URL');
    expect(error.message).to.match(/pollMs is a whole number of milliseconds from 1 to 60000; received "-1"/);
    expect(c.state).to.equal('disconnected');
  });

  it('hashes every name into a user lock of 63 characters, records the original beside its fence, and keeps long names apart', async () => {
    const c = await coordinator('long');
    const stem = 'volume-'.padEnd(200, 'x');
    const one = await c.getLock(`${stem}-1`).acquire({ blocking: false });
    const two = await c.getLock(`${stem}-2`).acquire({ blocking: false });
    expect(one, 'a name past 64 characters is granted').to.not.equal(null);
    expect(two, 'a name differing only past 64 characters is another lock').to.not.equal(null);
    const namespace = new URL(url).searchParams.get('namespace') as string;
    const lockName = userLockName(namespace, `${stem}-1`);
    expect(lockName).to.match(/^ss_[0-9a-f]{60}$/);
    await withMysqlAdmin(base, async (admin) => {
      const [used] = await admin.query<Array<{ conn: number | null } & RowDataPacket>>('SELECT IS_USED_LOCK(?) AS conn', [lockName]);
      expect(used[0]?.conn, 'held on the server under its hashed name').to.be.a('number');
      const [rows] = await admin.query<Array<{ name: string; fence: string } & RowDataPacket>>(
        'SELECT name, CAST(fence AS CHAR) AS fence FROM statesmith_fences WHERE ns = ? ORDER BY name',
        [namespace],
      );
      expect(rows.map((row) => [row.name, BigInt(row.fence)])).to.deep.equal([
        [`${stem}-1`, one!.fence],
        [`${stem}-2`, two!.fence],
      ]);
    });
    await one?.release();
    await two?.release();
  });

  it('fences keep growing when the fence row is lost (a restore from an older backup): the floor is the server clock', async () => {
    const c = await coordinator('restore');
    const first = await c.getLock('restored').acquire();
    await first?.release();
    const namespace = new URL(url).searchParams.get('namespace') as string;
    await withMysqlAdmin(base, async (admin) => {
      await admin.query("DELETE FROM statesmith_fences WHERE ns = ? AND name = 'restored'", [namespace]);
    });
    const second = await c.getLock('restored').acquire();
    expect(second!.fence > first!.fence).to.equal(true);
    await second?.release();
  });

  it('polls on a connection of its own, so the lock commands never queue behind a poll; stop() closes both', async () => {
    // Every connection to the test database but the admin's own, as the server sees them.
    const others = (): Promise<number> =>
      withMysqlAdmin(base, async (admin) => {
        const [rows] = await admin.query<RowDataPacket[]>(
          "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND <> 'Killed'",
        );
        return Number(rows[0]?.['n']);
      });
    const before = await others();
    // Every coordinator listens for force requests (the messages table), so it polls from the start.
    const c = await coordinator('poller');
    await waitUntil(async () => (await others()) === before + 2, 5_000, 'the session and the poll connections');
    const held = await c.getLock('polled').acquire({ blocking: false });
    expect(held).to.not.equal(null);
    expect(await held?.release()).to.equal(true);
    await c.stop();
    await waitUntil(async () => (await others()) === before, 5_000, 'both connections closed');
  });

  it("breakLock ends the holder's connection (IS_USED_LOCK names it): the holder hears it, and the next grant has a larger fence", async () => {
    const holder = await coordinator('holder');
    const other = await coordinator('other');
    const held = await holder.getLock('named').acquire();
    expect(await other.getLock('named').acquire({ blocking: false })).to.equal(null);
    expect(await other.breakLock('named')).to.equal(true);
    await waitUntil(() => held!.signal.aborted, 5_000, 'the holder to hear its connection end');
    expect((held!.signal.reason as Error).message).to.match(/connection .* lost/);
    const next = await other.getLock('named').acquire({ blocking: 5_000 });
    expect(next!.fence > held!.fence).to.equal(true);
    await next?.release();
  });
});
