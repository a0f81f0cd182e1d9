#!/usr/bin/env node
/**
 * The `statesmith` command: `statesmith demo [--inspect [port]] [--coordinator url]`.
 *
 * @module
 */
import { parseDemoArgs, USAGE } from './demo/args.ts';
import { runHaAgent } from './demo/haAgent.ts';

// Output piped into `head` and closed early is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const [command, ...rest] = process.argv.slice(2);
if (command !== 'demo') {
  process.stderr.write(`${USAGE}\n`);
  process.exit(command === undefined || command === '--help' || command === '-h' ? 0 : 2);
}
let options;
try {
  options = parseDemoArgs(rest);
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(2);
}
const agent = await runHaAgent(options);
process.once('SIGINT', () => void agent.stop('Ctrl-C'));
process.once('SIGTERM', () => void agent.stop('SIGTERM'));
await agent.done;
