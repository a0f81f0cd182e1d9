/**
 * The inspector's view of other processes: it listens for their inspection feeds
 * (`exposeInspection` in `statesmith/nats`) and merges their records into this process's
 * stream, each process as an actor of kind `agent` with its actors under it.
 *
 * - Ids are made unique per process and per boot (`nats:<subject>#<boot>/<id>`), so two
 *   agents' `x:0` never meet, and a restarted agent's actors are new rows.
 * - A feed seen for the first time is asked for its picture; live batches that arrive
 *   meanwhile wait, and those the picture already holds (by the feed's `seq`) are dropped.
 * - A feed that closes shows its agent `done` and its actors `stopped`. One silent for
 *   three heartbeats shows its agent `stopped` (`silent`) until it speaks again; its
 *   actors keep their last known states.
 *
 * Internal to statesmith (not exported from the package). A file header says so in words:
 * the TSDoc tag for internal would attach to the first import, and `stripInternal` would drop it.
 */
import { FEED_HEARTBEAT_MS, localFeeds } from '../nats/inspection.ts';
import { type NatsConnectionLike, type NatsMessageLike } from '../nats/wire.ts';
import { getLogger } from '../logger.ts';
import { inspection } from './capture.ts';

interface Batch {
  readonly boot: string;
  readonly seq?: number;
  readonly closed?: boolean;
  readonly records?: Array<Record<string, unknown>>;
}

interface Feed {
  /** The feed's subject without `.inspect`: the agent's name on the page. */
  readonly subject: string;
  readonly rootId: string;
  boot: string | undefined;
  /** Records up to this remote seq are in. */
  seq: number;
  loading: boolean;
  waiting: Batch[];
  lastHeard: number;
  state: 'live' | 'silent' | 'closed';
  /** The feed's actors not yet finished, with their last state value. */
  readonly active: Map<string, unknown>;
}

const decoder = new TextDecoder();
const ID_FIELDS = ['sessionId', 'rootId', 'sourceId'] as const;

