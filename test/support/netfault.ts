/**
 * Real network faults between hosts of our own, for the partition tests.
 *
 * A `FaultNet` is a few hosts on one machine: Linux network namespaces (`ip netns`), each
 * with one veth link to a bridge that lives in a namespace of its own. Nothing it makes
 * touches the machine's own interfaces, addresses or routes: both ends of every link are
 * created inside its namespaces, its addresses (`10.66.<n>.0/24`) exist only on those links,
 * and no namespace has a route off them. The `server` host is `.1`; members are `.2`, `.3`, ...
 *
 * Faults, each until `heal()`:
 * - `partition(member, 'both')`: nothing between the member and the rest; `'out'` drops only
 *   what the member sends, `'in'` only what is sent to it (one-way partitions). Made with the
 *   `blackhole` qdisc on the member's side of its link (its packets out) and on the bridge's
 *   side (its packets in): this kernel has no `netem`.
 * - `lossy(member, { dropMs, passMs })`: burst loss, the link dropping everything for `dropMs`
 *   out of every `dropMs + passMs`, both ways (random per-packet loss needs `netem`, used
 *   instead, with `lossPercent`, where the kernel has it).
 * - `relay(...)`: a TCP relay in the server's namespace that holds every chunk for a delay
 *   that can be changed while connections are open (delay past the lease, one way or both).
 *
 * It needs root and iproute2. `netFaultSupport()` says why not when it cannot run; the
 * partition tests skip with that reason outside CI, and fail under `CI=true`.
 *
 * Everything is removed in `destroy()`, and at process exit for whatever a failed test left;
 * namespaces left by a run that was killed are swept by the next run (their names carry the
 * pid that made them).
 */
import { execFile, fork, spawnSync, type ChildProcess, type ForkOptions } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFIX = 'ssnet';

/** One host: its namespace and its address on the harness's link. */
export interface NetHost {
  readonly name: string;
  readonly netns: string;
  readonly address: string;
}

/** Which way a partition drops packets, seen from the member. */
export type PartitionWay = 'both' | 'out' | 'in';

/** A TCP relay in the server's namespace that delays what it forwards. */
export interface Relay {
  /** The address and port members connect to instead of the server's. */
  readonly host: string;
  readonly port: number;
  /** Holds every chunk, each way, for `ms` (0: passes at once), from now on, for connections already open too. */
  setDelay(ms: number, way?: 'both' | 'toServer' | 'toMember'): Promise<void>;
  close(): Promise<void>;
}

