/**
 * The main job (`npm start`): an HA agent that uses every statesmith facility, watched
 * live in the inspector. See src/demo/haAgent.ts for what it does.
 *
 *   node --conditions=statesmith-source --import tsx examples/ha-agent.ts [--inspect [port]] [--coordinator url] [--state url | --no-state] [--name name] [--for seconds]
 *
 * On the embedded default (no `--coordinator`) the executor's state is kept in
 * `<os temp dir>/statesmith-demo/state.db` unless `--state` names another store or
 * `--no-state` keeps none: an agent killed while it promotes comes back and says that the
 * promote was cut short, instead of forgetting it or running it again unasked.
 *
 * Two agents on one Redis (`--coordinator redis://127.0.0.1:6379 --name a`, then `--name b`
 * in another terminal) elect one leader; kill the leader and the other takes over when
 * its lease runs out. Ctrl-C stops an agent cleanly.
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_HELP, parseDemoArgs, USAGE } from '../src/demo/args.ts';
import { runHaAgent } from '../src/demo/haAgent.ts';

let options;
try {
  const args = parseDemoArgs(process.argv.slice(2));
  if (args.help) {
    console.log(DEMO_HELP);
    process.exit(0);
  }
  options = args.options;
  // On the embedded default (no --coordinator), the executor's state is kept in a file under the OS temp
  // dir: kill -9 the agent while it promotes, start it again, and it says what the crash cut short.
  if (options.stateUrl === undefined && options.coordinatorUrl === undefined && !args.noState) {
    const dir = join(tmpdir(), 'statesmith-demo');
    mkdirSync(dir, { recursive: true });
    options = { ...options, stateUrl: `sqlite://${join(dir, 'state.db')}` };
  }
} catch (error) {
  console.error(`${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
const agent = await runHaAgent(options);
// Every signal asks for the same clean stop: Ctrl-C under npm arrives twice (from the
// terminal to the whole group, and forwarded by npm), and a second one must not kill the
// agent half-way through its stop, as Node's default action would.
process.on('SIGINT', () => void agent.stop('Ctrl-C'));
process.on('SIGTERM', () => void agent.stop('SIGTERM'));
await agent.done;
