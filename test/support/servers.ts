/**
 * Real Redis and PostgreSQL servers for the coordination tests, over loopback.
 *
 * `sharedRedis()` / `sharedPostgres()` give the URL of a running server: `REDIS_URL` /
 * `DATABASE_URL` when set, else the machine's own on the standard port, else one started
 * here from the Debian binary on a free port (stopped at exit). When none can be had, the
 * tests are skipped, except under `CI=true`, where that is a failure.
 *
 * `privateRedis()`, `privatePostgres()`, `privateEtcd()`, `privateMysql()` and `privateNats()`
 * always start a server of their own, for tests that stop and restart the server. Given a
 * `place` (a network namespace of the partition harness, `netfault.ts`, and the address to
 * bind there), they start it inside that namespace, on the server's standard port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

const started: Array<() => void> = [];
process.on('exit', () => {
  for (const stop of started.splice(0)) stop();
});

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections on host:port within `ms`. */
export function reachable(host: string, port: number, ms = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Where a private server runs: on loopback here (the default), or inside a network namespace, bound to its address there. */
export interface ServerPlace {
  /** The network namespace to run it in (`ip netns exec`). */
  readonly netns?: string;
  /** The address to bind and to put in the URL; default 127.0.0.1. */
  readonly host?: string;
}

/** The command line that runs `argv` in `place`'s namespace (itself when there is none). */
function inPlace(place: ServerPlace, argv: readonly string[]): string[] {
  return place.netns === undefined ? [...argv] : ['ip', 'netns', 'exec', place.netns, ...argv];
}

/** True when something accepts TCP connections on host:port within `ms`, seen from inside `place`'s namespace. */
async function reachableIn(place: ServerPlace, host: string, port: number, ms: number): Promise<boolean> {
  if (place.netns === undefined) return reachable(host, port, ms);
  const probe = spawnSync('ip', ['netns', 'exec', place.netns, 'timeout', String(ms / 1000), 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], {
    timeout: ms + 2_000,
  });
  return probe.status === 0;
}

async function waitFor(check: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A server this harness started. */
export interface PrivateServer {
  readonly url: string;
  readonly port: number;
  /** Stops it (SIGTERM, then waits). */
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop()). */
  restart(): Promise<void>;
  /** Pauses / resumes the server process (SIGSTOP / SIGCONT). */
  pause(): void;
  resume(): void;
}

function which(binary: string, candidates: string[] = []): string | undefined {
  for (const path of candidates) if (existsSync(path)) return path;
  const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** A server process of its own on a free loopback port (or its standard port in a namespace): started, stopped, restarted on the same port, paused. */
async function privateProcess(
  binary: string,
  args: (port: number, host: string) => readonly string[],
  what: string,
  url: (port: number, host: string) => string,
  place: ServerPlace = {},
  standardPort?: number,
): Promise<PrivateServer> {
  const host = place.host ?? '127.0.0.1';
  // A namespace of the harness's own has nothing else listening: the standard port is free there.
  const port = place.netns !== undefined && standardPort !== undefined ? standardPort : await freePort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    // `ip netns exec` execs the server: the child's pid is the server's, for SIGSTOP and SIGKILL.
    const argv = inPlace(place, [binary, ...args(port, host)]);
    child = spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' });
    // The exit hook kills it; it must not keep the test run alive on its own.
    child.unref();
    await waitFor(() => reachableIn(place, host, port, 200), 10_000, `${what} on ${host}:${port}`);
  };
  const stop = async (): Promise<void> => {
    const current = child;
    child = undefined;
    if (current === undefined || current.exitCode !== null) return;
    const exited = new Promise((resolve) => current.once('exit', resolve));
    current.kill('SIGCONT');
    current.kill('SIGTERM');
    await exited;
  };
  await start();
  started.push(() => child?.kill('SIGKILL'));
  return {
    url: url(port, host),
    port,
    stop,
    restart: start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  };
}

export async function privateRedis(place: ServerPlace = {}): Promise<PrivateServer> {
  const binary = which('redis-server', ['/usr/bin/redis-server']);
  if (binary === undefined) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const dir = mkdtempSync(join(tmpdir(), 'statesmith-redis-'));
  started.push(() => rmSync(dir, { recursive: true, force: true }));
  return privateProcess(
    binary,
    // Off loopback Redis refuses clients in protected mode: the harness's namespaces reach nothing else.
    (port, host) => ['--bind', host, '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'],
    'redis-server',
    (port, host) => `redis://${host}:${port}`,
    place,
    6379,
  );
}

function postgresBin(tool: string): string | undefined {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    for (const version of readdirSync(base).sort().reverse()) {
      const path = join(base, version, 'bin', tool);
      if (existsSync(path)) return path;
    }
  }
  return which(tool);
}