function ip(args: readonly string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${(result.stderr || result.stdout || String(result.error)).trim()}`);
}

function tryIp(args: readonly string[]): boolean {
  return spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 }).status === 0;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills every process still in `netns`, then deletes it (its links go with it). */
function removeNamespace(netns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', timeout: 10_000 });
  for (const pid of (pids.stdout ?? '').split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  tryIp(['netns', 'del', netns]);
}

/** Namespaces of an earlier run whose process is gone (a run killed before its exit hook). */
function sweepStale(): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
  for (const line of (list.stdout ?? '').split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const match = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name);
    if (match !== null && !pidAlive(Number(match[1]))) removeNamespace(name);
  }
}

let support: { ok: true; netem: boolean } | { ok: false; why: string } | undefined;

/**
 * Whether this machine can make a `FaultNet`: root, iproute2, namespaces, veth links and the
 * `blackhole` qdisc (tried once, in a namespace of its own). `netem` is noted when present.
 */
export function netFaultSupport(): { ok: true; netem: boolean } | { ok: false; why: string } {
  if (support !== undefined) return support;
  if (process.platform !== 'linux') return (support = { ok: false, why: `network namespaces are Linux's; this is ${process.platform}` });
  if (process.getuid?.() !== 0) return (support = { ok: false, why: 'making network namespaces needs root' });
  if (spawnSync('ip', ['-V']).status !== 0) return (support = { ok: false, why: 'iproute2 (`ip`) is not installed (apt-get install iproute2)' });
  const probe = `${PREFIX}-${process.pid}-probe`;
  try {
    ip(['netns', 'add', probe]);
    ip(['-n', probe, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'b0']);
    ip(['-n', probe, 'link', 'set', 'a0', 'up']);
    const blackhole = spawnSync('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'a0', 'root', 'blackhole'], { encoding: 'utf8' });
    if (blackhole.status !== 0) return (support = { ok: false, why: `the blackhole qdisc is missing: ${blackhole.stderr.trim()}` });
    tryIp(['netns', 'exec', probe, 'tc', 'qdisc', 'del', 'dev', 'a0', 'root']);
    const netem =
      spawnSync('ip', ['netns', 'exec', probe, 'tc', 'qdisc', 'add', 'dev', 'a0', 'root', 'netem', 'loss', '1%'], { encoding: 'utf8' }).status === 0;
    return (support = { ok: true, netem });
  } catch (error) {
    return (support = { ok: false, why: (error as Error).message });
  } finally {
    removeNamespace(probe);
  }
}

/**
 * For a partition suite's `before`: returns when a `FaultNet` can be made; otherwise fails the
 * suite under `CI=true` (the partition tests must run there), and skips it elsewhere with the reason.
 */
export function requireNetFaults(context: { skip(): void }): void {
  const can = netFaultSupport();
  if (can.ok) return;
  if (process.env['CI'] === 'true') throw new Error(`the partition tests must run under CI=true: ${can.why}`);
  process.stderr.write(`  skipping the partition tests: ${can.why}\n`);
  context.skip(); // outside CI only: making namespaces needs root and iproute2 (the reason is printed above)
}

const live = new Set<FaultNet>();
process.on('exit', () => {
  for (const net of live) net.destroySync();
});

let made = 0;

/** A few hosts joined by a bridge, and the faults between them; see the file's comment. */
export class FaultNet {
  readonly server!: NetHost;
  readonly #members = new Map<string, NetHost>();
  readonly #switch: string;
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();
  readonly #flapping = new Map<string, NodeJS.Timeout>();
  readonly #netem: boolean;
  #destroyed = false;

  private constructor(members: readonly string[], netem: boolean) {
    this.#netem = netem;
    const id = `${PREFIX}-${process.pid}-${made++}`;
    const subnet = `10.66.${made % 250}`;
    this.#switch = `${id}-sw`;
    this.#namespaces.push(this.#switch);
    ip(['netns', 'add', this.#switch]);
    ip(['-n', this.#switch, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', this.#switch, 'link', 'set', 'br0', 'up']);
    const hosts = ['server', ...members];
    hosts.forEach((name, index) => {
      if (!/^[a-z][a-z0-9]{0,9}$/.test(name)) throw new Error(`a host name is a short lower-case word (it names a link); received ${JSON.stringify(name)}`);
      const netns = `${id}-${name}`;
      this.#namespaces.push(netns);
      ip(['netns', 'add', netns]);
      // Both ends are made inside the harness's namespaces: the machine's own never sees the link.
      ip(['link', 'add', 'eth0', 'netns', netns, 'type', 'veth', 'peer', 'name', `p-${name}`, 'netns', this.#switch]);
      ip(['-n', this.#switch, 'link', 'set', `p-${name}`, 'master', 'br0']);
      ip(['-n', this.#switch, 'link', 'set', `p-${name}`, 'up']);
      const address = `${subnet}.${index + 1}`;
      ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      const host = { name, netns, address };
      if (name === 'server') (this as { server: NetHost }).server = host;
      else this.#members.set(name, host);
    });
  }

  /** Makes the server host and one host per name in `members` (short lower-case words). */
  static create(members: readonly string[]): FaultNet {
    const can = netFaultSupport();
    if (!can.ok) throw new Error(`cannot make a network of namespaces: ${can.why}`);
    sweepStale();
    const net = new FaultNet(members, can.netem);
    live.add(net);
    return net;
  }

  /** The member host `name`. */
  member(name: string): NetHost {
    const host = this.#members.get(name);
    if (host === undefined) throw new Error(`no member host ${JSON.stringify(name)}; the hosts are ${[...this.#members.keys()].join(', ')}`);
    return host;
  }

  /** Runs `argv` in `host`'s namespace and waits for it; throws with its output when it fails. */
  async exec(host: NetHost, argv: readonly string[]): Promise<string> {
    const { stdout } = await run('ip', ['netns', 'exec', host.netns, ...argv], { timeout: 30_000 });
    return stdout;
  }

  /**
   * Sets a sysctl inside `host`'s namespace (its own TCP settings: `net.ipv4.tcp_retries2`, ...),
   * through `/proc/sys`, which shows a process the settings of its own namespace.
   */
  async sysctl(host: NetHost, key: string, value: string | number): Promise<void> {
    if (!/^[a-z0-9_.]+$/.test(key)) throw new Error(`a sysctl key is dotted words; received ${JSON.stringify(key)}`);
    await this.exec(host, ['sh', '-c', `echo ${Number(value)} > /proc/sys/${key.replaceAll('.', '/')}`]);
  }

  /** Reads a sysctl inside `host`'s namespace. */
  async readSysctl(host: NetHost, key: string): Promise<string> {
    if (!/^[a-z0-9_.]+$/.test(key)) throw new Error(`a sysctl key is dotted words; received ${JSON.stringify(key)}`);
    return (await this.exec(host, ['cat', `/proc/sys/${key.replaceAll('.', '/')}`])).trim();
  }

  /** Forks a Node module into `host`'s namespace, with IPC: `ip netns exec` execs Node, so the child's pid is Node's. */
  fork(host: NetHost, module: string | URL, args: readonly string[], options: ForkOptions = {}): ChildProcess {
    const child = fork(module, args, {
      ...options,
      execPath: 'ip',
      execArgv: ['netns', 'exec', host.netns, process.execPath, ...(options.execArgv ?? process.execArgv)],
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Cuts `member` off: both ways, or only what it sends (`'out'`), or only what it is sent (`'in'`). Until `heal`. */
  async partition(member: NetHost, way: PartitionWay = 'both'): Promise<void> {
    if (way !== 'in') await this.#qdisc(member.netns, 'eth0', ['blackhole']);
    if (way !== 'out') await this.#qdisc(this.#switch, `p-${member.name}`, ['blackhole']);
  }

  /**
   * Loses packets to and from `member` until `heal`: with `netem` (where the kernel has it) each
   * packet with probability `lossPercent`; without it, in bursts: everything for `dropMs` out of
   * every `dropMs + passMs`.
   */
  async lossy(member: NetHost, loss: { readonly lossPercent: number; readonly dropMs: number; readonly passMs: number }): Promise<'netem' | 'bursts'> {
    if (this.#netem) {
      await this.#qdisc(member.netns, 'eth0', ['netem', 'loss', `${loss.lossPercent}%`]);
      await this.#qdisc(this.#switch, `p-${member.name}`, ['netem', 'loss', `${loss.lossPercent}%`]);
      return 'netem';
    }
    // The first drop is in place when this resolves; the flips go on from its timer.
    let dropping = true;
    await this.partition(member, 'both');
    const flip = async (): Promise<void> => {
      if (!this.#flapping.has(member.name)) return;
      dropping = !dropping;
      if (dropping) await this.partition(member, 'both');
      else await this.#clear(member);
      if (!this.#flapping.has(member.name)) return void (await this.#clear(member));
      this.#flapping.set(
        member.name,
        setTimeout(() => void flip(), dropping ? loss.dropMs : loss.passMs),
      );
    };
    this.#flapping.set(
      member.name,
      setTimeout(() => void flip(), loss.dropMs),
    );
    return 'bursts';
  }

  /** Ends every fault on `member` (or on every member). */
  async heal(member?: NetHost): Promise<void> {
    for (const host of member === undefined ? [...this.#members.values()] : [member]) {
      const timer = this.#flapping.get(host.name);
      if (timer !== undefined) clearTimeout(timer);
      this.#flapping.delete(host.name);
      await this.#clear(host);
    }
  }

  /**
   * A TCP relay in the server's namespace, on a port of its own, forwarding to `port` on the
   * server; `setDelay` holds what it forwards.
   */
  async relay(port: number): Promise<Relay> {
    const child = this.fork(this.server, new URL('./relay.ts', import.meta.url), [this.server.address, String(port)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const replies: Array<(message: unknown) => void> = [];
    child.on('message', (message) => replies.shift()?.(message));
    const next = (ms = 10_000): Promise<{ port?: number; ok?: true }> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the relay did not answer within ${ms} ms`)), ms);
        replies.push((message) => {
          clearTimeout(timer);
          resolve(message as { port?: number });
        });
      });
    const { port: relayPort } = await next();
    return {
      host: this.server.address,
      port: relayPort as number,
      setDelay: async (ms, way = 'both') => {
        const answered = next();
        child.send({ delayMs: ms, way });
        await answered;
      },
      close: async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      },
    };
  }

  /** Removes every namespace, link and process this network made. */
  async destroy(): Promise<void> {
    for (const timer of this.#flapping.values()) clearTimeout(timer);
    this.#flapping.clear();
    const exits = [...this.#children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGCONT');
          child.kill('SIGKILL');
        }),
    );
    await Promise.all(exits);
    this.destroySync();
  }

  /** As `destroy`, at once (the exit hook's). */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    live.delete(this);
    for (const timer of this.#flapping.values()) clearTimeout(timer);
    for (const child of this.#children) child.kill('SIGKILL');
    // The members' and the server's first, then the switch: processes that kept a namespace are killed with it.
    for (const netns of [...this.#namespaces].reverse()) removeNamespace(netns);
  }

  /** The namespaces this network made (for the harness's own test: all gone after destroy). */
  get namespaces(): readonly string[] {
    return this.#namespaces;
  }

  async #qdisc(netns: string, dev: string, qdisc: readonly string[]): Promise<void> {
    await run('ip', ['netns', 'exec', netns, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', ...qdisc], { timeout: 10_000 });
  }

  async #clear(member: NetHost): Promise<void> {
    // No qdisc to delete is not an error here: heal is idempotent.
    await run('ip', ['netns', 'exec', member.netns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'], { timeout: 10_000 }).catch(() => undefined);
    await run('ip', ['netns', 'exec', this.#switch, 'tc', 'qdisc', 'del', 'dev', `p-${member.name}`, 'root'], { timeout: 10_000 }).catch(() => undefined);
  }
}
