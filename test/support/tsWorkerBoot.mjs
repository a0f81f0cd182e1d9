// Worker threads do not inherit tsx's loader from `node --import tsx`; this plain-JS
// entry registers it in the worker and then imports the TypeScript entry it was given.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
