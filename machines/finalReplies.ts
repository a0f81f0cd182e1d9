/**
 * The final replies of every statesmith command: which reply types end it. An ask, in-process
 * (`ask`) or over NATS (`remoteActor(...).request`), resolves on one of these; any other reply
 * before it is interim (`onReply`). `statesmith.rejected` ends every command.
 *
 * Pure data: no I/O, nothing runs at import.
 */

const REJECTED = 'statesmith.rejected';

/** Builds one facility's rows: each verb with its final reply verbs, `rejected` added. */
function facility(name: string, rows: Readonly<Record<string, readonly string[]>>): Record<string, readonly string[]> {
  const table: Record<string, readonly string[]> = {};
  for (const [verb, replies] of Object.entries(rows)) {
    table[`statesmith.${name}.${verb}`] = Object.freeze([...replies.map((reply) => `statesmith.${name}.${reply}`), REJECTED]);
  }
  return table;
}

/**
 * For each command type, the reply types that end it (`statesmith.rejected` always among them).
 * A command type not listed (a user's own actor's) ends with its first reply.
 *
 * @example
 * ```ts
 * import { finalReplies } from 'statesmith';
 * console.log(finalReplies['statesmith.executor.run']?.join(', ')); // statesmith.executor.done, statesmith.executor.refused, statesmith.rejected
 * ```
 */
export const finalReplies: Readonly<Record<string, readonly string[]>> = Object.freeze({
  ...facility('executor', { schedule: ['scheduled', 'refused'], run: ['done', 'refused'], cancel: ['cancelled'], reset: ['unscheduled'] }),
  ...facility('critical', {
    schedule: ['scheduled'],
    start: ['started'],
    complete: ['completed'],
    cancel: ['cancelResult'],
    end: ['ended'],
    reset: ['wasReset'],
  }),
  ...facility('subprocess', { call: ['exited'], cancel: ['cancelled'], terminate: ['terminating'], resetCancelled: ['rearmed'] }),
  ...facility('taskGroup', {
    createTask: ['taskDone'],
    cancelTask: ['cancelling'],
    cancel: ['cancelling'],
    acknowledge: ['acknowledged'],
    wait: ['finished'],
    stop: ['stopped'],
  }),
  ...facility('service', { start: ['started'], cancel: ['cancelling'], stop: ['stopped'] }),
  ...facility('locksmith', { recognize: ['recognized', 'failed'], force: ['forced', 'failed'], host: ['hosted', 'failed'] }),
  ...facility('coordinator', {
    start: ['started', 'failed'],
    stop: ['stopped'],
    acquire: ['acquired', 'notAcquired', 'failed'],
    release: ['released', 'failed'],
    breakLock: ['broken', 'failed'],
    join: ['joined', 'failed'],
    leave: ['left', 'failed'],
    members: ['members', 'failed'],
    election: ['electionOpened'],
  }),
  ...facility('election', {
    campaign: ['elected', 'failed', 'withdrawn'],
    withdraw: ['withdrawn'],
    proclaim: ['proclaimed', 'failed'],
    resign: ['resigned', 'failed'],
  }),
});

/** What statesmith actors send besides final replies: interim replies and notices to a parent or listener. */
const notices = [
  'statesmith.executor.scheduled',
  'statesmith.executor.started',
  'statesmith.subprocess.started',
  'statesmith.taskGroup.failed',
  'statesmith.service.running',
  'statesmith.service.done',
  'statesmith.election.leadershipLost',
];

/**
 * Every reply type a statesmith actor sends, final, interim or notice: such an event arriving
 * at an actor is a reply (a child's, to its parent), heard and never answered.
 */
export const replyTypes: ReadonlySet<string> = new Set([...Object.values(finalReplies).flat(), ...notices]);

/**
 * Whether `reply` ends the command of type `commandType`: one of its final replies, a
 * rejection, or (for a command statesmith does not know) any reply.
 */
export function isFinalReply(commandType: string, reply: { readonly type: string }): boolean {
  const finals = finalReplies[commandType];
  return finals === undefined || finals.includes(reply.type);
}

/**
 * How a final reply ended its command, for exit codes and alerts: `'rejected'`, `'failed'`
 * (a `failed` or `refused` reply, an outcome of `failed`, `cancelled` or `interrupted`,
 * or a lock not acquired), or `'succeeded'`.
 */
export function verdictOf(reply: { readonly type: string }): 'succeeded' | 'failed' | 'rejected' {
  if (reply.type === REJECTED) return 'rejected';
  if (reply.type.endsWith('.failed') || reply.type.endsWith('.refused') || reply.type === 'statesmith.coordinator.notAcquired') return 'failed';
  const outcome = (reply as { outcome?: unknown }).outcome;
  return outcome === undefined || outcome === null || outcome === 'completed' ? 'succeeded' : 'failed';
}
