/**
 * `statesmith/inspector`: the offline, live web view of every statesmith actor.
 *
 * @packageDocumentation
 */
// Keeps the comment above in the .d.ts, where API Extractor reads it (an import alone would drop it).
export {};
import { inspection } from './capture.ts';

export { startInspector, type Inspector, type InspectorOptions, type InspectorNatsOptions } from './server.ts';
export type { NatsConnectionLike, NatsMessageLike } from '../nats/wire.ts';
export { forwardToStately, type ForwardToStatelyOptions, type StatelyInspectorLike, type StatelySnapshot } from './stately.ts';

/**
 * The observer to give your own XState actors so they show in the inspector beside
 * statesmith's: `createActor(machine, { inspect })`. It records nothing while no inspector
 * runs.
 *
 * @example
 * ```ts
 * import { createActor, createMachine } from 'xstate';
 * import { inspect, startInspector } from 'statesmith/inspector';
 * const inspector = await startInspector();
 * const door = createActor(createMachine({ id: 'door', initial: 'closed', states: { closed: { on: { open: 'opened' } }, opened: {} } }), { inspect }).start();
 * door.send({ type: 'open' });
 * console.log(door.getSnapshot().value); // opened
 * await inspector.close();
 * ```
 */
export const inspect = inspection.observer;
