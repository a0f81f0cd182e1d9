#!/usr/bin/env node
/**
 * The `statesmith` command: `statesmith demo [options]`, `statesmith send` and
 * `statesmith watch` (over NATS), `--help` on every command, `--version`. A bad command line exits 2 with a typed message; a failure at run time
 * exits 1 with one line (its stack with `--verbose`).
 *
 * @module
 */
import { DEMO_HELP, HELP, oneLine, parseDemoArgs, UsageError, version } from './demo/args.ts';
import { runHaAgent } from './demo/haAgent.ts';

// Output piped into `head` and closed early is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === '--help' || command === '-h') {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (command === 'help') {
  // `statesmith help <command>`: that command's own help, as `<command> --help` prints it.
  const topic = rest[0];
  if (topic === undefined) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  if (topic === 'demo') {
    process.stdout.write(`${DEMO_HELP}\n`);
    process.exit(0);
  }
  if (topic === 'send' || topic === 'watch') {
    const { SEND_HELP, WATCH_HELP } = await import('./nats/cli.ts');
    process.stdout.write(`${topic === 'send' ? SEND_HELP : WATCH_HELP}\n`);
    process.exit(0);
  }
  process.stderr.write(`statesmith help: no command ${JSON.stringify(topic)}; the commands are demo, send, watch (ERR_UNKNOWN_COMMAND)\n`);
  process.exit(2);
}
if (command === '--version' || command === '-V') {
  process.stdout.write(`${version()}\n`);
  process.exit(0);
}
if (command === 'send' || command === 'watch') {
  const { send, watch } = await import('./nats/cli.ts');
  const verbose = rest.includes('--verbose');
  const argv = rest.filter((arg) => arg !== '--verbose');
  try {
    const stop = new Promise((resolve) => {
      process.on('SIGINT', resolve);
      process.on('SIGTERM', resolve);
    });
    const status =
      command === 'send'
        ? await send(
            argv,
            (line) => process.stdout.write(`${line}\n`),
            (line) => process.stderr.write(`statesmith send: ${line}\n`),
          )
        : await watch(
            argv,
            (line) => process.stdout.write(`${line}\n`),
            stop,
            (line) => process.stderr.write(`statesmith watch: ${line}\n`),
          );
    process.exit(status);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`statesmith ${command}: ${error.message} (${error.code})\nRun 'statesmith ${command} --help' for the options.\n`);
      process.exit(2);
    }
    const code = (error as { code?: unknown }).code;
    process.stderr.write(`statesmith ${command}: ${oneLine(error)}${typeof code === 'string' ? ` (${code})` : ''}\n`);
    if (verbose) process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  }
}
if (command !== 'demo') {
  process.stderr.write(`statesmith: unknown command ${JSON.stringify(command)} (ERR_UNKNOWN_COMMAND)\n\n${HELP}\n`);
  process.exit(2);
}
let args;
try {
  args = parseDemoArgs(rest);
} catch (error) {
  const code = error instanceof UsageError ? error.code : 'ERR_INVALID_ARG_VALUE';
  process.stderr.write(`statesmith demo: ${(error as Error).message} (${code})\nRun 'statesmith demo --help' for the options.\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${DEMO_HELP}\n`);
  process.exit(0);
}
let agent;
try {
  agent = await runHaAgent(args.options);
} catch (error) {
  process.stderr.write(`statesmith demo: could not start: ${oneLine(error)}\n`);
  if (args.verbose) process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
}
// Every signal asks for the same clean stop: Ctrl-C under npm arrives twice (from the
// terminal to the whole group, and forwarded by npm), and a second one must not kill the
// agent half-way through its stop, as Node's default action would.
process.on('SIGINT', () => void agent.stop('Ctrl-C'));
process.on('SIGTERM', () => void agent.stop('SIGTERM'));
await agent.done;
