/**
 * One contender of the contended coordination bench: takes one lock in a loop for a while,
 * posts how many grants it got. It runs the compiled package when it is built (what users
 * run), else the sources.
 */
import { existsSync } from 'node:fs';

const dist = new URL('../dist/src/index.js', import.meta.url);
const { createCoordinator, setLogger } = (await import(existsSync(dist) ? dist.href : '../src/index.ts')) as typeof import('../src/index.ts');

const [url, ms, agentId] = process.argv.slice(2) as [string, string, string];
setLogger({ debug() {}, info() {}, warn() {}, error: (m) => process.stderr.write(`${m}\n`) });
const coordinator = createCoordinator({ url, agentId, pollIntervalMs: 50 });
await coordinator.start();
const lock = coordinator.getLock('contended');
const end = performance.now() + Number(ms);
let grants = 0;
while (performance.now() < end) {
  const handle = await lock.acquire({ blocking: Math.max(1, end - performance.now()) });
  if (handle === null) break;
  grants++;
  await handle.release();
}
await coordinator.stop();
process.send?.(grants);
process.disconnect?.();