/** Listens on `subjects` (patterns over feed prefixes) and merges what arrives. Returns the function that stops. */
export function watchRemoteFeeds(connection: NatsConnectionLike, subjects: readonly string[], heartbeatMs = FEED_HEARTBEAT_MS): () => void {
  const feeds = new Map<string, Feed>();
  let open = true;

  const rootSnapshot = (feed: Feed, status: string, value: string): void => {
    inspection.ingest('@xstate.snapshot', {
      sessionId: feed.rootId,
      event: { type: `statesmith.nats.${value}` },
      sourceId: null,
      transitions: [],
      status,
      value,
      context: { subject: feed.subject, boot: feed.boot ?? null },
      activeIds: [],
    });
  };

  /** Marks a feed's actors as no longer known: its process went silent, closed or restarted. */
  const orphan = (feed: Feed, status: 'stopped' | 'done', why: string): void => {
    for (const [sessionId, value] of feed.active) {
      inspection.ingest('@xstate.snapshot', {
        sessionId,
        event: { type: `statesmith.nats.${why}` },
        sourceId: null,
        transitions: [],
        status: 'stopped',
        value,
        context: null,
        activeIds: [],
      });
    }
    feed.active.clear();
    rootSnapshot(feed, status, why);
  };

  const ingest = (feed: Feed, record: Record<string, unknown>): void => {
    const type = record['type'];
    if (typeof type !== 'string') return;
    const ns = `nats:${feed.subject}#${feed.boot ?? ''}/`;
    const mapped: Record<string, unknown> = { ...record };
    for (const field of ID_FIELDS) if (typeof record[field] === 'string') mapped[field] = ns + (record[field] as string);
    if (typeof record['graphId'] === 'string') mapped['graphId'] = ns + (record['graphId'] as string);
    switch (type) {
      case '@xstate.actor':
        mapped['parentId'] = typeof record['parentId'] === 'string' ? ns + (record['parentId'] as string) : feed.rootId;
        break;
      case '@xstate.snapshot':
        if (record['status'] === 'active') feed.active.set(mapped['sessionId'] as string, record['value']);
        else feed.active.delete(mapped['sessionId'] as string);
        break;
      case 'statesmith.lock':
        mapped['lock'] = `${feed.subject}: ${String(record['lock'])}`;
        break;
      case 'statesmith.graph':
        break;
      default:
        return;
    }
    inspection.ingest(type, mapped);
  };

  const apply = (feed: Feed, batch: Batch): void => {
    for (const record of batch.records ?? []) {
      const seq = typeof record['seq'] === 'number' ? record['seq'] : Infinity;
      if (seq <= feed.seq) continue;
      ingest(feed, record);
    }
    if (typeof batch.seq === 'number' && batch.seq > feed.seq) feed.seq = batch.seq;
  };

  /** A new process, or a new boot of one: show it, and ask for its picture. */
  const begin = (feed: Feed, boot: string): void => {
    if (feed.boot !== undefined) orphan(feed, 'stopped', 'restarted');
    feed.boot = boot;
    feed.seq = 0;
    feed.loading = true;
    feed.state = 'live';
    inspection.ingest('@xstate.actor', {
      sessionId: feed.rootId,
      id: feed.subject,
      name: feed.subject,
      kind: 'agent',
      parentId: null,
      systemId: null,
      rootId: feed.rootId,
      graphId: null,
    });
    rootSnapshot(feed, 'active', 'live');
    connection.request(`${feed.subject}.inspect`, '{"picture":true}', { timeout: 5_000 }).then(
      (message) => {
        if (!open || feed.boot !== boot) return;
        const picture = JSON.parse(decoder.decode(message.data)) as Batch;
        if (picture.boot === boot) {
          for (const record of picture.records ?? []) ingest(feed, record);
          feed.seq = picture.seq ?? 0;
        }
        drain(feed);
      },
      (error: unknown) => {
        getLogger().debug(`no inspection picture from ${feed.subject}`, { error });
        if (open && feed.boot === boot) drain(feed);
      },
    );
  };

  const drain = (feed: Feed): void => {
    feed.loading = false;
    const waiting = feed.waiting;
    feed.waiting = [];
    for (const batch of waiting) apply(feed, batch);
  };

  const onMessage = (error: Error | null, message: NatsMessageLike): void => {
    if (error !== null || message.reply || !open) return;
    const subject = message.subject;
    // This process's own feed: its actors show here already.
    if (subject === undefined || !subject.endsWith('.inspect') || localFeeds.has(subject)) return;
    let batch: Batch;
    try {
      batch = JSON.parse(decoder.decode(message.data)) as Batch;
    } catch (parseError) {
      getLogger().debug(`inspection feed ${subject}: not JSON`, { error: parseError });
      return;
    }
    if (typeof batch?.boot !== 'string') return;
    const name = subject.slice(0, -'.inspect'.length);
    let feed = feeds.get(name);
    if (feed === undefined) {
      feed = { subject: name, rootId: `nats:${name}`, boot: undefined, seq: 0, loading: false, waiting: [], lastHeard: 0, state: 'live', active: new Map() };
      feeds.set(name, feed);
    }
    feed.lastHeard = Date.now();
    if (batch.closed === true) {
      if (feed.boot === batch.boot && feed.state !== 'closed') {
        if (feed.loading) drain(feed);
        feed.state = 'closed';
        orphan(feed, 'done', 'closed');
      }
      return;
    }
    if (feed.boot !== batch.boot) begin(feed, batch.boot);
    else if (feed.state !== 'live') {
      feed.state = 'live';
      rootSnapshot(feed, 'active', 'live');
    }
    if (feed.loading) feed.waiting.push(batch);
    else apply(feed, batch);
  };

  const subscriptions = subjects.map((pattern) => connection.subscribe(pattern.endsWith('>') ? pattern : `${pattern}.inspect`, { callback: onMessage }));
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const feed of feeds.values()) {
      if (feed.state === 'live' && now - feed.lastHeard > 3 * heartbeatMs) {
        // Only the agent: a partition is not a death, and its actors' last states are still the best known.
        feed.state = 'silent';
        rootSnapshot(feed, 'stopped', 'silent');
      }
    }
  }, heartbeatMs);
  watchdog.unref();

  return () => {
    open = false;
    clearInterval(watchdog);
    for (const subscription of subscriptions) subscription.unsubscribe();
    feeds.clear();
  };
}
