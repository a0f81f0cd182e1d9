/**
 * A process's inspection stream over NATS, so one inspector can show the actors of
 * several processes (`startInspector({ nats })`).
 *
 * Wire format, on `<subject>.inspect` (all JSON):
 * - a batch: `{ "boot", "seq", "records": [...] }`, at most every 50 ms, each under
 *   256 KiB; an empty batch every 2 s says the process is alive;
 * - `{ "boot", "closed": true }` when the feed closes;
 * - a request on the same subject (it has a reply subject) gets the picture: the graphs,
 *   actors, latest snapshots and locks, then as much recent history as fits.
 *
 * `boot` is random per feed, so a viewer tells a restarted process from the old one;
 * `seq` is the last record's number, so a viewer drops live records its picture holds.
 *
 * Internal to statesmith except for `exposeInspection` (exported from `statesmith/nats`).
 * A file header says so in words: the TSDoc tag for internal would attach to the first
 * import, and `stripInternal` would drop it.
 */
import { randomBytes } from 'node:crypto';
import { inspection, type CapturedRecord } from '../inspect/capture.ts';
import { getLogger } from '../logger.ts';
import { optionalObject } from '../runtime/validate.ts';
import { startCapture } from '../runtime/startActor.ts';
import { requireConnection, requireSubject, type NatsConnectionLike } from './wire.ts';

/** Options of {@link exposeInspection}. */
export interface InspectionFeedOptions {
  /** A connected NATS client. */
  readonly connection: NatsConnectionLike;
  /** The subject prefix (the process's, e.g. `statesmith.agents.db-1`); records go to `<subject>.inspect`. */
  readonly subject: string;
}

/** A running inspection feed. */
export interface InspectionFeed {
  /** Sends what is pending, says the feed closed, and stops capturing (unless an inspector of this process still does). */
  close(): Promise<void>;
}

/** The feeds this process publishes (`<subject>.inspect`): an inspector here shows those actors already. */
export const localFeeds = new Set<string>();

/** How often pending records go out. */
const FLUSH_MS = 50;
/** An empty batch this often says the process is alive. */
export const FEED_HEARTBEAT_MS = 2_000;
/** The largest batch; NATS's default max_payload is 1 MiB. */
const BATCH_BYTES = 256 * 1024;
/** The largest picture (one reply). */
const PICTURE_BYTES = 768 * 1024;

/**
 * Publishes this process's inspection stream (every statesmith actor, and XState actors
 * created with `inspect`) on `<subject>.inspect`, for an inspector in another process
 * started with `startInspector({ nats: { connection, subjects } })`. Capture is on
 * while the feed runs: it costs what a connected inspector costs.
 *
 * @example
 * ```ts
 * import { connect } from '@nats-io/transport-node';
 * import { exposeInspection } from 'statesmith/nats';
 * const connection = await connect({ servers: process.env['NATS_URL'] ?? '127.0.0.1:4222' });
 * const feed = await exposeInspection({ connection, subject: 'statesmith.agents.docs-1' });
 * await feed.close();
 * await connection.close();
 * ```
 */
