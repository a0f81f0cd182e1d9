/** `npm run bench`: every benchmark, side by side, printed as tables of ratios. */
import { benchCoordination } from './coordination.bench.ts';
import { benchDurable } from './durable.bench.ts';
import { benchExecutor } from './executor.bench.ts';
import { benchFailover } from './failover.bench.ts';
import { benchGcPolicy } from './gcpolicy.bench.ts';
import { benchInspector } from './inspector.bench.ts';
import { benchLocksmith } from './locksmith.bench.ts';
import { benchMutex } from './mutex.bench.ts';
import { benchNats } from './nats.bench.ts';
import { benchSupervision } from './supervision.bench.ts';
import { benchTasks } from './tasks.bench.ts';
import { benchTelemetry } from './telemetry.bench.ts';
import { benchThreads } from './threads.bench.ts';

console.log(`statesmith benchmarks — node ${process.version}, ${process.platform}/${process.arch}`);
await benchExecutor();
await benchMutex();
await benchThreads();
await benchTasks();
await benchSupervision();
await benchLocksmith();
await benchCoordination();
await benchFailover();
await benchDurable();
await benchInspector();
await benchTelemetry();
await benchNats();
await benchGcPolicy();
// Server connections and private servers close on their own; do not wait for them.
process.exit(0);
