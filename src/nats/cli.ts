/**
 * The operator's commands over NATS: `statesmith send` and `statesmith watch`.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { UsageError } from '../demo/args.ts';
import { remoteActor, type NatsConnectionLike } from './index.ts';

export const SEND_HELP = `usage: statesmith send [--nats url] [--timeout ms] <subject> '<json command>'

Sends one command to an actor served with exposeActor() on <subject>, prints its reply
(JSON, one line) and exits 0, or exits 1 when the reply is statesmith.rejected.

options:
  --nats <url>      the NATS server (default: nats://127.0.0.1:4222, or $NATS_URL)
  --timeout <ms>    how long to wait for the reply (default: 10000)
  -h, --help        show this help

example:
  statesmith send statesmith.agents.a.executor '{"type":"statesmith.executor.run","action":"restart"}'`;

export const WATCH_HELP = `usage: statesmith watch [--nats url] <subject>

Prints the state changes and the events of an actor served on <subject>, one line each
("state {...}", "event {...}"), until Ctrl-C.

options:
  --nats <url>   the NATS server (default: nats://127.0.0.1:4222, or $NATS_URL)
  -h, --help     show this help

example:
  statesmith watch statesmith.agents.a.executor`;

interface Parsed {
  readonly help: boolean;
  readonly url: string;
  readonly timeoutMs: number;
  readonly positional: string[];
}

function parse(argv: readonly string[], command: 'send' | 'watch'): Parsed {
  let help = false;
  let url = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
  let timeoutMs = 10_000;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    if (arg === '-h' || arg === '--help') help = true;
    else if (arg === '--nats') {
      if (next === undefined) throw new UsageError('ERR_INVALID_ARG_VALUE', '--nats needs a URL (nats://host:4222)');
      url = next;
      i++;
    } else if (arg === '--timeout' && command === 'send') {
      if (next === undefined || !/^\d+$/.test(next) || Number(next) < 1) throw new UsageError('ERR_OUT_OF_RANGE', `--timeout needs a number of ms >= 1; received ${JSON.stringify(next ?? '')}`);
      timeoutMs = Number(next);
      i++;
    } else if (arg.startsWith('--')) throw new UsageError('ERR_UNKNOWN_OPTION', `unknown argument ${JSON.stringify(arg)}`);
    else positional.push(arg);
  }
  return { help, url, timeoutMs, positional };
}

async function connectTo(url: string): Promise<NatsConnectionLike & { close(): Promise<void> }> {
  let transport: typeof import('@nats-io/transport-node');
  try {
    transport = await import('@nats-io/transport-node');
  } catch (error) {
    throw Object.assign(new Error('statesmith send and watch need the optional package @nats-io/transport-node: npm install @nats-io/transport-node', { cause: error }), {
      code: 'ERR_NATS_CLIENT_MISSING',
    });
  }
  return (await transport.connect({ servers: url, timeout: 5_000 })) as unknown as NatsConnectionLike & { close(): Promise<void> };
}

/** `statesmith send`: returns the exit status. */
export async function send(argv: readonly string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  const args = parse(argv, 'send');
  if (args.help) {
    out(SEND_HELP);
    return 0;
  }
  if (args.positional.length !== 2) throw new UsageError('ERR_INVALID_ARG_VALUE', `send needs a subject and a JSON command; received ${args.positional.length} argument(s)`);
  const [subject, text] = args.positional as [string, string];
  let command: unknown;
  try {
    command = JSON.parse(text);
  } catch (error) {
    throw new UsageError('ERR_INVALID_ARG_VALUE', `the command is not JSON: ${(error as Error).message}`);
  }
  if (command === null || typeof command !== 'object' || typeof (command as { type?: unknown }).type !== 'string') {
    throw new UsageError('ERR_INVALID_ARG_VALUE', 'the command must be a JSON object with a string "type"');
  }
  const connection = await connectTo(args.url);
  try {
    const remote = remoteActor({ connection, subject });
    try {
      const reply = await remote.request(command as { type: string }, { timeoutMs: args.timeoutMs });
      out(JSON.stringify(reply));
      if (reply.type === 'statesmith.rejected') {
        err(`rejected: ${String(reply['reason'])} (${String(reply['code'])})`);
        return 1;
      }
      return 0;
    } finally {
      remote.close();
    }
  } finally {
    await connection.close();
  }
}

/** `statesmith watch`: prints until `stop` resolves; returns the exit status. */
export async function watch(argv: readonly string[], out: (line: string) => void, stop: Promise<unknown>): Promise<number> {
  const args = parse(argv, 'watch');
  if (args.help) {
    out(WATCH_HELP);
    return 0;
  }
  if (args.positional.length !== 1) throw new UsageError('ERR_INVALID_ARG_VALUE', `watch needs one subject; received ${args.positional.length} argument(s)`);
  const connection = await connectTo(args.url);
  const remote = remoteActor({ connection, subject: args.positional[0] as string });
  const states = remote.snapshot$.subscribe((snapshot) => out(`state ${JSON.stringify(snapshot)}`));
  const events = remote.events$.subscribe((event) => out(`event ${JSON.stringify(event)}`));
  try {
    await stop;
  } finally {
    states.unsubscribe();
    events.unsubscribe();
    remote.close();
    await connection.close();
  }
  return 0;
}
