/**
 * What only the `sqlite://` backend has to face: no server, one file that other processes
 * write, a process killed inside its transaction, a file held busy, and the file deleted
 * under a running coordinator. (The contract and cross-process suites run on it too.)
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { CoordinationError, createCoordinator, LockLostError, type Coordinator } from '../../src/index.ts';
import { isolatedUrl, withSqliteAdmin } from '../support/admin.ts';
import { rejection, waitUntil } from '../support/async.ts';
import { sqliteUrl } from '../support/servers.ts';

/** A process that takes the file's write lock (`BEGIN IMMEDIATE`), writes a live lease for `name` without committing, says `in`, and waits. */
function writerInTransaction(path: string, namespace: string, name: string): Promise<ChildProcess> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(${JSON.stringify(path)}, { timeout: 5000 });
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT OR REPLACE INTO statesmith_locks (ns, name, token, member, fence, expires_at) VALUES (?, ?, 'ghost:000000000000:1', 'ghost', 1, ?)")
      .run(${JSON.stringify(namespace)}, ${JSON.stringify(name)}, Date.now() + 600000);
    process.stdout.write('in\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the writer exited with ${code} before it took the write lock`)));
    child.stdout?.once('data', () => resolve(child));
  });
}

/** The longest gap between ticks of a 5 ms interval while `work` runs: how long the event loop was blocked. */
async function longestStall<T>(work: Promise<T>): Promise<{ value: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  try {
    return { value: await work, stallMs };
  } finally {
    clearInterval(timer);
  }
}

