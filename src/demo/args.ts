/**
 * The command line of `statesmith` and of its `demo` command: help, version, and the
 * demo's options, each wrong value answered with a typed error.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { readFileSync } from 'node:fs';
import type { HaAgentOptions } from './haAgent.ts';

export const USAGE =
  'usage: statesmith demo [--inspect [port]] [--metrics port] [--nats url] [--coordinator url] [--state url | --no-state] [--name name] [--for seconds] [--verbose]';

export const HELP = `statesmith: statechart actors for the background work of Node.js control planes

usage: statesmith <command> [options]

commands:
  demo           run the HA-agent demo: every facility in one small agent
  send           send a command to an actor served over NATS, print its final reply
  help           'statesmith help <command>': a command's help
  watch          print an actor's state changes and events over NATS, until Ctrl-C

options:
  -h, --help     show this help
  -V, --version  print the version

Run 'statesmith <command> --help' (or 'statesmith help <command>') for a command's options.`;

export const DEMO_HELP = `${USAGE}

Runs an HA agent that joins a coordinator, elects its leader, runs its actions as
subprocesses through an executor, monitors itself with a service, and breaks a stuck lock
with a locksmith. Ctrl-C (SIGINT) or SIGTERM stops it cleanly.

options:
  --inspect [port]     serve the live inspector on 127.0.0.1 (default port: any free one)
  --metrics <port>     serve Prometheus metrics at http://127.0.0.1:<port>/metrics (needs prom-client)
  --nats <url>         serve the agent's actors over NATS as statesmith.agents.<name>.{agent,executor,monitoring},
                       and its inspection feed on statesmith.agents.<name>.inspect
  --coordinator <url>  memory:// (default), redis://host:6379, postgresql://user@host/db, etcd://host:2379,
                       sqlite:///abs/path/coord.db (several agents of one host, no server), mysql://user@host:3306/db
  --no-state           keep no state (npm start keeps it under the OS temp dir by default)
  --state <url>        keep the executor's state across restarts: sqlite:///abs/path/state.db or postgresql://...;
                       after a crash the agent comes back where its executor was, and an action the crash cut
                       short is reported interrupted, never run again (several agents on one store: give each a --name)
  --name <name>        this agent's member name (default: agent-<pid>)
  --for <seconds>      stop by itself after this many seconds (default: run until stopped)
  --verbose            print the stack of a failure
  -h, --help           show this help

examples:
  statesmith demo --inspect
  statesmith demo --metrics 9464
  statesmith demo --coordinator redis://127.0.0.1:6379 --name a --for 60
  statesmith demo --coordinator sqlite:///tmp/ha.db --name a   (and --name b in another terminal)
  statesmith demo --state sqlite:///tmp/ha-state.db   (kill -9 it while it promotes, and start it again)`;

/** A command line the CLI cannot take: `code` says why (`ERR_UNKNOWN_OPTION`, `ERR_OUT_OF_RANGE`, ...); exit status 2. */
export class UsageError extends Error {
  /** The class name, `'UsageError'`, as Node's own errors have it. */
  override readonly name = 'UsageError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** What the demo's command line asks for. */
export interface DemoArgs {
  readonly options: HaAgentOptions;
  readonly help: boolean;
  readonly verbose: boolean;
  /** `--no-state`: keep no state, even where the caller (npm start) would keep it by default. */
  readonly noState: boolean;
}

const shown = (value: string): string => JSON.stringify(value);

/** The port of `--inspect` or `--metrics`: an integer from 0 to 65535. */
function port(value: string, flag = '--inspect'): number {
  if (!/^-?\d+$/.test(value)) throw new UsageError('ERR_INVALID_ARG_VALUE', `${flag}: port must be an integer from 0 to 65535; received ${shown(value)}`);
  const n = Number(value);
  if (n < 0 || n > 65_535) throw new UsageError('ERR_OUT_OF_RANGE', `${flag}: port must be an integer from 0 to 65535; received ${shown(value)}`);
  return n;
}

const COORDINATOR_SCHEMES = ['memory:', 'redis:', 'rediss:', 'postgres:', 'postgresql:', 'etcd:', 'sqlite:', 'mysql:'];

/** A URL given to `flag`: parsed, with one of `schemes`, or a `UsageError` naming the flag. */
function url(flag: string, text: string, schemes: readonly string[]): string {
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    throw new UsageError('ERR_INVALID_ARG_VALUE', `${flag} needs a URL; received ${shown(text)}`);
  }
  if (!schemes.includes(parsed.protocol)) {
    throw new UsageError(
      'ERR_INVALID_ARG_VALUE',
      `${flag} needs a URL with a scheme of ${schemes.map((scheme) => `${scheme}//`).join(', ')}; received ${shown(text)}`,
    );
  }
  return text;
}

