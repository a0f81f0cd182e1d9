/** The leader of the failover bench: campaigns, says when elected, and waits to be killed. */
import { createCoordinator, setLogger } from '../src/index.ts';

const [url, ttlMs] = process.argv.slice(2) as [string, string];
setLogger({ debug() {}, info() {}, warn() {}, error: (m) => process.stderr.write(`${m}\n`) });
const coordinator = createCoordinator({ url, agentId: `leader-${process.pid}`, lockTtlMs: Number(ttlMs), heartbeatMs: Number(ttlMs) / 4 });
await coordinator.start();
const leadership = await coordinator.getElection('failover').campaign();
process.send?.({ term: String(leadership.term) });
setInterval(() => undefined, 60_000);
