/**
 * The operator's commands over NATS: `statesmith send` and `statesmith watch`.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { UsageError } from '../demo/args.ts';
import { verdictOf } from '../../machines/finalReplies.ts';
import { NoReplyError, RejectedError } from '../errors.ts';
import { remoteActor, type NatsConnectionLike } from './index.ts';

export const SEND_HELP = `usage: statesmith send [--nats url] [--timeout ms] [--all] <subject> '<json command>'

Sends one command to an actor served with exposeActor() on <subject>, waits for its final
reply (statesmith.executor.done for a run, not the scheduled before it), prints it (JSON,
one line) and exits with what it says.

options:
  --nats <url>      the NATS server (default: nats://127.0.0.1:4222, or $NATS_URL)
  --timeout <ms>    how long to wait for the final reply (default: 10000)
  --all             print every reply as it comes, interim ones too
  -h, --help        show this help

exit status:
  0  the final reply reports success
  1  the command was rejected (statesmith.rejected)
  2  a bad command line
  3  the final reply reports a failure or a cancellation (a failed reply, an outcome
     other than completed), or no final reply came in time (ERR_NO_REPLY)

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
  readonly all: boolean;
  readonly url: string;
  readonly timeoutMs: number;
  readonly positional: string[];
}

function parse(argv: readonly string[], command: 'send' | 'watch'): Parsed {
  let help = false;
  let all = false;
  let url = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
  let timeoutMs = 10_000;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    if (arg === '-h' || arg === '--help') help = true;
    else if (arg === '--all' && command === 'send') all = true;
    else if (arg === '--nats') {
      if (next === undefined) throw new UsageError('ERR_INVALID_ARG_VALUE', '--nats needs a URL (nats://host:4222)');
      url = next;
      i++;
    } else if (arg === '--timeout' && command === 'send') {
      if (next === undefined || !/^\d+$/.test(next) || Number(next) < 1)
        throw new UsageError('ERR_OUT_OF_RANGE', `--timeout needs a number of ms >= 1; received ${JSON.stringify(next ?? '')}`);
      timeoutMs = Number(next);
      i++;
    } else if (arg.startsWith('--')) throw new UsageError('ERR_UNKNOWN_OPTION', `unknown argument ${JSON.stringify(arg)}`);
    else positional.push(arg);
  }
  return { help, all, url, timeoutMs, positional };
}

async function connectTo(url: string): Promise<NatsConnectionLike & { close(): Promise<void> }> {
  let transport: typeof import('@nats-io/transport-node');
  try {
    transport = await import('@nats-io/transport-node');
  } catch (error) {
    throw Object.assign(
      new Error('statesmith send and watch need the optional package @nats-io/transport-node: npm install @nats-io/transport-node', { cause: error }),
      {
        code: 'ERR_NATS_CLIENT_MISSING',
      },
    );
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
  if (args.positional.length !== 2)
    throw new UsageError('ERR_INVALID_ARG_VALUE', `send needs a subject and a JSON command; received ${args.positional.length} argument(s)`);
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
      const onReply = args.all ? (reply: unknown) => out(JSON.stringify(reply)) : undefined;
      const reply = await remote.request(command as { type: string }, { timeoutMs: args.timeoutMs, ...(onReply === undefined ? {} : { onReply }) });
      out(JSON.stringify(reply));
      if (verdictOf(reply) === 'failed') {
        err(`${reply.type}${typeof reply['outcome'] === 'string' ? ` (${reply['outcome']})` : ''}`);
        return 3;
      }
      return 0;
    } catch (error) {
      if (error instanceof RejectedError) {
        out(JSON.stringify(error.rejection));
        err(`rejected: ${error.rejection.reason} (${error.code})`);
        return 1;
      }
      if (error instanceof NoReplyError) {
        err(`${error.message} (${error.code})`);
        return 3;
      }
      throw error;
    } finally {
      remote.close();
    }
  } finally {
    await connection.close();
  }
}

/** `statesmith watch`: prints until `stop` resolves; returns the exit status. */
/** How long `watch` waits for a first snapshot before it says that nobody seems to serve the subject. */
export const SILENT_AFTER_MS = 5_000;

export async function watch(
  argv: readonly string[],
  out: (line: string) => void,
  stop: Promise<unknown>,
  err: (line: string) => void = () => undefined,
): Promise<number> {
  const args = parse(argv, 'watch');
  if (args.help) {
    out(WATCH_HELP);
    return 0;
  }
  if (args.positional.length !== 1) throw new UsageError('ERR_INVALID_ARG_VALUE', `watch needs one subject; received ${args.positional.length} argument(s)`);
  const connection = await connectTo(args.url);
  const remote = remoteActor({ connection, subject: args.positional[0] as string });
  let heard = false;
  const states = remote.snapshot$.subscribe((snapshot) => {
    heard = true;
    out(`state ${JSON.stringify(snapshot)}`);
  });
  const events = remote.events$.subscribe((event) => {
    heard = true;
    out(`event ${JSON.stringify(event)}`);
  });
  // An exposed actor answers a request for its snapshot at once: silence means nobody serves it (yet).
  const silence = setTimeout(() => {
    if (!heard)
      err(`nothing heard from ${String(args.positional[0])} in ${SILENT_AFTER_MS / 1000} s: nobody seems to serve it (is the subject right?); still watching`);
  }, SILENT_AFTER_MS);
  silence.unref();
  try {
    await stop;
  } finally {
    clearTimeout(silence);
    states.unsubscribe();
    events.unsubscribe();
    remote.close();
    await connection.close();
  }
  return 0;
}
