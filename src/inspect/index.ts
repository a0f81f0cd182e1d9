/**
 * `statesmith/inspector`: the offline, live web view of every statesmith actor.
 *
 * @module
 */
export { startInspector, type Inspector, type InspectorOptions } from './server.ts';