/** Parses the demo's arguments; throws a `UsageError` that says what is wrong. */
export function parseDemoArgs(argv: readonly string[]): DemoArgs {
  const options: { -readonly [K in keyof HaAgentOptions]: HaAgentOptions[K] } = {};
  let help = false;
  let verbose = false;
  let noState = false;
  const valueOf = (flag: string, next: string | undefined, what: string): string => {
    if (next === undefined || next.startsWith('--')) throw new UsageError('ERR_INVALID_ARG_VALUE', `${flag} needs ${what}`);
    return next;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    switch (arg) {
      case '-h':
      case '--help':
        help = true;
        break;
      case '--verbose':
        verbose = true;
        break;
      case '--inspect':
        // The port is optional: a next word that is not a flag is it.
        if (next !== undefined && !next.startsWith('--')) {
          options.inspectPort = port(next);
          i++;
        } else options.inspectPort = 0;
        break;
      case '--metrics':
        options.metricsPort = port(valueOf(arg, next, 'a port (0 to 65535)'), arg);
        i++;
        break;
      case '--nats':
        options.natsUrl = url(arg, valueOf(arg, next, 'a URL (nats://127.0.0.1:4222)'), ['nats:', 'tls:', 'ws:', 'wss:']);
        i++;
        break;
      case '--coordinator':
        options.coordinatorUrl = url(
          arg,
          valueOf(arg, next, 'a URL (memory://, redis://..., postgresql://..., etcd://..., sqlite:///..., mysql://...)'),
          COORDINATOR_SCHEMES,
        );
        i++;
        break;
      case '--no-state':
        noState = true;
        break;
      case '--state':
        options.stateUrl = url(arg, valueOf(arg, next, 'a URL (sqlite:///abs/path/state.db, postgresql://...)'), ['sqlite:', 'postgresql:', 'postgres:']);
        i++;
        break;
      case '--name': {
        const name = valueOf(arg, next, 'a name');
        // It becomes a NATS subject token and a member id: letters, digits, '-' and '_'.
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(name))
          throw new UsageError('ERR_INVALID_ARG_VALUE', `--name needs 1 to 64 letters, digits, '-' or '_'; received ${shown(name)}`);
        options.name = name;
        i++;
        break;
      }
      case '--for': {
        const seconds = valueOf(arg, next, 'a number of seconds > 0');
        if (!(Number(seconds) > 0) || !Number.isFinite(Number(seconds))) {
          throw new UsageError(
            Number.isNaN(Number(seconds)) ? 'ERR_INVALID_ARG_VALUE' : 'ERR_OUT_OF_RANGE',
            `--for needs a number of seconds > 0; received ${shown(seconds)}`,
          );
        }
        options.durationMs = Number(seconds) * 1_000;
        i++;
        break;
      }
      default:
        throw new UsageError('ERR_UNKNOWN_OPTION', `unknown argument ${shown(arg)}`);
    }
  }
  if (noState && options.stateUrl !== undefined) throw new UsageError('ERR_INVALID_ARG_VALUE', '--state and --no-state cannot both be given');
  return { options, help, verbose, noState };
}

/** The package's version, from its package.json (two levels up from the built file, one from the source). */
export function version(): string {
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'statesmith' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next
    }
  }
  return 'unknown';
}

/** A runtime failure as one line: its message, and its cause's when it has one. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause !== undefined ? (error.cause instanceof Error ? error.cause.message : String(error.cause)) : undefined;
  const text = cause !== undefined && !message.includes(cause) ? `${message} (cause: ${cause})` : message;
  return text.split('\n')[0] as string;
}