export async function exposeInspection(options: InspectionFeedOptions): Promise<InspectionFeed> {
  const opts = optionalObject<InspectionFeedOptions>('options', options, ['connection', 'subject']);
  const connection = requireConnection('options.connection', opts.connection);
  const subject = `${requireSubject('options.subject', opts.subject)}.inspect`;
  const boot = randomBytes(6).toString('hex');
  let lastSeq = 0;
  let pending: CapturedRecord[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastSent = Date.now();

  const publish = (records: readonly string[]): void => {
    try {
      connection.publish(subject, `{"boot":"${boot}","seq":${lastSeq},"records":[${records.join(',')}]}`);
      lastSent = Date.now();
    } catch (error) {
      // A closed or draining connection: the viewer sees the feed go silent.
      getLogger().debug(`inspection feed ${subject}: publish failed`, { error });
    }
  };
  const flush = (): void => {
    timer = undefined;
    const batch = pending;
    pending = [];
    let chunk: string[] = [];
    let bytes = 0;
    for (const record of batch) {
      if (bytes + record.json.length > BATCH_BYTES && chunk.length > 0) {
        publish(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(record.json);
      bytes += record.json.length + 1;
    }
    if (chunk.length > 0) publish(chunk);
  };
  const stopCapture = startCapture();
  localFeeds.add(subject);
  const unsubscribe = inspection.subscribe((record) => {
    // What an inspector here took in from other processes is theirs to send.
    if (record.remote) return;
    pending.push(record);
    lastSeq = record.seq;
    if (timer === undefined) {
      timer = setTimeout(flush, FLUSH_MS);
      timer.unref?.();
    }
  });
  const heartbeat = setInterval(() => {
    if (Date.now() - lastSent >= FEED_HEARTBEAT_MS - FLUSH_MS && pending.length === 0) publish([]);
  }, FEED_HEARTBEAT_MS);
  heartbeat.unref();
  const requests = connection.subscribe(subject, {
    callback: (error, message) => {
      if (error !== null || !message.reply) return;
      // Anything pending is older than the picture: send it first, so the viewer's seq cut holds.
      if (timer !== undefined) {
        clearTimeout(timer);
        flush();
      }
      // The asker always hears how its request ended: the picture, or why there is none.
      try {
        const picture = pictureOf();
        message.respond(`{"boot":"${boot}","seq":${lastSeq},${picture.truncated ? '"truncated":true,' : ''}"records":[${picture.records.join(',')}]}`);
      } catch (pictureError) {
        getLogger().warn(`inspection feed ${subject}: the picture could not be sent`, { error: pictureError });
        try {
          message.respond(JSON.stringify({ boot, seq: lastSeq, records: [], error: String((pictureError as Error)?.message ?? pictureError) }));
        } catch {
          // the connection is gone: the asker's own timeout tells it
        }
      }
    },
  });
  await connection.flush?.();
  // The process's actors as they are now, for viewers already listening.
  publish([]);

  let closed: Promise<void> | undefined;
  return {
    close: () => {
      closed ??= (async () => {
        unsubscribe();
        localFeeds.delete(subject);
        clearInterval(heartbeat);
        if (timer !== undefined) clearTimeout(timer);
        flush();
        try {
          connection.publish(subject, `{"boot":"${boot}","closed":true}`);
        } catch (error) {
          getLogger().debug(`inspection feed ${subject}: closing publish failed`, { error });
        }
        requests.unsubscribe();
        stopCapture();
        await connection.flush?.().catch(() => undefined);
      })();
      return closed;
    },
  };
}

/**
 * The picture in time order, within one reply: graphs, actors and locks; the latest
 * snapshot of each actor whose history is not in the tail; then the newest history that
 * fits, oldest first. A process that made more actors than one reply holds (a long-lived
 * one, a test run) gets the newest of them: the oldest actors are left out (`truncated`);
 * the graphs (one per kind of logic) and the locks always go.
 */
export function pictureOf(limit = PICTURE_BYTES): { records: string[]; truncated: boolean } {
  const { graphs, actors, latest, locks } = inspection.structure();
  const local = (record: CapturedRecord): boolean => record.remote !== true;
  const size = (records: readonly CapturedRecord[]): number => records.reduce((sum, record) => sum + record.json.length + 1, 0);
  // Graphs (one per kind of logic, few) and locks always go; then the newest actors, each with its latest snapshot, while they fit.
  const kept = [...graphs, ...locks].filter(local);
  let bytes = size(kept);
  const structure = actors.filter(local).sort((a, b) => b.seq - a.seq);
  const latestOf = new Map(latest.filter(local).map((record) => [record.sessionId, record]));
  const head: CapturedRecord[] = [];
  const shown = new Set<string | undefined>();
  let truncated = false;
  for (const record of structure) {
    const last = latestOf.get(record.sessionId);
    const cost = record.json.length + 1 + (last === undefined ? 0 : last.json.length + 1);
    if (bytes + cost > limit) {
      truncated = true;
      continue;
    }
    head.push(record);
    shown.add(record.sessionId);
    bytes += cost;
  }
  const history = inspection.records().filter((record) => record.type === '@xstate.snapshot' && local(record) && shown.has(record.sessionId));
  const tail: CapturedRecord[] = [];
  const inTail = new Set<string | undefined>();
  for (let i = history.length - 1; i >= 0; i--) {
    const record = history[i] as CapturedRecord;
    const freed = inTail.has(record.sessionId) ? 0 : (latestOf.get(record.sessionId)?.json.length ?? -1) + 1;
    if (bytes - freed + record.json.length + 1 > limit) break;
    tail.push(record);
    if (!inTail.has(record.sessionId)) bytes -= freed;
    inTail.add(record.sessionId);
    bytes += record.json.length + 1;
  }
  const older = [...shown].map((id) => latestOf.get(id)).filter((record): record is CapturedRecord => record !== undefined && !inTail.has(record.sessionId));
  const bySeq = (a: CapturedRecord, b: CapturedRecord): number => a.seq - b.seq;
  const ordered = [
    ...kept.filter((record) => record.type === 'statesmith.graph'),
    ...head.sort(bySeq),
    ...kept.filter((record) => record.type !== 'statesmith.graph'),
    ...older.sort(bySeq),
    ...tail.reverse(),
  ];
  return { records: ordered.map((record) => record.json), truncated };
}
