// Worker threads do not inherit tsx's loader from `node --import tsx`, so a TypeScript
// worker cannot be started directly while running from source. This plain-JS entry
// registers tsx inside the worker, then imports the TypeScript file named by
// `workerData.entry`. Compiled programs do not need it: they point the worker at the .js.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