describe('coordination on sqlite://', function () {
  this.timeout(20_000);
  let url: string;
  let path: string;
  const open: Coordinator[] = [];
  const children: ChildProcess[] = [];

  beforeEach(() => {
    url = isolatedUrl(sqliteUrl(`faults-${Math.random().toString(36).slice(2)}.db`), 's');
    path = decodeURIComponent(new URL(url).pathname);
  });

  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    await Promise.all(open.splice(0).map((c) => c.stop()));
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  });

  async function coordinator(options: Parameters<typeof createCoordinator>[0] = {}): Promise<Coordinator> {
    const c = createCoordinator({ url, heartbeatMs: 1_000, ...options });
    open.push(c);
    await c.start();
    return c;
  }

  it('refuses a URL that names no absolute file with ERR_COORDINATION_URL when it is parsed', () => {
    for (const bad of ['sqlite://relative/coord.db', 'sqlite:///', 'sqlite://host.example/x.db']) {
      let caught: CoordinationError | undefined;
      try {
        createCoordinator({ url: bad });
      } catch (error) {
        caught = error as CoordinationError;
      }
      expect(caught?.code, bad).to.equal('ERR_COORDINATION_URL');
      expect(caught?.message).to.match(/a sqlite:\/\/ URL names an absolute file path, such as sqlite:\/\/\/var\/lib\/app\/coord.db; received/);
    }
  });

  it('refuses a bad pollMs at start() with ERR_COORDINATION_URL, and a directory that does not exist with ERR_COORDINATION_BACKEND', async () => {
    const badPoll = createCoordinator({ url: `${url}&pollMs=0` });
    const pollError = (await rejection(badPoll.start())) as CoordinationError;
    expect(pollError.code).to.equal('ERR_COORDINATION_URL');
    expect(pollError.message).to.match(/pollMs is a whole number of milliseconds from 1 to 60000; received "0"/);
    const nowhere = createCoordinator({ url: 'sqlite:///nonexistent-dir-statesmith/coord.db' });
    const openError = (await rejection(nowhere.start())) as CoordinationError;
    expect(openError).to.be.instanceOf(CoordinationError);
    expect(openError.message).to.include('/nonexistent-dir-statesmith/coord.db');
    expect(nowhere.state).to.equal('disconnected');
  });

  it('opens the file in WAL mode and keeps every fence in a table nothing deletes from', async () => {
    const c = await coordinator();
    const one = await c.getLock('w').acquire();
    await one?.release();
    const two = await c.getLock('w').acquire();
    await two?.release();
    withSqliteAdmin(url, (admin) => {
      expect(admin.pragma('journal_mode', { simple: true })).to.equal('wal');
      const namespace = new URL(url).searchParams.get('namespace');
      const row = admin.prepare('SELECT fence FROM statesmith_fences WHERE ns = ? AND name = ?').safeIntegers(true).get(namespace, 'w') as { fence: bigint };
      expect(row.fence).to.equal(two?.fence);
      expect(admin.prepare('SELECT count(*) AS n FROM statesmith_locks WHERE ns = ?').get(namespace)).to.deep.equal({ n: 0 });
    });
    expect(two!.fence > one!.fence).to.equal(true);
  });

  it('a process killed inside its transaction leaves nothing: its uncommitted grant rolls back and the waiter gets the lock, without blocking the event loop', async () => {
    const c = await coordinator();
    const before = await c.getLock('x').acquire();
    await before?.release();
    const namespace = new URL(url).searchParams.get('namespace') as string;
    const writer = await writerInTransaction(path, namespace, 'x');
    children.push(writer);
    setTimeout(() => writer.kill('SIGKILL'), 300);
    // The file is busy for 300 ms: the acquire retries asynchronously, and the event loop keeps turning.
    const { value: after, stallMs } = await longestStall(c.getLock('x').acquire({ blocking: 5_000 }));
    expect(after, 'granted once the dead writer let go').to.not.equal(null);
    expect(after!.fence > before!.fence).to.equal(true);
    expect(stallMs, 'the event loop never waited for the file lock').to.be.below(150);
    await after?.release();
  });

  it('a file busy past the command bound fails that command with ERR_COORDINATION_BUSY, and the coordinator stays usable', async () => {
    const c = await coordinator({ heartbeatMs: 200 });
    const namespace = new URL(url).searchParams.get('namespace') as string;
    const writer = await writerInTransaction(path, namespace, 'y');
    children.push(writer);
    const error = (await rejection(c.getLock('y').acquire({ blocking: false }))) as CoordinationError;
    expect(error.code).to.equal('ERR_COORDINATION_BACKEND');
    expect((error.cause as CoordinationError).code).to.equal('ERR_COORDINATION_BUSY');
    expect(error.message).to.match(/acquiring y failed: the SQLite file .* stayed busy \(written by another connection\) for 200 ms, the command bound/);
    writer.kill('SIGKILL');
    await waitUntil(() => c.state === 'connected', 5_000);
    const held = await c.getLock('y').acquire({ blocking: 5_000 });
    expect(held).to.not.equal(null);
    await held?.release();
  });

  it('a busy file is not a lost connection: heartbeats while it is busy keep the coordinator connected and its lock held', async () => {
    // The shortest bound (50 ms) for both the heartbeat and each command: a heartbeat that had
    // to wait behind a command on the busy file would miss its own bound most of the time.
    const c = await coordinator({ heartbeatMs: 50 });
    const namespace = new URL(url).searchParams.get('namespace') as string;
    const kept = await c.getLock('kept').acquire();
    const states: string[] = [];
    const watching = c.state$.subscribe((state) => states.push(state));
    const writer = await writerInTransaction(path, namespace, 'busy');
    children.push(writer);
    try {
      // A second of commands that each wait out the bound on the busy file, with heartbeats
      // (every 50 ms) arriving while one waits: none may be taken for a lost connection.
      const until = performance.now() + 1_000;
      let refused = 0;
      while (performance.now() < until) {
        const error = (await rejection(c.getLock('busy').acquire({ blocking: false }))) as CoordinationError;
        expect(error.code, error.message).to.equal('ERR_COORDINATION_BACKEND');
        expect((error.cause as CoordinationError).code).to.equal('ERR_COORDINATION_BUSY');
        refused++;
      }
      expect(refused).to.be.above(2);
      expect(states.filter((state) => state !== 'connected')).to.deep.equal([]);
      expect(kept?.held).to.equal(true);
    } finally {
      watching.unsubscribe();
      writer.kill('SIGKILL');
    }
    await kept?.release();
  });

  it('the file deleted under a running coordinator is a typed loss, never a hang: the holder hears it, and the next grant on the new file has a larger fence', async () => {
    const c = await coordinator({ heartbeatMs: 100, initialReconnectBackoffMs: 50 });
    const held = await c.getLock('gone').acquire();
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    await waitUntil(() => held!.signal.aborted, 5_000, 'the holder to hear that the file is gone');
    const reason = held!.signal.reason as LockLostError;
    expect(reason).to.be.instanceOf(LockLostError);
    expect(String((reason.cause as Error | undefined)?.message ?? reason.message)).to.match(/deleted under a running coordinator|connection .* lost/);
    expect(await held?.release()).to.equal(false);
    await waitUntil(() => c.state === 'connected', 5_000, 'the coordinator to open the new file');
    const next = await c.getLock('gone').acquire({ blocking: 5_000 });
    expect(next!.fence > held!.fence, 'the fence grows past the lost file (its floor is the clock)').to.equal(true);
    await next?.release();
  });
});
