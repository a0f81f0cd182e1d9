/**
 * The demo's command line: `[--inspect [port]] [--coordinator url] [--name name] [--for seconds]`.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import type { HaAgentOptions } from './haAgent.ts';

export const USAGE = 'usage: statesmith demo [--inspect [port]] [--coordinator url] [--name name] [--for seconds]';

/** Parses the demo's arguments; throws an Error whose message says what is wrong. */
export function parseDemoArgs(argv: readonly string[]): HaAgentOptions {
  const options: { -readonly [K in keyof HaAgentOptions]: HaAgentOptions[K] } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    switch (arg) {
      case '--inspect':
        if (next !== undefined && /^\d+$/.test(next)) {
          options.inspectPort = Number(next);
          i++;
        } else options.inspectPort = 0;
        break;
      case '--coordinator':
        if (next === undefined) throw new Error(`--coordinator needs a URL (memory://, redis://..., postgresql://...)\n${USAGE}`);
        options.coordinatorUrl = next;
        i++;
        break;
      case '--name':
        if (next === undefined) throw new Error(`--name needs a value\n${USAGE}`);
        options.name = next;
        i++;
        break;
      case '--for':
        if (next === undefined || !(Number(next) > 0)) throw new Error(`--for needs a number of seconds > 0\n${USAGE}`);
        options.durationMs = Number(next) * 1_000;
        i++;
        break;
      default:
        throw new Error(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
    }
  }
  return options;
}