export async function privatePostgres(place: ServerPlace = {}): Promise<PrivateServer> {
  const initdb = postgresBin('initdb');
  const pgCtl = postgresBin('pg_ctl');
  if (initdb === undefined || pgCtl === undefined) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  const host = place.host ?? '127.0.0.1';
  const port = place.netns === undefined ? await freePort() : 5432;
  const dir = mkdtempSync(join(tmpdir(), 'statesmith-pg-'));
  const data = join(dir, 'data');
  // PostgreSQL refuses to run as root: run it as the postgres user when we are root.
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }) : undefined;
  if (asRoot) {
    if (owner?.status !== 0) throw new Error('running as root and there is no postgres user to run PostgreSQL as');
    const uid = Number(owner.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chmodSync(dir, 0o755);
    chownSync(dir, uid, gid);
  }
  const run = (argv: string[]): void => {
    // In a namespace, pg_ctl and the postmaster it starts run inside it.
    const command = inPlace(place, asRoot ? ['runuser', '-u', 'postgres', '--', ...argv] : argv);
    const result = spawnSync(command[0] as string, command.slice(1), { encoding: 'utf8', timeout: 60_000 });
    if (result.status !== 0) throw new Error(`${argv.join(' ')} failed: ${result.stderr || result.stdout}`);
  };
  run([initdb, '-D', data, '-A', 'trust', '-U', 'test', '--no-sync']);
  // initdb trusts loopback only; in a namespace of the harness's own the members come from its subnet.
  if (place.netns !== undefined) appendFileSync(join(data, 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\n');
  let pid: number | undefined;
  const start = async (): Promise<void> => {
    run([pgCtl, '-D', data, '-w', '-l', join(dir, 'log'), '-o', `-c listen_addresses=${host} -p ${port} -k ${dir} -c fsync=off`, 'start']);
    const pidFile = spawnSync('head', ['-1', join(data, 'postmaster.pid')], { encoding: 'utf8' });
    pid = Number(pidFile.stdout.trim());
    await waitFor(() => reachableIn(place, host, port, 200), 10_000, `postgres on ${host}:${port}`);
  };
  const stop = async (): Promise<void> => {
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
    run([pgCtl, '-D', data, '-w', '-m', 'immediate', 'stop']);
    pid = undefined;
  };
  await start();
  started.push(() => {
    if (pid !== undefined) {
      const argv = inPlace(
        place,
        asRoot ? ['runuser', '-u', 'postgres', '--', pgCtl, '-D', data, '-m', 'immediate', 'stop'] : [pgCtl, '-D', data, '-m', 'immediate', 'stop'],
      );
      spawnSync(argv[0] as string, argv.slice(1));
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: `postgresql://test@${host}:${port}/postgres`,
    port,
    stop,
    restart: start,
    pause: () => pid !== undefined && process.kill(pid, 'SIGSTOP'),
    resume: () => pid !== undefined && process.kill(pid, 'SIGCONT'),
  };
}

/** A nats-server of its own (Debian's `nats-server`) on a free loopback port, for tests that stop or restart it. */
export async function privateNats(args: readonly string[] = [], place: ServerPlace = {}): Promise<PrivateServer> {
  const binary = which('nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server']);
  if (binary === undefined) throw new Error('nats-server is not installed (apt-get install nats-server)');
  return privateProcess(
    binary,
    (port, host) => ['-a', host, '-p', String(port), ...args],
    'nats-server',
    (port, host) => `nats://${host}:${port}`,
    place,
    4222,
  );
}

/**
 * An etcd of its own (Debian's `etcd-server`): one member on free loopback client and peer
 * ports, its data in a temp dir removed at exit. The URL is `etcd://127.0.0.1:<port>`.
 */
export async function privateEtcd(place: ServerPlace = {}): Promise<PrivateServer> {
  const binary = which('etcd', ['/usr/bin/etcd']);
  if (binary === undefined) throw new Error('etcd is not installed (apt-get install etcd-server)');
  const dir = mkdtempSync(join(tmpdir(), 'statesmith-etcd-'));
  const peer = place.netns === undefined ? await freePort() : 2380;
  const server = await privateProcess(
    binary,
    (port, host) => [
      '--name',
      'statesmith-test',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      `http://${host}:${port}`,
      '--advertise-client-urls',
      `http://${host}:${port}`,
      '--listen-peer-urls',
      `http://${host}:${peer}`,
      '--initial-advertise-peer-urls',
      `http://${host}:${peer}`,
      '--initial-cluster',
      `statesmith-test=http://${host}:${peer}`,
      '--log-level',
      'error',
    ],
    'etcd',
    (port, host) => `etcd://${host}:${port}`,
    place,
    2379,
  );
  // After its kill (hooks run in order): its data goes with it.
  started.push(() => rmSync(dir, { recursive: true, force: true }));
  return server;
}

const shared = new Map<string, Promise<string | undefined>>();

async function sharedServer(
  kind: 'redis' | 'postgresql' | 'nats' | 'etcd' | 'mysql',
  envUrl: string | undefined,
  defaultUrl: string,
  start: () => Promise<PrivateServer>,
): Promise<string | undefined> {
  const url = new URL(envUrl ?? defaultUrl);
  if (await reachable(url.hostname, Number(url.port), 1_000)) return url.href;
  try {
    return (await start()).url;
  } catch (error) {
    if (process.env['CI'] === 'true') throw new Error(`no ${kind} server at ${url.href}, and starting one failed: ${(error as Error).message}`);
    return undefined;
  }
}

/** The URL of a Redis to test against, or undefined (outside CI only) when none can be had. */
export function sharedRedis(): Promise<string | undefined> {
  let url = shared.get('redis');
  if (url === undefined) shared.set('redis', (url = sharedServer('redis', process.env['REDIS_URL'], 'redis://127.0.0.1:6379', privateRedis)));
  return url;
}

/** The URL of a NATS server to test against (the machine's on 4222, or one of the harness's), or undefined outside CI when none can be had. */
export function sharedNats(): Promise<string | undefined> {
  let url = shared.get('nats');
  if (url === undefined) shared.set('nats', (url = sharedServer('nats', process.env['STATESMITH_NATS_URL'], 'nats://127.0.0.1:4222', () => privateNats())));
  return url;
}

/** The URL of a PostgreSQL to test against, or undefined (outside CI only) when none can be had. */
export function sharedPostgres(): Promise<string | undefined> {
  let url = shared.get('postgresql');
  if (url === undefined)
    shared.set('postgresql', (url = sharedServer('postgresql', process.env['DATABASE_URL'], 'postgresql://postgres@127.0.0.1:5432/test', privatePostgres)));
  return url;
}

/**
 * The URL of an etcd to test against: `STATESMITH_ETCD_URL` when set and reachable, else one
 * the harness starts (there is no system etcd on the machines); undefined outside CI when
 * none can be had.
 */
export function sharedEtcd(): Promise<string | undefined> {
  let url = shared.get('etcd');
  if (url === undefined) {
    const given = process.env['STATESMITH_ETCD_URL'];
    // No default port to look at first: 2379 may be a stranger's etcd.
    shared.set(
      'etcd',
      (url =
        given !== undefined
          ? sharedServer('etcd', given, given, privateEtcd)
          : privateEtcd().then(
              (server) => server.url,
              (error: unknown) => {
                if (process.env['CI'] === 'true') throw new Error(`no etcd, and starting one failed: ${(error as Error).message}`);
                return undefined;
              },
            )),
    );
  }
  return url;
}

let sqliteDir: string | undefined;

/** A `sqlite://` URL of a file in a temp dir of this run (removed at exit): SQLite needs no server. */
export function sqliteUrl(file = 'coord.db'): string {
  if (sqliteDir === undefined) {
    const dir = (sqliteDir = mkdtempSync(join(tmpdir(), 'statesmith-sqlite-')));
    started.push(() => rmSync(dir, { recursive: true, force: true }));
  }
  return `sqlite://${join(sqliteDir, file)}`;
}

/**
 * A MariaDB of its own (Debian's `mariadb-server`): `mariadb-install-db` into a temp dir, then
 * `mariadbd` on a free loopback port with database `test`, for tests that stop, restart or
 * freeze the server. Root with an empty password, as on the machines.
 */
export async function privateMysql(place: ServerPlace = {}): Promise<PrivateServer> {
  const install = which('mariadb-install-db', ['/usr/bin/mariadb-install-db']);
  const server = which('mariadbd', ['/usr/sbin/mariadbd']);
  if (install === undefined || server === undefined) throw new Error('MariaDB is not installed (apt-get install mariadb-server)');
  const dir = mkdtempSync(join(tmpdir(), 'statesmith-mariadb-'));
  const data = join(dir, 'data');
  const user = process.getuid?.() === 0 ? 'root' : userInfo().username;
  const installed = spawnSync(install, ['--no-defaults', `--datadir=${data}`, `--user=${user}`, '--auth-root-authentication-method=normal', '--skip-test-db'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (installed.status !== 0) throw new Error(`mariadb-install-db failed: ${installed.stderr || installed.stdout}`);
  started.push(() => rmSync(dir, { recursive: true, force: true }));
  const running = await privateProcess(
    server,
    (port, host) => [
      '--no-defaults',
      `--datadir=${data}`,
      `--user=${user}`,
      `--port=${port}`,
      `--bind-address=${host}`,
      `--socket=${join(dir, 'sock')}`,
      `--pid-file=${join(dir, 'pid')}`,
      `--log-error=${join(dir, 'error.log')}`,
      '--skip-log-bin',
      '--innodb-flush-log-at-trx-commit=2',
    ],
    'mariadbd',
    (port, host) => `mysql://root@${host}:${port}/test`,
    place,
    3306,
  );
  // Over the server's own socket; in a namespace, root may come from the members' subnet too.
  const grant = place.netns === undefined ? '' : "CREATE USER IF NOT EXISTS root@'%'; GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;";
  const client = inPlace(place, ['mariadb', `--socket=${join(dir, 'sock')}`, '-uroot', '-e', `CREATE DATABASE IF NOT EXISTS test; ${grant}`]);
  const created = spawnSync(client[0] as string, client.slice(1), {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (created.status !== 0) throw new Error(`creating the test database failed: ${created.stderr}`);
  return running;
}

/** The URL of a MySQL or MariaDB to test against (`MYSQL_URL`, else the machine's on 3306, else one of the harness's), or undefined outside CI. */
export function sharedMysql(): Promise<string | undefined> {
  let url = shared.get('mysql');
  if (url === undefined) shared.set('mysql', (url = sharedServer('mysql', process.env['MYSQL_URL'], 'mysql://root@127.0.0.1:3306/test', privateMysql)));
  return url;
}
